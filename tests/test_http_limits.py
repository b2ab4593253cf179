"""Request heads are bounded in size and in time by the server the service runs on
(app/http_limits.py), tested on a real uvicorn process started as ./serve starts it."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from app.http_limits import HEAD_LIMIT_BYTES, HEAD_TIMEOUT_SECONDS
from bench.cost import rss_mb
from tests.servers import ApiProcess

pytestmark = [pytest.mark.processes, pytest.mark.timeout(60)]


@pytest.fixture
def server(redis_url: str) -> Iterator[ApiProcess]:
    api = ApiProcess({"REDIS_URL": redis_url})
    try:
        api.start()
        yield api
    finally:
        api.kill()


def connect(api: ApiProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", api.port), timeout=HEAD_TIMEOUT_SECONDS + 5)


def exchange(sock: socket.socket, request: bytes) -> bytes:
    """Send one request and read its response whole (Content-Length framed)."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_a_50_mb_header_is_refused_with_431_after_32_kib(server: ApiProcess) -> None:
    assert server.process is not None
    memory_before = rss_mb(server.process.pid)
    started = time.monotonic()
    answer, sent = b"", 0
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Padding: ")
        chunk = b"a" * 65536
        try:
            while sent < 50 * 1024 * 1024 and not answer:
                sent += sock.send(chunk)
                if select.select([sock], [], [], 0)[0]:
                    answer = sock.recv(65536)
            answer = answer or sock.recv(65536)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed on us: the response must have been read already
    assert answer.startswith(b"HTTP/1.1 431 "), answer
    assert b'{"error":"Request head over 32 KiB"}' in answer
    assert sent < 8 * 1024 * 1024  # refused long before the 50 MB were sent
    assert time.monotonic() - started < 5
    assert rss_mb(server.process.pid) - memory_before < 10


def test_heads_and_bodies_within_the_limits_are_served(server: ApiProcess) -> None:
    """A head just under 32 KiB is read; a body (up to the app's 64 KiB) is not a head, even
    when it arrives in the same read as its head."""
    padding = b"a" * (HEAD_LIMIT_BYTES - 200)
    with connect(server) as sock:
        ok = exchange(
            sock, b"GET /health HTTP/1.1\r\nHost: test\r\nX-Padding: " + padding + b"\r\n\r\n"
        )
        assert ok.startswith(b"HTTP/1.1 200 "), ok[:200]
        body = b" " * (60 * 1024) + b"{}"
        created = exchange(
            sock,
            b"POST /api/game/session HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body,
        )
        assert created.startswith(b"HTTP/1.1 201 "), created[:200]


def test_a_trickling_head_is_cut_off_and_a_keep_alive_client_is_not(server: ApiProcess) -> None:
    """A client sending its head a byte every half second gets a 408 once the head has taken
    10 s; meanwhile a client reusing one connection for a request every 2 s is served
    throughout."""
    steady: list[bytes] = []

    def keep_alive_client() -> None:
        with connect(server) as sock:
            for _ in range(7):
                steady.append(exchange(sock, b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n"))
                time.sleep(2)

    other = threading.Thread(target=keep_alive_client)
    other.start()
    started = time.monotonic()
    answer = b""
    with connect(server) as sock:
        try:
            for byte in b"GET /health HTTP/1.1\r\nHost: test\r\nX-Slow: " + b"a" * 100:
                sock.send(bytes([byte]))
                if select.select([sock], [], [], 0.5)[0]:
                    answer = sock.recv(65536)
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
    cut_after = time.monotonic() - started
    other.join()
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert HEAD_TIMEOUT_SECONDS - 0.5 < cut_after < HEAD_TIMEOUT_SECONDS + 2
    assert len(steady) == 7
    assert all(reply.startswith(b"HTTP/1.1 200 ") for reply in steady)
