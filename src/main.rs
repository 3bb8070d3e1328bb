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
        Command::MigrateStore(args) => migrate_store(&args),
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

/// Runs `confab migrate-store` and prints the rows copied per table.
fn migrate_store(args: &config::MigrateStoreArgs) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("confab: failed to start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let target = confab::store::PgSettings::new(&args.to);
    match runtime.block_on(confab::store::migrate::migrate(&args.from, &target)) {
        Ok(copied) => {
            for table in copied {
                println!(
                    "{:<12} {} rows copied, counts match",
                    table.table, table.rows
                );
            }
            std::process::ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("confab: migrate-store failed: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
