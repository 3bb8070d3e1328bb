"""A real IRC client library talks to Confab next to a python-socketio client.

The IRC side is the `irc` package from PyPI (jaraco/irc), which Confab did not write: it
signs in with SASL PLAIN, joins #lobby and exchanges Chinese text and emoji with a
Socket.IO user. scripts/test-irc.sh runs this file; its name keeps it out of the
default `pytest tests/e2e` run, because it needs tests/e2e/requirements-irc.txt.
"""

from __future__ import annotations

import functools
import ssl
import threading
import time
from pathlib import Path
from typing import Callable

import irc.client
import irc.connection
import pytest
import trustme

from support import EVENT_TIMEOUT, PASSWORD, Api, ChatClient, ServerProcess


class LibraryIrcClient:
    """An irc.client connection driven by a background thread, recording every event."""

    def __init__(
        self,
        address: tuple[str, int],
        nickname: str,
        account: str,
        tls: ssl.SSLContext | None = None,
    ):
        self.reactor = irc.client.Reactor()
        self.events: list[irc.client.Event] = []
        self._changed = threading.Condition()
        self.reactor.add_global_handler("all_events", self._record, -10)
        factory = irc.connection.Factory()
        if tls is not None:
            wrap = functools.partial(tls.wrap_socket, server_hostname=address[0])
            factory = irc.connection.Factory(wrapper=wrap)
        self.connection = self.reactor.server().connect(
            address[0],
            address[1],
            nickname,
            password=PASSWORD,
            sasl_login=account,
            connect_factory=factory,
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.reactor.process_once(timeout=0.1)

    def _record(self, connection: irc.client.ServerConnection, event: irc.client.Event) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def wait_for(
        self, kind: str, predicate: Callable[[irc.client.Event], bool] = lambda e: True
    ) -> irc.client.Event:
        """Wait for the first event of `kind` that `predicate` accepts."""

        def found() -> irc.client.Event | None:
            return next(
                (e for e in self.events if e.type == kind and predicate(e)), None
            )

        with self._changed:
            self._changed.wait_for(lambda: found() is not None, timeout=EVENT_TIMEOUT)
            event = found()
        assert event is not None, (
            f"no {kind} event within {EVENT_TIMEOUT} s; got "
            + ", ".join(f"{e.type} {e.arguments}" for e in self.events[-30:])
        )
        return event

    def pubmsgs(self) -> list[str]:
        with self._changed:
            return [e.arguments[0] for e in self.events if e.type == "pubmsg"]

    def close(self) -> None:
        try:
            self.connection.quit("bye")
        except irc.client.ServerNotConnectedError:
            pass
        time.sleep(0.2)
        self._stop.set()
        self._thread.join(timeout=5)
        self.connection.close()


@pytest.fixture
def server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_server()


def test_irc_library_and_socketio_exchange_text(server: ServerProcess) -> None:
    assert server.irc_address is not None, "the server printed no IRC listening line"
    api = Api(server.url)
    suffix = str(int(time.time() * 1000) % 1_000_000)
    irc_account = f"irc{suffix}"
    web_account = f"web{suffix}"
    api.register(irc_account)
    web_login = api.register(web_account)

    web = ChatClient(server.url, "websocket", auth={"token": web_login["token"]})
    session = web.connect()
    lobby = session["lobby_id"]

    client = LibraryIrcClient(server.irc_address, "whoever", irc_account)
    try:
        welcome = client.wait_for("welcome")
        # The server names the account's nickname in 001; the library adopts it.
        assert welcome.target == irc_account
        assert client.connection.get_nickname() == irc_account
        client.wait_for("loggedin")

        client.connection.join("#lobby")
        client.wait_for("endofnames")

        # IRC to Socket.IO.
        from_irc = "来自 IRC 的问候 👋🏽 — naïve café"
        client.connection.privmsg("#lobby", from_irc)
        message = web.wait_for(
            "message:new", lambda m: m["kind"] == "text" and m["body"] == from_irc
        )
        assert message["author_name"] == irc_account

        # Socket.IO to IRC.
        from_web = "网页用户回复：收到 🎉👨‍👩‍👧‍👦"
        web.send(lobby, from_web)
        event = client.wait_for("pubmsg", lambda e: e.arguments[0] == from_web)
        assert event.target == "#lobby"
        assert event.source.nick == web_account
        assert client.pubmsgs() == [from_web], "the IRC user got only the web message"
    finally:
        client.close()
        web.close()


def test_irc_over_tls_reaches_plain_irc(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    chain, key, ca_file = tmp_path / "chain.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    server = start_server(
        "--tls-cert", str(chain),
        "--tls-key", str(key),
        "--irc-tls-listen", "127.0.0.1:0",
    )
    assert server.irc_tls_address is not None, "the server printed no ircs:// line"
    assert server.irc_address is not None, "the server printed no irc:// line"

    suffix = str(int(time.time() * 1000) % 1_000_000)
    sender_account, reader_account = f"tls{suffix}", f"plain{suffix}"
    api = Api(server.url)
    for account in (sender_account, reader_account):
        response = api.request(
            "POST",
            "/auth/register",
            json={"username": account, "password": PASSWORD},
            verify=str(ca_file),
        )
        assert response.status_code == 201, response.text

    context = ssl.create_default_context(cafile=str(ca_file))
    sender = LibraryIrcClient(server.irc_tls_address, sender_account, sender_account, tls=context)
    reader = LibraryIrcClient(server.irc_address, reader_account, reader_account)
    try:
        for client in (sender, reader):
            client.wait_for("loggedin")
            client.wait_for("welcome")
            client.connection.join("#lobby")
            client.wait_for("endofnames")
        text = "经由 TLS 的消息 🔒"
        sender.connection.privmsg("#lobby", text)
        event = reader.wait_for("pubmsg", lambda e: e.arguments[0] == text)
        assert event.source.nick == sender_account
    finally:
        sender.close()
        reader.close()
