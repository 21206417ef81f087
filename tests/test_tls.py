"""Clients share their library's TLS context (foxpipe/providers/tls.py) and still verify.

A loopback HTTPS server with a self-signed certificate stands in for a vendor: a client refuses
it, as every client did before the context was shared, and accepts it once the certificate is
named in ``SSL_CERT_FILE`` (as the HTTP libraries honour it).
"""

from __future__ import annotations

import asyncio
import datetime
import http.server
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import httpcore2
import httpx
import openai
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from foxpipe.config import Settings
from foxpipe.providers import tls
from foxpipe.providers.kling import KlingClient
from foxpipe.providers.openai import http_client, make_client


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Models(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        body = json.dumps({"object": "list", "data": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def https(tmp_path) -> Iterator[tuple[str, Path]]:
    """(the base URL of a loopback HTTPS server, its self-signed certificate)."""
    cert, key = self_signed(tmp_path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Models)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def fresh_contexts(monkeypatch) -> Iterator[None]:
    """No shared context made yet in this process; none left behind for the next test."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    tls.openai_context.cache_clear()
    tls.httpx_context.cache_clear()
    yield
    tls.openai_context.cache_clear()
    tls.httpx_context.cache_clear()


def counting(monkeypatch, owner: object, name: str) -> list[int]:
    calls: list[int] = []
    real = getattr(owner, name)

    def wrapped(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapped)
    return calls


def settings(base_url: str = "") -> Settings:
    return Settings(
        openai_api_key="sk-test",
        openai_base_url=base_url + "/v1" if base_url else "",
        kling_access_key="ak",
        kling_secret_key="sk",
        kling_base_url=base_url or "https://127.0.0.1:9",
    )


async def test_every_client_of_a_library_shares_one_context(monkeypatch, fresh_contexts):
    made_openai = counting(monkeypatch, httpcore2, "default_ssl_context")
    made_httpx = counting(monkeypatch, ssl, "create_default_context")
    clients = [make_client(settings(), 10.0) for _ in range(3)]
    clients += [make_client(settings(), 10.0, on_send=lambda: None) for _ in range(2)]
    raw = [http_client(5.0) for _ in range(2)]
    vendors = [KlingClient(settings()) for _ in range(3)]
    vendor_http = [v._client for v in vendors]
    try:
        assert len(made_openai) == 1, f"{len(made_openai)} TLS contexts for 7 OpenAI clients"
        assert len(made_httpx) == 1, f"{len(made_httpx)} TLS contexts for 3 vendor clients"
        for ctx in (tls.openai_context(), tls.httpx_context()):
            assert ctx.verify_mode is ssl.CERT_REQUIRED and ctx.check_hostname
    finally:
        for c in clients:
            await c.close()
        for h in raw + vendor_http:
            await h.aclose()


def test_an_untrusted_certificate_is_refused_and_a_trusted_one_accepted(
    https, monkeypatch, fresh_contexts
):
    url, cert = https

    async def openai_models() -> None:
        async with make_client(settings(url), 5.0) as client:
            await client.models.list()

    async def vendor_get() -> int:
        kling = KlingClient(settings(url))
        try:
            return (await kling._client.get("/v1/models")).status_code
        finally:
            await kling.aclose()

    with pytest.raises(openai.APIConnectionError) as refused:
        asyncio.run(openai_models())
    assert "CERTIFICATE_VERIFY_FAILED" in repr(refused.value.__cause__) + repr(
        refused.value.__cause__.__cause__ if refused.value.__cause__ else None
    )
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        asyncio.run(vendor_get())

    # The certificate named as the libraries' trust store, before their contexts are made.
    tls.openai_context.cache_clear()
    tls.httpx_context.cache_clear()
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    asyncio.run(openai_models())
    assert asyncio.run(vendor_get()) == 200
