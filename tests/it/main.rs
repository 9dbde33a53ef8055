//! Every integration test, in one binary: the support code and the dependency tree are
//! compiled and linked once instead of once per test file. One module per former test file.

mod support;

mod abandon;
mod bench_ack;
mod cert;
mod cert_faults;
mod cli_docs;
mod config_example;
mod crash_matrix;
mod deploy;
mod discord;
mod dns_check;
mod dns_update;
mod engine;
mod fake_discord_smoke;
mod faults;
mod fleet;
mod fuzz_inputs;
mod lab;
mod load;
mod onboard_db;
mod ops;
mod replan;
mod safety;
mod secrets;
mod sites;
mod verify;
