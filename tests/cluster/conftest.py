"""Fixtures for the cluster tests: three confab nodes on 127.0.0.1 sharing one
PostgreSQL schema and one Redis server that the fixture starts on a free port.

PostgreSQL comes from CONFAB_TEST_DATABASE_URL (default: the local `test` database with
trust authentication). Each test gets a schema of its own, dropped at teardown, and a
Redis key prefix of its own.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))

from support import DEFAULT_OPTIONS, Api, ServerProcess  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/test"
NODES = 3
# Seconds for redis-server to accept connections after it starts.
REDIS_STARTUP_TIMEOUT = 10.0
LOG_LINES_SHOWN = 200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def psql(database_url: str, statement: str) -> None:
    """Run one SQL statement with psql, failing the test with its output on error."""
    result = subprocess.run(
        ["psql", database_url, "-v", "ON_ERROR_STOP=1", "-qc", statement],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if result.returncode != 0:
        pytest.fail(
            f"psql {database_url} failed: {result.stderr.strip()}; "
            "start PostgreSQL or set CONFAB_TEST_DATABASE_URL"
        )


class RedisServer:
    """A redis-server process on 127.0.0.1 with persistence switched off."""

    def __init__(self, log_path: Path):
        self.port = free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed; scripts/test-cluster.sh installs it")
        with open(self.log_path, "a", encoding="utf-8") as log:
            self.proc = subprocess.Popen(
                [
                    binary, "--bind", "127.0.0.1", "--port", str(self.port),
                    "--save", "", "--appendonly", "no",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + REDIS_STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        pytest.fail(f"redis-server did not listen on port {self.port} within "
                    f"{REDIS_STARTUP_TIMEOUT} s; log: {self.log_path}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


class NodeProcess(ServerProcess):
    """A node on a port chosen before it starts, so every node and nginx can be named in
    `--allowed-origins` up front, as a deployment names its public origin."""

    def __init__(self, port: int, **kwargs):
        super().__init__(**kwargs)
        self.port = port

    @property
    def command(self) -> list[str]:
        command = super().command
        command[command.index("127.0.0.1:0")] = f"127.0.0.1:{self.port}"
        return command


class Cluster:
    """Three nodes, their shared database schema and their Redis server."""

    def __init__(self, binary: str, tmp_path: Path, database_url: str, schema: str):
        self.binary = binary
        self.tmp_path = tmp_path
        self.redis = RedisServer(tmp_path / "redis.log")
        self.prefix = f"confab-test-{secrets.token_hex(4)}"
        # libpq's `options` parameter sets the schema for every pooled connection.
        separator = "&" if "?" in database_url else "?"
        self.database_url = (
            f"{database_url}{separator}options={quote(f'-c search_path={schema}')}"
        )
        self.nodes: list[ServerProcess] = []
        self.node_ports = [free_port() for _ in range(NODES)]
        # The port nginx gets when a test starts it.
        self.nginx_port = free_port()

    def node_args(self) -> list[str]:
        origins = [f"http://127.0.0.1:{port}" for port in [self.nginx_port, *self.node_ports]]
        return [
            *DEFAULT_OPTIONS,
            "--database-url", self.database_url,
            "--redis-url", self.redis.url,
            "--redis-prefix", self.prefix,
            "--allowed-origins", ",".join(origins),
            "--trusted-proxies", "127.0.0.1",
        ]

    def start_node(self, overrides: dict[str, str] | None = None) -> ServerProcess:
        """Start the next node; `overrides` replaces the values of some options."""
        index = len(self.nodes)
        args = self.node_args()
        for option, value in (overrides or {}).items():
            args[args.index(option) + 1] = value
        port = self.node_ports[index] if index < len(self.node_ports) else free_port()
        node = NodeProcess(
            port,
            binary=self.binary,
            data_dir=self.tmp_path / f"node-{index}",
            log_path=self.tmp_path / f"node-{index}.log",
            args=args,
        )
        self.nodes.append(node)
        node.start()
        return node

    def api(self, index: int) -> Api:
        url = self.nodes[index].url
        assert url is not None
        return Api(url)

    def kill(self, index: int) -> None:
        """SIGKILL one node, as a machine failure would."""
        proc = self.nodes[index].proc
        assert proc is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)


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
    """Attach the end of every node's log to a failed test's report."""
    report = yield
    cluster = getattr(item, "confab_cluster", None)
    if report.failed and cluster is not None:
        for index, node in enumerate(cluster.nodes):
            lines = node.log_text().splitlines()[-LOG_LINES_SHOWN:]
            report.sections.append((f"node {index} log ({node.log_path})", "\n".join(lines)))
    return report


@pytest.fixture
def cluster(
    confab_bin: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Cluster]:
    """Start Redis and three nodes on a fresh schema; stop and drop everything after."""
    database_url = os.environ.get("CONFAB_TEST_DATABASE_URL", DEFAULT_DATABASE_URL)
    schema = f"confab_cluster_{os.getpid()}_{secrets.token_hex(4)}"
    psql(database_url, f'CREATE SCHEMA "{schema}"')
    cluster = Cluster(confab_bin, tmp_path, database_url, schema)
    request.node.confab_cluster = cluster
    try:
        cluster.redis.start()
        for _ in range(NODES):
            cluster.start_node()
        yield cluster
    finally:
        for node in cluster.nodes:
            node.stop()
        cluster.redis.stop()
        psql(database_url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# Seconds for a private PostgreSQL server to start or stop.
POSTGRES_TIMEOUT = 60


class PrivatePostgres:
    """A PostgreSQL server of its own in a temporary directory, run as the `postgres`
    user, so that a test can stop and restart it without touching the shared server."""

    def __init__(self, base_dir: Path):
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.log_path = base_dir / "postgres.log"
        self.port = free_port()
        self.started = False
        bin_dirs = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        self.bin_dir = next((d for d in reversed(bin_dirs) if (d / "initdb").exists()), None)

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL tool as the `postgres` user (initdb rejects root)."""
        assert self.bin_dir is not None
        command = [str(self.bin_dir / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(
            command, capture_output=True, text=True, timeout=POSTGRES_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )

    def init(self) -> None:
        """Create the cluster, or skip the test when this machine cannot run one."""
        if self.bin_dir is None:
            pytest.skip("no initdb under /usr/lib/postgresql/*/bin")
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                pytest.skip("runuser is missing, and initdb does not run as root")
            try:
                shutil.chown(self.base_dir, user="postgres", group="postgres")
            except (LookupError, PermissionError) as error:
                pytest.skip(f"cannot hand {self.base_dir} to the postgres user: {error}")
            # Every parent must be searchable by postgres to reach the directory.
            for parent in self.base_dir.parents:
                if parent == Path(parent.anchor):
                    break
                parent.chmod(parent.stat().st_mode | 0o001)
        result = self.run("initdb", "-D", str(self.data_dir), "-U", "postgres",
                          "--auth=trust", "--no-sync")
        if result.returncode != 0:
            pytest.fail(f"initdb failed: {result.stderr.strip()}")
        with open(self.data_dir / "postgresql.auto.conf", "a", encoding="utf-8") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                # The socket and its lock file stay in the data directory, apart from
                # the shared server's in /var/run/postgresql.
                f"unix_socket_directories = '{self.data_dir}'\nfsync = off\n"
            )

    def start(self) -> None:
        result = self.run("pg_ctl", "start", "-w", "-D", str(self.data_dir),
                          "-l", str(self.log_path), "-t", str(POSTGRES_TIMEOUT))
        if result.returncode != 0:
            pytest.fail(f"pg_ctl start failed: {result.stderr.strip()}; log: {self.log_path}")
        self.started = True

    def stop(self, mode: str = "fast") -> None:
        result = self.run("pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.data_dir),
                          "-t", str(POSTGRES_TIMEOUT))
        if result.returncode != 0:
            pytest.fail(f"pg_ctl stop -m {mode} failed: {result.stderr.strip()}")
        self.started = False


@pytest.fixture
def private_postgres(tmp_path: Path) -> Iterator[PrivatePostgres]:
    """A private PostgreSQL server, stopped after the test whatever its outcome."""
    base_dir = tmp_path / "postgres"
    base_dir.mkdir()
    server = PrivatePostgres(base_dir)
    server.init()
    try:
        server.start()
        yield server
    finally:
        if server.started:
            server.stop("immediate")
