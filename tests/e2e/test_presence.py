"""Presence and typing events between members of a room."""

import os
import queue
import signal
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import pytest

from support import HEARTBEAT_WAIT, Api, ChatClient, expect_status

PING_INTERVAL_SECS = 1
PING_TIMEOUT_SECS = 1
# Slack on top of one heartbeat period for scheduling on a loaded machine.
OFFLINE_MARGIN_SECS = 5
HOLDER_START_TIMEOUT = 30.0
HOLD_SCRIPT = Path(__file__).with_name("hold_socket.py")


def presence_of(room_id: int, user_id: int, online: bool):
    return lambda p: (
        p["room_id"] == room_id and p["user_id"] == user_id and p["online"] is online
    )


def test_presence_follows_connect_and_disconnect(api, connect):
    alice = api.register("alice")
    bob = api.register("bob")
    room_id = api.create_room(alice["token"], "presence")["id"]
    api.join(bob["token"], room_id)
    a = connect(alice["token"])
    bob_id = bob["user"]["id"]

    b = connect(bob["token"])
    online = a.wait_for("presence", presence_of(room_id, bob_id, True))
    assert online["online_count"] == 2

    b.close()
    offline = a.wait_for(
        "presence", presence_of(room_id, bob_id, False), timeout=HEARTBEAT_WAIT
    )
    assert offline["online_count"] == 1


def read_first_line(stream, lines: queue.Queue) -> None:
    lines.put(stream.readline())


@pytest.mark.parametrize("stop_signal", ["SIGKILL", "SIGSTOP"])
def test_vanished_client_announced_offline(start_server, transport, clients, stop_signal):
    # SIGKILL closes the client's TCP connections; SIGSTOP leaves them open but silent,
    # so only the heartbeat can notice that the client is gone.
    server = start_server(
        "--ping-interval-secs", str(PING_INTERVAL_SECS),
        "--ping-timeout-secs", str(PING_TIMEOUT_SECS),
    )
    api = Api(server.url)
    alice = api.register("alice")
    bob = api.register("bob")
    room_id = api.create_room(alice["token"], "presence")["id"]
    api.join(bob["token"], room_id)
    watcher = ChatClient(server.url, transport, auth={"token": alice["token"]})
    clients.append(watcher)
    watcher.connect()
    bob_id = bob["user"]["id"]

    holder = subprocess.Popen(
        [sys.executable, str(HOLD_SCRIPT), server.url, transport, bob["token"]],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines: queue.Queue = queue.Queue()
        threading.Thread(
            target=read_first_line, args=(holder.stdout, lines), daemon=True
        ).start()
        assert lines.get(timeout=HOLDER_START_TIMEOUT) == "connected\n"
        online = watcher.wait_for("presence", presence_of(room_id, bob_id, True))
        assert online["online_count"] == 2

        os.kill(holder.pid, getattr(signal, stop_signal))

        offline = watcher.wait_for(
            "presence",
            presence_of(room_id, bob_id, False),
            timeout=PING_INTERVAL_SECS + PING_TIMEOUT_SECS + OFFLINE_MARGIN_SECS,
        )
        assert offline["online_count"] == 1
        assert watcher.sio.connected, "the heartbeat must keep the live client connected"
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_typing_reaches_other_member(api, connect):
    alice = api.register("alice")
    bob = api.register("bob")
    room_id = api.create_room(alice["token"], "typing")["id"]
    api.join(bob["token"], room_id)
    a = connect(alice["token"])
    b = connect(bob["token"])

    a.ok("typing", {"room_id": room_id})

    typing = b.wait_for("typing", lambda t: t["room_id"] == room_id)
    assert typing["user_id"] == alice["user"]["id"]
    assert typing["display_name"] == "alice"


def one_pixel_png() -> bytes:
    """Builds a valid 1x1 red PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", pixels)
        + chunk(b"IEND", b"")
    )


def test_profile_change_reaches_members(api, connect):
    alice = api.register("alice")
    bob = api.register("bob")
    room_id = api.create_room(alice["token"], "profiles")["id"]
    api.join(bob["token"], room_id)
    b = connect(bob["token"])
    alice_id = alice["user"]["id"]

    renamed = api.request(
        "PATCH", "/me", alice["token"], json={"display_name": "Alice Liddell"}
    )
    expect_status(renamed, 200)
    updates = b.wait_for_count(
        "user:updated", 2, lambda u: u["user"]["display_name"] == "Alice Liddell"
    )
    # One copy per shared room: the lobby and the new room.
    assert {u["room_id"] for u in updates} == {room_id, b.session["lobby_id"]}
    assert updates[0]["change_id"] == updates[1]["change_id"]
    assert updates[0]["user"]["id"] == alice_id
    assert updates[0]["previous_display_name"] == "alice"

    uploaded = api.request(
        "PUT",
        "/me/avatar",
        alice["token"],
        data=one_pixel_png(),
        headers={"Content-Type": "image/png"},
    )
    avatar_url = expect_status(uploaded, 200).json()["avatar_url"]
    update = b.wait_for("user:updated", lambda u: u["user"]["avatar_url"] == avatar_url)
    assert update["user"]["display_name"] == "Alice Liddell"
    assert update["previous_display_name"] == "Alice Liddell"
