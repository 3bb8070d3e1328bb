"""HTTPS and WSS served directly through rustls, with a certificate from a test CA."""

from __future__ import annotations

import asyncio
import socket
import ssl
import warnings
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
import socketio
import trustme

from support import ACK_TIMEOUT, CONNECT_TIMEOUT, EVENT_TIMEOUT, HTTP_TIMEOUT, Api, expect_status


@pytest.fixture
def tls_files(tmp_path: Path) -> dict[str, str]:
    """A CA and a server certificate for 127.0.0.1 and localhost, as PEM files."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    files = {
        "ca": tmp_path / "ca.pem",
        "chain": tmp_path / "chain.pem",
        "key": tmp_path / "key.pem",
    }
    ca.cert_pem.write_to_path(str(files["ca"]))
    cert.private_key_pem.write_to_path(str(files["key"]))
    files["chain"].write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    return {name: str(path) for name, path in files.items()}


@pytest.fixture
def tls_server(start_server, tls_files):
    return start_server("--tls-cert", tls_files["chain"], "--tls-key", tls_files["key"])


def handshake(url: str, ca_file: str, version: ssl.TLSVersion) -> str:
    """Completes a TLS handshake pinned to one protocol version; returns the version used."""
    parts = urlsplit(url)
    context = ssl.create_default_context(cafile=ca_file)
    with warnings.catch_warnings():
        # Python marks TLS 1.0 and 1.1 deprecated; the test offers them on purpose.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = version
        context.maximum_version = version
    if version < ssl.TLSVersion.TLSv1_2:
        # Let the client offer the old protocol at all, so any refusal is the server's.
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with socket.create_connection((parts.hostname, parts.port), timeout=HTTP_TIMEOUT) as raw:
        with context.wrap_socket(raw, server_hostname=parts.hostname) as tls:
            return tls.version()


def test_server_announces_https(tls_server):
    assert tls_server.url.startswith("https://127.0.0.1:")


@pytest.mark.parametrize(
    "version, name",
    [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")],
)
def test_modern_tls_versions_accepted(tls_server, tls_files, version, name):
    assert handshake(tls_server.url, tls_files["ca"], version) == name


def test_tls_1_1_rejected_by_server(tls_server, tls_files):
    with pytest.raises(ssl.SSLError) as refused:
        handshake(tls_server.url, tls_files["ca"], ssl.TLSVersion.TLSv1_1)
    # An alert from the peer shows the server, not the local library, refused.
    assert "alert" in str(refused.value).lower()


def test_https_cookies_are_secure(tls_server, tls_files):
    api = Api(tls_server.url)
    response = api.request(
        "POST",
        "/auth/register",
        json={"username": "tls-user", "password": "correct horse battery"},
        verify=tls_files["ca"],
    )
    expect_status(response, 201)
    cookies = response.headers.get("set-cookie", "")
    assert "confab_session=" in cookies
    assert "Secure" in cookies
    assert "HttpOnly" in cookies
    assert response.headers.get("strict-transport-security", "").startswith("max-age=")


async def send_over_tls(url: str, ca_file: str, token: str, transport: str) -> None:
    """Connects with the asyncio Socket.IO client, sends one message and checks its echo.

    The threaded `socketio.Client` reads and writes one TLS socket from two threads at once,
    and OpenSSL does not support concurrent use of one connection. Now and then the client's
    TLS stream breaks, so the server logs a transport error. The asyncio client uses one thread.
    """
    tls = ssl.create_default_context(cafile=ca_file)
    connector = aiohttp.TCPConnector(ssl=tls)
    # trust_env=False keeps proxy and CA settings in the environment away from the test CA.
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
        client = socketio.AsyncClient(http_session=session, reconnection=False)
        welcome: asyncio.Queue = asyncio.Queue()
        incoming: asyncio.Queue = asyncio.Queue()
        client.on("session", welcome.put)
        client.on("message:new", incoming.put)
        try:
            await client.connect(
                url,
                auth={"token": token},
                transports=[transport],
                wait_timeout=CONNECT_TIMEOUT,
            )
            lobby = (await asyncio.wait_for(welcome.get(), EVENT_TIMEOUT))["lobby_id"]
            ack = await client.call(
                "message:send",
                {"room_id": lobby, "body": "加密传输 ok"},
                timeout=ACK_TIMEOUT,
            )
            assert ack["ok"], ack
            while True:
                message = await asyncio.wait_for(incoming.get(), EVENT_TIMEOUT)
                if message["kind"] == "text":
                    break
            assert message["body"] == "加密传输 ok"
            assert message["seq"] == ack["data"]["seq"]
        finally:
            await client.disconnect()


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_socketio_over_tls(tls_server, tls_files, transport):
    api = Api(tls_server.url)
    register = api.request(
        "POST",
        "/auth/register",
        json={"username": "wss-user", "password": "correct horse battery"},
        verify=tls_files["ca"],
    )
    token = expect_status(register, 201).json()["token"]
    asyncio.run(send_over_tls(tls_server.url, tls_files["ca"], token, transport))
