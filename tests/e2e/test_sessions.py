"""Ending sessions closes the sockets that authenticated with them, and only those."""

from support import ChatClient, expect_status

# Seconds within which a socket of an ended session must be closed.
CLOSE_TIMEOUT = 5.0
NEW_PASSWORD = "a brand new passphrase"


def assert_session_ended(client: ChatClient) -> None:
    notice = client.wait_for("server:notice", timeout=CLOSE_TIMEOUT)
    assert notice["code"] == "session_ended"
    assert notice["message"]
    client.wait_disconnected(timeout=CLOSE_TIMEOUT)
    assert not client.sio.connected


def assert_still_receives(api, client: ChatClient, sender_token: str, body: str) -> None:
    assert client.sio.connected
    lobby = client.session["lobby_id"]
    response = api.request(
        "POST", f"/rooms/{lobby}/messages", sender_token, json={"body": body}
    )
    ack = expect_status(response, 201).json()
    received = client.wait_for("message:new", lambda m: m["id"] == ack["id"])
    assert received["body"] == body
    assert client.received("server:notice") == []
    assert not client.disconnected.is_set()


def test_logout_closes_only_its_socket(api, connect, transport, server, clients):
    first = api.register("carol")
    second = api.login("carol")
    other = api.register("dave")
    s1 = connect(first["token"])
    s2 = connect(second["token"])
    assert s1.session["session_id"] != s2.session["session_id"]

    expect_status(api.request("POST", "/auth/logout", first["token"]), 204)

    assert_session_ended(s1)
    assert_still_receives(api, s2, other["token"], "still there?")
    response = api.request("GET", "/me", first["token"])
    assert expect_status(response, 401).json()["error"]["code"] == "unauthenticated"
    expect_status(api.request("GET", "/me", second["token"]), 200)
    stale = ChatClient(server.url, transport, auth={"token": first["token"]})
    clients.append(stale)
    assert stale.connect_refused()["message"] == "unauthenticated"


def test_password_change_ends_other_sessions(api, connect, transport, server, clients):
    current = api.register("erin")
    others = [api.login("erin"), api.login("erin")]
    friend = api.register("frank")
    current_socket = connect(current["token"])
    ended = [connect(login["token"]) for login in others]

    response = api.request(
        "PUT", "/me/password", current["token"],
        json={"current_password": "correct horse battery", "new_password": NEW_PASSWORD},
    )
    expect_status(response, 204)

    for client in ended:
        assert_session_ended(client)
    assert_still_receives(api, current_socket, friend["token"], "password changed?")
    expect_status(api.request("GET", "/me", current["token"]), 200)
    for login in others:
        response = api.request("GET", "/me", login["token"])
        assert expect_status(response, 401).json()["error"]["code"] == "unauthenticated"
        stale = ChatClient(server.url, transport, auth={"token": login["token"]})
        clients.append(stale)
        assert stale.connect_refused()["message"] == "unauthenticated"

    response = api.request(
        "POST", "/auth/login",
        json={"username": "erin", "password": "correct horse battery"},
    )
    assert expect_status(response, 401).json()["error"]["code"] == "bad_credentials"
    api.login("erin", NEW_PASSWORD)
