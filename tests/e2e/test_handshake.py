"""The first event a connection receives, and handshakes of the wrong shape."""

from __future__ import annotations

import threading

import socketio

from support import ACK_TIMEOUT, CONNECT_TIMEOUT, EVENT_TIMEOUT, ChatClient


def test_session_is_the_first_event(server, api, transport, clients):
    user = api.register("first-event")
    for _ in range(5):
        client = ChatClient(server.url, transport, auth={"token": user["token"]})
        clients.append(client)
        client.connect()
        names = [name for name, _ in client.events]
        assert names[0] == "session", names
        client.close()


def test_event_sent_at_once_is_handled(server, api, transport):
    """An event emitted before the `session` event arrives still gets its reply."""
    user = api.register("eager-sender")
    replies: list[dict] = []
    replied = threading.Event()

    def on_reply(reply: dict) -> None:
        replies.append(reply)
        replied.set()

    sio = socketio.Client(reconnection=False)
    sio.connect(
        server.url,
        transports=[transport],
        auth={"token": user["token"]},
        wait_timeout=CONNECT_TIMEOUT,
    )
    try:
        sio.emit("message:send", {"room_id": 1, "body": "right away"}, callback=on_reply)
        assert replied.wait(ACK_TIMEOUT), "no acknowledgement for an event sent at once"
        assert replies[0]["ok"] is True, replies
    finally:
        sio.disconnect()


def test_auth_of_wrong_shape_is_refused(server, transport, clients):
    client = ChatClient(server.url, transport, auth={"token": 5})
    clients.append(client)

    refusal = client.connect_refused()

    assert refusal == {"message": "invalid_payload"}
    assert client.received("session") == []


def test_rooms_list_needs_no_payload(connect):
    client = connect()
    rooms = client.ok("rooms:list")
    names = [room["name"] for room in rooms]
    assert "lobby" in names


def test_session_event_waits_for_its_rooms(connect, api):
    """A member's own presence announcement comes after `session`, not before."""
    owner = api.register("presence-owner")
    client = connect(token=owner["token"])
    names = [name for name, _ in client.events]
    assert names.index("session") == 0
    presence = client.wait_for("presence", timeout=EVENT_TIMEOUT)
    assert presence["user_id"] == owner["user"]["id"]
