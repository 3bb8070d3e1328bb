"""The per-user send budget, shared by Socket.IO and REST."""

import time

from support import Api, ChatClient, expect_status

SEND_BURST = 3


def test_send_budget_shared_across_protocols(start_server, transport, clients):
    # With one message per second refilling the budget, the sends below run well within
    # the second after the burst is spent.
    server = start_server("--send-burst", str(SEND_BURST), "--send-rate", "1")
    api = Api(server.url)
    alice = api.register("alice")
    bob = api.register("bob")
    client = ChatClient(server.url, transport, auth={"token": alice["token"]})
    clients.append(client)
    lobby = client.connect()["lobby_id"]

    for i in range(SEND_BURST):
        client.send(lobby, f"within the burst {i}")
    error = client.error("message:send", {"room_id": lobby, "body": "one too many"})
    assert error["code"] == "rate_limited"
    assert error["retry_after_ms"] > 0

    response = api.request(
        "POST", f"/rooms/{lobby}/messages", alice["token"], json={"body": "over REST"}
    )
    expect_status(response, 429)
    assert int(response.headers["Retry-After"]) >= 1
    rest_error = response.json()["error"]
    assert rest_error["code"] == "rate_limited"
    assert rest_error["retry_after_ms"] > 0

    other = api.request(
        "POST", f"/rooms/{lobby}/messages", bob["token"], json={"body": "bob is not limited"}
    )
    expect_status(other, 201)
    bodies = [m["body"] for m in api.history(bob["token"], lobby)]
    assert "one too many" not in bodies
    assert "over REST" not in bodies

    # The wait the server names is enough for the next message to pass.
    time.sleep(rest_error["retry_after_ms"] / 1000)
    client.send(lobby, "after waiting")
