//! The `confab` command.

use confab::config::{self, Command};

fn main() -> std::process::ExitCode {
    let cli = match config::parse() {
        Ok(cli) => cli,
        Err(err) => {
            eprintln!("confab: {err:#}");
            return std::process::ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Serve(args) => {
            confab::telemetry::init_logging(&args.log, args.log_format);
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(err) => {
                    eprintln!("confab: failed to start the async runtime: {err}");
                    return std::process::ExitCode::FAILURE;
                }
            };
            match runtime.block_on(confab::server::run(*args)) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!(cause = %format!("{err:#}"), "server stopped with an error");
                    eprintln!("confab: {err:#}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}
