"""irctest controller for Confab: starts the binary named by CONFAB_BIN on loopback ports
with the settings irctest expects, and registers accounts through the REST API.

Use it from an irctest checkout with this directory on PYTHONPATH:
    pytest --controller confab_controller irctest/server_tests/
scripts/test-irc.sh does this when IRCTEST_DIR is set.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any, Optional, Set, Type

from irctest.basecontrollers import BaseServerController, DirectoryBasedController
from irctest.runner import NotImplementedByController

# Limits irctest needs, far above anything its tests send from one address. They apply
# to this throwaway server only; Confab's defaults stay strict.
TEST_OPTIONS = [
    "--irc-server-name", "My.Little.Server",
    "--irc-nick-length", "32",
    "--min-password-chars", "1",
    "--allow-guest-rooms", "true",
    "--auth-burst", "100000",
    "--auth-rate", "1000000",
    "--send-burst", "100000",
    "--send-rate", "1000000",
    "--irc-flood-burst", "100000",
    "--irc-flood-rate", "1000000",
    "--log", "warn",
]


# The operator block irctest's OPER tests sign in with.
OPER_NAME = "operuser"
OPER_PASSWORD = "operpassword"


def oper_option() -> list[str]:
    """Returns `--irc-oper` for irctest's operator, hashed by `confab hash-password`."""
    hashed = subprocess.run(
        [os.environ["CONFAB_BIN"], "hash-password"],
        input=OPER_PASSWORD + "\n",
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    return ["--irc-oper", f"{OPER_NAME}:{hashed}"]


class ConfabController(BaseServerController, DirectoryBasedController):
    software_name = "Confab"
    supported_sasl_mechanisms: Set[str] = {"PLAIN"}
    supports_sts = False

    def run(
        self,
        hostname: str,
        port: int,
        *,
        password: Optional[str],
        ssl: bool,
        run_services: bool,
        faketime: Optional[str],
        websocket_hostname: Optional[str],
        websocket_port: Optional[int],
    ) -> None:
        if websocket_hostname is not None or websocket_port is not None:
            raise NotImplementedByController("Websocket")
        if password is not None:
            # PASS signs in to an account; Confab has no server-wide connection password.
            raise NotImplementedByController("server password")
        if ssl:
            raise NotImplementedByController("TLS in the irctest controller")
        assert self.proc is None
        self.create_config()
        assert self.directory is not None
        self.hostname = hostname
        self.port = port
        (_, self.http_port) = self.get_hostname_and_port()
        # Every listener binds to the loopback address.
        host = "127.0.0.1"
        self.proc = self.execute(
            [
                os.environ["CONFAB_BIN"],
                "serve",
                "--listen", f"{host}:{self.http_port}",
                "--irc-listen", f"{host}:{port}",
                "--data-dir", str(self.directory / "data"),
                *oper_option(),
                *TEST_OPTIONS,
            ]
        )

    def wait_for_services(self) -> None:
        """Accounts are part of Confab itself, so there is no services process to wait for."""

    def registerUser(
        self, case: Any, username: str, password: Optional[str] = None
    ) -> None:
        """Registers an account over REST, as a web client would."""
        body = json.dumps({"username": username, "password": password or "password"})
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}/api/v1/auth/register",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        # The IRC port opens a moment before the HTTP one; retry for up to 10 s.
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    assert response.status == 201, response.read()
                    return
            except urllib.error.HTTPError as err:
                raise AssertionError(
                    f"registering {username!r} failed: {err.code} {err.read()!r}"
                ) from err
            except urllib.error.URLError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def get_irctest_controller_class() -> Type[ConfabController]:
    return ConfabController
