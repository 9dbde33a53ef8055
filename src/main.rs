use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = onboard_bot::cli::Cli::parse();
    onboard_bot::telemetry::init(cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(onboard_bot::cli::run(cli))
}
