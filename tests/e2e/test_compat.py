"""The plain Socket.IO chat protocol: no auth, `message` events carrying strings."""


def test_plain_message_strings_reach_each_other(api, connect):
    first = connect()
    second = connect()
    for client in (first, second):
        assert client.session["user"]["kind"] == "guest"
        assert client.session["token"], "a new guest gets its token to reconnect with"

    first.emit("message", "hello from the first tab")
    assert second.wait_for("message", lambda s: s == "hello from the first tab")
    second.emit("message", "hello from the second tab")
    assert first.wait_for("message", lambda s: s == "hello from the second tab")

    for client in (first, second):
        assert client.received("server:error") == []

    reader = api.register("reader")
    history = api.history(reader["token"], first.session["lobby_id"])
    texts = [(m["author_id"], m["body"]) for m in history if m["kind"] == "text"]
    assert (first.user_id, "hello from the first tab") in texts
    assert (second.user_id, "hello from the second tab") in texts


def test_plain_message_rejects_non_string(connect):
    client = connect()

    error = client.error("message", {"body": "not a string"})

    assert error["code"] == "invalid_payload"


def lobby_text(body: str):
    return lambda m: isinstance(m, dict) and m.get("kind") == "text" and m.get("body") == body


def test_plain_client_gets_one_frame_per_message(connect):
    sender = connect()
    reader = connect()

    sender.emit("message", "one frame each")

    # The sink queues `message:new` ahead of the `message` string of the same message,
    # so once the string is in, a `message:new` for it would have arrived too.
    for client in (sender, reader):
        assert client.wait_for("message", lambda s: s == "one frame each")
        assert client.received("message:new", lobby_text("one frame each")) == []


def test_full_client_keeps_message_new(api, connect):
    plain = connect()
    account = api.register("full")
    full = connect(account["token"])

    plain.emit("message", "before the full client sends")
    assert full.wait_for("message:new", lobby_text("before the full client sends"))
    assert full.received("message") == []

    full.emit("message", "from the full client")
    assert full.wait_for("message:new", lobby_text("from the full client"))
    assert full.wait_for("message", lambda s: s == "from the full client")
    assert plain.wait_for("message", lambda s: s == "from the full client")
    assert plain.received("message:new", lobby_text("from the full client")) == []


def test_plain_client_using_protocol_gets_both(connect):
    sender = connect()
    upgraded = connect()

    upgraded.ok("rooms:list")
    sender.emit("message", "to both kinds")

    assert upgraded.wait_for("message:new", lobby_text("to both kinds"))
    assert upgraded.wait_for("message", lambda s: s == "to both kinds")
