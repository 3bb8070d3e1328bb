//! The server under test: where it listens, what it is and which process to watch.

use crate::sio::ConnectOptions;
use serde::Serialize;
use std::net::SocketAddr;

/// Which server is measured; decides how a client connects and what it receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerKind {
    /// Confab, which sends a `session` event once a connection is ready.
    Confab,
    /// The Node.js socket.io broadcast peer.
    Node,
    /// Flask-SocketIO on its threading server, as the simplest sample runs it.
    FlaskThreading,
    /// Flask-SocketIO on gevent.
    FlaskGevent,
    /// The bare WebSocket broadcast server of this crate.
    Reference,
    /// The ngIRCd IRC daemon, a peer for the IRC fan-out scenario only.
    Ngircd,
}

impl ServerKind {
    /// Connect options for an anonymous client of this server.
    pub fn anonymous(self) -> ConnectOptions {
        ConnectOptions {
            auth: None,
            ready_event: (self == Self::Confab).then_some("session"),
        }
    }

    /// Connect options for a Confab client that signs in with `token`; other servers
    /// take no credentials, so they get the anonymous options.
    pub fn with_token(self, token: &str) -> ConnectOptions {
        if self == Self::Confab {
            ConnectOptions {
                auth: Some(serde_json::json!({ "token": token }).to_string()),
                ready_event: Some("session"),
            }
        } else {
            self.anonymous()
        }
    }
}

/// The server under test.
#[derive(Clone, Debug, clap::Args)]
pub struct Target {
    /// Address the server listens on; must be a loopback address.
    #[arg(long, default_value = "127.0.0.1:3000", value_parser = parse_loopback)]
    pub addr: SocketAddr,
    /// Kind of server, which decides how clients connect.
    #[arg(long, value_enum, default_value = "confab")]
    pub kind: ServerKind,
    /// Process id of the server, for its CPU time and memory; without it they read as 0.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Number of loopback source addresses (127.0.0.1 up) to spread connections over.
    #[arg(long, default_value_t = 8, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=250))]
    pub sources: usize,
}

/// Accepts only 127.0.0.0/8 addresses: the generator never aims at another host.
fn parse_loopback(text: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = text
        .parse()
        .map_err(|_| format!("{text:?} is not an address such as 127.0.0.1:3000"))?;
    if addr.ip().is_loopback() && addr.is_ipv4() {
        Ok(addr)
    } else {
        Err(format!(
            "{addr} is not an IPv4 loopback address (127.0.0.0/8)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets() {
        assert!(parse_loopback("127.0.0.1:3000").is_ok());
        assert!(parse_loopback("127.3.2.1:80").is_ok());
        assert!(parse_loopback("10.0.0.1:3000").is_err());
        assert!(parse_loopback("[::1]:3000").is_err());
        assert!(parse_loopback("localhost:3000").is_err());
    }
}
