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
