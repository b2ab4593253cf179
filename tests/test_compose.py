"""compose.yaml brought up for real: Redis with AOF, three API replicas, HAProxy in front.

Players play complete games through HAProxy's published port while one API replica and then
the Redis container are restarted; afterwards every answer the service acknowledged must still
be stored, once, unchanged. The images are the compose file's defaults (public images) unless
REDIS_IMAGE, HAPROXY_IMAGE and PYTHON_IMAGE (with BUILD_NETWORK=host) name others: .ci/run
points them at images made from local files (.ci/images.sh). The same file, no override file.

Needs a Docker engine (DOCKER_HOST) and docker-compose; not part of the default run:
`./test -m compose`. All traffic goes to 127.0.0.1 and to the containers started here.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from subprocess import PIPE

import httpx
import pytest

from app.questions import QuestionBank
from bench.load import Stats, check_integrity
from tests.play import Json, answer, answer_body, new_game, results
from tests.servers import ROOT, SERVICE_ENV, free_port

pytestmark = [pytest.mark.compose, pytest.mark.processes, pytest.mark.timeout(900)]

REPLICAS = 3
PLAYERS = 12
COMMAND_SECONDS = 600  # a docker-compose command (a build from nothing takes a minute or two)
WAIT_SECONDS = 120  # for replicas to be in rotation, and healthy again after a restart


def compose_command() -> list[str]:
    found = shutil.which("docker-compose")  # Debian's 1.29; else the v2 plugin
    return [found] if found else ["docker", "compose"]


@dataclass
class Stack:
    project: str
    url: str
    env: dict[str, str]

    async def run(self, *args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            *args, cwd=ROOT, env=self.env, stdout=PIPE, stderr=PIPE
        )
        async with asyncio.timeout(COMMAND_SECONDS):
            out, err = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{out.decode()}\n{err.decode()}")
        return out.decode()

    async def compose(self, *args: str) -> str:
        return await self.run(*compose_command(), "-p", self.project, *args)

    async def containers(self, service: str) -> list[str]:
        return (await self.compose("ps", "-q", service)).split()

    async def inspect(self, container: str) -> Json:
        found: list[Json] = json.loads(await self.run("docker", "inspect", container))
        return found[0]


async def in_rotation(url: str) -> dict[str, str]:
    """Instances HAProxy sends new players to: affinity cookie -> their /health status.

    Round robin over the healthy instances, so 2 x REPLICAS requests without a cookie see
    each one at least once."""
    seen: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        for _ in range(2 * REPLICAS):
            client.cookies.clear()
            try:
                response = await client.get("/health")
            except httpx.TransportError:
                continue
            cookie = response.cookies.get("SERVERID")
            if response.status_code == 200 and cookie:
                seen[cookie] = response.json()["status"]
    return seen


async def wait_for(what: str, check: Callable[[], Awaitable[bool]]) -> float:
    """Poll an async check until it is true; return the seconds it took."""
    started = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - started
        assert time.monotonic() - started < WAIT_SECONDS, f"{what}: not within {WAIT_SECONDS} s"
        await asyncio.sleep(0.25)


async def all_instances_ok(url: str) -> bool:
    """Every replica in rotation, none degraded (fallback sessions written back)."""
    seen = await in_rotation(url)
    return len(seen) == REPLICAS and set(seen.values()) == {"ok"}


@pytest.fixture(scope="module")
async def stack(request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    port = free_port()
    env = {
        **os.environ,
        "JWT_SECRET": secrets.token_hex(32),
        "PUBLISHED_PORT": str(port),
        "API_REPLICAS": str(REPLICAS),
        # Every player here comes from one address (HAProxy's X-Forwarded-For is the host's
        # bridge address): no per-client limit on new games, as for the tests' own processes.
        "CREATES_PER_CLIENT": SERVICE_ENV["CREATES_PER_CLIENT"],
    }
    stack = Stack(f"ctctest{secrets.token_hex(4)}", f"http://127.0.0.1:{port}", env)
    try:
        await stack.run("docker", "info")
    except RuntimeError as exc:
        pytest.fail(f"no Docker engine (bash .ci/engine.sh start; export DOCKER_HOST): {exc}")
    failed_before = request.session.testsfailed
    try:
        started = time.monotonic()
        await stack.compose("build")
        built = time.monotonic()
        await stack.compose("up", "-d")
        ready = await wait_for("all replicas in rotation", lambda: all_instances_ok(stack.url))
        print(
            f"\ncompose build {built - started:.1f} s, up {time.monotonic() - built - ready:.1f} s,"
            f" all {REPLICAS} replicas in rotation {ready:.1f} s later"
        )
        yield stack
    finally:
        try:
            if request.session.testsfailed > failed_before:
                print(await stack.compose("logs", "--no-color", "--tail", "40"))
        finally:
            await stack.compose("down", "-v", "--remove-orphans")


class RetryingTransport(httpx.AsyncBaseTransport):
    """What a real client does while an instance or Redis restarts: retry on a connection error
    and on 502/503/504 (after Retry-After), for a while.

    Safe for this API: an answer is stored at most once and a retry gets the stored result; a
    create whose reply was lost leaves an unplayed session that expires."""

    def __init__(self, retries: Counter[str], patience: float = 60) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.retries = retries
        self.patience = patience

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        deadline = time.monotonic() + self.patience
        while True:
            try:
                response = await self.inner.handle_async_request(request)
            except httpx.TransportError as exc:
                if time.monotonic() > deadline:
                    raise
                self.retries[type(exc).__name__] += 1
                await asyncio.sleep(0.2)
                continue
            if response.status_code not in (502, 503, 504) or time.monotonic() > deadline:
                return response
            await response.aread()
            await response.aclose()
            self.retries[str(response.status_code)] += 1
            await asyncio.sleep(min(float(response.headers.get("retry-after", "1")), 2.0))

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Ledger:
    # (sessionId, questionId) -> totalPoints the service acknowledged
    acknowledged: dict[tuple[str, str], int] = field(default_factory=dict)
    games: int = 0
    degraded_games: int = 0
    retries: Counter[str] = field(default_factory=Counter)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def stop(self) -> None:
        """Let every player finish the game in hand; raise what a player raised."""
        self.stopping.set()
        await asyncio.gather(*self.tasks)


async def play(client: httpx.AsyncClient, bank: QuestionBank, ledger: Ledger) -> None:
    """Complete games, one after another, as one browser (its own cookies: affinity)."""
    while not ledger.stopping.is_set():
        game = await new_game(client)
        ledger.degraded_games += game["degraded"]
        score, last = 0, len(game["questions"]) - 1
        for i in range(last + 1):
            extra = {"wager": score // 2} if i == last else {}
            body = answer_body(game, i, bank, correct=i % 3 != 0, **extra)
            result = await answer(client, body)
            ledger.acknowledged[(game["sessionId"], result["questionId"])] = result["totalPoints"]
            score += result["totalPoints"]
        done = await results(client, game["sessionId"])
        assert done["complete"] is True, done
        assert done["totalScore"] == score, done
        ledger.games += 1


@pytest.fixture
async def players(stack: Stack, bank: QuestionBank) -> AsyncIterator[Ledger]:
    ledger = Ledger()
    clients = [
        httpx.AsyncClient(
            base_url=stack.url, transport=RetryingTransport(ledger.retries), timeout=10
        )
        for _ in range(PLAYERS)
    ]
    ledger.tasks = [asyncio.create_task(play(client, bank, ledger)) for client in clients]
    try:
        yield ledger
    finally:
        for task in ledger.tasks:
            task.cancel()
        await asyncio.gather(*ledger.tasks, return_exceptions=True)
        for client in clients:
            await client.aclose()


async def test_only_haproxy_is_published(stack: Stack) -> None:
    published = {}
    for service in ("redis", "api", "haproxy"):
        for container in await stack.containers(service):
            ports = (await stack.inspect(container))["NetworkSettings"]["Ports"] or {}
            published[container] = [b for bindings in ports.values() for b in bindings or []]
    haproxy = await stack.containers("haproxy")
    assert len(haproxy) == 1
    assert len(await stack.containers("api")) == REPLICAS
    assert [b["HostIp"] for b in published.pop(haproxy[0])] == ["127.0.0.1"]
    assert not any(published.values()), "Redis and the API must publish no port"


async def restart(stack: Stack, container: str) -> float:
    """docker restart: SIGTERM, up to 10 s to stop gracefully, then start again."""
    started = time.monotonic()
    await stack.run("docker", "restart", "-t", "10", container)
    return time.monotonic() - started


async def test_no_acknowledged_answer_lost_across_restarts(stack: Stack, players: Ledger) -> None:
    ledger = players
    await asyncio.sleep(4)
    games = [ledger.games]

    replica = (await stack.containers("api"))[0]
    took = await restart(stack, replica)
    back = await wait_for("the restarted replica in rotation", lambda: all_instances_ok(stack.url))
    print(f"\napi replica restarted in {took:.1f} s, in rotation again {back:.1f} s later")
    await asyncio.sleep(4)
    games.append(ledger.games)

    (redis,) = await stack.containers("redis")
    before = len(ledger.acknowledged)
    took = await restart(stack, redis)
    back = await wait_for("Redis back for every replica", lambda: all_instances_ok(stack.url))
    print(f"redis restarted in {took:.1f} s, every replica ok again {back:.1f} s later")
    await asyncio.sleep(4)
    await ledger.stop()
    games.append(ledger.games)

    persistence = await stack.compose("exec", "-T", "redis", "redis-cli", "info", "persistence")
    assert "aof_enabled:1" in persistence
    print(
        f"games completed: {games[0]} before the replica restart, {games[1]} before the Redis"
        f" restart ({before} answers acknowledged by then), {ledger.games} in all;"
        f" {ledger.degraded_games} created degraded; retries by cause: {dict(ledger.retries)}"
    )
    assert games[0] < games[1] < games[2] <= ledger.games

    stats = Stats()
    stats.acknowledged = dict(ledger.acknowledged)
    integrity = await check_integrity(stack.url, stats)
    print(f"integrity: {integrity}")
    assert integrity["answers"] == len(ledger.acknowledged) > before > 0
    assert integrity["missing"] == integrity["changed"] == integrity["doubled"] == 0, integrity
