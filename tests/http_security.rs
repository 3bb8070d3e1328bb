//! HTTP security and account rules over the wire: headers, cookies, CSRF, login and
//! registration, avatars, history paging, metrics and stats.

mod common;

use common::{Account, PASSWORD, Server, png};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

/// Returns the directives of a Content-Security-Policy by name.
fn csp_directive<'a>(policy: &'a str, name: &str) -> Option<&'a str> {
    policy
        .split(';')
        .map(str::trim)
        .find(|d| d.split_whitespace().next() == Some(name))
}

fn assert_security_headers(reply: &common::Reply, request: &str) {
    let policy = reply
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("{request}: no Content-Security-Policy"));
    // Scripts fall back to default-src when script-src is absent.
    let scripts = csp_directive(&policy, "script-src")
        .or_else(|| csp_directive(&policy, "default-src"))
        .unwrap_or_else(|| panic!("{request}: CSP restricts no scripts: {policy}"));
    assert!(
        !scripts.contains("'unsafe-inline'"),
        "{request}: scripts allow 'unsafe-inline': {policy}"
    );
    assert!(
        !scripts.contains("'unsafe-eval'"),
        "{request}: scripts allow 'unsafe-eval': {policy}"
    );
    assert_eq!(
        reply.header("x-content-type-options").as_deref(),
        Some("nosniff"),
        "{request}: X-Content-Type-Options"
    );
}

#[tokio::test]
async fn security_headers_on_pages_and_api() {
    let server = Server::start(&[]).await;
    let account = server.register("viewer").await;
    let http = server.http();

    let page = http.get("/", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_security_headers(&page, "GET /");

    let stats = http.get("/api/v1/stats", None).await;
    assert_eq!(stats.status, StatusCode::OK);
    assert_security_headers(&stats, "GET /api/v1/stats");

    let me = http.get("/api/v1/me", Some(&account.token)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_security_headers(&me, "GET /api/v1/me");

    let missing = http.get("/api/v1/no-such-endpoint", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_security_headers(&missing, "API 404");

    let unauthenticated = http
        .post_json(
            "/api/v1/rooms",
            None,
            &json!({ "name": "x", "visibility": "public" }),
        )
        .await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);
    assert_security_headers(&unauthenticated, "API 401");
}

#[tokio::test]
async fn session_cookie_is_httponly_and_samesite() {
    let server = Server::start(&[]).await;
    let reply = server
        .http()
        .post_json(
            "/api/v1/auth/register",
            None,
            &json!({ "username": "cookie", "password": PASSWORD }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);

    let cookies: Vec<String> = reply
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("Set-Cookie is ASCII").to_owned())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("confab_session="))
        .unwrap_or_else(|| panic!("no confab_session cookie in {cookies:?}"));
    let attributes: Vec<String> = session
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    assert!(
        attributes.iter().any(|a| a == "httponly"),
        "session cookie lacks HttpOnly: {session}"
    );
    assert!(
        attributes
            .iter()
            .any(|a| a == "samesite=lax" || a == "samesite=strict"),
        "session cookie lacks SameSite=Lax or Strict: {session}"
    );
    assert!(
        attributes.iter().any(|a| a == "path=/"),
        "session cookie is not scoped to the whole site: {session}"
    );
}

#[tokio::test]
async fn cookie_write_needs_csrf_token() {
    let server = Server::start(&[]).await;
    let browser = server.browser();
    let reply = browser
        .post_json(
            "/api/v1/auth/register",
            None,
            &json!({ "username": "browser", "password": PASSWORD }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let csrf = reply.json()["csrf_token"]
        .as_str()
        .expect("csrf_token")
        .to_owned();

    // The cookie alone authenticates reads.
    let me = browser.get("/api/v1/me", None).await;
    assert_eq!(me.status, StatusCode::OK, "cookie read: {}", me.text);

    let room = json!({ "name": "cookie-room", "visibility": "public" }).to_string();
    let write = |headers: Vec<(&'static str, String)>| {
        let browser = browser.clone();
        let room = room.clone();
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            browser
                .send(
                    Method::POST,
                    "/api/v1/rooms",
                    None,
                    &headers,
                    Some((room.into_bytes(), "application/json")),
                )
                .await
        }
    };

    let reply = write(vec![]).await;
    assert_eq!(
        reply.status,
        StatusCode::FORBIDDEN,
        "no token: {}",
        reply.text
    );
    assert_eq!(reply.error_code(), "csrf_failed");

    let reply = write(vec![("x-csrf-token", "not-the-token".to_owned())]).await;
    assert_eq!(
        reply.status,
        StatusCode::FORBIDDEN,
        "wrong token: {}",
        reply.text
    );
    assert_eq!(reply.error_code(), "csrf_failed");

    let reply = write(vec![("x-csrf-token", csrf.clone())]).await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "right token: {}",
        reply.text
    );
    assert_eq!(reply.json()["name"], "cookie-room");
}

#[tokio::test]
async fn bearer_write_needs_no_csrf_token() {
    let server = Server::start(&[]).await;
    let account = server.register("program").await;
    let reply = server
        .http()
        .post_json(
            "/api/v1/rooms",
            Some(&account.token),
            &json!({ "name": "bot-room", "visibility": "public" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
}

#[tokio::test]
async fn login_error_hides_unknown_user() {
    let server = Server::start(&[]).await;
    server.register("existing").await;
    let http = server.http();

    let wrong_password = http
        .post_json(
            "/api/v1/auth/login",
            None,
            &json!({ "username": "existing", "password": "not the password" }),
        )
        .await;
    let unknown_user = http
        .post_json(
            "/api/v1/auth/login",
            None,
            &json!({ "username": "nobody-here", "password": "not the password" }),
        )
        .await;
    assert_eq!(wrong_password.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_password.status, unknown_user.status, "status");
    assert_eq!(wrong_password.text, unknown_user.text, "body");
    assert_eq!(wrong_password.error_code(), "bad_credentials");
    assert!(
        wrong_password.header("set-cookie").is_none(),
        "failed login set a cookie"
    );

    let right = http
        .post_json(
            "/api/v1/auth/login",
            None,
            &json!({ "username": "EXISTING", "password": PASSWORD }),
        )
        .await;
    assert_eq!(
        right.status,
        StatusCode::OK,
        "login is case-insensitive: {}",
        right.text
    );
}

#[tokio::test]
async fn registration_rejects_lookalike_usernames() {
    let server = Server::start(&[]).await;
    server.register("alice").await;
    let http = server.http();
    // Case, full-width letters (NFKC folds them) and both together.
    for lookalike in ["Alice", "ALICE", "ａｌｉｃｅ", "ＡＬＩＣＥ"] {
        let reply = http
            .post_json(
                "/api/v1/auth/register",
                None,
                &json!({ "username": lookalike, "password": PASSWORD }),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CONFLICT,
            "{lookalike}: {}",
            reply.text
        );
        assert_eq!(reply.error_code(), "username_taken", "{lookalike}");
    }
}

#[tokio::test]
async fn registration_checks_password_length() {
    let server = Server::start(&[]).await;
    let http = server.http();
    let reply = http
        .post_json(
            "/api/v1/auth/register",
            None,
            &json!({ "username": "shorty", "password": "1234567" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(reply.error_code(), "invalid_password");

    // Eight characters are enough, and no account was left behind by the failure.
    let reply = http
        .post_json(
            "/api/v1/auth/register",
            None,
            &json!({ "username": "shorty", "password": "12345678" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
}

#[tokio::test]
async fn registration_rejects_invisible_username() {
    let server = Server::start(&[]).await;
    let http = server.http();
    for username in [
        "\u{200B}\u{200B}\u{200B}",
        "\u{200B}\u{200C}\u{200D}\u{2060}",
    ] {
        let reply = http
            .post_json(
                "/api/v1/auth/register",
                None,
                &json!({ "username": username, "password": PASSWORD }),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{username:?}: {}",
            reply.text
        );
        assert_eq!(reply.error_code(), "invalid_username", "{username:?}");
    }
}

#[tokio::test]
async fn chinese_names_are_accepted() {
    let server = Server::start(&[]).await;
    let http = server.http();
    let reply = http
        .post_json(
            "/api/v1/auth/register",
            None,
            &json!({ "username": "xiaoming", "password": PASSWORD, "display_name": "小明" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.json()["user"]["display_name"], "小明");

    let reply = http
        .post_json(
            "/api/v1/auth/register",
            None,
            &json!({ "username": "张伟", "password": PASSWORD }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let account = Account::from_login(&reply.json());
    assert_eq!(account.user["username"], "张伟");
    assert_eq!(account.user["display_name"], "张伟");

    let reply = http
        .send(
            Method::PATCH,
            "/api/v1/me",
            Some(&account.token),
            &[],
            Some((
                json!({ "display_name": "老张" }).to_string().into_bytes(),
                "application/json",
            )),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json()["display_name"], "老张");
}

#[tokio::test]
async fn login_rate_limit_is_per_address() {
    let server = Server::start(&[("auth-burst", "3"), ("auth-rate", "1")]).await;
    let attempt = json!({ "username": "someone", "password": "wrong password" });
    let http = server.http();

    for n in 0..3 {
        let reply = http.post_json("/api/v1/auth/login", None, &attempt).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "attempt {n}: {}",
            reply.text
        );
    }
    let reply = http.post_json("/api/v1/auth/login", None, &attempt).await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        reply.text
    );
    assert_eq!(reply.error_code(), "rate_limited");
    let retry_after: u64 = reply
        .header("retry-after")
        .expect("429 carries Retry-After")
        .parse()
        .expect("Retry-After is a number of seconds");
    assert!(retry_after >= 1, "Retry-After {retry_after}");
    assert!(
        reply.json()["error"]["retry_after_ms"]
            .as_u64()
            .is_some_and(|ms| ms > 0),
        "retry_after_ms in {}",
        reply.text
    );

    // Registration shares the budget.
    let reply = http
        .post_json(
            "/api/v1/auth/register",
            None,
            &json!({ "username": "newcomer", "password": PASSWORD }),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        reply.text
    );

    // Another client address has its own budget.
    let other = server.http_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    let reply = other.post_json("/api/v1/auth/login", None, &attempt).await;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "from 127.0.0.2: {}",
        reply.text
    );
}

async fn put_avatar(
    server: &Server,
    account: &Account,
    body: Vec<u8>,
    content_type: &str,
) -> common::Reply {
    server
        .http()
        .send(
            Method::PUT,
            "/api/v1/me/avatar",
            Some(&account.token),
            &[],
            Some((body, content_type)),
        )
        .await
}

#[tokio::test]
async fn avatar_png_is_stored_and_served() {
    let server = Server::start(&[]).await;
    let account = server.register("painter").await;

    let image = png(2, 3, 0);
    let reply = put_avatar(&server, &account, image.clone(), "image/png").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let avatar_url = reply.json()["avatar_url"]
        .as_str()
        .expect("avatar_url")
        .to_owned();

    let served = server.http().get(&avatar_url, None).await;
    assert_eq!(served.status, StatusCode::OK, "{}", served.text);
    assert_eq!(served.header("content-type").as_deref(), Some("image/png"));
    assert_eq!(
        served.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert_eq!(served.bytes, image, "served bytes equal the upload");

    // An image larger than the request limit (64 KiB) but within the avatar limit.
    let large = png(16, 16, 200_000);
    let reply = put_avatar(&server, &account, large.clone(), "image/png").await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{} bytes: {}",
        large.len(),
        reply.text
    );
    let avatar_url = reply.json()["avatar_url"]
        .as_str()
        .expect("avatar_url")
        .to_owned();
    let served = server.http().get(&avatar_url, None).await;
    assert_eq!(served.bytes, large, "large avatar served back");
}

#[tokio::test]
async fn avatar_rejects_svg_and_html() {
    let server = Server::start(&[]).await;
    let account = server.register("sneaky").await;
    let cases: [(&str, &[u8], &str); 4] = [
        (
            "SVG",
            br#"<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="9" height="9"/></svg>"#,
            "image/svg+xml",
        ),
        (
            "HTML",
            b"<!doctype html><html><script>alert(1)</script></html>",
            "text/html",
        ),
        (
            "HTML labelled PNG",
            b"<html><script>alert(1)</script></html>",
            "image/png",
        ),
        ("empty", b"", "image/png"),
    ];
    for (case, body, content_type) in cases {
        let reply = put_avatar(&server, &account, body.to_vec(), content_type).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{case}: {}",
            reply.text
        );
        assert_eq!(reply.error_code(), "invalid_image", "{case}");
    }

    // The avatar is still the generated one.
    let served = server
        .http()
        .get(&format!("/api/v1/users/{}/avatar", account.user_id), None)
        .await;
    assert_eq!(
        served.header("content-type").as_deref(),
        Some("image/svg+xml")
    );
    assert!(!served.text.contains("alert"), "{}", served.text);
}

#[tokio::test]
async fn avatar_over_limit_is_413() {
    let server = Server::start(&[("max-avatar-bytes", "100000")]).await;
    let account = server.register("hoarder").await;

    let image = png(8, 8, 100_001);
    let reply = put_avatar(&server, &account, image, "image/png").await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.text
    );
    assert_eq!(reply.error_code(), "image_too_large");

    let image = png(8, 8, 90_000);
    let reply = put_avatar(&server, &account, image, "image/png").await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "within the limit: {}",
        reply.text
    );
}

#[tokio::test]
async fn default_avatar_escapes_display_name() {
    let server = Server::start(&[]).await;
    let reply = server
        .http()
        .post_json(
            "/api/v1/auth/register",
            None,
            &json!({
                "username": "markup",
                "password": PASSWORD,
                "display_name": "<script>alert(1)</script>",
            }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let account = Account::from_login(&reply.json());

    let served = server
        .http()
        .get(&format!("/api/v1/users/{}/avatar", account.user_id), None)
        .await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(
        served.header("content-type").as_deref(),
        Some("image/svg+xml")
    );
    assert_eq!(
        served.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    let svg = &served.text;
    assert!(svg.starts_with("<svg"), "{svg}");
    assert!(
        !svg.contains("<script"),
        "markup from the name got through: {svg}"
    );
    assert!(
        svg.contains("&lt;"),
        "the name's first character is escaped: {svg}"
    );
    let policy = served
        .header("content-security-policy")
        .expect("avatar has a CSP");
    assert!(
        csp_directive(&policy, "script-src").is_none()
            && csp_directive(&policy, "default-src") == Some("default-src 'none'"),
        "avatar CSP allows scripts: {policy}"
    );
}

/// Total messages in the paging test, and how often one is deleted.
const PAGING_MESSAGES: usize = 250;
const PAGING_DELETE_EVERY: usize = 7;

#[tokio::test]
async fn history_pages_cover_every_seq_once() {
    let server = Server::start(&[("send-burst", "10000"), ("send-rate", "10000")]).await;
    let account = server.register("archivist").await;
    let http = server.http();
    let reply = http
        .post_json(
            "/api/v1/rooms",
            Some(&account.token),
            &json!({ "name": "archive", "visibility": "public" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let room = reply.json()["id"].as_i64().expect("room id");
    let path = format!("/api/v1/rooms/{room}/messages");

    let mut deleted = HashSet::new();
    for n in 0..PAGING_MESSAGES {
        let reply = http
            .post_json(
                &path,
                Some(&account.token),
                &json!({ "body": format!("entry {n}") }),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "message {n}: {}",
            reply.text
        );
        let id = reply.json()["id"].as_i64().expect("message id");
        if n % PAGING_DELETE_EVERY == 3 {
            let reply = http
                .delete(&format!("/api/v1/messages/{id}"), Some(&account.token))
                .await;
            assert_eq!(reply.status, StatusCode::OK, "delete {id}: {}", reply.text);
            deleted.insert(id);
        }
    }

    // Backwards from the newest page, then forwards from the start.
    let mut backward: Vec<Value> = Vec::new();
    let mut query = "limit=500".to_owned();
    for _ in 0..20 {
        let page = http
            .get(&format!("{path}?{query}"), Some(&account.token))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let page = page.json();
        let messages = page["messages"].as_array().expect("messages").clone();
        assert!(messages.len() <= 100, "page of {} messages", messages.len());
        assert!(!messages.is_empty(), "empty page before the start: {query}");
        let oldest = messages[0]["seq"].as_i64().expect("seq");
        backward.splice(0..0, messages);
        if page["has_more"] != true {
            break;
        }
        query = format!("before={oldest}&limit=100");
    }
    let mut forward: Vec<Value> = Vec::new();
    let mut after = 0;
    for _ in 0..20 {
        let page = http
            .get(
                &format!("{path}?after={after}&limit=100"),
                Some(&account.token),
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let page = page.json();
        let messages = page["messages"].as_array().expect("messages").clone();
        assert!(messages.len() <= 100, "page of {} messages", messages.len());
        if let Some(last) = messages.last() {
            after = last["seq"].as_i64().expect("seq");
        }
        forward.extend(messages);
        if page["has_more"] != true {
            break;
        }
    }

    for (direction, messages) in [("backward", &backward), ("forward", &forward)] {
        let seqs: Vec<i64> = messages
            .iter()
            .map(|m| m["seq"].as_i64().unwrap())
            .collect();
        let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
        assert_eq!(
            seqs, expected,
            "{direction}: seqs without gaps or duplicates"
        );
        let texts = messages.iter().filter(|m| m["kind"] == "text").count();
        assert_eq!(texts, PAGING_MESSAGES, "{direction}: text messages");

        let tombstones: HashSet<i64> = messages
            .iter()
            .filter(|m| !m["deleted_at"].is_null())
            .map(|m| m["id"].as_i64().unwrap())
            .collect();
        assert_eq!(
            tombstones, deleted,
            "{direction}: tombstones are the deleted messages"
        );
        for message in messages.iter().filter(|m| !m["deleted_at"].is_null()) {
            assert_eq!(message["body"], "", "tombstone keeps no text: {message}");
            assert_eq!(message["deleted_by"], account.user_id, "{message}");
        }
    }
    assert_eq!(
        backward, forward,
        "both directions return the same messages"
    );
}

#[tokio::test]
async fn metrics_lists_core_series() {
    let server = Server::start(&[]).await;
    let account = server.register("measured").await;
    let (mut client, session) = server.socket(json!({ "token": account.token })).await;
    let lobby = session["lobby_id"].as_i64().expect("lobby id");
    client.send_ok(lobby, "counted").await;

    let reply = server.http().get("/metrics", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let text = &reply.text;
    let stored = common::metric_value(text, "confab_messages_stored_total")
        .unwrap_or_else(|| panic!("no confab_messages_stored_total in\n{text}"));
    // The registration's join event and the message.
    assert!(stored >= 2.0, "confab_messages_stored_total is {stored}");
    let connections = common::metric_value(text, "confab_connections")
        .unwrap_or_else(|| panic!("no confab_connections in\n{text}"));
    assert!(connections >= 1.0, "confab_connections is {connections}");
    assert!(
        text.contains("confab_connections{transport=\"websocket\"} 1"),
        "one WebSocket connection:\n{text}"
    );
    let latency = common::metric_value(text, "confab_delivery_latency_seconds_count")
        .unwrap_or_else(|| panic!("no confab_delivery_latency_seconds histogram in\n{text}"));
    assert!(latency >= 1.0, "delivery latency observations: {latency}");
    assert!(
        text.contains("confab_delivery_latency_seconds_bucket"),
        "histogram buckets:\n{text}"
    );
}

#[tokio::test]
async fn stats_reports_online_users_and_rate() {
    let server = Server::start(&[]).await;
    let first = server.register("stat-one").await;
    let second = server.register("stat-two").await;
    let (mut client, session) = server.socket(json!({ "token": first.token })).await;
    let (_other, _) = server.socket(json!({ "token": second.token })).await;
    let lobby = session["lobby_id"].as_i64().expect("lobby id");
    for n in 0..6 {
        client.send_ok(lobby, &format!("stat {n}")).await;
    }

    let reply = server.http().get("/api/v1/stats", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let stats = reply.json();
    assert_eq!(stats["online_users"], 2, "{stats}");
    let rate = stats["messages_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("no messages_per_second in {stats}"));
    assert!(
        rate > 0.0,
        "messages_per_second is {rate} after sending: {stats}"
    );
    // Six messages and two join events within the last minute.
    assert!(
        stats["messages_last_minute"]
            .as_u64()
            .is_some_and(|n| n >= 8),
        "{stats}"
    );
}

#[tokio::test]
async fn cookie_only_sign_in_hides_token() {
    let server = Server::start(&[]).await;
    let browser = server.browser();
    let reply = browser
        .post_json(
            "/api/v1/auth/register?cookie_only=true",
            None,
            &json!({ "username": "cookieonly", "password": PASSWORD }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let body = reply.json();
    assert!(body.get("token").is_none(), "token in the body: {body}");
    assert!(body["csrf_token"].is_string(), "{body}");
    assert_eq!(body["user"]["username"], "cookieonly", "{body}");
    let cookies: Vec<String> = reply
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    assert!(
        cookies.iter().any(|c| c.starts_with("confab_session=")),
        "no session cookie in {cookies:?}"
    );

    // The cookie set by that reply authenticates.
    let me = browser.get("/api/v1/me", None).await;
    assert_eq!(me.status, StatusCode::OK, "cookie read: {}", me.text);

    let login = browser
        .post_json(
            "/api/v1/auth/login?cookie_only=true",
            None,
            &json!({ "username": "cookieonly", "password": PASSWORD }),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text);
    assert!(login.json().get("token").is_none(), "{}", login.text);

    let guest = browser
        .post_json("/api/v1/auth/guest?cookie_only=true", None, &json!({}))
        .await;
    assert_eq!(guest.status, StatusCode::CREATED, "{}", guest.text);
    assert!(guest.json().get("token").is_none(), "{}", guest.text);

    // Without the parameter, programs still get the token.
    let program = server
        .http()
        .post_json(
            "/api/v1/auth/login",
            None,
            &json!({ "username": "cookieonly", "password": PASSWORD }),
        )
        .await;
    assert!(program.json()["token"].is_string(), "{}", program.text);
}

#[tokio::test]
async fn handshake_create_guest_false_rejects() {
    let server = Server::start(&[]).await;
    let mut client = common::SioClient::open(server.addr, None)
        .await
        .expect("open a WebSocket");
    let refused = client
        .handshake(json!({ "create_guest": false }))
        .await
        .expect_err("handshake without credentials accepted");
    assert_eq!(refused["message"], "unauthenticated", "{refused}");

    // A token still authenticates with the flag set.
    let account = server.register("flagged").await;
    let (_client, session) = server
        .socket(json!({ "token": account.token, "create_guest": false }))
        .await;
    assert_eq!(session["user"]["username"], "flagged", "{session}");
}

/// Returns the `avatar_url` of a `User` JSON object.
fn avatar_url_of(user: &Value) -> String {
    user["avatar_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no avatar_url in {user}"))
        .to_owned()
}

#[tokio::test]
async fn avatar_url_changes_with_image() {
    let server = Server::start(&[]).await;
    let account = server.register("versioned").await;
    let me = server.http().get("/api/v1/me", Some(&account.token)).await;
    let generated = avatar_url_of(&me.json()["user"]);
    assert!(generated.contains("?v="), "{generated}");

    // The generated image draws the display name, so renaming changes its version.
    let body = json!({ "display_name": "Zed" }).to_string();
    let renamed = server
        .http()
        .send(
            Method::PATCH,
            "/api/v1/me",
            Some(&account.token),
            &[],
            Some((body.into_bytes(), "application/json")),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);
    let renamed_url = avatar_url_of(&renamed.json());
    assert_ne!(renamed_url, generated);

    let first = put_avatar(&server, &account, png(2, 2, 0), "image/png").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let first_url = avatar_url_of(&first.json());
    assert_ne!(first_url, renamed_url);

    let second = put_avatar(&server, &account, png(3, 3, 0), "image/png").await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);
    let second_url = avatar_url_of(&second.json());
    assert_ne!(second_url, first_url);

    // A versioned address may be cached for good, one without a version must be revalidated.
    let versioned = server.http().get(&second_url, None).await;
    assert_eq!(versioned.status, StatusCode::OK, "{}", versioned.text);
    let cache = versioned.header("cache-control").unwrap_or_default();
    assert!(cache.contains("immutable"), "{second_url}: {cache}");
    let bare = second_url.split('?').next().expect("a path");
    let unversioned = server.http().get(bare, None).await;
    assert_eq!(unversioned.status, StatusCode::OK, "{}", unversioned.text);
    assert_eq!(
        unversioned.header("cache-control").as_deref(),
        Some("no-cache"),
        "{bare}"
    );
}
