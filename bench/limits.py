"""python -m bench.limits: what each ASGI server does with oversized headers and with a client
that trickles its headers, serving the real service.

For each set-up it starts the service on a Redis of its own, then on fresh connections:
- sends a request with one header of 8 KiB, 30 KiB (both must be served), 64 KiB and 50 MB
  (both must be refused, 431 wanted): the reply's status line or how the connection ended, how
  many bytes the server took first, and how much the server's memory grew;
- sends a request's headers one byte a second: when and how the server cut the client off;
- makes games with one game per client allowed, from 127.0.0.1 (the balancer's address, as
  deploy/haproxy.cfg sets X-Forwarded-For) for players A, A, B: whether the service counts
  them against the player's address or against the balancer's.
"""

from __future__ import annotations

import random
import select
import shutil
import socket
import time

import httpx

from bench.cost import rss_mb, with_descendants
from tests.servers import ApiProcess, LocalRedis

SETUPS = {
    "uvicorn, httptools with the service's head bounds (as ./serve)": ("uvicorn", ()),
    "uvicorn, plain httptools": ("uvicorn", ("--http", "httptools")),
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


def forwarded(url: str) -> str:
    a, b = (f"198.18.{random.randrange(256)}.{n}" for n in (1, 2))  # new to this Redis
    statuses = [
        httpx.post(f"{url}/api/game/session", json={}, headers={"X-Forwarded-For": player})
        for player in (a, a, b)
    ]
    seen = [r.status_code for r in statuses]
    verdict = {"201 429 201": "the player's", "201 429 429": "the balancer's"}
    key = " ".join(map(str, seen))
    return f"creates for A, A, B: {key}: counted against {verdict.get(key, '?')} address"


def probe(name: str, server: str, options: tuple[str, ...], redis_url: str) -> list[str]:
    env = {"REDIS_URL": redis_url, "CREATES_PER_CLIENT": "1"}
    api = ApiProcess(env, server=server, options=options)
    api.start()
    assert api.process is not None
    try:
        sizes = [big_header(api.port, size, api.process.pid) for size in HEADER_SIZES]
        checks = [*sizes, trickle(api.port), forwarded(api.url)]
        return [name, *(f"  {line}" for line in checks)]
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
