//! Per-address limits behind a reverse proxy: `X-Forwarded-For` counts only when the
//! peer is a trusted proxy.

mod common;

use common::Server;
use reqwest::{Method, StatusCode};

/// Sends one failing login as if forwarded for `client`, and returns the status.
async fn login_from(server: &Server, client: &str) -> StatusCode {
    let body = br#"{"username":"nobody","password":"wrong password"}"#.to_vec();
    server
        .http()
        .send(
            Method::POST,
            "/api/v1/auth/login",
            None,
            &[("x-forwarded-for", client)],
            Some((body, "application/json")),
        )
        .await
        .status
}

#[tokio::test]
async fn trusted_proxy_limits_each_client() {
    let server = Server::start(&[
        ("trusted-proxies", "127.0.0.1"),
        ("auth-burst", "2"),
        ("auth-rate", "1"),
    ])
    .await;

    for _ in 0..2 {
        assert_eq!(
            login_from(&server, "198.51.100.1").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login_from(&server, "198.51.100.1").await,
        StatusCode::TOO_MANY_REQUESTS,
        "the first client spent its budget"
    );
    assert_eq!(
        login_from(&server, "198.51.100.2").await,
        StatusCode::UNAUTHORIZED,
        "another client behind the proxy has its own budget"
    );
}

#[tokio::test]
async fn untrusted_peer_cannot_pick_its_address() {
    let server = Server::start(&[("auth-burst", "2"), ("auth-rate", "1")]).await;

    assert_eq!(
        login_from(&server, "198.51.100.1").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_from(&server, "198.51.100.2").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_from(&server, "198.51.100.3").await,
        StatusCode::TOO_MANY_REQUESTS,
        "a forged X-Forwarded-For from an untrusted peer is ignored"
    );
}
