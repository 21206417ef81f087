"""The browser tests' slow link (tests/e2e/slowlink.py): what the server sends arrives late and
in order, what the client sends goes at once, a half-closed connection still gets its answer,
and closing the link closes its connections and stops listening."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.e2e.slowlink import SlowLink


@pytest.fixture
def echo() -> Iterator[tuple[int, list[tuple[float, bytes]]]]:
    """A loopback echo server; it records when each chunk reached it."""
    srv = socket.create_server(("127.0.0.1", 0))
    arrived: list[tuple[float, bytes]] = []

    def handle(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(1024):
                arrived.append((time.monotonic(), data))
                conn.sendall(data)

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    yield srv.getsockname()[1], arrived
    with contextlib.suppress(OSError):
        srv.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
    srv.close()
    server.join(5)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    got = b""
    while len(got) < n:
        chunk = sock.recv(n - len(got))
        if not chunk:
            break
        got += chunk
    return got


def test_the_server_side_arrives_late_and_in_order(echo):
    port, arrived = echo
    with SlowLink(port, 1.0) as link, socket.create_connection(("127.0.0.1", link.port)) as a:
        sent = time.monotonic()
        for part in (b"one ", b"two ", b"three"):
            a.sendall(part)
        assert recv_exactly(a, 13) == b"one two three"
        took = time.monotonic() - sent
        assert arrived and arrived[0][0] - sent < 0.8  # the client's side went at once
        assert took >= 1.0  # the answer waited for the link
        # Half-closed: the client has said all it will; the answer still comes back.
        with socket.create_connection(("127.0.0.1", link.port)) as b:
            b.sendall(b"last")
            b.shutdown(socket.SHUT_WR)
            assert recv_exactly(b, 4) == b"last"
        left_open = socket.create_connection(("127.0.0.1", link.port))
        time.sleep(0.1)
    left_open.close()
    assert not link._writers  # every connection of the link was closed with it
    with pytest.raises(OSError):  # and it listens no more
        socket.create_connection(("127.0.0.1", link.port), timeout=2).close()
