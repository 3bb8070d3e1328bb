"""Origin checks on Socket.IO handshakes of a server listening on an ephemeral port."""

from urllib.parse import urlsplit

import pytest

from support import ChatClient


def own_origins(url: str) -> list[str]:
    port = urlsplit(url).port
    return [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]


def test_own_origin_accepted(server, transport, clients):
    for origin in own_origins(server.url):
        client = ChatClient(server.url, transport, origin=origin)
        clients.append(client)
        assert client.connect()["user"]["kind"] == "guest"


@pytest.mark.parametrize("origin", ["http://chat.example", "http://127.0.0.1:1"])
def test_foreign_origin_rejected(server, transport, clients, origin):
    client = ChatClient(server.url, transport, origin=origin)
    clients.append(client)

    client.connect_refused()

    assert client.received("session") == []
