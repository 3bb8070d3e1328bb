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
        Command::HashPassword => hash_password(),
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

/// Runs `confab hash-password`: reads one line from standard input and prints its
/// argon2id PHC string with the argon2 crate's default parameters.
fn hash_password() -> std::process::ExitCode {
    use argon2::password_hash::{PasswordHasher, SaltString};

    let mut password = String::new();
    if let Err(err) = std::io::stdin().read_line(&mut password) {
        eprintln!("confab: failed to read the password from standard input: {err}");
        return std::process::ExitCode::FAILURE;
    }
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!("confab: the password on standard input is empty");
        return std::process::ExitCode::FAILURE;
    }
    let mut salt = [0u8; 16];
    rand::fill(&mut salt);
    let hashed = SaltString::encode_b64(&salt)
        .map_err(|e| e.to_string())
        .and_then(|salt| {
            argon2::Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|e| e.to_string())
        });
    match hashed {
        Ok(phc) => {
            println!("{phc}");
            std::process::ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("confab: password hashing failed: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
