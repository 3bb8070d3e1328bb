"""Who may read and post where: guests, private rooms, invitations."""

from support import Api, ChatClient, expect_status


def test_guest_with_chinese_nickname_posts(api, connect):
    guest = api.guest("小明")
    assert guest["user"]["display_name"] == "小明"
    assert guest["user"]["kind"] == "guest"

    client = connect(guest["token"])
    assert client.session["user"]["display_name"] == "小明"
    lobby = client.session["lobby_id"]
    ack = client.send(lobby, "大家好")

    stored = [m for m in api.history(guest["token"], lobby) if m["id"] == ack["id"]]
    assert len(stored) == 1
    assert stored[0]["body"] == "大家好"
    assert stored[0]["author_name"] == "小明"


def test_guest_without_credentials_posts(api, connect):
    client = connect()
    assert client.session["user"]["kind"] == "guest"
    lobby = client.session["lobby_id"]

    ack = client.send(lobby, "anonymous hello")

    reader = api.register("reader")
    bodies = {m["id"]: m["body"] for m in api.history(reader["token"], lobby)}
    assert bodies.get(ack["id"]) == "anonymous hello"


def test_private_room_hidden_from_guests(api, connect):
    owner = api.register("owner")
    room_id = api.create_room(owner["token"], "secret", "private")["id"]
    named_guest = api.guest("小明")

    for guest in (connect(named_guest["token"]), connect()):
        assert guest.error("room:join", {"room_id": room_id})["code"] == "room_not_found"
        assert guest.error("room:join", {"name": "secret"})["code"] == "room_not_found"
        sent = guest.error("message:send", {"room_id": room_id, "body": "let me in"})
        assert sent["code"] == "room_not_found"
        history = guest.error("room:history", {"room_id": room_id})
        assert history["code"] == "room_not_found"

    response = api.request("GET", f"/rooms/{room_id}/messages", named_guest["token"])
    assert expect_status(response, 404).json()["error"]["code"] == "room_not_found"
    response = api.request(
        "POST", f"/rooms/{room_id}/messages", named_guest["token"], json={"body": "hi"}
    )
    assert expect_status(response, 404).json()["error"]["code"] == "room_not_found"
    bodies = [m["body"] for m in api.history(owner["token"], room_id)]
    assert "let me in" not in bodies
    assert "hi" not in bodies


def test_private_room_needs_invitation(api, connect):
    owner = api.register("owner")
    outsider = api.register("outsider")
    room_id = api.create_room(owner["token"], "secret", "private")["id"]
    owner_socket = connect(owner["token"])
    outsider_socket = connect(outsider["token"])

    assert outsider_socket.error("room:join", {"room_id": room_id})["code"] == "room_not_found"
    sent = outsider_socket.error("message:send", {"room_id": room_id, "body": "uninvited"})
    assert sent["code"] == "room_not_found"
    assert outsider_socket.error("room:history", {"room_id": room_id})["code"] == "room_not_found"
    response = api.request("GET", f"/rooms/{room_id}/messages", outsider["token"])
    assert expect_status(response, 404).json()["error"]["code"] == "room_not_found"
    response = api.request(
        "POST", f"/rooms/{room_id}/messages", outsider["token"], json={"body": "uninvited"}
    )
    assert expect_status(response, 404).json()["error"]["code"] == "room_not_found"

    response = api.request(
        "POST", f"/rooms/{room_id}/invites", owner["token"],
        json={"user_id": outsider["user"]["id"]},
    )
    expect_status(response, 204)
    joined = outsider_socket.ok("room:join", {"room_id": room_id})
    assert joined["id"] == room_id

    ack = outsider_socket.send(room_id, "thanks for the invite")
    at_owner = owner_socket.wait_for("message:new", lambda m: m["id"] == ack["id"])
    assert at_owner["body"] == "thanks for the invite"
    history = outsider_socket.ok("room:history", {"room_id": room_id})["messages"]
    assert "thanks for the invite" in [m["body"] for m in history]
    assert "uninvited" not in [m["body"] for m in history]
    rest_bodies = [m["body"] for m in api.history(outsider["token"], room_id)]
    assert "thanks for the invite" in rest_bodies


def test_guests_disabled_refuses_anonymous(start_server, transport, clients):
    server = start_server("--allow-guests", "false")
    anonymous = ChatClient(server.url, transport)
    clients.append(anonymous)

    error = anonymous.connect_refused()

    assert error["message"] == "guests_disabled"
    assert anonymous.received("session") == []

    api = Api(server.url)
    response = api.request("POST", "/auth/guest", json={"nickname": "小明"})
    assert expect_status(response, 403).json()["error"]["code"] == "guests_disabled"
    member = api.register("member")
    registered = ChatClient(server.url, transport, auth={"token": member["token"]})
    clients.append(registered)
    assert registered.connect()["user"]["kind"] == "registered"
