"""Editing and deleting messages: authors, other members and moderators."""

import pytest


@pytest.fixture
def room(api, connect):
    """A public room owned by olga with members alice and bob, all three connected."""
    olga = api.register("olga")
    alice = api.register("alice")
    bob = api.register("bob")
    room_id = api.create_room(olga["token"], "edits")["id"]
    api.join(alice["token"], room_id)
    api.join(bob["token"], room_id)
    return {
        "id": room_id,
        "owner": connect(olga["token"]),
        "alice": connect(alice["token"]),
        "bob": connect(bob["token"]),
        "owner_token": olga["token"],
    }


def test_author_edits_and_deletes(api, room):
    alice, bob = room["alice"], room["bob"]
    ack = alice.send(room["id"], "first draft")

    edited = alice.ok("message:edit", {"message_id": ack["id"], "body": "final text"})
    assert edited["id"] == ack["id"]
    assert edited["body"] == "final text"
    assert edited["edited_at"] is not None
    seen = bob.wait_for("message:edited", lambda m: m["id"] == ack["id"])
    assert seen["body"] == "final text"
    assert seen["seq"] == ack["seq"]

    alice.ok("message:delete", {"message_id": ack["id"]})
    deleted = bob.wait_for("message:deleted", lambda m: m["id"] == ack["id"])
    assert deleted["room_id"] == room["id"]
    assert deleted["seq"] == ack["seq"]
    assert deleted["deleted_by"] == alice.user_id
    assert deleted["deleted_at"] is not None

    history = api.history(room["owner_token"], room["id"])
    tombstones = [m for m in history if m["id"] == ack["id"]]
    assert len(tombstones) == 1
    assert tombstones[0]["body"] == ""
    assert tombstones[0]["deleted_at"] is not None
    assert tombstones[0]["deleted_by"] == alice.user_id
    assert tombstones[0]["seq"] == ack["seq"]


def test_member_cannot_touch_others_message(room):
    alice, bob = room["alice"], room["bob"]
    ack = alice.send(room["id"], "mine")

    edit = bob.error("message:edit", {"message_id": ack["id"], "body": "yours now"})
    assert edit["code"] == "forbidden"
    delete = bob.error("message:delete", {"message_id": ack["id"]})
    assert delete["code"] == "forbidden"

    history = bob.ok("room:history", {"room_id": room["id"]})["messages"]
    stored = [m for m in history if m["id"] == ack["id"]]
    assert stored[0]["body"] == "mine"
    assert stored[0]["edited_at"] is None
    assert stored[0]["deleted_at"] is None


def test_owner_and_admin_delete_member_messages(room):
    owner, alice, bob = room["owner"], room["alice"], room["bob"]

    spam = bob.send(room["id"], "spam")
    owner.ok("message:delete", {"message_id": spam["id"]})
    by_owner = bob.wait_for("message:deleted", lambda m: m["id"] == spam["id"])
    assert by_owner["deleted_by"] == owner.user_id

    owner.ok("room:role", {"room_id": room["id"], "user_id": alice.user_id, "role": "admin"})
    more_spam = bob.send(room["id"], "more spam")
    alice.ok("message:delete", {"message_id": more_spam["id"]})
    by_admin = bob.wait_for("message:deleted", lambda m: m["id"] == more_spam["id"])
    assert by_admin["deleted_by"] == alice.user_id
