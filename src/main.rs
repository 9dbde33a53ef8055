use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = onboard_bot::cli::Cli::parse();
    onboard_bot::telemetry::init(cli.log_format);
    // The config is loaded before the tokio runtime is built, while this is the process's only
    // thread, so that the secrets it was read from can be removed from the process environment
    // soundly (`remove_var` races with any other thread reading the environment, hence
    // `unsafe` in edition 2024). Every process the bot starts itself gets a cleared
    // environment anyway (`adapters::child_command`), but the SSH master is started by the
    // openssh crate from this process's environment, with no way to give it another: removing
    // the secrets here covers it, and anything else that may start a process later. A wrapper
    // around `ssh` was the alternative; it would cover ssh only, and needs PATH games.
    let config = match onboard_bot::cli::load_config(&cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Some(config) = &config {
        let values = config.secret_values();
        onboard_bot::redact::register(values.iter().copied());
        // A name that is not UTF-8 is none the config read (it reads with `std::env::var`).
        let env: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.to_string_lossy().into_owned())))
            .collect();
        for name in onboard_bot::redact::env_to_remove(env, &config.secret_env_vars, &values) {
            // SAFETY: single-threaded here: clap, the tracing subscriber and Config::load start
            // no thread, and the runtime is built below.
            unsafe { std::env::remove_var(name) };
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            // Exit code 3: an internal error (out of threads or file descriptors).
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(3);
        }
    };
    runtime.block_on(onboard_bot::cli::run_with(cli, config))
}
