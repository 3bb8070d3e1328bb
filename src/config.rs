//! Command line, environment and config-file options.
//!
//! Every `serve` option can be given as a flag (`--send-burst 30`), an environment
//! variable (`CONFAB_SEND_BURST=30`) or a key in the TOML file named by `--config`
//! (`send_burst = 30`). A flag beats the environment, which beats the file, which beats
//! the built-in default.

use crate::telemetry::LogFormat;
use anyhow::{Context, bail};
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::error::Error;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Confab: self-hosted chat rooms. Without a command, runs `serve` with its defaults.
#[derive(Debug, Parser)]
#[command(name = "confab", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the chat server.
    Serve(Box<ServeArgs>),
    /// Copy an SQLite database into an empty PostgreSQL database, checking row counts.
    MigrateStore(MigrateStoreArgs),
    /// Read a password from standard input and print its argon2 PHC string, the form
    /// `--irc-oper` takes.
    HashPassword,
}

/// Options of `confab migrate-store`.
#[derive(Clone, Debug, Args)]
pub struct MigrateStoreArgs {
    /// Source database as sqlite:PATH, e.g. sqlite:/var/lib/confab/confab.db. Stop the
    /// server that uses it first.
    #[arg(long, value_name = "sqlite:PATH", value_parser = parse_sqlite_source)]
    pub from: PathBuf,

    /// Target PostgreSQL URL (postgres://user@host/db); the database must hold no data.
    #[arg(long, value_name = "URL")]
    pub to: String,
}

/// Parses `sqlite:PATH` into the path.
fn parse_sqlite_source(text: &str) -> Result<PathBuf, String> {
    match text.strip_prefix("sqlite:") {
        Some(path) if !path.is_empty() => Ok(PathBuf::from(path)),
        _ => Err(format!(
            "{text:?} is not a SQLite source; write sqlite:PATH, e.g. sqlite:./confab-data/confab.db"
        )),
    }
}

/// Options of `confab serve`.
#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    /// TOML file with any of the options below, keys spelled with '_' (e.g. send_burst = 30).
    #[arg(long, env = "CONFAB_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address and port for HTTP, Socket.IO and the API.
    #[arg(
        long,
        env = "CONFAB_LISTEN",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    pub listen: SocketAddr,

    /// Directory for the SQLite database and uploaded files; created if missing.
    #[arg(
        long,
        env = "CONFAB_DATA_DIR",
        default_value = "./confab-data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,

    /// Browser origins allowed to open Socket.IO connections and send cookie-authenticated
    /// writes, comma-separated (e.g. https://chat.example.org). Empty means the server's
    /// own origin: the listen address and, when that is a loopback or unspecified address,
    /// http(s)://localhost and http(s)://127.0.0.1 on the same port.
    #[arg(
        long,
        env = "CONFAB_ALLOWED_ORIGINS",
        value_delimiter = ',',
        value_name = "ORIGINS"
    )]
    pub allowed_origins: Vec<String>,

    /// Addresses of reverse proxies whose X-Forwarded-For header names the real client,
    /// comma-separated (e.g. 127.0.0.1). Per-address limits then apply to that client.
    #[arg(
        long,
        env = "CONFAB_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "ADDRS"
    )]
    pub trusted_proxies: Vec<std::net::IpAddr>,

    /// PEM certificate chain; with --tls-key, serves HTTPS and WSS (TLS 1.2 and 1.3).
    #[arg(
        long,
        env = "CONFAB_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(
        long,
        env = "CONFAB_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// Let visitors join public rooms under a nickname without registering (true or false).
    #[arg(long, env = "CONFAB_ALLOW_GUESTS", default_value_t = true, action = ArgAction::Set, value_name = "BOOL")]
    pub allow_guests: bool,

    /// Maximum message body length, in characters.
    #[arg(long, env = "CONFAB_MAX_MESSAGE_CHARS", default_value_t = 4000, value_parser = clap::value_parser!(u32).range(1..=100_000), value_name = "CHARS")]
    pub max_message_chars: u32,

    /// Messages a user may send at once before the steady rate applies (all protocols together).
    #[arg(long, env = "CONFAB_SEND_BURST", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..), value_name = "MESSAGES")]
    pub send_burst: u32,

    /// Steady per-user send rate after the burst, in messages per second (0.001 to 1000000).
    #[arg(long, env = "CONFAB_SEND_RATE", default_value_t = 2.0, value_parser = parse_rate, value_name = "PER_SECOND")]
    pub send_rate: f64,

    /// Login, registration and guest sign-ins allowed at once from one client address.
    #[arg(long, env = "CONFAB_AUTH_BURST", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..), value_name = "ATTEMPTS")]
    pub auth_burst: u32,

    /// Steady rate of those attempts per address after the burst, per minute (0.001 to 1000000).
    #[arg(long, env = "CONFAB_AUTH_RATE", default_value_t = 10.0, value_parser = parse_rate, value_name = "PER_MINUTE")]
    pub auth_rate: f64,

    /// Lifetime of a registered user's session, in hours.
    #[arg(
        long,
        env = "CONFAB_SESSION_TTL_HOURS",
        default_value_t = 720,
        value_name = "HOURS"
    )]
    pub session_ttl_hours: u64,

    /// Lifetime of a guest session, in hours.
    #[arg(
        long,
        env = "CONFAB_GUEST_SESSION_TTL_HOURS",
        default_value_t = 24,
        value_name = "HOURS"
    )]
    pub guest_session_ttl_hours: u64,

    /// Socket.IO heartbeat interval, in seconds.
    #[arg(
        long,
        env = "CONFAB_PING_INTERVAL_SECS",
        default_value_t = 25,
        value_name = "SECONDS"
    )]
    pub ping_interval_secs: u64,

    /// Seconds without a heartbeat reply before a connection counts as dead and goes offline.
    #[arg(
        long,
        env = "CONFAB_PING_TIMEOUT_SECS",
        default_value_t = 20,
        value_name = "SECONDS"
    )]
    pub ping_timeout_secs: u64,

    /// Outbound queue per connection, in packets (16 to 1000000); a client that lets it fill is disconnected.
    #[arg(long, env = "CONFAB_OUTBOUND_QUEUE", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(16..=1_000_000), value_name = "PACKETS")]
    pub outbound_queue: u32,

    /// Largest HTTP request body and Socket.IO packet, in bytes (at least 1024; avatars have their own limit).
    #[arg(long, env = "CONFAB_MAX_REQUEST_BYTES", default_value_t = 65_536, value_parser = clap::value_parser!(u32).range(1024..), value_name = "BYTES")]
    pub max_request_bytes: u32,

    /// Largest avatar upload, in bytes (at least 1024).
    #[arg(long, env = "CONFAB_MAX_AVATAR_BYTES", default_value_t = 1_048_576, value_parser = clap::value_parser!(u32).range(1024..), value_name = "BYTES")]
    pub max_avatar_bytes: u32,

    /// Argon2id memory cost, in KiB (at least 19456, which is 19 MiB).
    #[arg(long, env = "CONFAB_ARGON2_MEMORY_KIB", default_value_t = 19_456, value_parser = clap::value_parser!(u32).range(19_456..), value_name = "KIB")]
    pub argon2_memory_kib: u32,

    /// Argon2id passes over memory (at least 2).
    #[arg(long, env = "CONFAB_ARGON2_PASSES", default_value_t = 2, value_parser = clap::value_parser!(u32).range(2..), value_name = "PASSES")]
    pub argon2_passes: u32,

    /// Maximum wait at shutdown for connections and writes to finish, in seconds.
    #[arg(
        long,
        env = "CONFAB_DRAIN_TIMEOUT_SECS",
        default_value_t = 10,
        value_name = "SECONDS"
    )]
    pub drain_timeout_secs: u64,

    /// Log filter (error, warn, info, debug, trace, or a tracing directive); RUST_LOG overrides it.
    #[arg(
        long,
        env = "CONFAB_LOG",
        default_value = "info",
        value_name = "FILTER"
    )]
    pub log: String,

    /// Log line format.
    #[arg(long, env = "CONFAB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,

    /// Let guests create public rooms, for example by joining a new IRC channel (true or false).
    #[arg(long, env = "CONFAB_ALLOW_GUEST_ROOMS", default_value_t = false, action = ArgAction::Set, value_name = "BOOL")]
    pub allow_guest_rooms: bool,

    /// Shortest password accepted at registration, in characters (1 to 128); lower it only for test setups.
    #[arg(long, env = "CONFAB_MIN_PASSWORD_CHARS", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=128), value_name = "CHARS")]
    pub min_password_chars: u32,

    // IRC gateway.
    /// Serve the IRC gateway (true or false).
    #[arg(long, env = "CONFAB_IRC_ENABLED", default_value_t = true, action = ArgAction::Set, value_name = "BOOL")]
    pub irc_enabled: bool,

    /// Address and port for plain-text IRC.
    #[arg(
        long,
        env = "CONFAB_IRC_LISTEN",
        default_value = "127.0.0.1:6667",
        value_name = "ADDR"
    )]
    pub irc_listen: SocketAddr,

    /// Address and port for IRC over TLS, using --tls-cert and --tls-key (e.g. 127.0.0.1:6697).
    #[arg(
        long,
        env = "CONFAB_IRC_TLS_LISTEN",
        value_name = "ADDR",
        requires = "tls_cert"
    )]
    pub irc_tls_listen: Option<SocketAddr>,

    /// Server name IRC clients see as the source of server replies.
    #[arg(
        long,
        env = "CONFAB_IRC_SERVER_NAME",
        default_value = "confab.irc",
        value_name = "NAME"
    )]
    pub irc_server_name: String,

    /// Maximum IRC nickname length, in characters (9 to 64).
    #[arg(long, env = "CONFAB_IRC_NICK_LENGTH", default_value_t = 30, value_parser = clap::value_parser!(u32).range(9..=64), value_name = "CHARS")]
    pub irc_nick_length: u32,

    /// Send queue per IRC connection, in bytes (at least 8192); a client that lets it fill is disconnected.
    #[arg(long, env = "CONFAB_IRC_SENDQ_BYTES", default_value_t = 262_144, value_parser = clap::value_parser!(u32).range(8192..), value_name = "BYTES")]
    pub irc_sendq_bytes: u32,

    /// IRC lines a client may send at once before the steady rate applies.
    #[arg(long, env = "CONFAB_IRC_FLOOD_BURST", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..), value_name = "LINES")]
    pub irc_flood_burst: u32,

    /// Steady IRC line rate per client after the burst, in lines per second (0.001 to 1000000); faster lines wait.
    #[arg(long, env = "CONFAB_IRC_FLOOD_RATE", default_value_t = 4.0, value_parser = parse_rate, value_name = "PER_SECOND")]
    pub irc_flood_rate: f64,

    /// Time an IRC client has to complete registration, in seconds (1 to 3600).
    #[arg(long, env = "CONFAB_IRC_REGISTRATION_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600), value_name = "SECONDS")]
    pub irc_registration_timeout_secs: u64,

    /// IRC operator block as NAME:PASSWORD_HASH, where the hash is an argon2 PHC string from
    /// `confab hash-password`; repeat the flag, or separate blocks with `;`, for several.
    #[arg(long, env = "CONFAB_IRC_OPER", value_delimiter = ';', value_parser = parse_operator, value_name = "NAME:PASSWORD_HASH")]
    pub irc_oper: Vec<crate::service::OperatorBlock>,
    // Several nodes: a shared PostgreSQL database.
    /// PostgreSQL URL (postgres://user@host/db) for nodes that share one database; when
    /// unset, the SQLite file in the data directory is used.
    #[arg(long, env = "CONFAB_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,

    /// Pooled PostgreSQL connections per node.
    #[arg(
        long,
        env = "CONFAB_DATABASE_CONNECTIONS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..),
        value_name = "N"
    )]
    pub database_connections: u32,

    // Several nodes: Redis carries real-time events between them.
    /// Redis URL (redis://host:6379) for fan-out between nodes; when unset, this node
    /// delivers events only to its own clients.
    #[arg(long, env = "CONFAB_REDIS_URL", value_name = "URL")]
    pub redis_url: Option<String>,

    /// Prefix of every Redis channel and key, so several deployments can share one Redis.
    #[arg(
        long,
        env = "CONFAB_REDIS_PREFIX",
        default_value = "confab",
        value_name = "PREFIX"
    )]
    pub redis_prefix: String,
}

impl ServeArgs {
    /// Returns the allowed origins, defaulting to the server's own.
    pub fn effective_origins(&self) -> Vec<String> {
        if !self.allowed_origins.is_empty() {
            return self
                .allowed_origins
                .iter()
                .map(|o| o.trim().trim_end_matches('/').to_owned())
                .filter(|o| !o.is_empty())
                .collect();
        }
        let scheme = if self.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        let port = self.listen.port();
        let mut origins = vec![format!("{scheme}://{}", self.listen)];
        if self.listen.ip().is_loopback() || self.listen.ip().is_unspecified() {
            origins.push(format!("{scheme}://localhost:{port}"));
            origins.push(format!("{scheme}://127.0.0.1:{port}"));
        }
        origins.sort();
        origins.dedup();
        origins
    }
}

/// Parses the command line, then fills options left at their defaults from the TOML
/// file named by `--config` (or `CONFAB_CONFIG`).
pub fn parse() -> anyhow::Result<Cli> {
    parse_from(std::env::args_os())
}

/// Like [`parse`], from an explicit argument list.
pub fn parse_from<I, T>(args: I) -> anyhow::Result<Cli>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    // `confab` alone runs the server with its defaults.
    if args.len() == 1 {
        args.push("serve".into());
    }
    let matches = Cli::command().get_matches_from(args.clone());
    let Some(("serve", serve)) = matches.subcommand() else {
        return Ok(Cli::from_arg_matches(&matches)?);
    };
    let Some(path) = serve.get_one::<PathBuf>("config") else {
        return Ok(Cli::from_arg_matches(&matches)?);
    };
    let extra = file_arguments(path, serve)?;
    if extra.is_empty() {
        return Ok(Cli::from_arg_matches(&matches)?);
    }
    // File values go through clap as if typed after `serve`, so they get the same parsing
    // and validation; only options still at their defaults are taken from the file.
    let mut merged = args;
    merged.extend(extra.into_iter().map(OsString::from));
    let matches = Cli::command().try_get_matches_from(merged)?;
    Ok(Cli::from_arg_matches(&matches)?)
}

/// Parses a rate: a finite number from 0.001 to 1000000.
fn parse_operator(text: &str) -> Result<crate::service::OperatorBlock, String> {
    crate::service::OperatorBlock::parse(text)
}

fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if rate.is_finite() && (0.001..=1_000_000.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!("{text} is outside 0.001 to 1000000"))
    }
}

/// Turns the file's keys into `--key=value` arguments for options that neither a flag
/// nor an environment variable set.
fn file_arguments(path: &PathBuf, serve: &ArgMatches) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read config file {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("invalid TOML in config file {}", path.display()))?;
    let serve_command = ServeArgs::augment_args(clap::Command::new("serve"));
    let known: Vec<String> = serve_command
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .collect();

    let mut args = Vec::new();
    for (key, value) in table {
        if key == "config" || !known.contains(&key) {
            bail!(
                "unknown option {key:?} in config file {}; options are: {}",
                path.display(),
                known.join(", ")
            );
        }
        let from_default = matches!(
            serve.value_source(&key),
            None | Some(ValueSource::DefaultValue)
        );
        if !from_default {
            continue;
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Array(items) => {
                // Lists join with the option's own delimiter: operator blocks use ';'
                // because their password hashes contain commas.
                let delimiter = serve_command
                    .get_arguments()
                    .find(|a| a.get_id() == key.as_str())
                    .and_then(|a| a.get_value_delimiter())
                    .unwrap_or(',');
                items
                    .iter()
                    .map(|v| match v {
                        toml::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(&delimiter.to_string())
            }
            other => other.to_string(),
        };
        let arg = format!("--{}={text}", key.replace('_', "-"));
        // Check each value alone, so an error names the file and key, not a flag.
        if let Err(err) = Cli::command().try_get_matches_from(["confab", "serve", &arg]) {
            let reason = match err.kind() {
                clap::error::ErrorKind::ValueValidation | clap::error::ErrorKind::InvalidValue => {
                    err.source()
                        .map(|cause| cause.to_string())
                        .unwrap_or_else(|| err.kind().to_string())
                }
                kind => kind.to_string(),
            };
            bail!(
                "invalid value for {key:?} in config file {}: {text:?}: {reason}",
                path.display()
            );
        }
        args.push(arg);
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(args: &[&str]) -> ServeArgs {
        let cli = parse_from(args.iter().copied()).expect("arguments parse");
        match cli.command {
            Command::Serve(s) => *s,
            other => panic!("expected serve, parsed {other:?}"),
        }
    }

    #[test]
    fn migrate_store_needs_a_sqlite_source() {
        let cli = parse_from([
            "confab",
            "migrate-store",
            "--from",
            "sqlite:/data/confab.db",
            "--to",
            "postgres://confab@db/confab",
        ])
        .expect("arguments parse");
        let Command::MigrateStore(args) = cli.command else {
            panic!("expected migrate-store");
        };
        assert_eq!(args.from, PathBuf::from("/data/confab.db"));
        assert!(
            parse_sqlite_source("/data/confab.db").is_err(),
            "a path without sqlite: is rejected"
        );
        assert!(
            parse_sqlite_source("sqlite:").is_err(),
            "an empty path is rejected"
        );
    }

    #[test]
    fn no_subcommand_means_serve() {
        let cli = parse_from(["confab"]).expect("bare command parses");
        assert!(matches!(cli.command, Command::Serve(_)));
    }

    #[test]
    fn defaults_need_no_setup() {
        let s = serve(&["confab", "serve"]);
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.data_dir, PathBuf::from("./confab-data"));
        assert!(s.allow_guests);
        assert_eq!(s.max_message_chars, 4000);
        assert!(
            s.effective_origins()
                .contains(&"http://localhost:8080".to_owned())
        );
    }

    #[test]
    fn file_fills_defaults_but_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("confab.toml");
        std::fs::write(
            &file,
            "send_burst = 7\nallow_guests = false\nallowed_origins = [\"https://a.example\", \"https://b.example\"]\nlisten = \"127.0.0.1:9000\"\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let s = serve(&[
            "confab",
            "serve",
            "--config",
            path,
            "--listen",
            "127.0.0.1:9100",
        ]);
        assert_eq!(s.send_burst, 7);
        assert!(!s.allow_guests);
        assert_eq!(
            s.allowed_origins,
            vec!["https://a.example", "https://b.example"]
        );
        assert_eq!(s.listen.to_string(), "127.0.0.1:9100", "flag beats file");
    }

    #[test]
    fn unknown_file_key_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("confab.toml");
        std::fs::write(&file, "sned_burst = 7\n").unwrap();
        let err = parse_from(["confab", "serve", "--config", file.to_str().unwrap()]).unwrap_err();
        assert!(err.to_string().contains("sned_burst"), "{err}");
    }

    #[test]
    fn bad_file_value_names_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("confab.toml");
        std::fs::write(&file, "send_burst = \"thirty\"\n").unwrap();
        let err = parse_from(["confab", "serve", "--config", file.to_str().unwrap()]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("\"send_burst\""), "{text}");
        assert!(text.contains("confab.toml"), "{text}");
        assert!(!text.contains("--send-burst"), "{text}");
    }

    #[test]
    fn rates_must_be_positive_and_finite() {
        for bad in ["0", "-1", "inf", "NaN", "1e10"] {
            let result =
                Cli::command().try_get_matches_from(["confab", "serve", "--send-rate", bad]);
            assert!(result.is_err(), "--send-rate {bad} was accepted");
        }
        assert!(parse_rate("0.5").is_ok());
    }

    #[test]
    fn queue_and_size_floors_are_enforced() {
        for args in [
            ["--outbound-queue", "0"],
            ["--max-request-bytes", "0"],
            ["--send-burst", "0"],
        ] {
            let mut argv = vec!["confab", "serve"];
            argv.extend(args);
            assert!(
                Cli::command().try_get_matches_from(argv).is_err(),
                "{args:?} was accepted"
            );
        }
    }

    #[test]
    fn argon2_floor_is_enforced() {
        let err =
            Cli::command().try_get_matches_from(["confab", "serve", "--argon2-memory-kib", "1024"]);
        assert!(err.is_err());
    }
}
