"""python -m bench.limits: what each ASGI server does with oversized headers and with a client
that trickles its headers, serving the real service.

For each set-up it starts the service on a Redis of its own, then on fresh connections:
- sends a request with one header of 8 KiB, 30 KiB (both must be served), 64 KiB and 50 MB
  (both must be refused, 431 wanted): the reply's status line or how the connection ended, how
  many bytes the server took first, and how much the server's memory grew;
- sends a request's headers one byte a second: when and how the server cut the client off.
"""

from __future__ import annotations

import select
import shutil
import socket
import time

from bench.cost import rss_mb, with_descendants
from tests.servers import ApiProcess, LocalRedis

SETUPS = {
    "uvicorn, httptools (as ./serve)": ("uvicorn", ()),
    "uvicorn, h11, max incomplete event 32 KiB": (
        "uvicorn",
        ("--http", "h11", "--h11-max-incomplete-event-size", "32768"),
    ),
    "granian, HTTP/1 buffer 32 KiB, header-read timeout 10 s": (
        "granian",
        ("--http1-buffer-size", "32768"),
    ),
}
HEADER_SIZES = (8 << 10, 30 << 10, 64 << 10, 50 << 20)
CHUNK = 64 << 10
TRICKLE_LIMIT = 40.0  # seconds


def reply(sock: socket.socket, wait: float) -> str:
    """The status line the server sent, or how the connection ended."""
    sock.settimeout(wait)
    try:
        data = sock.recv(4096)
    except TimeoutError:
        return "no reply"
    except ConnectionResetError:
        return "reset"
    return data.split(b"\r\n", 1)[0].decode() if data else "closed"


def big_header(port: int, size: int, server_pid: int) -> str:
    before = sum(rss_mb(p) for p in with_descendants(server_pid))
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: bench\r\nX-Big: ")
    sent = 0
    try:
        while sent < size:
            sent += sock.send(b"a" * min(CHUNK, size - sent))
        sock.sendall(b"\r\n\r\n")
        outcome = reply(sock, 5)
    except (BrokenPipeError, ConnectionResetError):
        outcome = reply(sock, 1) if sent else "reset"
    grew = sum(rss_mb(p) for p in with_descendants(server_pid)) - before
    sock.close()
    return f"{size >> 10} KiB header: {outcome}; taken {sent >> 10} KiB; RSS +{grew:.0f} MB"


def trickle(port: int) -> str:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: bench\r\nX-Slow: ")
    started = time.monotonic()
    try:
        while time.monotonic() - started < TRICKLE_LIMIT:
            if select.select([sock], [], [], 1.0)[0]:  # the server answered or closed
                break
            sock.send(b"a")
        outcome = reply(sock, 0.5)
    except (BrokenPipeError, ConnectionResetError):
        outcome = "reset"
    sock.close()
    return f"headers trickled 1 B/s: {outcome} after {time.monotonic() - started:.1f} s"


def probe(name: str, server: str, options: tuple[str, ...], redis_url: str) -> list[str]:
    api = ApiProcess({"REDIS_URL": redis_url}, server=server, options=options)
    api.start()
    assert api.process is not None
    try:
        sizes = [big_header(api.port, size, api.process.pid) for size in HEADER_SIZES]
        return [name, *(f"  {line}" for line in [*sizes, trickle(api.port)])]
    finally:
        api.terminate()


def main() -> None:
    redis = LocalRedis()
    redis.start()
    try:
        for name, (server, extra) in SETUPS.items():
            print("\n".join(probe(name, server, extra, redis.url)), flush=True)
    finally:
        redis.stop()
        shutil.rmtree(redis.directory, ignore_errors=True)


if __name__ == "__main__":
    main()
