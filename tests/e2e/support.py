"""Drive a real confab process: start and stop it, call its REST API and talk to it
over Socket.IO with python-socketio.

Every wait in this module has a timeout, so a missing event fails the test with a
message instead of hanging it.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable

import requests
import socketio

# Seconds to wait for the server to print its listening line.
STARTUP_TIMEOUT = 30.0
# Seconds the server gets to exit after SIGTERM before it is killed.
SHUTDOWN_TIMEOUT = 10.0
# Seconds for one HTTP request, one Socket.IO acknowledgement or one expected event.
HTTP_TIMEOUT = 10.0
ACK_TIMEOUT = 10.0
EVENT_TIMEOUT = 10.0
# Seconds to wait for a disconnect the server may only notice by its heartbeat.
HEARTBEAT_WAIT = 20.0
CONNECT_TIMEOUT = 10.0

PASSWORD = "correct horse battery"

# Options every test server gets unless the test sets them itself: limits high enough
# that no test trips them, and a short heartbeat.
# NOTE: python-engineio 4.15.1's polling client can end its write loop without sending
# the close packet when disconnect() races an in-flight POST (seen after a refused
# handshake), and then waits for the server's next ping to end its pending GET. A
# 5-second ping interval bounds that wait; the default 25 s would stall such tests. The
# same client then may never close its session cleanly, so the server notices it gone
# only after ping interval plus timeout, 10 s here.
DEFAULT_OPTIONS = [
    "--auth-burst", "1000",
    "--auth-rate", "60000",
    "--send-burst", "1000",
    "--send-rate", "1000",
    "--ping-interval-secs", "5",
    "--ping-timeout-secs", "5",
]

LISTENING_LINE = re.compile(r"^confab listening on (https?://\S+)\s*$")
# Printed before LISTENING_LINE when the IRC gateway is on.
IRC_LISTENING_LINE = re.compile(r"^confab irc listening on (ircs?)://(\S+):(\d+)\s*$")


class ServerProcess:
    """One `confab serve` process on 127.0.0.1 with its own data directory."""

    def __init__(self, binary: str, data_dir: Path, log_path: Path, args: list[str]):
        self.binary = binary
        self.data_dir = data_dir
        self.log_path = log_path
        self.args = args
        self.url: str | None = None
        # (host, port) of the plain-text IRC listener, when the gateway is on.
        self.irc_address: tuple[str, int] | None = None
        # (host, port) of the IRC-over-TLS listener, when one is configured.
        self.irc_tls_address: tuple[str, int] | None = None
        self.proc: subprocess.Popen[str] | None = None
        self.killed = False
        self._stdout_lines: queue.Queue[str | None] = queue.Queue()

    @property
    def command(self) -> list[str]:
        return [
            self.binary, "serve",
            "--listen", "127.0.0.1:0",
            "--irc-listen", "127.0.0.1:0",
            "--data-dir", str(self.data_dir),
            "--log", "info,confab=debug",
            *self.args,
        ]

    def start(self) -> None:
        """Start the process and wait for its `confab listening on` line."""
        # Options come from the command line only, never from the caller's environment.
        env = {
            k: v for k, v in os.environ.items()
            if not k.startswith("CONFAB_") and k != "RUST_LOG"
        }
        env["NO_COLOR"] = "1"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "w", encoding="utf-8") as log:
            self.proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=env,
            )
        threading.Thread(target=self._read_stdout, daemon=True).start()

        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                raise RuntimeError(
                    f"confab printed no listening line within {STARTUP_TIMEOUT} s\n"
                    + self.log_text()
                )
            try:
                line = self._stdout_lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.stop()
                raise RuntimeError(
                    f"confab exited with status {self.proc.returncode} before listening\n"
                    + self.log_text()
                )
            irc_match = IRC_LISTENING_LINE.match(line)
            if irc_match:
                address = (irc_match.group(2), int(irc_match.group(3)))
                if irc_match.group(1) == "ircs":
                    self.irc_tls_address = address
                else:
                    self.irc_address = address
                continue
            match = LISTENING_LINE.match(line)
            if match:
                self.url = match.group(1)
                return

    def _read_stdout(self) -> None:
        # Drains stdout for the life of the process so the pipe never fills.
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self._stdout_lines.put(line)
        self._stdout_lines.put(None)

    def stop(self) -> None:
        """Send SIGTERM, and SIGKILL if the process is still running after the timeout."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=SHUTDOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.killed = True
            self.proc.kill()
            self.proc.wait(timeout=SHUTDOWN_TIMEOUT)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as err:
            return f"(server log {self.log_path} unreadable: {err})"


def expect_status(response: requests.Response, status: int) -> requests.Response:
    """Assert the HTTP status, showing the method, path and body when it differs."""
    assert response.status_code == status, (
        f"{response.request.method} {response.request.path_url}: expected {status}, "
        f"got {response.status_code}: {response.text}"
    )
    return response


class Api:
    """REST calls against one server. Each call is a fresh request without cookies, so
    only the bearer token given authenticates it."""

    def __init__(self, base_url: str):
        self.base_url = base_url

    def request(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(
            method,
            f"{self.base_url}/api/v1{path}",
            headers=headers,
            timeout=HTTP_TIMEOUT,
            **kwargs,
        )

    def register(self, username: str, password: str = PASSWORD) -> dict:
        response = self.request(
            "POST", "/auth/register", json={"username": username, "password": password}
        )
        return expect_status(response, 201).json()

    def login(self, username: str, password: str = PASSWORD) -> dict:
        response = self.request(
            "POST", "/auth/login", json={"username": username, "password": password}
        )
        return expect_status(response, 200).json()

    def guest(self, nickname: str | None = None) -> dict:
        body = {} if nickname is None else {"nickname": nickname}
        return expect_status(self.request("POST", "/auth/guest", json=body), 201).json()

    def create_room(self, token: str, name: str, visibility: str = "public") -> dict:
        response = self.request(
            "POST", "/rooms", token, json={"name": name, "visibility": visibility}
        )
        return expect_status(response, 201).json()

    def join(self, token: str, room_id: int) -> dict:
        response = self.request("POST", f"/rooms/{room_id}/join", token)
        return expect_status(response, 200).json()

    def history(self, token: str, room_id: int, **params: Any) -> list[dict]:
        response = self.request("GET", f"/rooms/{room_id}/messages", token, params=params)
        return expect_status(response, 200).json()["messages"]


class ChatClient:
    """A python-socketio client that records every server event in arrival order.

    Tests wait for recorded events with predicates instead of registering handlers, so an
    event that arrives before the test starts waiting is not lost.
    """

    def __init__(
        self,
        url: str,
        transport: str,
        auth: dict | None = None,
        origin: str | None = None,
    ):
        self.url = url
        self.transport = transport
        self.auth = auth
        # websocket-client sends `Origin: <server url>` on its own unless given another
        # one; the polling handshake carries an Origin header only when one is given.
        self.headers: dict[str, str] = {}
        websocket_options: dict[str, Any] = {}
        if origin is not None and transport == "websocket":
            websocket_options["origin"] = origin
        elif origin is not None:
            self.headers["Origin"] = origin
        self.sio = socketio.Client(
            reconnection=False,
            request_timeout=HTTP_TIMEOUT,
            websocket_extra_options=websocket_options,
        )
        self.events: list[tuple[str, Any]] = []
        self.connect_errors: list[Any] = []
        self.disconnected = threading.Event()
        self.disconnect_reason: str | None = None
        self.session: dict | None = None
        self._changed = threading.Condition()

        self.sio.on("*", self._on_event)
        self.sio.on("connect_error", self._on_connect_error)
        self.sio.on("disconnect", self._on_disconnect)

    def _on_event(self, name: str, *args: Any) -> None:
        payload = args[0] if len(args) == 1 else list(args)
        with self._changed:
            self.events.append((name, payload))
            self._changed.notify_all()

    def _on_connect_error(self, data: Any = None) -> None:
        with self._changed:
            self.connect_errors.append(data)
            self._changed.notify_all()

    def _on_disconnect(self, reason: str | None = None) -> None:
        self.disconnect_reason = reason
        self.disconnected.set()

    @property
    def user_id(self) -> int:
        assert self.session is not None, "not connected"
        return self.session["user"]["id"]

    def connect(self) -> dict:
        """Connect and return the `session` event's payload."""
        self.sio.connect(
            self.url,
            transports=[self.transport],
            auth=self.auth,
            headers=self.headers,
            wait_timeout=CONNECT_TIMEOUT,
        )
        self.session = self.wait_for("session")
        return self.session

    def connect_refused(self) -> Any:
        """Attempt a connection that the server must refuse; return the `connect_error`
        payload."""
        try:
            self.sio.connect(
                self.url,
                transports=[self.transport],
                auth=self.auth,
                headers=self.headers,
                wait_timeout=CONNECT_TIMEOUT,
            )
        except socketio.exceptions.ConnectionError:
            pass
        else:
            self.close()
            raise AssertionError(f"connection with auth {self.auth!r} was accepted")
        with self._changed:
            got = self._changed.wait_for(lambda: self.connect_errors, timeout=EVENT_TIMEOUT)
            assert got, "connection failed without a connect_error"
            return self.connect_errors[-1]

    def close(self) -> None:
        """Disconnect if connected and wait for the disconnect to complete."""
        if self.sio.connected:
            self.sio.disconnect()
            self.disconnected.wait(timeout=CONNECT_TIMEOUT)

    def emit(self, event: str, data: Any = None) -> None:
        self.sio.emit(event, data)

    def call(self, event: str, data: Any = None) -> dict:
        """Emit with an acknowledgement callback and return the acknowledgement."""
        return self.sio.call(event, data, timeout=ACK_TIMEOUT)

    def ok(self, event: str, data: Any = None) -> Any:
        """Emit, assert a successful acknowledgement and return its `data`."""
        reply = self.call(event, data)
        assert reply.get("ok") is True, f"{event} {data!r} failed: {reply!r}"
        return reply.get("data")

    def error(self, event: str, data: Any = None) -> dict:
        """Emit, assert a failed acknowledgement and return its `error` object."""
        reply = self.call(event, data)
        assert reply.get("ok") is False, f"{event} {data!r} succeeded: {reply!r}"
        return reply["error"]

    def send(self, room_id: int, body: str, **extra: Any) -> dict:
        """Send a message with `message:send` and return the acknowledgement data."""
        return self.ok("message:send", {"room_id": room_id, "body": body, **extra})

    def received(
        self, name: str, predicate: Callable[[Any], bool] | None = None
    ) -> list[Any]:
        """Return the payloads of `name` events received so far that match."""
        with self._changed:
            return [
                payload for event, payload in self.events
                if event == name and (predicate is None or predicate(payload))
            ]

    def wait_for_count(
        self,
        name: str,
        count: int,
        predicate: Callable[[Any], bool] | None = None,
        timeout: float = EVENT_TIMEOUT,
    ) -> list[Any]:
        """Wait until `count` matching `name` events have arrived; return them in order."""

        def matching() -> list[Any]:
            return [
                payload for event, payload in self.events
                if event == name and (predicate is None or predicate(payload))
            ]

        with self._changed:
            self._changed.wait_for(lambda: len(matching()) >= count, timeout=timeout)
            found = matching()
        assert len(found) >= count, (
            f"{self.transport} client got {len(found)} of {count} {name!r} events "
            f"within {timeout} s; all events: {self.events!r}"
        )
        return found

    def wait_for(
        self,
        name: str,
        predicate: Callable[[Any], bool] | None = None,
        timeout: float = EVENT_TIMEOUT,
    ) -> Any:
        """Wait for the first matching `name` event and return its payload."""
        return self.wait_for_count(name, 1, predicate, timeout)[0]

    def wait_disconnected(self, timeout: float = EVENT_TIMEOUT) -> str | None:
        """Wait until the connection ends; return the disconnect reason."""
        assert self.disconnected.wait(timeout=timeout), (
            f"{self.transport} client still connected after {timeout} s"
        )
        return self.disconnect_reason


def in_room(room_id: int) -> Callable[[dict], bool]:
    return lambda payload: isinstance(payload, dict) and payload.get("room_id") == room_id


def text_in_room(room_id: int) -> Callable[[dict], bool]:
    return lambda m: in_room(room_id)(m) and m.get("kind") == "text"
