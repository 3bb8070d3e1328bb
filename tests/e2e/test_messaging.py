"""Sending and receiving messages in rooms, resends and catch-up after a reconnect."""

from support import text_in_room


def test_session_event_describes_the_connection(api, connect):
    alice = api.register("alice")

    client = connect(alice["token"])

    session = client.session
    assert session["user"]["id"] == alice["user"]["id"]
    assert session["user"]["username"] == "alice"
    assert session["user"]["kind"] == "registered"
    assert isinstance(session["session_id"], int)
    assert session["token"] is None, "only a handshake that creates a guest returns a token"
    assert session["rooms"] == [session["lobby_id"]], "a new account is in the lobby only"


def test_room_chat_between_two_users(api, connect):
    alice = api.register("alice")
    bob = api.register("bob")
    a = connect(alice["token"])
    b = connect(bob["token"])

    room = a.ok("room:create", {"name": "general", "visibility": "public"})
    assert room["name"] == "general"
    a.wait_for("room:added", lambda r: r["id"] == room["id"])
    again = a.ok("room:join", {"name": "general"})
    assert again["id"] == room["id"], "joining a room one is in returns it unchanged"
    joined = b.ok("room:join", {"room_id": room["id"]})
    assert joined["id"] == room["id"]
    b.wait_for("room:added", lambda r: r["id"] == room["id"])

    own = a.send(room["id"], "hello from alice")
    assert own["room_id"] == room["id"]
    assert own["duplicate"] is False
    echoed = a.wait_for("message:new", lambda m: m["id"] == own["id"])
    assert echoed["body"] == "hello from alice"
    assert echoed["seq"] == own["seq"]
    assert echoed["author_id"] == alice["user"]["id"]
    assert echoed["author_name"] == "alice"

    other = b.send(room["id"], "hi alice")
    from_bob = a.wait_for("message:new", lambda m: m["id"] == other["id"])
    assert from_bob["body"] == "hi alice"
    assert from_bob["author_id"] == bob["user"]["id"]
    assert from_bob["seq"] > own["seq"]
    at_bob = b.wait_for("message:new", lambda m: m["id"] == own["id"])
    assert at_bob["body"] == "hello from alice"


def test_two_users_see_same_seq_order(api, connect):
    alice = api.register("alice")
    bob = api.register("bob")
    a = connect(alice["token"])
    b = connect(bob["token"])
    room_id = a.ok("room:create", {"name": "ordered", "visibility": "public"})["id"]
    b.ok("room:join", {"room_id": room_id})
    count = 20

    acks = []
    for i in range(count):
        sender = a if i % 2 == 0 else b
        acks.append(sender.send(room_id, f"message {i}"))

    ack_seqs = [ack["seq"] for ack in acks]
    assert all(x < y for x, y in zip(ack_seqs, ack_seqs[1:])), ack_seqs
    seen = {}
    for client in (a, b):
        received = client.wait_for_count("message:new", count, text_in_room(room_id))
        assert len(received) == count, f"{len(received)} messages, some twice"
        arrival_seqs = [m["seq"] for m in received]
        assert all(x < y for x, y in zip(arrival_seqs, arrival_seqs[1:])), arrival_seqs
        seen[client.user_id] = sorted(
            (m["seq"], m["id"], m["author_id"], m["body"]) for m in received
        )
    assert seen[alice["user"]["id"]] == seen[bob["user"]["id"]]
    assert [entry[3] for entry in seen[alice["user"]["id"]]] == [
        f"message {i}" for i in range(count)
    ]
    assert [entry[0] for entry in seen[alice["user"]["id"]]] == ack_seqs


def test_resend_with_client_msg_id_stores_once(api, connect):
    alice = api.register("alice")
    a = connect(alice["token"])
    lobby = a.session["lobby_id"]

    first = a.send(lobby, "only once", client_msg_id="alice-1")
    second = a.send(lobby, "only once", client_msg_id="alice-1")

    assert first["duplicate"] is False
    assert second["duplicate"] is True
    assert second["id"] == first["id"]
    assert second["seq"] == first["seq"]
    assert second["client_msg_id"] == "alice-1"

    # A later message marks the point by which a second broadcast would have arrived.
    marker = a.send(lobby, "marker")
    a.wait_for("message:new", lambda m: m["id"] == marker["id"])
    broadcasts = a.received("message:new", lambda m: m["client_msg_id"] == "alice-1")
    assert [m["id"] for m in broadcasts] == [first["id"]]

    history = a.ok("room:history", {"room_id": lobby})["messages"]
    stored = [m["id"] for m in history if m["client_msg_id"] == "alice-1"]
    assert stored == [first["id"]]
    rest_history = api.history(alice["token"], lobby)
    assert [m["id"] for m in rest_history if m["client_msg_id"] == "alice-1"] == [first["id"]]


def test_sync_after_reconnect_returns_missed(api, connect):
    alice = api.register("alice")
    bob = api.register("bob")
    room_id = api.create_room(alice["token"], "catchup")["id"]
    api.join(bob["token"], room_id)
    a = connect(alice["token"])
    b = connect(bob["token"])

    before = b.send(room_id, "before the gap")
    last_seen = a.wait_for("message:new", lambda m: m["id"] == before["id"])["seq"]
    a.close()
    assert not a.sio.connected

    missed = [b.send(room_id, f"missed {i}") for i in range(5)]

    again = connect(alice["token"])
    pages = again.ok("sync", {"rooms": {str(room_id): last_seen}})

    assert [page["room_id"] for page in pages] == [room_id]
    page = pages[0]
    assert page["has_more"] is False
    assert [m["id"] for m in page["messages"]] == [ack["id"] for ack in missed]
    assert [m["body"] for m in page["messages"]] == [f"missed {i}" for i in range(5)]
    seqs = [m["seq"] for m in page["messages"]]
    assert seqs == [ack["seq"] for ack in missed]
    assert seqs[0] > last_seen
    assert all(x < y for x, y in zip(seqs, seqs[1:])), seqs


def test_sync_by_rev_replays_edits_and_deletions(api, connect):
    alice = api.register("alice")
    bob = api.register("bob")
    room_id = api.create_room(alice["token"], "revisions")["id"]
    api.join(bob["token"], room_id)
    a = connect(alice["token"])
    b = connect(bob["token"])

    typo = b.send(room_id, "teh")
    regret = b.send(room_id, "never mind")
    page = a.ok("room:history", {"room_id": room_id})
    assert typo["id"] in [m["id"] for m in page["messages"]]
    last_rev = page["last_rev"]
    a.close()

    b.ok("message:edit", {"message_id": typo["id"], "body": "the"})
    b.ok("message:delete", {"message_id": regret["id"]})
    fresh = b.send(room_id, "still here?")

    again = connect(alice["token"])
    pages = again.ok("sync", {"revs": {str(room_id): last_rev}})

    changes = pages[0]["messages"]
    assert [m["id"] for m in changes] == [typo["id"], regret["id"], fresh["id"]]
    assert changes[0]["body"] == "the"
    assert changes[0]["edited_at"] is not None
    assert changes[1]["body"] == ""
    assert changes[1]["deleted_at"] is not None
    revs = [m["rev"] for m in changes]
    assert all(x < y for x, y in zip(revs, revs[1:])), revs
    assert revs[0] > last_rev
    assert pages[0]["has_more"] is False
    assert pages[0]["last_rev"] == revs[-1]

    rest = api.request(
        "GET", f"/rooms/{room_id}/changes", alice["token"], params={"after_rev": last_rev}
    )
    assert rest.status_code == 200, rest.text
    assert [m["id"] for m in rest.json()["messages"]] == [m["id"] for m in changes]
