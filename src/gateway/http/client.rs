//! The client address that per-address limits use: the TCP peer, or, behind a trusted
//! reverse proxy, the address that proxy reports in `X-Forwarded-For`.

use super::AppState;
use crate::service::ClientAddr;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::net::{IpAddr, SocketAddr};

/// Returns the client's address. Each trusted proxy appends the address it received
/// the request from, so the entries are read from the right, skipping trusted proxies;
/// the first other entry is the client. Entries further left are whatever the client
/// claimed and are ignored.
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let Some(header) = forwarded_for else {
        return peer;
    };
    let mut client = peer;
    for entry in header.rsplit(',') {
        match entry.trim().parse::<IpAddr>() {
            Ok(ip) if trusted.contains(&ip) => client = ip,
            Ok(ip) => return ip,
            Err(_) => return client,
        }
    }
    client
}

/// Records the client address in the request's extensions for handlers and the
/// Socket.IO handshake.
pub async fn resolve_client(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let addr = peer.map(|peer| {
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        client_ip(peer, forwarded, &state.trusted_proxies)
    });
    req.extensions_mut().insert(ClientAddr(addr));
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_is_the_client() {
        let got = client_ip(ip("203.0.113.5"), Some("198.51.100.1"), &[ip("127.0.0.1")]);
        assert_eq!(got, ip("203.0.113.5"));
    }

    #[test]
    fn trusted_proxy_reports_the_client() {
        let trusted = [ip("127.0.0.1")];
        let got = client_ip(ip("127.0.0.1"), Some("198.51.100.1"), &trusted);
        assert_eq!(got, ip("198.51.100.1"));
    }

    #[test]
    fn forged_entries_left_of_the_client_are_ignored() {
        let trusted = [ip("127.0.0.1"), ip("10.0.0.2")];
        let header = "1.2.3.4, 198.51.100.7, 10.0.0.2";
        let got = client_ip(ip("127.0.0.1"), Some(header), &trusted);
        assert_eq!(got, ip("198.51.100.7"));
    }

    #[test]
    fn missing_or_broken_header_falls_back() {
        let trusted = [ip("127.0.0.1")];
        assert_eq!(client_ip(ip("127.0.0.1"), None, &trusted), ip("127.0.0.1"));
        assert_eq!(
            client_ip(ip("127.0.0.1"), Some("not an address"), &trusted),
            ip("127.0.0.1")
        );
    }
}
