//! Bad input over the wire: every rejected packet, frame, token or request must fail
//! alone, with the documented error, while other clients of the same server carry on.

mod common;

use common::{Server, SioClient, assert_still_serving};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::{self, Message};

/// Connects a guest that acts as the well-behaved client and returns it with the
/// lobby id.
async fn bystander(server: &Server) -> (SioClient, i64) {
    let (client, session) = server.socket(json!({ "nickname": "bystander" })).await;
    let lobby = session["lobby_id"].as_i64().expect("session.lobby_id");
    (client, lobby)
}

fn error_code(reply: &Value) -> &str {
    assert_eq!(reply["ok"], false, "expected a rejection, got {reply}");
    reply["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("rejection without error.code: {reply}"))
}

#[tokio::test]
async fn oversized_body_gets_body_too_long() {
    let mut server = Server::start(&[("max-message-chars", "100")]).await;
    let (mut good, lobby) = bystander(&server).await;
    let (mut bad, _) = server.socket(json!({ "nickname": "talker" })).await;

    let reply = bad
        .call(
            "message:send",
            json!({ "room_id": lobby, "body": "a".repeat(101) }),
        )
        .await;
    assert_eq!(error_code(&reply), "body_too_long", "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "rejection carries a readable message: {reply}"
    );

    // The limit counts characters, not bytes: 100 three-byte characters fit.
    let reply = bad
        .call(
            "message:send",
            json!({ "room_id": lobby, "body": "字".repeat(100) }),
        )
        .await;
    assert_eq!(reply["ok"], true, "body at the limit accepted: {reply}");

    assert_still_serving(&mut server, &mut good, lobby).await;
}

#[tokio::test]
async fn packet_over_request_limit_closes_only_that_connection() {
    let mut server = Server::start(&[("max-request-bytes", "2048")]).await;
    let (mut good, lobby) = bystander(&server).await;
    let (mut bad, _) = server.socket(json!({ "nickname": "shouter" })).await;

    // A packet under the limit is accepted.
    let reply = bad
        .call(
            "message:send",
            json!({ "room_id": lobby, "body": "s".repeat(1500) }),
        )
        .await;
    assert_eq!(reply["ok"], true, "packet under the limit: {reply}");

    // The body is within the default 4000-character limit, but the packet is not
    // within 2048 bytes.
    let body = "b".repeat(3000);
    bad.emit_with_ack("message:send", &json!({ "room_id": lobby, "body": body }))
        .await;
    let closed = bad.wait_closed(common::WAIT).await;
    assert!(
        closed.is_ok(),
        "connection that sent an oversized packet still open"
    );

    assert_still_serving(&mut server, &mut good, lobby).await;
    let history = good
        .call("room:history", json!({ "room_id": lobby, "limit": 100 }))
        .await;
    assert_eq!(history["ok"], true, "{history}");
    let stored = history["data"]["messages"]
        .as_array()
        .expect("history messages")
        .iter()
        .any(|m| m["body"] == body.as_str());
    assert!(!stored, "the oversized packet's message was stored");
}

#[tokio::test]
async fn malformed_event_json_closes_only_that_connection() {
    let mut server = Server::start(&[]).await;
    let (mut good, lobby) = bystander(&server).await;
    let (mut bad, _) = server.socket(json!({ "nickname": "garbler" })).await;

    bad.send_text(&format!(
        "421[\"message:send\",{{\"room_id\":{lobby},\"body\":"
    ))
    .await;
    let closed = bad.wait_closed(common::WAIT).await;
    assert!(
        closed.is_ok(),
        "connection that sent malformed JSON still open"
    );

    assert_still_serving(&mut server, &mut good, lobby).await;
}

#[tokio::test]
async fn invalid_utf8_text_frame_closes_only_that_connection() {
    let mut server = Server::start(&[]).await;
    let (mut good, lobby) = bystander(&server).await;
    let (mut bad, _) = server.socket(json!({ "nickname": "mangler" })).await;

    // tungstenite only builds text messages from valid UTF-8, so frames are built by
    // hand. First a valid one, to show that hand-built frames work at all.
    let ack_id = bad.allocate_ack_id();
    let valid =
        format!("42{ack_id}[\"message:send\",{{\"room_id\":{lobby},\"body\":\"raw frame\"}}]");
    let frame = Frame::message(valid.into_bytes(), OpCode::Data(Data::Text), true);
    bad.send_message(Message::Frame(frame))
        .await
        .expect("the raw frame is written");
    let reply = bad.wait_ack(ack_id).await;
    assert_eq!(reply["ok"], true, "hand-built valid frame: {reply}");

    // Then opcode text with the bytes 0xFF 0xFE, which no UTF-8 text contains.
    let mut payload = b"42[\"message\",\"".to_vec();
    payload.extend_from_slice(&[0xff, 0xfe]);
    payload.extend_from_slice(b"\"]");
    let frame = Frame::message(payload, OpCode::Data(Data::Text), true);
    bad.send_message(Message::Frame(frame))
        .await
        .expect("the raw frame is written");
    let closed = bad.wait_closed(common::WAIT).await;
    assert!(
        closed.is_ok(),
        "connection that sent invalid UTF-8 still open"
    );

    assert_still_serving(&mut server, &mut good, lobby).await;
}

#[tokio::test]
async fn rest_bad_body_is_invalid_payload() {
    let mut server = Server::start(&[]).await;
    let (mut good, lobby) = bystander(&server).await;
    let account = server.register("poster").await;
    let http = server.http();
    let path = format!("/api/v1/rooms/{lobby}/messages");

    let mut invalid_utf8 = b"{\"body\":\"".to_vec();
    invalid_utf8.extend_from_slice(&[0xc3, 0x28, 0xff]);
    invalid_utf8.extend_from_slice(b"\"}");
    let cases: [(&str, Vec<u8>); 4] = [
        ("invalid UTF-8", invalid_utf8),
        ("truncated JSON", b"{\"body\":".to_vec()),
        ("not an object", b"[1,2,3]".to_vec()),
        ("unknown field", br#"{"body":"hi","colour":"red"}"#.to_vec()),
    ];
    for (case, bytes) in cases {
        let reply = http
            .send(
                Method::POST,
                &path,
                Some(&account.token),
                &[],
                Some((bytes, "application/json")),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{case}: {}",
            reply.text
        );
        assert_eq!(
            reply.header("content-type").as_deref(),
            Some("application/json"),
            "{case}: error body is JSON"
        );
        assert_eq!(reply.error_code(), "invalid_payload", "{case}");
    }

    // The same on an unauthenticated endpoint.
    let reply = http
        .send(
            Method::POST,
            "/api/v1/auth/register",
            None,
            &[],
            Some((b"{\"username\":\"x".to_vec(), "application/json")),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(reply.error_code(), "invalid_payload");

    assert_still_serving(&mut server, &mut good, lobby).await;
}

#[tokio::test]
async fn unknown_event_is_rejected() {
    let mut server = Server::start(&[]).await;
    let (mut good, lobby) = bystander(&server).await;
    let (mut bad, _) = server.socket(json!({ "nickname": "explorer" })).await;

    let reply = bad.call("no:such:event", json!({ "x": 1 })).await;
    assert_eq!(error_code(&reply), "unknown_event", "{reply}");

    // Without an acknowledgement the error arrives as a server:error event.
    bad.emit("no:such:event", &json!({})).await;
    let error = bad.wait_event("server:error").await;
    assert_eq!(error["code"], "unknown_event", "{error}");

    // The connection stays usable after a rejected event.
    assert_still_serving(&mut server, &mut bad, lobby).await;
    assert_still_serving(&mut server, &mut good, lobby).await;
}

#[tokio::test]
async fn unknown_room_is_room_not_found() {
    let mut server = Server::start(&[]).await;
    let (mut good, lobby) = bystander(&server).await;
    let (mut bad, _) = server.socket(json!({ "nickname": "wanderer" })).await;
    let missing = 987_654_321;

    let reply = bad
        .call(
            "message:send",
            json!({ "room_id": missing, "body": "hello?" }),
        )
        .await;
    assert_eq!(error_code(&reply), "room_not_found", "send: {reply}");
    let reply = bad
        .call("room:history", json!({ "room_id": missing }))
        .await;
    assert_eq!(error_code(&reply), "room_not_found", "history: {reply}");
    let reply = bad.call("room:join", json!({ "room_id": missing })).await;
    assert_eq!(error_code(&reply), "room_not_found", "join by id: {reply}");
    let reply = bad
        .call("room:join", json!({ "name": "no-such-room" }))
        .await;
    assert_eq!(
        error_code(&reply),
        "room_not_found",
        "join by name: {reply}"
    );

    assert_still_serving(&mut server, &mut good, lobby).await;
}

#[tokio::test]
async fn outsider_cannot_use_private_room() {
    let mut server = Server::start(&[]).await;
    let owner = server.register("owner").await;
    let outsider = server.register("outsider").await;
    let http = server.http();
    let reply = http
        .post_json(
            "/api/v1/rooms",
            Some(&owner.token),
            &json!({ "name": "secret", "visibility": "private" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let room = reply.json()["id"].as_i64().expect("room id");

    let (mut good, lobby) = bystander(&server).await;
    let (mut bad, _) = server.socket(json!({ "token": outsider.token })).await;

    // Outsiders see a private room as missing, so its existence does not leak.
    let reply = bad
        .call(
            "message:send",
            json!({ "room_id": room, "body": "let me in" }),
        )
        .await;
    assert_eq!(error_code(&reply), "room_not_found", "send: {reply}");
    let reply = bad.call("room:history", json!({ "room_id": room })).await;
    assert_eq!(error_code(&reply), "room_not_found", "history: {reply}");
    let reply = bad.call("room:join", json!({ "room_id": room })).await;
    assert_eq!(error_code(&reply), "room_not_found", "join: {reply}");

    let path = format!("/api/v1/rooms/{room}/messages");
    let reply = http.get(&path, Some(&outsider.token)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
    assert_eq!(reply.error_code(), "room_not_found");
    let reply = http
        .post_json(
            &path,
            Some(&outsider.token),
            &json!({ "body": "let me in" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
    assert_eq!(reply.error_code(), "room_not_found");

    // The owner's history shows nothing from the outsider.
    let reply = http.get(&path, Some(&owner.token)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let leaked = reply.json()["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .any(|m| m["author_id"] == outsider.user_id);
    assert!(!leaked, "outsider's message reached the private room");

    assert_still_serving(&mut server, &mut good, lobby).await;
}

#[tokio::test]
async fn non_member_cannot_send_to_public_room() {
    let mut server = Server::start(&[]).await;
    let owner = server.register("founder").await;
    let reply = server
        .http()
        .post_json(
            "/api/v1/rooms",
            Some(&owner.token),
            &json!({ "name": "plaza", "visibility": "public" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let room = reply.json()["id"].as_i64().expect("room id");

    let (mut good, lobby) = bystander(&server).await;
    let (mut bad, _) = server.socket(json!({ "nickname": "passerby" })).await;
    let reply = bad
        .call("message:send", json!({ "room_id": room, "body": "hi" }))
        .await;
    assert_eq!(error_code(&reply), "not_member", "{reply}");
    // Public history is readable without joining.
    let reply = bad.call("room:history", json!({ "room_id": room })).await;
    assert_eq!(reply["ok"], true, "{reply}");

    assert_still_serving(&mut server, &mut good, lobby).await;
}

#[tokio::test]
async fn expired_token_is_rejected() {
    // Sessions of registered users expire the moment they are created.
    let mut server = Server::start(&[("session-ttl-hours", "0")]).await;
    let (mut good, lobby) = bystander(&server).await;
    let account = server.register("ephemeral").await;

    let reply = server.http().get("/api/v1/me", Some(&account.token)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
    assert_eq!(reply.error_code(), "unauthenticated");

    let mut client = SioClient::open(server.addr, None)
        .await
        .expect("open a WebSocket");
    let refused = client
        .handshake(json!({ "token": account.token }))
        .await
        .expect_err("handshake with an expired token accepted");
    assert_eq!(refused["message"], "unauthenticated", "{refused}");

    assert_still_serving(&mut server, &mut good, lobby).await;
}

#[tokio::test]
async fn forged_token_is_rejected() {
    let mut server = Server::start(&[]).await;
    let (mut good, lobby) = bystander(&server).await;
    let real = server.register("genuine").await;

    // One character changed, a random string, and one far over any token length.
    let mut altered = real.token.clone().into_bytes();
    altered[0] = if altered[0] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).expect("token is ASCII");
    let forged = [
        altered,
        "Zm9yZ2VkLXRva2VuLWZvci10ZXN0aW5nLW9ubHk".to_owned(),
        "x".repeat(4096),
    ];
    for token in &forged {
        let reply = server.http().get("/api/v1/me", Some(token)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
        assert_eq!(reply.error_code(), "unauthenticated");

        let mut client = SioClient::open(server.addr, None)
            .await
            .expect("open a WebSocket");
        let refused = client
            .handshake(json!({ "token": token }))
            .await
            .expect_err("handshake with a forged token accepted");
        assert_eq!(refused["message"], "unauthenticated", "{refused}");
    }

    assert_still_serving(&mut server, &mut good, lobby).await;
}

#[tokio::test]
async fn foreign_origin_is_rejected() {
    let mut server = Server::start(&[]).await;
    let (mut good, lobby) = bystander(&server).await;
    let evil = "http://evil.example";

    // WebSocket handshake.
    match SioClient::open(server.addr, Some(evil)).await {
        Ok(_) => panic!("WebSocket from {evil} accepted"),
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::FORBIDDEN);
            let body: Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or_default())
                    .expect("rejection body is JSON");
            assert_eq!(body["error"]["code"], "origin_rejected", "{body}");
        }
        Err(other) => panic!("WebSocket from {evil} failed with {other}, not 403"),
    }

    // Long-polling handshake.
    let http = server.http();
    let polling = "/socket.io/?EIO=4&transport=polling";
    let reply = http
        .send(Method::GET, polling, None, &[("origin", evil)], None)
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    assert_eq!(reply.error_code(), "origin_rejected");

    // A cross-origin API write.
    let reply = http
        .send(
            Method::POST,
            "/api/v1/auth/guest",
            None,
            &[("origin", evil)],
            Some((b"{}".to_vec(), "application/json")),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    assert_eq!(reply.error_code(), "origin_rejected");

    // The server's own origin and no origin are accepted.
    let own = server.base.clone();
    let reply = http
        .send(Method::GET, polling, None, &[("origin", &own)], None)
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "polling from {own}: {}",
        reply.text
    );
    assert!(reply.text.starts_with('0'), "open packet: {}", reply.text);
    let localhost = format!("http://localhost:{}", server.addr.port());
    for origin in [Some(own.as_str()), Some(localhost.as_str()), None] {
        let mut client = SioClient::open(server.addr, origin)
            .await
            .unwrap_or_else(|e| panic!("WebSocket with origin {origin:?} rejected: {e}"));
        client
            .handshake(json!({ "nickname": "neighbour" }))
            .await
            .unwrap_or_else(|e| panic!("handshake with origin {origin:?} refused: {e}"));
    }

    assert_still_serving(&mut server, &mut good, lobby).await;
}

#[tokio::test]
async fn send_flood_is_rate_limited() {
    let mut server = Server::start(&[("send-burst", "5"), ("send-rate", "1")]).await;
    let (mut good, lobby) = bystander(&server).await;
    let flooder = server.register("flooder").await;
    let (mut bad, _) = server.socket(json!({ "token": flooder.token })).await;

    for n in 0..5 {
        let reply = bad
            .call(
                "message:send",
                json!({ "room_id": lobby, "body": format!("burst {n}") }),
            )
            .await;
        assert_eq!(
            reply["ok"], true,
            "message {n} of the burst rejected: {reply}"
        );
    }
    // The bucket refills at one message a second, so a slow machine may fit one more
    // send before the limit applies. Five tries are plenty.
    let mut limited = None;
    for n in 0..5 {
        let reply = bad
            .call(
                "message:send",
                json!({ "room_id": lobby, "body": format!("extra {n}") }),
            )
            .await;
        if reply["ok"] == false {
            limited = Some(reply);
            break;
        }
    }
    let reply = limited.expect("no send was rate limited after the burst");
    assert_eq!(error_code(&reply), "rate_limited", "{reply}");
    let retry_after = reply["error"]["retry_after_ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("rate_limited without retry_after_ms: {reply}"));
    assert!(retry_after > 0, "retry_after_ms is {retry_after}");

    // The budget is per user across protocols: REST is limited too.
    let reply = server
        .http()
        .post_json(
            &format!("/api/v1/rooms/{lobby}/messages"),
            Some(&flooder.token),
            &json!({ "body": "via REST" }),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        reply.text
    );
    assert_eq!(reply.error_code(), "rate_limited");
    assert!(
        reply.header("retry-after").is_some(),
        "429 without Retry-After"
    );
    let retry_after = reply.json()["error"]["retry_after_ms"]
        .as_u64()
        .expect("retry_after_ms in the REST error");

    // Waiting retry_after_ms is enough.
    tokio::time::sleep(Duration::from_millis(retry_after)).await;
    let reply = bad
        .call(
            "message:send",
            json!({ "room_id": lobby, "body": "after waiting" }),
        )
        .await;
    assert_eq!(
        reply["ok"], true,
        "send after retry_after_ms rejected: {reply}"
    );

    assert_still_serving(&mut server, &mut good, lobby).await;
}

/// Body length of each flood message, in ASCII characters.
const FLOOD_BODY_CHARS: usize = 100_000;
/// Messages sent after the slow consumer was cut off: the others must keep receiving,
/// and the server must not keep this data for the stalled connection.
const FLOOD_AFTER_DISCONNECT: usize = 500;
/// Upper bounds of the flood, whichever comes first.
const FLOOD_MAX_MESSAGES: usize = 20_000;
const FLOOD_MAX_TIME: Duration = Duration::from_secs(60);
/// Heartbeat settings of the flood server, in seconds.
const PING_INTERVAL_SECS: u64 = 3;
const PING_TIMEOUT_SECS: u64 = 10;
/// Largest accepted growth of the server's resident memory during the flood, in KiB.
/// The flood sends more than this to each connection after the cut-off, so a server
/// that kept queueing for the stalled connection would exceed it.
const FLOOD_RSS_GROWTH_MAX_KIB: u64 = 32 * 1024;

/// Reads `message:new` events from `author` in `room` until the end marker, returning
/// the client and the (id, seq) pairs in arrival order.
async fn collect_flood(
    mut client: SioClient,
    room: i64,
    author: i64,
) -> (SioClient, Vec<(i64, i64)>) {
    let mut seen = Vec::new();
    loop {
        let (name, payload) = client
            .next_event_within(Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("receiver stopped after {} messages: {e}", seen.len()));
        if name != "message:new" || payload["room_id"] != room || payload["author_id"] != author {
            continue;
        }
        let id = payload["id"].as_i64().expect("message id");
        let seq = payload["seq"].as_i64().expect("message seq");
        seen.push((id, seq));
        if payload["body"] == "flood end" {
            return (client, seen);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_reader_is_disconnected() {
    let max_chars = FLOOD_BODY_CHARS.to_string();
    let mut server = Server::start(&[
        ("outbound-queue", "16"),
        ("send-burst", "1000000"),
        ("send-rate", "1000000"),
        ("max-message-chars", &max_chars),
        ("max-request-bytes", "131072"),
        // The heartbeat closes the stalled transport within one ping interval plus one
        // ping timeout.
        ("ping-interval-secs", &PING_INTERVAL_SECS.to_string()),
        ("ping-timeout-secs", &PING_TIMEOUT_SECS.to_string()),
    ])
    .await;
    // Register everyone first, so join events do not mix with the flood.
    let sender_account = server.register("sender").await;
    let stalled_account = server.register("stalled").await;
    let mut receiver_accounts = Vec::new();
    for n in 0..2 {
        receiver_accounts.push(server.register(&format!("receiver{n}")).await);
    }

    let (mut sender, session) = server
        .socket(json!({ "token": sender_account.token }))
        .await;
    let lobby = session["lobby_id"].as_i64().expect("lobby id");
    sender.discard_events();
    let mut receivers = Vec::new();
    for account in &receiver_accounts {
        let (client, _) = server.socket(json!({ "token": account.token })).await;
        receivers.push(tokio::spawn(collect_flood(
            client,
            lobby,
            sender_account.user_id,
        )));
    }

    // The stalled client completes the handshake and reads nothing after it.
    let mut stalled = SioClient::open_small_buffer(server.addr, 4096).await;
    stalled
        .handshake(json!({ "token": stalled_account.token }))
        .await
        .expect("stalled client's handshake accepted");

    let metric = "confab_slow_consumer_disconnects_total";
    assert_eq!(
        server.metric(metric).await,
        Some(0.0),
        "{metric} before the flood"
    );
    let rss_before = server.rss_kib();

    let started = Instant::now();
    let mut acked: Vec<(i64, i64)> = Vec::new();
    let mut disconnected_after = None;
    for n in 0..FLOOD_MAX_MESSAGES {
        if started.elapsed() > FLOOD_MAX_TIME {
            break;
        }
        let mut body = format!("flood {n} ");
        body.extend(std::iter::repeat_n('x', FLOOD_BODY_CHARS - body.len()));
        let ack = sender.send_ok(lobby, &body).await;
        acked.push((
            ack["id"].as_i64().expect("ack id"),
            ack["seq"].as_i64().expect("ack seq"),
        ));
        if disconnected_after.is_none()
            && n % 10 == 9
            && server.metric(metric).await.unwrap_or(0.0) > 0.0
        {
            disconnected_after = Some(n);
        }
        if disconnected_after.is_some_and(|cut| n >= cut + FLOOD_AFTER_DISCONNECT) {
            break;
        }
    }
    let cut = disconnected_after.unwrap_or_else(|| {
        panic!(
            "no slow-consumer disconnect after {} messages of {FLOOD_BODY_CHARS} characters",
            acked.len()
        )
    });
    let ack = sender.send_ok(lobby, "flood end").await;
    acked.push((ack["id"].as_i64().unwrap(), ack["seq"].as_i64().unwrap()));
    eprintln!(
        "flood: slow-consumer disconnect seen after {} messages, {} sent in all",
        cut + 1,
        acked.len()
    );

    // Every other receiver got every message, in order.
    let mut clients = Vec::new();
    for (n, task) in receivers.into_iter().enumerate() {
        let (client, seen) = tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .unwrap_or_else(|_| panic!("receiver {n} did not finish"))
            .expect("receiver task panicked");
        assert_eq!(seen.len(), acked.len(), "receiver {n} message count");
        assert_eq!(
            seen, acked,
            "receiver {n} got the messages in acknowledgement order"
        );
        clients.push(client);
    }

    let rss_after = server.rss_kib();
    eprintln!("flood: server RSS {rss_before} KiB before, {rss_after} KiB after");
    assert!(
        rss_after <= rss_before + FLOOD_RSS_GROWTH_MAX_KIB,
        "server RSS grew from {rss_before} KiB to {rss_after} KiB"
    );

    // The others are unaffected right after the cut-off. Idle clients stop replying to
    // pings while the test waits below, so this check comes first.
    let mut first = clients.remove(0);
    assert_still_serving(&mut server, &mut first, lobby).await;

    // NOTE: the disconnect packet cannot enter a queue that is already full, so the
    // heartbeat closes a stalled transport. Either its next ping finds the queue full or
    // the pending ping times out, both within one interval plus one timeout.
    let limit = Duration::from_secs(PING_INTERVAL_SECS + PING_TIMEOUT_SECS + 15);
    let waited_from = Instant::now();
    let closed = stalled.wait_closed(limit).await;
    assert!(
        closed.is_ok(),
        "stalled connection still open {limit:?} after the flood ended"
    );
    eprintln!(
        "flood: stalled transport closed {:?} after the flood ended",
        waited_from.elapsed()
    );

    // A client connecting now is served normally.
    let (mut late, _) = server.socket(json!({ "nickname": "latecomer" })).await;
    assert_still_serving(&mut server, &mut late, lobby).await;
}

#[tokio::test]
async fn event_flood_closes_only_that_connection() {
    let mut server = Server::start(&[]).await;
    let (mut good, lobby) = bystander(&server).await;
    let account = server.register("flooder").await;
    let (mut bad, _) = server.socket(json!({ "token": account.token })).await;
    bad.discard_events();

    // Far more events than the server lets wait, sent without reading any reply.
    let event = format!("42[\"room:history\",{{\"room_id\":{lobby}}}]");
    for _ in 0..20_000 {
        if bad
            .send_message(Message::Text(event.clone().into()))
            .await
            .is_err()
        {
            break;
        }
    }

    // When the replies have already filled the connection's outbound queue, the
    // disconnect packet cannot be queued and the heartbeat closes the transport instead,
    // within one ping interval plus one ping timeout (25 s and 20 s by default).
    let limit = Duration::from_secs(25 + 20 + 15);
    let closed = bad.wait_closed(limit).await;
    assert!(
        closed.is_ok(),
        "the flooding connection stayed open {limit:?}"
    );
    // Either the events outran the server, or their unread replies filled the queue.
    let log = server.log();
    assert!(
        log.contains("too many events waiting") || log.contains("reply queue full"),
        "the server did not record why it closed the connection"
    );
    assert_still_serving(&mut server, &mut good, lobby).await;
}
