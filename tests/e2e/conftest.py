"""Fixtures that start confab processes and connect python-socketio clients to them.

The binary comes from the CONFAB_BIN environment variable (scripts/test.sh sets it to
target/debug/confab). Each test gets its own server with a fresh data directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator

import pytest

from support import DEFAULT_OPTIONS, Api, ChatClient, ServerProcess

# Lines of server log shown under a failed test; the whole log stays in its tmp_path.
LOG_LINES_SHOWN = 300


@pytest.fixture(scope="session")
def confab_bin() -> str:
    path = os.environ.get("CONFAB_BIN")
    if not path:
        pytest.fail("CONFAB_BIN is not set: point it at a built confab binary")
    if not os.access(path, os.X_OK):
        pytest.fail(f"CONFAB_BIN={path!r} is not an executable file; run cargo build first")
    return os.path.abspath(path)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator:
    """Attach the end of the stderr log of every server a failed test started to its
    report."""
    report = yield
    if report.failed:
        for index, server in enumerate(getattr(item, "confab_servers", [])):
            lines = server.log_text().splitlines()[-LOG_LINES_SHOWN:]
            report.sections.append(
                (f"confab server {index} log ({server.log_path})", "\n".join(lines))
            )
    return report


@pytest.fixture
def start_server(
    confab_bin: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., ServerProcess]]:
    """Return a function that starts a server with extra command-line options.

    `support.DEFAULT_OPTIONS` apply unless the arguments set the same option; every
    server is stopped at teardown.
    """
    servers: list[ServerProcess] = []
    request.node.confab_servers = servers

    def start(*args: str) -> ServerProcess:
        index = len(servers)
        options = list(args)
        for i in range(0, len(DEFAULT_OPTIONS), 2):
            if DEFAULT_OPTIONS[i] not in options:
                options += DEFAULT_OPTIONS[i:i + 2]
        server = ServerProcess(
            confab_bin,
            data_dir=tmp_path / f"data-{index}",
            log_path=tmp_path / f"confab-{index}.log",
            args=options,
        )
        servers.append(server)
        server.start()
        return server

    yield start

    killed = []
    for server in servers:
        server.stop()
        if server.killed:
            killed.append(server.log_path)
    assert not killed, f"confab ignored SIGTERM for the shutdown timeout; logs: {killed}"


@pytest.fixture
def server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    """A server with the default test options."""
    return start_server()


@pytest.fixture
def api(server: ServerProcess) -> Api:
    return Api(server.url)


@pytest.fixture(params=["websocket", "polling"])
def transport(request: pytest.FixtureRequest) -> str:
    """The Engine.IO transport every client of the test uses; the client never upgrades."""
    return request.param


@pytest.fixture
def clients(start_server: Callable[..., ServerProcess]) -> Iterator[list[ChatClient]]:
    """Clients to close at teardown, before their server stops."""
    opened: list[ChatClient] = []
    yield opened
    for client in opened:
        client.close()


@pytest.fixture
def connect(
    server: ServerProcess, transport: str, clients: list[ChatClient]
) -> Callable[..., ChatClient]:
    """Return a function that connects a client to the default server.

    `connect(token=...)` authenticates with a session token; `connect()` connects
    without credentials, as the plain Socket.IO chat pages do.
    """

    def open_client(token: str | None = None, **auth: str) -> ChatClient:
        if token is not None:
            auth["token"] = token
        client = ChatClient(server.url, transport, auth=auth or None)
        clients.append(client)
        client.connect()
        return client

    return open_client
