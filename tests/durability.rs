//! Durability and process lifecycle: what survives SIGKILL and SIGTERM, sequence numbers
//! across restarts, and the command-line surface.

mod common;

use common::{Account, Server};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

/// Shutdown drain time given to servers that are stopped with SIGTERM, in seconds.
const DRAIN_SECS: u64 = 5;
/// Extra wait beyond the drain time for the process to close its store and exit.
const EXIT_SLACK: Duration = Duration::from_secs(10);

/// Returns every message of a room in seq order, paging forward through the REST API.
async fn full_history(server: &Server, token: &str, room: i64) -> Vec<Value> {
    let http = server.http();
    let mut messages: Vec<Value> = Vec::new();
    let mut after = 0;
    // Bounded: no test room contains more than a few pages.
    for _ in 0..50 {
        let reply = http
            .get(
                &format!("/api/v1/rooms/{room}/messages?after={after}&limit=100"),
                Some(token),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "history: {}", reply.text);
        let page = reply.json();
        let batch = page["messages"].as_array().expect("messages array").clone();
        if let Some(last) = batch.last() {
            after = last["seq"].as_i64().expect("seq");
        }
        messages.extend(batch);
        if page["has_more"] != true {
            return messages;
        }
    }
    panic!("history of room {room} did not end within 50 pages");
}

async fn create_room(server: &Server, owner: &Account, name: &str) -> i64 {
    let reply = server
        .http()
        .post_json(
            "/api/v1/rooms",
            Some(&owner.token),
            &json!({ "name": name, "visibility": "public" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.json()["id"].as_i64().expect("room id")
}

#[tokio::test]
async fn acked_message_survives_sigkill() {
    let dir = tempfile::tempdir().expect("temporary data directory");
    let mut server = Server::start_in(dir.path(), &[]).await;
    let account = server.register("keeper").await;
    let (mut client, session) = server.socket(json!({ "token": account.token })).await;
    let lobby = session["lobby_id"].as_i64().expect("lobby id");

    let body = "written before the crash";
    let ack = client.send_ok(lobby, body).await;
    server.kill_hard();
    drop(client);

    let server = Server::start_in(dir.path(), &[]).await;
    let history = full_history(&server, &account.token, lobby).await;
    let stored = history
        .iter()
        .find(|m| m["id"] == ack["id"])
        .unwrap_or_else(|| panic!("acknowledged message {} lost after SIGKILL", ack["id"]));
    assert_eq!(stored["seq"], ack["seq"], "stored seq matches the ack");
    assert_eq!(stored["body"], body);
    assert_eq!(stored["author_id"], account.user_id);
}

#[tokio::test]
async fn sigterm_notifies_exits_cleanly_and_keeps_history() {
    let dir = tempfile::tempdir().expect("temporary data directory");
    let drain = DRAIN_SECS.to_string();
    let mut server = Server::start_in(dir.path(), &[("drain-timeout-secs", &drain)]).await;
    let account = server.register("steady").await;
    let (mut client, session) = server.socket(json!({ "token": account.token })).await;
    let lobby = session["lobby_id"].as_i64().expect("lobby id");
    let mut acks = Vec::new();
    for n in 0..3 {
        acks.push(client.send_ok(lobby, &format!("before shutdown {n}")).await);
    }

    // Send the signal while the client reads, so it receives the notice before the close.
    let terminate = server.terminate(Duration::from_secs(DRAIN_SECS) + EXIT_SLACK);
    let notice = async {
        let notice = client.wait_event("server:notice").await;
        let closed = client.wait_closed(common::WAIT).await;
        (notice, closed)
    };
    let (status, (notice, closed)) = tokio::join!(terminate, notice);
    assert_eq!(notice["code"], "server_shutting_down", "{notice}");
    assert!(
        notice["message"].as_str().is_some_and(|m| !m.is_empty()),
        "notice has a message: {notice}"
    );
    assert!(
        closed.is_ok(),
        "socket still open after the shutdown notice"
    );
    let status = status.expect("confab still running after SIGTERM and the drain time");
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status}"
    );

    let server = Server::start_in(dir.path(), &[]).await;
    let history = full_history(&server, &account.token, lobby).await;
    for ack in &acks {
        let stored = history
            .iter()
            .find(|m| m["id"] == ack["id"])
            .unwrap_or_else(|| panic!("message {} lost across a clean restart", ack["id"]));
        assert_eq!(stored["seq"], ack["seq"]);
    }
    // The session outlives the restart too.
    let reply = server.http().get("/api/v1/me", Some(&account.token)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn seq_has_no_gaps_across_restart() {
    let dir = tempfile::tempdir().expect("temporary data directory");
    let mut server = Server::start_in(dir.path(), &[]).await;
    let account = server.register("counter").await;
    let room = create_room(&server, &account, "tally").await;
    let (mut client, _) = server.socket(json!({ "token": account.token })).await;
    let mut acked = Vec::new();
    for n in 0..5 {
        acked.push(client.send_ok(room, &format!("first run {n}")).await);
    }
    drop(client);
    let status = server
        .terminate(Duration::from_secs(10) + EXIT_SLACK)
        .await
        .expect("confab exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "{status}");

    let mut server = Server::start_in(dir.path(), &[]).await;
    let (mut client, _) = server.socket(json!({ "token": account.token })).await;
    for n in 0..5 {
        acked.push(client.send_ok(room, &format!("second run {n}")).await);
    }
    // Once more after a crash.
    server.kill_hard();
    drop(client);
    let server = Server::start_in(dir.path(), &[]).await;
    let (mut client, _) = server.socket(json!({ "token": account.token })).await;
    for n in 0..5 {
        acked.push(client.send_ok(room, &format!("third run {n}")).await);
    }

    let acked_seqs: Vec<i64> = acked.iter().map(|a| a["seq"].as_i64().unwrap()).collect();
    for pair in acked_seqs.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "acked seqs {acked_seqs:?}");
    }

    // The room's whole history, system events included, numbers 1, 2, 3, ... in order.
    let history = full_history(&server, &account.token, room).await;
    let seqs: Vec<i64> = history.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
    assert_eq!(seqs, expected, "room seqs across two restarts");
    assert_eq!(
        seqs.last().copied(),
        acked_seqs.last().copied(),
        "the last acked message is the newest in the room"
    );
    let ids: std::collections::HashSet<i64> =
        history.iter().map(|m| m["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), history.len(), "message ids are unique");
}

/// Runs the binary with `args` and returns its stdout, failing on a non-zero exit.
async fn run_confab(args: &[&str]) -> String {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_confab"));
    command.args(args).kill_on_drop(true);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CONFAB_") {
            command.env_remove(&key);
        }
    }
    let output = tokio::time::timeout(common::WAIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("confab {args:?} did not exit"))
        .expect("run confab");
    assert!(
        output.status.success(),
        "confab {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("output is UTF-8")
}

#[tokio::test]
async fn version_flag_prints_version() {
    let stdout = run_confab(&["--version"]).await;
    assert_eq!(
        stdout.trim(),
        format!("confab {}", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn serve_help_lists_every_option_with_default() {
    let help = run_confab(&["serve", "--help"]).await;

    // Option, environment variable, default (None where the option has none).
    let options: &[(&str, &str, Option<&str>)] = &[
        ("--config", "CONFAB_CONFIG", None),
        ("--listen", "CONFAB_LISTEN", Some("127.0.0.1:8080")),
        ("--data-dir", "CONFAB_DATA_DIR", Some("./confab-data")),
        ("--allowed-origins", "CONFAB_ALLOWED_ORIGINS", None),
        ("--trusted-proxies", "CONFAB_TRUSTED_PROXIES", None),
        ("--tls-cert", "CONFAB_TLS_CERT", None),
        ("--tls-key", "CONFAB_TLS_KEY", None),
        ("--allow-guests", "CONFAB_ALLOW_GUESTS", Some("true")),
        (
            "--max-message-chars",
            "CONFAB_MAX_MESSAGE_CHARS",
            Some("4000"),
        ),
        ("--send-burst", "CONFAB_SEND_BURST", Some("20")),
        ("--send-rate", "CONFAB_SEND_RATE", Some("2")),
        ("--auth-burst", "CONFAB_AUTH_BURST", Some("10")),
        ("--auth-rate", "CONFAB_AUTH_RATE", Some("10")),
        (
            "--session-ttl-hours",
            "CONFAB_SESSION_TTL_HOURS",
            Some("720"),
        ),
        (
            "--guest-session-ttl-hours",
            "CONFAB_GUEST_SESSION_TTL_HOURS",
            Some("24"),
        ),
        (
            "--ping-interval-secs",
            "CONFAB_PING_INTERVAL_SECS",
            Some("25"),
        ),
        (
            "--ping-timeout-secs",
            "CONFAB_PING_TIMEOUT_SECS",
            Some("20"),
        ),
        ("--outbound-queue", "CONFAB_OUTBOUND_QUEUE", Some("1024")),
        (
            "--max-request-bytes",
            "CONFAB_MAX_REQUEST_BYTES",
            Some("65536"),
        ),
        (
            "--max-avatar-bytes",
            "CONFAB_MAX_AVATAR_BYTES",
            Some("1048576"),
        ),
        (
            "--argon2-memory-kib",
            "CONFAB_ARGON2_MEMORY_KIB",
            Some("19456"),
        ),
        ("--argon2-passes", "CONFAB_ARGON2_PASSES", Some("2")),
        (
            "--drain-timeout-secs",
            "CONFAB_DRAIN_TIMEOUT_SECS",
            Some("10"),
        ),
        ("--log", "CONFAB_LOG", Some("info")),
        ("--log-format", "CONFAB_LOG_FORMAT", Some("text")),
        (
            "--allow-guest-rooms",
            "CONFAB_ALLOW_GUEST_ROOMS",
            Some("false"),
        ),
        (
            "--min-password-chars",
            "CONFAB_MIN_PASSWORD_CHARS",
            Some("8"),
        ),
        // IRC gateway.
        ("--irc-enabled", "CONFAB_IRC_ENABLED", Some("true")),
        ("--irc-listen", "CONFAB_IRC_LISTEN", Some("127.0.0.1:6667")),
        ("--irc-tls-listen", "CONFAB_IRC_TLS_LISTEN", None),
        (
            "--irc-server-name",
            "CONFAB_IRC_SERVER_NAME",
            Some("confab.irc"),
        ),
        ("--irc-nick-length", "CONFAB_IRC_NICK_LENGTH", Some("30")),
        (
            "--irc-sendq-bytes",
            "CONFAB_IRC_SENDQ_BYTES",
            Some("262144"),
        ),
        ("--irc-flood-burst", "CONFAB_IRC_FLOOD_BURST", Some("20")),
        ("--irc-flood-rate", "CONFAB_IRC_FLOOD_RATE", Some("4")),
        (
            "--irc-registration-timeout-secs",
            "CONFAB_IRC_REGISTRATION_TIMEOUT_SECS",
            Some("30"),
        ),
        ("--irc-oper", "CONFAB_IRC_OPER", None),
        ("--database-url", "CONFAB_DATABASE_URL", None),
        (
            "--database-connections",
            "CONFAB_DATABASE_CONNECTIONS",
            Some("10"),
        ),
        ("--redis-url", "CONFAB_REDIS_URL", None),
        ("--redis-prefix", "CONFAB_REDIS_PREFIX", Some("confab")),
    ];

    // Split the help into one block per option: from its heading line up to the next.
    // Headings are indented by at most six spaces, descriptions and value lists deeper.
    let mut blocks: Vec<(String, String)> = Vec::new();
    for line in help.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let is_heading = (1..=6).contains(&indent) && trimmed.starts_with('-');
        if is_heading {
            let flag = trimmed
                .split([' ', ','])
                .find(|word| word.starts_with("--"))
                .unwrap_or(trimmed)
                .to_owned();
            blocks.push((flag, String::new()));
        } else if let Some((_, text)) = blocks.last_mut() {
            text.push_str(trimmed);
            text.push(' ');
        }
    }

    for (flag, env, default) in options {
        let (_, text) = blocks
            .iter()
            .find(|(name, _)| name == flag)
            .unwrap_or_else(|| panic!("serve --help lacks {flag}:\n{help}"));
        let description = text.split('[').next().unwrap_or("").trim();
        assert!(!description.is_empty(), "{flag} has no description");
        assert!(
            text.contains(&format!("[env: {env}=")),
            "{flag} does not name {env}: {text}"
        );
        match default {
            Some(value) => assert!(
                text.contains(&format!("[default: {value}]")),
                "{flag} does not show its default {value}: {text}"
            ),
            None => assert!(
                !text.contains("[default:"),
                "{flag} shows a default it does not have: {text}"
            ),
        }
    }

    // No option goes undocumented here.
    for (flag, _) in &blocks {
        if flag == "--help" || flag == "--version" {
            continue;
        }
        assert!(
            options.iter().any(|(name, _, _)| name == flag),
            "serve --help lists {flag}, which this test does not check"
        );
    }
}
