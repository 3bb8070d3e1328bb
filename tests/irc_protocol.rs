//! IRC gateway protocol tests: raw IRC over TCP against the real server. Each test
//! names the specification clause it checks.

mod common;

use common::irc::{IrcClient, command_of, plain, tag, trailing};
use common::{PASSWORD, Server, unique_suffix};
use serde_json::json;
use std::time::Duration;

fn irc_addr(server: &Server) -> std::net::SocketAddr {
    server
        .irc_addr
        .expect("the server printed its IRC listening line")
}

/// Short pause for checking that nothing else arrives.
const QUIET: Duration = Duration::from_millis(400);

/// RFC 2812 3.1 and 5.1: NICK and USER register a client, which gets 001 to 004, at
/// least one 005 and the MOTD reply.
#[tokio::test]
async fn registration_without_cap() {
    let server = Server::start(&[]).await;
    let mut client = IrcClient::connect(irc_addr(&server)).await;
    client.send("NICK plainnick").await;
    client.send("USER plain 0 * :Plain Nick").await;
    for code in ["001", "002", "003", "004", "005", "422"] {
        let line = client.expect_numeric(code).await;
        assert!(line.starts_with(":confab.irc "), "{line}");
        assert!(line.contains(" plainnick "), "{line}");
    }
    let isupport = client.received.iter().filter(|l| command_of(l) == "005");
    let tokens: String = isupport.cloned().collect::<Vec<_>>().join(" ");
    for token in [
        "CASEMAPPING=",
        "CHANTYPES=#",
        "LINELEN=512",
        "TARGMAX=",
        "UTF8ONLY",
    ] {
        assert!(tokens.contains(token), "005 lacks {token}: {tokens}");
    }
}

/// IRCv3 Capability Negotiation: after `CAP LS`, registration waits for `CAP END`;
/// `CAP REQ` is acknowledged whole or refused whole.
#[tokio::test]
async fn registration_waits_for_cap_end() {
    let server = Server::start(&[]).await;
    let mut client = IrcClient::connect(irc_addr(&server)).await;
    client.send("CAP LS 302").await;
    client.send("NICK capnick").await;
    client.send("USER cap 0 * :Cap Nick").await;
    let ls = client.wait_for(|l| command_of(l) == "CAP").await;
    assert!(ls.contains("sasl=PLAIN"), "{ls}");
    assert!(ls.contains("server-time"), "{ls}");

    client.send("CAP REQ :server-time no-such-cap").await;
    let nak = client.wait_for(|l| command_of(l) == "CAP").await;
    assert!(nak.contains(" NAK "), "{nak}");
    client.send("CAP REQ :server-time echo-message").await;
    let ack = client.wait_for(|l| command_of(l) == "CAP").await;
    assert!(ack.contains(" ACK "), "{ack}");
    assert_eq!(trailing(&ack), "server-time echo-message");

    let early = client.lines_within(QUIET).await;
    assert!(
        early.iter().all(|l| command_of(l) != "001"),
        "registered before CAP END: {early:?}"
    );
    client.send("CAP END").await;
    client.expect_numeric("001").await;
    client.send("CAP LIST").await;
    let list = client.wait_for(|l| l.contains(" LIST ")).await;
    assert!(list.contains("echo-message"), "{list}");
}

/// IRCv3 SASL 3.1 with RFC 4616 PLAIN: the right password gives 900 and 903, and the
/// client's nickname is the account's; a wrong one gives 904 and registers nothing.
#[tokio::test]
async fn sasl_plain_success_and_failure() {
    let server = Server::start(&[]).await;
    let name = format!("sasl{}", unique_suffix());
    server.register(&name).await;

    let client = IrcClient::sasl(irc_addr(&server), "whatever", &name, PASSWORD, "").await;
    let welcome = client
        .received
        .iter()
        .find(|l| command_of(l) == "001")
        .unwrap();
    assert!(welcome.contains(&format!(" 001 {name} ")), "{welcome}");
    assert!(client.received.iter().any(|l| command_of(l) == "900"));

    let mut bad = IrcClient::connect(irc_addr(&server)).await;
    bad.send("CAP REQ :sasl").await;
    bad.send("AUTHENTICATE PLAIN").await;
    bad.wait_for(|l| l == "AUTHENTICATE +").await;
    bad.send(&format!("AUTHENTICATE {}", plain(&name, "wrong password")))
        .await;
    bad.expect_numeric("904").await;
}

/// IRCv3 SASL 3.1: `*` aborts with 906, invalid base64 fails with 904, a response over
/// the size limit gets 905, and an unknown mechanism gets 908 and 904.
#[tokio::test]
async fn sasl_abort_bad_base64_and_too_long() {
    let server = Server::start(&[]).await;
    let mut client = IrcClient::connect(irc_addr(&server)).await;
    client.send("CAP REQ :sasl").await;

    client.send("AUTHENTICATE PLAIN").await;
    client.wait_for(|l| l == "AUTHENTICATE +").await;
    client.send("AUTHENTICATE *").await;
    client.expect_numeric("906").await;

    client.send("AUTHENTICATE PLAIN").await;
    client.wait_for(|l| l == "AUTHENTICATE +").await;
    client.send("AUTHENTICATE !!!not-base64!!!").await;
    client.expect_numeric("904").await;

    client.send("AUTHENTICATE PLAIN").await;
    client.wait_for(|l| l == "AUTHENTICATE +").await;
    let chunk = "A".repeat(400);
    for _ in 0..5 {
        client.send(&format!("AUTHENTICATE {chunk}")).await;
    }
    client.expect_numeric("905").await;

    client.send("AUTHENTICATE SCRAM-SHA-256").await;
    client.expect_numeric("908").await;
    client.expect_numeric("904").await;
}

/// RFC 2812 3.1.1: PASS with `account:password` signs in to that account.
#[tokio::test]
async fn pass_signs_in_to_account() {
    let server = Server::start(&[]).await;
    let name = format!("pass{}", unique_suffix());
    server.register(&name).await;
    let mut client = IrcClient::connect(irc_addr(&server)).await;
    client.send(&format!("PASS :{name}:{PASSWORD}")).await;
    client.send("NICK someone").await;
    client.send("USER p 0 * :P").await;
    let welcome = client.expect_numeric("001").await;
    assert!(welcome.contains(&format!(" 001 {name} ")), "{welcome}");

    let mut wrong = IrcClient::connect(irc_addr(&server)).await;
    wrong.send(&format!("PASS :{name}:not the password")).await;
    wrong.send("NICK other").await;
    wrong.send("USER p 0 * :P").await;
    wrong.expect_numeric("464").await;
    wrong.wait_for(|l| l.starts_with("ERROR ")).await;
}

/// RFC 2812 3.2.1, 3.2.2 and 3.3.1: JOIN, PRIVMSG and PART between two IRC clients;
/// the sender does not get its own PRIVMSG without echo-message.
#[tokio::test]
async fn join_privmsg_part_between_clients() {
    let server = Server::start(&[]).await;
    let addr = irc_addr(&server);
    let mut alice = IrcClient::guest(addr, "alicej").await;
    alice.send("JOIN #lobby").await;
    alice
        .wait_for(|l| l.starts_with(":alicej!") && l.ends_with("JOIN #lobby"))
        .await;
    let names = alice.expect_numeric("353").await;
    assert!(names.contains("alicej"), "{names}");
    alice.expect_numeric("366").await;

    // A new guest becomes a lobby member at sign-in, which channel members see as JOIN.
    let mut bob = IrcClient::guest(addr, "bobj").await;
    alice
        .wait_for(|l| l.starts_with(":bobj!") && l.ends_with("JOIN #lobby"))
        .await;
    bob.send("JOIN #LOBBY").await;
    bob.wait_for(|l| l.ends_with("JOIN #lobby")).await;
    let names = bob.expect_numeric("353").await;
    assert!(
        names.contains("alicej") && names.contains("bobj"),
        "{names}"
    );
    bob.expect_numeric("366").await;

    alice.send("PRIVMSG #lobby :hello bob, 你好 🎉").await;
    let got = bob.wait_for(|l| command_of(l) == "PRIVMSG").await;
    assert!(got.starts_with(":alicej!"), "{got}");
    assert_eq!(trailing(&got), "hello bob, 你好 🎉");
    let own = alice.sync("a1").await;
    assert!(
        own.iter().all(|l| command_of(l) != "PRIVMSG"),
        "sender got its own message without echo-message: {own:?}"
    );

    bob.send("PART #lobby").await;
    bob.wait_for(|l| l.starts_with(":bobj!") && l.ends_with("PART #lobby"))
        .await;
    alice
        .wait_for(|l| l.starts_with(":bobj!") && l.ends_with("PART #lobby"))
        .await;
    bob.send("PRIVMSG #lobby :after part").await;
    bob.expect_numeric("404").await;
}

/// IRCv3 echo-message and server-time: the sender gets its message back with a `time`
/// tag, and message-tags adds a `msgid`.
#[tokio::test]
async fn echo_message_with_server_time() {
    let server = Server::start(&[]).await;
    let name = format!("echo{}", unique_suffix());
    server.register(&name).await;
    let mut client = IrcClient::sasl(
        irc_addr(&server),
        &name,
        &name,
        PASSWORD,
        "echo-message server-time message-tags",
    )
    .await;
    client.send("JOIN #lobby").await;
    client.expect_numeric("366").await;
    client.send("PRIVMSG #lobby :echo me").await;
    let echo = client.wait_for(|l| command_of(l) == "PRIVMSG").await;
    assert_eq!(trailing(&echo), "echo me");
    let time = tag(&echo, "time").expect("time tag");
    assert!(time.ends_with('Z') && time.len() == 24, "{time}");
    assert!(tag(&echo, "msgid").is_some(), "{echo}");
}

/// PART with a reason (RFC 2812 section 3.2.2): other members see the reason, stored
/// with the leave event, and a PART without one has no trailing parameter.
#[tokio::test]
async fn part_reason_reaches_members() {
    let server = Server::start(&[]).await;
    let addr = irc_addr(&server);
    let mut alice = IrcClient::guest(addr, "alicep").await;
    alice.send("JOIN #lobby").await;
    alice.expect_numeric("366").await;
    let mut bob = IrcClient::guest(addr, "bobp").await;
    bob.send("JOIN #lobby").await;
    bob.expect_numeric("366").await;
    alice
        .wait_for(|l| l.starts_with(":bobp!") && l.ends_with("JOIN #lobby"))
        .await;

    bob.send("PART #lobby :see you later, 再见 👋").await;
    let own = bob.wait_for(|l| command_of(l) == "PART").await;
    assert_eq!(trailing(&own), "see you later, 再见 👋", "{own}");
    let part = alice
        .wait_for(|l| l.starts_with(":bobp!") && command_of(l) == "PART")
        .await;
    assert!(part.contains(" PART #lobby :"), "{part}");
    assert_eq!(trailing(&part), "see you later, 再见 👋");

    bob.send("JOIN #lobby").await;
    bob.expect_numeric("366").await;
    bob.send("PART #lobby").await;
    let part = alice
        .wait_for(|l| l.starts_with(":bobp!") && command_of(l) == "PART")
        .await;
    assert!(part.ends_with(" PART #lobby"), "{part}");
}

/// QUIT (RFC 2812 section 3.1.7): channel peers see one QUIT with the reason when a
/// user's last connection closes, and none while another connection of that user remains.
/// A connection closed without QUIT gets a reason that the server fills in.
#[tokio::test]
async fn quit_reaches_peers_after_last_connection() {
    let server = Server::start(&[]).await;
    let addr = irc_addr(&server);
    let name = format!("quit{}", unique_suffix());
    server.register(&name).await;
    let mut alice = IrcClient::guest(addr, "aliceq").await;
    alice.send("JOIN #lobby").await;
    alice.expect_numeric("366").await;

    let mut first = IrcClient::sasl(addr, &name, &name, PASSWORD, "server-time").await;
    first.send("JOIN #lobby").await;
    first.expect_numeric("366").await;
    let mut second = IrcClient::sasl(addr, "secondq", &name, PASSWORD, "server-time").await;
    second.send("JOIN #lobby").await;
    second.expect_numeric("366").await;
    alice.sync("q0").await;

    first.send("QUIT :first window closed").await;
    first.wait_for(|l| l.starts_with("ERROR ")).await;
    let seen = alice.sync("q1").await;
    assert!(
        seen.iter().all(|l| command_of(l) != "QUIT"),
        "QUIT while another connection remains: {seen:?}"
    );

    second.send("QUIT :bye, 再见 👋").await;
    let quit = alice.wait_for(|l| command_of(l) == "QUIT").await;
    assert!(quit.starts_with(&format!(":{name}!")), "{quit}");
    assert_eq!(trailing(&quit), "Quit: bye, 再见 👋");
    let rest = alice.lines_within(QUIET).await;
    assert!(
        rest.iter().all(|l| command_of(l) != "QUIT"),
        "QUIT sent more than once: {rest:?}"
    );

    // A connection that drops without QUIT still gets a QUIT line, with a generic reason.
    let mut third = IrcClient::sasl(addr, &name, &name, PASSWORD, "server-time").await;
    third.send("JOIN #lobby").await;
    third.expect_numeric("366").await;
    drop(third);
    let quit = alice.wait_for(|l| command_of(l) == "QUIT").await;
    assert!(quit.starts_with(&format!(":{name}!")), "{quit}");
    assert_eq!(trailing(&quit), "Connection closed");
}

/// IRCv3 labeled-response with echo-message: the echo of a labeled PRIVMSG carries the
/// label, and no separate `ACK` is sent for it. Without echo-message the server sends
/// `ACK`, because there is no other reply to label.
#[tokio::test]
async fn labeled_privmsg_echo_carries_label() {
    let server = Server::start(&[]).await;
    let name = format!("label{}", unique_suffix());
    server.register(&name).await;
    let mut client = IrcClient::sasl(
        irc_addr(&server),
        &name,
        &name,
        PASSWORD,
        "echo-message labeled-response message-tags batch",
    )
    .await;
    client.send("JOIN #lobby").await;
    client.expect_numeric("366").await;

    client
        .send("@label=pm1 PRIVMSG #lobby :labeled hello")
        .await;
    let received = client.sync("after-pm1").await;
    let echoes: Vec<&String> = received
        .iter()
        .filter(|l| command_of(l) == "PRIVMSG")
        .collect();
    assert_eq!(echoes.len(), 1, "{received:?}");
    assert_eq!(trailing(echoes[0]), "labeled hello");
    assert_eq!(tag(echoes[0], "label"), Some("pm1"), "{}", echoes[0]);
    assert!(tag(echoes[0], "msgid").is_some(), "{}", echoes[0]);
    let acks = received.iter().filter(|l| command_of(l) == "ACK").count();
    assert_eq!(acks, 0, "{received:?}");

    // An unlabeled PRIVMSG still gets an echo without a label.
    client.send("PRIVMSG #lobby :plain hello").await;
    let echo = client.wait_for(|l| command_of(l) == "PRIVMSG").await;
    assert_eq!(trailing(&echo), "plain hello");
    assert_eq!(tag(&echo, "label"), None, "{echo}");

    let quiet_name = format!("noecho{}", unique_suffix());
    server.register(&quiet_name).await;
    let mut quiet = IrcClient::sasl(
        irc_addr(&server),
        &quiet_name,
        &quiet_name,
        PASSWORD,
        "labeled-response message-tags batch",
    )
    .await;
    quiet.send("JOIN #lobby").await;
    quiet.expect_numeric("366").await;
    quiet.send("@label=pm2 PRIVMSG #lobby :no echo").await;
    let ack = quiet.wait_for(|l| command_of(l) == "ACK").await;
    assert_eq!(tag(&ack, "label"), Some("pm2"), "{ack}");
}

/// PRIVMSG to a nickname (RFC 2812 section 3.3.1) goes through the service's direct
/// room between the two users: the IRC peer gets it addressed to its own nickname, a
/// REST user reads it in the direct room, and a REST reply there reaches IRC as a
/// PRIVMSG to the IRC user's nickname. A nickname nobody holds gets 401.
#[tokio::test]
async fn privmsg_to_nick_uses_direct_room() {
    let server = Server::start(&[]).await;
    let addr = irc_addr(&server);
    let (ana, ben, web) = (
        format!("ana{}", unique_suffix()),
        format!("ben{}", unique_suffix()),
        format!("web{}", unique_suffix()),
    );
    server.register(&ana).await;
    server.register(&ben).await;
    let web_account = server.register(&web).await;
    let mut ana_irc = IrcClient::sasl(addr, &ana, &ana, PASSWORD, "echo-message").await;
    let mut ben_irc = IrcClient::sasl(addr, &ben, &ben, PASSWORD, "").await;

    ana_irc
        .send(&format!("PRIVMSG {ben} :hi ben, 你好 🎉"))
        .await;
    let got = ben_irc.wait_for(|l| command_of(l) == "PRIVMSG").await;
    assert!(got.starts_with(&format!(":{ana}!")), "{got}");
    assert!(got.contains(&format!(" PRIVMSG {ben} :")), "{got}");
    assert_eq!(trailing(&got), "hi ben, 你好 🎉");
    let echo = ana_irc.wait_for(|l| command_of(l) == "PRIVMSG").await;
    assert!(echo.contains(&format!(" PRIVMSG {ben} :")), "{echo}");

    ben_irc.send(&format!("PRIVMSG {ana} :hello ana")).await;
    let reply = ana_irc
        .wait_for(|l| command_of(l) == "PRIVMSG" && trailing(l) == "hello ana")
        .await;
    assert!(reply.contains(&format!(" PRIVMSG {ana} :")), "{reply}");

    // IRC to a REST user: the message is stored in their direct room.
    ana_irc.send(&format!("PRIVMSG {web} :to the web")).await;
    ana_irc
        .wait_for(|l| command_of(l) == "PRIVMSG" && trailing(l) == "to the web")
        .await;
    let http = server.http();
    let dm = http
        .post_json(
            "/api/v1/dm",
            Some(&web_account.token),
            &json!({ "username": ana }),
        )
        .await;
    assert!(dm.status.is_success(), "{}", dm.text);
    let room = dm.json()["id"].as_i64().expect("room id");
    let history = http
        .get(
            &format!("/api/v1/rooms/{room}/messages"),
            Some(&web_account.token),
        )
        .await
        .json();
    let bodies: Vec<&str> = history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["body"].as_str())
        .collect();
    assert_eq!(bodies, ["to the web"], "{history}");

    // REST to IRC: the reply arrives addressed to the IRC user's nickname.
    let sent = http
        .post_json(
            &format!("/api/v1/rooms/{room}/messages"),
            Some(&web_account.token),
            &json!({ "body": "from the web 中文" }),
        )
        .await;
    assert!(sent.status.is_success(), "{}", sent.text);
    let from_web = ana_irc
        .wait_for(|l| command_of(l) == "PRIVMSG" && trailing(l) == "from the web 中文")
        .await;
    assert!(from_web.starts_with(&format!(":{web}!")), "{from_web}");
    assert!(
        from_web.contains(&format!(" PRIVMSG {ana} :")),
        "{from_web}"
    );

    ana_irc.send("PRIVMSG nobody-here :hello?").await;
    ana_irc.expect_numeric("401").await;
}

/// Cross-protocol delivery: lines from IRC reach a Socket.IO client in order with the
/// exact text, and messages from Socket.IO reach IRC in order.
#[tokio::test]
async fn irc_and_socketio_exchange_in_order() {
    let server = Server::start(&[("send-burst", "100"), ("send-rate", "100")]).await;
    let name = format!("cross{}", unique_suffix());
    let web = server.register(&format!("web{}", unique_suffix())).await;
    server.register(&name).await;
    let (mut sio, session) = server.socket(json!({ "token": web.token })).await;
    let lobby = session["lobby_id"].as_i64().expect("session.lobby_id");

    let mut irc = IrcClient::sasl(irc_addr(&server), &name, &name, PASSWORD, "").await;
    irc.send("JOIN #lobby").await;
    irc.expect_numeric("366").await;

    let texts: Vec<String> = (0..5).map(|i| format!("第{i}条 message 🚀 {i}")).collect();
    for text in &texts {
        irc.send(&format!("PRIVMSG #lobby :{text}")).await;
    }
    for text in &texts {
        let event = sio
            .wait_event_where("message:new", |m| m["kind"] == "text")
            .await;
        assert_eq!(event["body"], text.as_str());
    }

    let replies: Vec<String> = (0..5).map(|i| format!("回复 {i} ✅")).collect();
    for reply in &replies {
        sio.send_ok(lobby, reply).await;
    }
    for reply in &replies {
        let line = irc.wait_for(|l| command_of(l) == "PRIVMSG").await;
        assert_eq!(trailing(&line), reply.as_str());
    }
}

/// Web messages too long for one IRC line are split into several PRIVMSG lines of at
/// most 512 bytes, between grapheme clusters, and the pieces rejoin to the original.
#[tokio::test]
async fn long_web_message_splits_on_graphemes() {
    let server = Server::start(&[]).await;
    let (mut sio, session) = server.socket(json!({ "nickname": "webber" })).await;
    let lobby = session["lobby_id"].as_i64().expect("session.lobby_id");
    let mut irc = IrcClient::guest(irc_addr(&server), "reader").await;
    irc.send("JOIN #lobby").await;
    irc.expect_numeric("366").await;

    let family = "👨\u{200d}👩\u{200d}👧\u{200d}👦";
    let body: String = (0..60)
        .map(|i| format!("汉字{family}e\u{301}{i} "))
        .collect();
    let body = body.trim_end().to_owned();
    sio.send_ok(lobby, &body).await;

    let mut pieces = Vec::new();
    let mut joined = String::new();
    while joined.len() < body.len() {
        let line = irc.wait_for(|l| command_of(l) == "PRIVMSG").await;
        assert!(line.len() + 2 <= 512, "line of {} bytes", line.len() + 2);
        let piece = trailing(&line).to_owned();
        assert!(
            !piece.starts_with('\u{200d}') && !piece.starts_with('\u{301}'),
            "{piece:?}"
        );
        joined.push_str(&piece);
        pieces.push(piece);
    }
    assert!(pieces.len() > 1, "the body needed several lines");
    assert_eq!(joined, body);
}

/// Modern IRC message format: CR LF, bare LF and bare CR all end a line on input, empty
/// lines are ignored, and the server always sends CR LF (the client checks each line).
#[tokio::test]
async fn line_endings_are_accepted() {
    let server = Server::start(&[]).await;
    let mut client = IrcClient::guest(irc_addr(&server), "endings").await;
    client
        .send_raw(b"PING one\nPING two\rPING three\r\n\r\n\n\rPING four\r\n")
        .await;
    for token in ["one", "two", "three", "four"] {
        let pong = client.wait_for(|l| command_of(l) == "PONG").await;
        assert!(pong.ends_with(token), "{pong} should answer {token}");
    }
}

/// RFC 1459 2.3 and IRCv3 Message Tags: 510 bytes of body (512 with CR LF) and 4094
/// bytes of client tags are accepted; one byte more gets 417 and nothing else.
#[tokio::test]
async fn line_and_tag_limits() {
    let server = Server::start(&[]).await;
    let addr = irc_addr(&server);
    let mut sender = IrcClient::guest(addr, "limits").await;
    let mut watcher = IrcClient::guest(addr, "watcher").await;
    for client in [&mut sender, &mut watcher] {
        client.send("JOIN #lobby").await;
        client.expect_numeric("366").await;
    }

    // The relayed line carries a longer source, so the text arrives in two lines.
    let head = "PRIVMSG #lobby :";
    let text = "a".repeat(510 - head.len());
    sender.send(&format!("{head}{text}")).await;
    let mut relayed = String::new();
    while relayed.len() < text.len() {
        let got = watcher.wait_for(|l| command_of(l) == "PRIVMSG").await;
        assert!(
            got.len() + 2 <= 512,
            "relayed line of {} bytes",
            got.len() + 2
        );
        relayed.push_str(trailing(&got));
    }
    assert_eq!(relayed, text);

    let over = format!("{head}{}", "b".repeat(511 - head.len()));
    sender.send(&over).await;
    let replies = sender.sync("after-long").await;
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(command_of(&replies[0]), "417");

    let tags_ok = format!("@+x={} PING tags-ok", "t".repeat(4094 - 3));
    sender.send(&tags_ok).await;
    let pong = sender.wait_for(|l| command_of(l) == "PONG").await;
    assert!(pong.ends_with("tags-ok"), "{pong}");
    let tags_over = format!("@+x={} PING tags-over", "t".repeat(4094 - 2));
    sender.send(&tags_over).await;
    let replies = sender.sync("after-tags").await;
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(command_of(&replies[0]), "417");

    let nothing = watcher.sync("watcher").await;
    assert!(nothing.is_empty(), "watcher saw {nothing:?}");
}

/// IRCv3 UTF8ONLY: a line that is not UTF-8 gets `FAIL <command> INVALID_UTF8` and never
/// reaches other clients.
#[tokio::test]
async fn invalid_utf8_is_rejected() {
    let server = Server::start(&[]).await;
    let addr = irc_addr(&server);
    let mut sender = IrcClient::guest(addr, "badbytes").await;
    let mut watcher = IrcClient::guest(addr, "watcher8").await;
    for client in [&mut sender, &mut watcher] {
        client.send("JOIN #lobby").await;
        client.expect_numeric("366").await;
    }
    sender
        .send_raw(b"PRIVMSG #lobby :bad \xff\xfe bytes\r\n")
        .await;
    let fail = sender.wait_for(|l| command_of(l) == "FAIL").await;
    assert!(fail.contains("FAIL PRIVMSG INVALID_UTF8"), "{fail}");
    let nothing = watcher.sync("w8").await;
    assert!(nothing.is_empty(), "watcher saw {nothing:?}");
}

/// RFC 2812 2.3.1: an empty trailing parameter is a parameter; PRIVMSG with empty text
/// gets 412, and `AWAY :` unsets away (305).
#[tokio::test]
async fn empty_trailing_parameter() {
    let server = Server::start(&[]).await;
    let mut client = IrcClient::guest(irc_addr(&server), "emptytr").await;
    client.send("JOIN #lobby").await;
    client.expect_numeric("366").await;
    client.send("PRIVMSG #lobby :").await;
    client.expect_numeric("412").await;
    client.send("AWAY :gone").await;
    client.expect_numeric("306").await;
    client.send("AWAY :").await;
    client.expect_numeric("305").await;
}

/// RFC 2812 3.1.2: a nickname in use gets 433, compared by the advertised casemapping;
/// a guest cannot take a registered account's name.
#[tokio::test]
async fn nick_collisions() {
    let server = Server::start(&[]).await;
    let addr = irc_addr(&server);
    let _first = IrcClient::guest(addr, "Dupe").await;
    let mut second = IrcClient::connect(addr).await;
    second.send("NICK dUPE").await;
    second.expect_numeric("433").await;
    second.send("NICK ＤＵＰＥ").await;
    second.expect_numeric("433").await;

    let owner = format!("owned{}", unique_suffix());
    server.register(&owner).await;
    let mut guest = IrcClient::connect(addr).await;
    guest.send(&format!("NICK {owner}")).await;
    guest.send("USER g 0 * :G").await;
    let taken = guest.expect_numeric("433").await;
    assert!(taken.contains(&owner), "{taken}");
    guest.send("NICK freeguestnick").await;
    guest.expect_numeric("001").await;
}

/// RFC 2812 3.1.2: of two clients racing for one nickname, exactly one gets it.
#[tokio::test]
async fn two_clients_race_for_one_nick() {
    let server = Server::start(&[]).await;
    let addr = irc_addr(&server);
    let mut a = IrcClient::connect(addr).await;
    let mut b = IrcClient::connect(addr).await;
    // Both lines are written before either reply is read.
    let (_, _) = tokio::join!(
        a.send("NICK racer\r\nUSER r 0 * :R"),
        b.send("NICK racer\r\nUSER r 0 * :R")
    );
    let mut outcomes = Vec::new();
    for client in [&mut a, &mut b] {
        let line = client
            .wait_for(|l| matches!(command_of(l), "001" | "433"))
            .await;
        outcomes.push(command_of(&line).to_owned());
    }
    outcomes.sort();
    assert_eq!(outcomes, vec!["001", "433"]);
}

/// RFC 2812 3.1: a client that does not register in time is closed with ERROR.
#[tokio::test]
async fn registration_timeout_closes() {
    let server = Server::start(&[("irc-registration-timeout-secs", "1")]).await;
    let mut client = IrcClient::connect(irc_addr(&server)).await;
    client.send("NICK slowpoke").await;
    let error = client.wait_for(|l| l.starts_with("ERROR ")).await;
    assert!(error.contains("Registration timed out"), "{error}");
    assert!(
        client
            .next_line_within(Duration::from_secs(3))
            .await
            .is_none()
    );
    assert!(client.closed, "connection still open");
}

/// SendQ: a client that never reads is closed with `ERROR :SendQ exceeded` once its
/// queue passes the byte budget, and the room keeps working for others.
#[tokio::test]
async fn client_that_never_reads_is_closed() {
    let mut server = Server::start(&[
        ("irc-sendq-bytes", "8192"),
        ("send-burst", "1000"),
        ("send-rate", "1000"),
    ])
    .await;
    let addr = irc_addr(&server);
    let mut stalled = IrcClient::connect_small_buffer(addr, 4096).await;
    stalled.send("NICK stalled").await;
    stalled.send("USER s 0 * :S").await;
    stalled.expect_numeric("001").await;
    stalled.send("JOIN #lobby").await;
    stalled.expect_numeric("366").await;

    let (mut sio, session) = server.socket(json!({ "nickname": "flooder" })).await;
    let lobby = session["lobby_id"].as_i64().expect("session.lobby_id");
    // Flood until the server reports closing a slow connection, at most 2000 messages.
    let body = "x".repeat(3000);
    let metric = "confab_slow_consumer_disconnects_total";
    let mut closed = false;
    for i in 0..2000 {
        sio.send_ok(lobby, &body).await;
        if i % 10 == 9 && server.metric(metric).await.unwrap_or(0.0) >= 1.0 {
            closed = true;
            break;
        }
    }
    assert!(closed, "no slow-consumer close after 2000 messages");

    // Reading now drains what the kernel buffered, then the final ERROR.
    let error = stalled.wait_for(|l| l.starts_with("ERROR ")).await;
    assert_eq!(error, "ERROR :SendQ exceeded");
    server.assert_alive();
    let mut other = IrcClient::guest(addr, "after").await;
    other.send("JOIN #lobby").await;
    other.expect_numeric("366").await;
}

/// RFC 2812 3.2.4: TOPIC queries reply 331 or 332; a member who is not a moderator
/// gets 482 when setting it.
#[tokio::test]
async fn topic_query_and_permission() {
    let server = Server::start(&[]).await;
    let mut client = IrcClient::guest(irc_addr(&server), "topicker").await;
    client.send("JOIN #lobby").await;
    client.expect_numeric("366").await;
    client.send("TOPIC #lobby").await;
    client.expect_numeric("331").await;
    client.send("TOPIC #lobby :new topic").await;
    client.expect_numeric("482").await;
}

/// RFC 2812 3.2.1: JOIN of a private room the user was not invited to is refused like
/// a missing channel (403), so the room's existence does not leak.
#[tokio::test]
async fn private_room_join_refused() {
    let server = Server::start(&[]).await;
    let owner = server.register(&format!("own{}", unique_suffix())).await;
    let room = format!("secret{}", unique_suffix());
    let reply = server
        .http()
        .post_json(
            "/api/v1/rooms",
            Some(&owner.token),
            &json!({ "name": room, "visibility": "private" }),
        )
        .await;
    assert!(reply.status.is_success(), "create room: {}", reply.text);

    let outsider = format!("out{}", unique_suffix());
    server.register(&outsider).await;
    let mut client = IrcClient::sasl(irc_addr(&server), &outsider, &outsider, PASSWORD, "").await;
    client.send(&format!("JOIN #{room}")).await;
    let refused = client.expect_numeric("403").await;
    assert!(refused.contains(&room), "{refused}");
}

/// IRCv3 draft/chathistory: LATEST, BEFORE, AFTER, AROUND and BETWEEN page through
/// stored messages in a `chathistory` batch, oldest first, with `msgid` references.
#[tokio::test]
async fn chathistory_pages_through_the_store() {
    let server = Server::start(&[]).await;
    let name = format!("hist{}", unique_suffix());
    server.register(&name).await;
    let mut client = IrcClient::sasl(
        irc_addr(&server),
        &name,
        &name,
        PASSWORD,
        "batch server-time message-tags draft/chathistory echo-message",
    )
    .await;
    client.send("JOIN #lobby").await;
    client.expect_numeric("366").await;
    let mut ids = Vec::new();
    for i in 0..10 {
        client.send(&format!("PRIVMSG #lobby :history {i}")).await;
        let echo = client
            .wait_for(|l| command_of(l) == "PRIVMSG" && l.ends_with(&format!("history {i}")))
            .await;
        ids.push(tag(&echo, "msgid").expect("msgid tag").to_owned());
    }

    async fn fetch(client: &mut IrcClient, command: &str) -> Vec<String> {
        client.send(command).await;
        let start = client.wait_for(|l| command_of(l) == "BATCH").await;
        assert!(start.contains(" chathistory #lobby"), "{start}");
        let mut texts = Vec::new();
        loop {
            let line = client
                .next_line_within(common::WAIT)
                .await
                .expect("batch line");
            if command_of(&line) == "BATCH" {
                return texts;
            }
            assert!(
                tag(&line, "batch").is_some(),
                "line outside the batch: {line}"
            );
            assert!(tag(&line, "time").is_some(), "{line}");
            texts.push(trailing(&line).to_owned());
        }
    }
    let texts = |range: std::ops::Range<usize>| -> Vec<String> {
        range.map(|i| format!("history {i}")).collect()
    };

    assert_eq!(
        fetch(&mut client, "CHATHISTORY LATEST #lobby * 3").await,
        texts(7..10)
    );
    let before = format!("CHATHISTORY BEFORE #lobby msgid={} 3", ids[5]);
    assert_eq!(fetch(&mut client, &before).await, texts(2..5));
    let after = format!("CHATHISTORY AFTER #lobby msgid={} 2", ids[5]);
    assert_eq!(fetch(&mut client, &after).await, texts(6..8));
    let around = format!("CHATHISTORY AROUND #lobby msgid={} 3", ids[5]);
    assert_eq!(fetch(&mut client, &around).await, texts(4..7));
    let between = format!(
        "CHATHISTORY BETWEEN #lobby msgid={} msgid={} 10",
        ids[1], ids[4]
    );
    assert_eq!(fetch(&mut client, &between).await, texts(2..4));

    client
        .send("CHATHISTORY BEFORE #lobby timestamp=2026-01-01T00:00:00.000Z 5")
        .await;
    let fail = client.wait_for(|l| command_of(l) == "FAIL").await;
    assert!(
        fail.contains("FAIL CHATHISTORY INVALID_MSGREFTYPE"),
        "{fail}"
    );
}

/// RFC 2812 3.2.8 and 3.6.2: KICK by someone who is not a moderator gets 482, and
/// WHOIS reports a registered user's account (330).
#[tokio::test]
async fn kick_needs_moderator_and_whois_names_account() {
    let server = Server::start(&[]).await;
    let addr = irc_addr(&server);
    let name = format!("who{}", unique_suffix());
    server.register(&name).await;
    let mut member = IrcClient::sasl(addr, &name, &name, PASSWORD, "").await;
    let mut guest = IrcClient::guest(addr, "kickme").await;
    for client in [&mut member, &mut guest] {
        client.send("JOIN #lobby").await;
        client.expect_numeric("366").await;
    }
    member.send("KICK #lobby kickme :bye").await;
    member.expect_numeric("482").await;

    guest.send(&format!("WHOIS {name}")).await;
    let account = guest.expect_numeric("330").await;
    assert!(account.contains(&format!(" {name} {name} ")), "{account}");
    guest.expect_numeric("318").await;
    guest.send("WHOIS nobody-here").await;
    guest.expect_numeric("401").await;
}

/// Signs in a registered account over IRC with PASS and returns the client.
async fn registered_client(server: &Server, name: &str) -> IrcClient {
    server.register(name).await;
    let mut client = IrcClient::connect(irc_addr(server)).await;
    client.send(&format!("PASS :{name}:{PASSWORD}")).await;
    client.send(&format!("NICK {name}")).await;
    client.send("USER m 0 * :M").await;
    client.expect_numeric("001").await;
    client
}

/// Modern IRC "Channel modes" and RFC 2812 3.2.3: MODE #chan shows the modes with 324,
/// +m and -t are relayed to members as MODE lines, non-operators get 482, and in a
/// moderated channel a member's PRIVMSG gets 404 (RFC 2812 3.3.1).
#[tokio::test]
async fn moderated_and_topic_modes() {
    let server = Server::start(&[]).await;
    let addr = irc_addr(&server);
    let owner_name = format!("chair{}", unique_suffix());
    let mut owner = registered_client(&server, &owner_name).await;
    let isupport = owner.wait_for(|l| l.contains(" CHANMODES=")).await;
    assert!(isupport.contains(" CHANMODES=b,,,imt "), "{isupport}");
    owner.send("JOIN #panel").await;
    owner.expect_numeric("366").await;
    owner.send("MODE #panel").await;
    let modes = owner.expect_numeric("324").await;
    assert!(modes.ends_with(" #panel +t"), "{modes}");

    let mut guest = IrcClient::guest(addr, "floor").await;
    guest.send("JOIN #panel").await;
    guest.expect_numeric("366").await;
    guest.send("MODE #panel +m").await;
    guest.expect_numeric("482").await;

    owner.send("MODE #panel +m").await;
    let relayed = format!(":{owner_name}!");
    for client in [&mut owner, &mut guest] {
        let line = client
            .wait_for(|l| l.starts_with(&relayed) && command_of(l) == "MODE")
            .await;
        assert!(line.ends_with(" MODE #panel +m"), "{line}");
    }
    guest.send("PRIVMSG #panel :may I speak?").await;
    let refused = guest.expect_numeric("404").await;
    assert!(refused.contains("moderated"), "{refused}");

    owner.send("MODE #panel -t").await;
    let line = guest
        .wait_for(|l| l.starts_with(&relayed) && command_of(l) == "MODE")
        .await;
    assert!(line.ends_with(" MODE #panel -t"), "{line}");
    guest.send("MODE #panel").await;
    let modes = guest.expect_numeric("324").await;
    assert!(modes.ends_with(" #panel +m"), "{modes}");
    // Without +t any member sets the topic (RFC 2812 3.2.4).
    guest.send("TOPIC #panel :open questions").await;
    let topic = owner.wait_for(|l| command_of(l) == "TOPIC").await;
    assert!(topic.starts_with(":floor!"), "{topic}");
    assert_eq!(trailing(&topic), "open questions");

    guest.send("MODE #panel +k secret").await;
    let unknown = guest.expect_numeric("472").await;
    assert!(unknown.contains(" k "), "{unknown}");
}

/// Modern IRC "Ban Channel Mode" and RFC 2812 3.2.3: +b bans and removes a member, and
/// members see the MODE and KICK lines. The banned user gets 474 on JOIN (RFC 2812
/// 3.2.1). `MODE #chan b` lists bans with 367 and 368, masks that name no single user get
/// 696, and -b lifts the ban.
#[tokio::test]
async fn ban_list_and_join_refusal() {
    let server = Server::start(&[]).await;
    let addr = irc_addr(&server);
    let owner_name = format!("host{}", unique_suffix());
    let mut owner = registered_client(&server, &owner_name).await;
    owner.send("JOIN #guarded").await;
    owner.expect_numeric("366").await;
    let mut troll = IrcClient::guest(addr, "trollb").await;
    troll.send("JOIN #guarded").await;
    troll.expect_numeric("366").await;
    let mut bystander = IrcClient::guest(addr, "watcher").await;
    bystander.send("JOIN #guarded").await;
    bystander.expect_numeric("366").await;

    bystander.send("MODE #guarded +b trollb").await;
    bystander.expect_numeric("482").await;
    // A member who is not a moderator gets an empty list, because irssi requests it on
    // every JOIN.
    bystander.send("MODE #guarded b").await;
    let end = bystander.expect_numeric("368").await;
    assert!(end.contains(" #guarded "), "{end}");
    owner.send("MODE #guarded +b *!*@*").await;
    let invalid = owner.expect_numeric("696").await;
    assert!(invalid.contains(" #guarded +b *!*@* "), "{invalid}");

    owner.send("MODE #guarded +b trollb!*@*").await;
    for client in [&mut bystander, &mut troll] {
        let mode = client.wait_for(|l| command_of(l) == "MODE").await;
        assert!(mode.starts_with(&format!(":{owner_name}!")), "{mode}");
        assert!(mode.contains(" MODE #guarded +b trollb!u"), "{mode}");
        let kick = client.wait_for(|l| command_of(l) == "KICK").await;
        assert!(kick.contains(" KICK #guarded trollb"), "{kick}");
    }
    troll.send("JOIN #guarded").await;
    let refused = troll.expect_numeric("474").await;
    assert!(refused.contains(" #guarded "), "{refused}");
    troll.send("PRIVMSG #guarded :let me in").await;
    troll.expect_numeric("404").await;
    // The banned user is still connected, so the others see the KICK and no QUIT.
    let seen = bystander.sync("after-ban").await;
    assert!(
        seen.iter().all(|l| command_of(l) != "QUIT"),
        "QUIT for a user who is still connected: {seen:?}"
    );

    owner.send("MODE #guarded b").await;
    let entry = owner.expect_numeric("367").await;
    let params: Vec<&str> = entry.split(' ').collect();
    assert_eq!(params[3], "#guarded", "{entry}");
    assert!(params[4].starts_with("trollb!u"), "{entry}");
    assert_eq!(params[5], owner_name, "{entry}");
    assert!(params[6].parse::<u64>().is_ok(), "{entry}");
    owner.expect_numeric("368").await;

    // The listed mask lifts the ban.
    owner.send(&format!("MODE #guarded -b {}", params[4])).await;
    let lifted = bystander.wait_for(|l| command_of(l) == "MODE").await;
    assert!(lifted.contains(" MODE #guarded -b trollb!u"), "{lifted}");
    troll.send("JOIN #guarded").await;
    troll
        .wait_for(|l| l.starts_with(":trollb!") && l.ends_with("JOIN #guarded"))
        .await;
}

/// Signs in a new registered user over SASL with `caps` and joins #lobby.
async fn lobby_member(server: &Server, prefix: &str, caps: &str) -> (String, IrcClient) {
    let name = format!("{prefix}{}", unique_suffix());
    server.register(&name).await;
    let mut client = IrcClient::sasl(irc_addr(server), &name, &name, PASSWORD, caps).await;
    client.send("JOIN #lobby").await;
    client.expect_numeric("366").await;
    (name, client)
}

/// IRCv3 away-notify: peers with the capability get `AWAY :message` and a bare `AWAY`
/// when the user is back, once per change; RFC 2812 3.3.1 and 3.6.2: PRIVMSG to an
/// away user and WHOIS about one get 301. One user's IRC connections share the state.
#[tokio::test]
async fn away_notify_and_away_replies() {
    let server = Server::start(&[]).await;
    let (_, mut watcher) = lobby_member(&server, "watch", "away-notify").await;
    let (_, mut plain) = lobby_member(&server, "noaway", "").await;
    let (away_name, mut away) = lobby_member(&server, "away", "").await;
    // The server gives the second connection the account's nickname after SASL.
    let mut second = IrcClient::sasl(irc_addr(&server), "other", &away_name, PASSWORD, "").await;

    away.send("AWAY :out for lunch").await;
    away.expect_numeric("306").await;
    let line = watcher.wait_for(|l| command_of(l) == "AWAY").await;
    assert!(line.starts_with(&format!(":{away_name}!")), "{line}");
    assert_eq!(trailing(&line), "out for lunch");
    let more = watcher.sync("after-away").await;
    assert!(
        more.iter().all(|l| command_of(l) != "AWAY"),
        "AWAY shown twice: {more:?}"
    );
    let quiet = plain.sync("plain-away").await;
    assert!(
        quiet.iter().all(|l| command_of(l) != "AWAY"),
        "AWAY sent without away-notify: {quiet:?}"
    );

    watcher.send(&format!("WHOIS {away_name}")).await;
    let whois = watcher.expect_numeric("301").await;
    assert_eq!(trailing(&whois), "out for lunch");
    watcher.expect_numeric("318").await;
    watcher
        .send(&format!("PRIVMSG {away_name} :are you there?"))
        .await;
    let reply = watcher.expect_numeric("301").await;
    assert!(reply.contains(&format!(" {away_name} ")), "{reply}");
    assert_eq!(trailing(&reply), "out for lunch");

    // A user who joins a channel while away is announced as away there.
    let channel = format!("#awayroom{}", unique_suffix());
    watcher.send(&format!("JOIN {channel}")).await;
    watcher.expect_numeric("366").await;
    away.send(&format!("JOIN {channel}")).await;
    watcher
        .wait_for(|l| l.starts_with(&format!(":{away_name}!")) && l.contains(" JOIN "))
        .await;
    let on_join = watcher.wait_for(|l| command_of(l) == "AWAY").await;
    assert_eq!(trailing(&on_join), "out for lunch");

    // The second connection of the same user clears the shared state.
    second.send("AWAY").await;
    second.expect_numeric("305").await;
    let back = watcher.wait_for(|l| command_of(l) == "AWAY").await;
    assert!(back.starts_with(&format!(":{away_name}!")), "{back}");
    assert!(back.ends_with(" AWAY"), "back line has a message: {back}");
    watcher.send(&format!("WHOIS {away_name}")).await;
    let lines = watcher.sync("whois-back").await;
    assert!(
        lines.iter().all(|l| command_of(l) != "301"),
        "301 after AWAY was cleared: {lines:?}"
    );
}

/// IRCv3 account-tag: messages from a signed-in user carry `account=<name>` for clients
/// with the capability, and none for guests. IRCv3 extended-join: JOIN lines carry the
/// account (`*` for a guest) and the real name.
#[tokio::test]
async fn account_tag_and_extended_join() {
    let server = Server::start(&[("allow-guest-rooms", "true")]).await;
    let addr = irc_addr(&server);
    let (_, mut reader) = lobby_member(&server, "reader", "account-tag extended-join").await;
    let (_, mut untagged) = lobby_member(&server, "untagged", "").await;
    let (writer_name, mut writer) = lobby_member(&server, "writer", "").await;

    writer.send("PRIVMSG #lobby :signed message").await;
    let line = reader
        .wait_for(|l| command_of(l) == "PRIVMSG" && trailing(l) == "signed message")
        .await;
    assert_eq!(tag(&line, "account"), Some(writer_name.as_str()), "{line}");
    let plain = untagged
        .wait_for(|l| command_of(l) == "PRIVMSG" && trailing(l) == "signed message")
        .await;
    assert_eq!(tag(&plain, "account"), None, "{plain}");

    let channel = format!("#acct{}", unique_suffix());
    reader.send(&format!("JOIN {channel}")).await;
    let own = reader
        .wait_for(|l| command_of(l) == "JOIN" && l.contains(&channel))
        .await;
    assert!(own.contains(&format!("JOIN {channel} reader")), "{own}");
    reader.expect_numeric("366").await;

    writer.send(&format!("JOIN {channel}")).await;
    let join = reader
        .wait_for(|l| command_of(l) == "JOIN" && l.contains(&format!(":{writer_name}!")))
        .await;
    assert!(
        join.ends_with(&format!("JOIN {channel} {writer_name} {writer_name}")),
        "{join}"
    );

    let mut guest = IrcClient::guest(addr, "guestx").await;
    guest.send(&format!("JOIN {channel}")).await;
    let join = reader
        .wait_for(|l| l.starts_with(":guestx!") && l.contains(&format!("JOIN {channel}")))
        .await;
    assert!(
        join.ends_with(&format!("JOIN {channel} * guestx")),
        "{join}"
    );
    guest.expect_numeric("366").await;
    guest.send(&format!("PRIVMSG {channel} :guest words")).await;
    let line = reader
        .wait_for(|l| command_of(l) == "PRIVMSG" && trailing(l) == "guest words")
        .await;
    assert_eq!(tag(&line, "account"), None, "{line}");
}

/// IRCv3 message-tags: TAGMSG and client-only tags on PRIVMSG reach peers with the
/// capability and no one else; client tag data over 4094 bytes gets 417. The
/// `+typing` client tag maps to Confab's typing event in both directions.
#[tokio::test]
async fn tagmsg_and_client_tags_relay() {
    let server = Server::start(&[]).await;
    let (_, mut peer) = lobby_member(&server, "peer", "message-tags").await;
    let (_, mut plain) = lobby_member(&server, "plain", "").await;
    let (sender_name, mut sender) =
        lobby_member(&server, "sender", "message-tags echo-message").await;
    let web = server.register(&format!("web{}", unique_suffix())).await;
    let (mut sio, session) = server.socket(json!({ "token": web.token })).await;
    let lobby = session["lobby_id"].as_i64().expect("session.lobby_id");

    sender
        .send("@+typing=active;+example.com/note=a\\sb TAGMSG #lobby")
        .await;
    let line = peer.wait_for(|l| command_of(l) == "TAGMSG").await;
    assert!(line.starts_with('@'), "{line}");
    assert!(line.contains(&format!(":{sender_name}!")), "{line}");
    assert!(line.ends_with(" TAGMSG #lobby"), "{line}");
    assert_eq!(tag(&line, "+typing"), Some("active"), "{line}");
    assert_eq!(tag(&line, "+example.com/note"), Some("a\\sb"), "{line}");
    assert!(tag(&line, "msgid").is_some(), "{line}");
    let echo = sender.wait_for(|l| command_of(l) == "TAGMSG").await;
    assert_eq!(tag(&echo, "+typing"), Some("active"), "{echo}");
    let typing = sio.wait_event("typing").await;
    assert_eq!(typing["room_id"], lobby);
    assert_eq!(typing["display_name"], sender_name.as_str());

    sender
        .send("@+draft/react=👍 PRIVMSG #lobby :tagged text")
        .await;
    let line = peer
        .wait_for(|l| command_of(l) == "PRIVMSG" && trailing(l) == "tagged text")
        .await;
    assert_eq!(tag(&line, "+draft/react"), Some("👍"), "{line}");
    let untagged = plain
        .wait_for(|l| command_of(l) == "PRIVMSG" && trailing(l) == "tagged text")
        .await;
    assert!(!untagged.starts_with('@'), "{untagged}");
    let seen = plain.sync("plain-tags").await;
    assert!(
        seen.iter().all(|l| command_of(l) != "TAGMSG"),
        "TAGMSG sent without message-tags: {seen:?}"
    );

    // Web typing reaches IRC clients with message-tags as TAGMSG +typing=active.
    sio.emit("typing", &json!({ "room_id": lobby })).await;
    let line = peer
        .wait_for(|l| command_of(l) == "TAGMSG" && !l.contains(&sender_name))
        .await;
    assert_eq!(tag(&line, "+typing"), Some("active"), "{line}");
    assert!(line.ends_with(" TAGMSG #lobby"), "{line}");

    let long = "x".repeat(4100);
    sender.send(&format!("@+big={long} TAGMSG #lobby")).await;
    sender.expect_numeric("417").await;
    let seen = peer.sync("after-long").await;
    assert!(
        seen.iter().all(|l| command_of(l) != "TAGMSG"),
        "an oversized TAGMSG was relayed: {seen:?}"
    );
}

/// IRCv3 labeled-response: a labeled PRIVMSG to several targets, with echo-message and
/// batch, gets one `labeled-response` batch holding every echo.
#[tokio::test]
async fn labeled_multi_target_privmsg_batches_echoes() {
    let server = Server::start(&[]).await;
    let (_, mut client) = lobby_member(
        &server,
        "multi",
        "echo-message labeled-response message-tags batch",
    )
    .await;
    let channel = format!("#second{}", unique_suffix());
    client.send(&format!("JOIN {channel}")).await;
    client.expect_numeric("366").await;

    client
        .send(&format!("@label=mt1 PRIVMSG #lobby,{channel} :to both"))
        .await;
    let received = client.sync("after-mt1").await;
    let start = received
        .iter()
        .position(|l| command_of(l) == "BATCH" && l.contains(" +"))
        .unwrap_or_else(|| panic!("no batch start: {received:?}"));
    let opening = &received[start];
    assert_eq!(tag(opening, "label"), Some("mt1"), "{opening}");
    assert!(opening.ends_with(" labeled-response"), "{opening}");
    let id = opening
        .split_whitespace()
        .find_map(|w| w.strip_prefix('+'))
        .expect("batch id")
        .to_owned();
    let echoes: Vec<&String> = received
        .iter()
        .filter(|l| command_of(l) == "PRIVMSG")
        .collect();
    assert_eq!(echoes.len(), 2, "{received:?}");
    for echo in &echoes {
        assert_eq!(tag(echo, "batch"), Some(id.as_str()), "{echo}");
        assert_eq!(tag(echo, "label"), None, "{echo}");
    }
    let end = received
        .iter()
        .position(|l| l.ends_with(&format!("BATCH -{id}")))
        .unwrap_or_else(|| panic!("no batch end: {received:?}"));
    assert!(end > start, "{received:?}");
    let acks = received.iter().filter(|l| command_of(l) == "ACK").count();
    assert_eq!(acks, 0, "{received:?}");
}

/// Returns the argon2 PHC string of `password` from `confab hash-password`.
fn hash_password(password: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_confab"))
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run confab hash-password");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    writeln!(stdin, "{password}").expect("write the password");
    drop(stdin);
    let output = child.wait_with_output().expect("confab hash-password ends");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .expect("UTF-8 output")
        .trim()
        .to_owned()
}

/// RFC 2812 3.1.4 OPER: 491 when no operator block has the name, 464 for a wrong
/// password, and 381 with user mode +o for the right one. WHOIS then shows 313 (RFC 2812
/// 5.1), MODE shows +o, and `MODE nick -o` gives operator status up.
#[tokio::test]
async fn oper_checks_blocks_and_sets_mode() {
    let hash = hash_password("oper secret");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let block = format!("boss:{hash}");
    let server = Server::start(&[("irc-oper", block.as_str())]).await;
    let addr = irc_addr(&server);
    let mut client = IrcClient::guest(addr, "wantsoper").await;
    let mut other = IrcClient::guest(addr, "looker").await;

    client.send("OPER nobody whatever").await;
    client.expect_numeric("491").await;
    client.send("OPER boss :wrong secret").await;
    client.expect_numeric("464").await;
    client.send("MODE wantsoper").await;
    let modes = client.expect_numeric("221").await;
    assert!(modes.ends_with(" +i"), "{modes}");

    client.send("OPER boss :oper secret").await;
    client.expect_numeric("381").await;
    let mode = client.wait_for(|l| command_of(l) == "MODE").await;
    assert!(mode.ends_with("MODE wantsoper +o"), "{mode}");
    client.send("MODE wantsoper").await;
    let modes = client.expect_numeric("221").await;
    assert!(modes.ends_with("+io"), "{modes}");
    other.send("WHOIS wantsoper").await;
    other.expect_numeric("313").await;
    other.expect_numeric("318").await;

    client.send("MODE wantsoper -o").await;
    let mode = client.wait_for(|l| command_of(l) == "MODE").await;
    assert!(mode.ends_with("MODE wantsoper -o"), "{mode}");
    other.send("WHOIS wantsoper").await;
    let lines = other.sync("whois-deoper").await;
    assert!(
        lines.iter().all(|l| command_of(l) != "313"),
        "313 after -o: {lines:?}"
    );
}

/// RFC 2812 section 3.2.2: PART is shown as PART. A user who leaves one channel but stays
/// connected must not appear to QUIT, which would drop them from every shared channel.
#[tokio::test]
async fn part_is_not_shown_as_quit() {
    let server = Server::start(&[("allow-guest-rooms", "true")]).await;
    let addr = irc_addr(&server);
    let mut stayer = IrcClient::guest(addr, "stayer").await;
    let mut leaver = IrcClient::guest(addr, "leaver").await;
    for client in [&mut stayer, &mut leaver] {
        client.send("JOIN #first").await;
        client.expect_numeric("366").await;
    }
    stayer.sync("joined").await;

    leaver.send("PART #first :bye").await;
    let part = stayer.wait_for(|l| command_of(l) == "PART").await;
    assert!(part.starts_with(":leaver!"), "{part}");
    leaver.sync("parted").await;
    let seen = stayer.sync("after-part").await;
    assert!(
        seen.iter().all(|l| command_of(l) != "QUIT"),
        "QUIT after PART: {seen:?}"
    );

    // Closing the connection is a QUIT.
    leaver.send("QUIT :done").await;
    drop(leaver);
    let mut second = IrcClient::guest(addr, "second").await;
    second.send("JOIN #first").await;
    second.expect_numeric("366").await;
    drop(second);
    let quit = stayer.wait_for(|l| command_of(l) == "QUIT").await;
    assert!(quit.starts_with(":second!"), "{quit}");
}

/// Returns the new nickname of a NICK line: its last parameter.
fn new_nick(line: &str) -> &str {
    let last = line.rsplit(' ').next().unwrap_or("");
    last.strip_prefix(':').unwrap_or(last)
}

/// RFC 2812 3.1.2: a nickname change reaches each client that shares a channel with the
/// user as one NICK line from the old nickname. This holds for a display name change on
/// the web too, which also renames the user's own IRC connection. A nickname left behind
/// is free again.
#[tokio::test]
async fn rename_reaches_peers_as_nick() {
    let server = Server::start(&[]).await;
    let (_, mut watcher) = lobby_member(&server, "watch", "").await;
    let name = format!("renamer{}", unique_suffix());
    let account = server.register(&name).await;
    let mut own = IrcClient::sasl(irc_addr(&server), &name, &name, PASSWORD, "").await;
    // A second shared channel, so the change reaches the watcher twice and shows once.
    let channel = format!("#renames{}", unique_suffix());
    for client in [&mut watcher, &mut own] {
        client.send(&format!("JOIN #lobby,{channel}")).await;
        client.expect_numeric("366").await;
        client.expect_numeric("366").await;
    }
    watcher.sync("joined").await;

    let web_name = format!("Web{}", unique_suffix());
    let body = json!({ "display_name": web_name }).to_string().into_bytes();
    let reply = server
        .http()
        .send(
            reqwest::Method::PATCH,
            "/api/v1/me",
            Some(&account.token),
            &[],
            Some((body, "application/json")),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let seen = watcher.wait_for(|l| command_of(l) == "NICK").await;
    assert!(seen.starts_with(&format!(":{name}!")), "{seen}");
    assert_eq!(new_nick(&seen), web_name);
    let more = watcher.sync("after-web-rename").await;
    assert!(
        more.iter().all(|l| command_of(l) != "NICK"),
        "NICK shown twice: {more:?}"
    );
    let renamed = own.wait_for(|l| command_of(l) == "NICK").await;
    assert!(renamed.starts_with(&format!(":{name}!")), "{renamed}");
    assert_eq!(new_nick(&renamed), web_name);

    // The connection now sends under the new nickname.
    own.send(&format!("PRIVMSG {channel} :hello after the rename"))
        .await;
    let message = watcher.wait_for(|l| command_of(l) == "PRIVMSG").await;
    assert!(message.starts_with(&format!(":{web_name}!")), "{message}");

    let irc_name = format!("Irc{}", unique_suffix());
    own.send(&format!("NICK {irc_name}")).await;
    let renamed = own.wait_for(|l| command_of(l) == "NICK").await;
    assert!(renamed.starts_with(&format!(":{web_name}!")), "{renamed}");
    assert_eq!(new_nick(&renamed), irc_name);
    let more = own.sync("after-irc-rename").await;
    assert!(
        more.iter().all(|l| command_of(l) != "NICK"),
        "own NICK shown twice: {more:?}"
    );
    let seen = watcher.wait_for(|l| command_of(l) == "NICK").await;
    assert!(seen.starts_with(&format!(":{web_name}!")), "{seen}");
    assert_eq!(new_nick(&seen), irc_name);

    // The nickname from the web rename is no longer reserved for the user. The first one
    // stays taken, because it is the account's username.
    let _guest = IrcClient::guest(irc_addr(&server), &web_name).await;
}

/// RFC 2812 3.1.2: when a web rename picks a nickname that another user holds on the
/// server, the user's IRC connection gets the user id appended, as at registration. The
/// change reaches the connection once per room, and it still gets one NICK line.
#[tokio::test]
async fn rename_to_a_held_nick_appends_the_id() {
    let server = Server::start(&[]).await;
    let taken = format!("Taken{}", unique_suffix());
    let _holder = IrcClient::guest(irc_addr(&server), &taken).await;
    let name = format!("clash{}", unique_suffix());
    let account = server.register(&name).await;
    let mut own = IrcClient::sasl(irc_addr(&server), &name, &name, PASSWORD, "").await;
    let channel = format!("#clash{}", unique_suffix());
    own.send(&format!("JOIN #lobby,{channel}")).await;
    own.expect_numeric("366").await;
    own.expect_numeric("366").await;

    let body = json!({ "display_name": taken }).to_string().into_bytes();
    let reply = server
        .http()
        .send(
            reqwest::Method::PATCH,
            "/api/v1/me",
            Some(&account.token),
            &[],
            Some((body, "application/json")),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let renamed = own.wait_for(|l| command_of(l) == "NICK").await;
    assert!(renamed.starts_with(&format!(":{name}!")), "{renamed}");
    assert_eq!(new_nick(&renamed), format!("{taken}-{}", account.user_id));
    let more = own.sync("after-clash").await;
    assert!(
        more.iter().all(|l| command_of(l) != "NICK"),
        "NICK shown twice: {more:?}"
    );
}
