"""A bounded chaos soak: two real instances on one Redis with AOF, anonymous and signed-in
players on random instances (some sending a game's ten answers at once), and six faults, each
twice: Redis paused (SIGSTOP) for 5 s; Redis killed and restarted from its AOF; Redis killed
and restarted empty; one instance killed and restarted; CLIENT PAUSE 3000 WRITE; maxmemory
below the memory in use for 5 s.

It fails on any acknowledged answer lost, changed or doubled (except games that lived only in
Redis when it restarted empty: Redis itself dropped those), any 5xx but a 503, any request over
the time budget, any session key without a TTL, or a game made in memory during an outage that
the other instance cannot read afterwards. It prints a table per phase (`pytest -s` shows it;
the README summarises a run). About three minutes; run with `./test -m soak`.

Redis runs with `appendfsync always` here: with `everysec` a SIGKILL may drop the last second of
writes, Redis's documented trade-off; with `always` any loss would be the service's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import shutil
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis.asyncio

from app import keys
from app.questions import QuestionBank
from tests.play import Json, answer_body
from tests.servers import ApiProcess, LocalRedis

pytestmark = [pytest.mark.soak, pytest.mark.processes, pytest.mark.timeout(600)]

# Pool wait + 2 x REDIS_TIMEOUT_SECONDS with the defaults (the bound of one Redis call), plus
# a quarter second for two instances, Redis and 30 players sharing two cores.
BUDGET_SECONDS = 0.75 + 0.25
PHASE_SECONDS = 9


@dataclass
class Phase:
    name: str
    started: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    slowest: float = 0.0  # of the game requests, the ones the Redis time budget bounds
    slowest_account: float = 0.0  # sign-ups and logins wait for password hashing instead


@dataclass
class Game:
    session_id: str
    created_on: int  # the instance
    degraded: bool
    token: str | None
    created: float = field(default_factory=time.monotonic)
    acknowledged: dict[str, Json] = field(default_factory=dict)
    last_ack: float = 0.0


@dataclass
class Soak:
    instances: list[ApiProcess]
    redis: LocalRedis
    bank: QuestionBank
    phases: list[Phase] = field(default_factory=list)
    games: list[Game] = field(default_factory=list)
    empty_restarts: list[float] = field(default_factory=list)
    # When instance 0 was SIGKILLed, and how many games it held in memory then: a busy machine
    # can make Redis calls time out, which sends new games to memory, and a killed process
    # takes the games it has not written back with it (README, Rolling restarts).
    kills: list[tuple[float, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def phase(self) -> Phase:
        return self.phases[-1]

    async def request(
        self,
        http: httpx.AsyncClient,
        method: str,
        path: str,
        token: str | None,
        json: Json | None = None,
    ) -> tuple[int, httpx.Response]:
        """Send on a random instance, retrying 503s and lost connections like a client would;
        every attempt is timed and counted."""
        headers = {"authorization": f"Bearer {token}"} if token else {}
        for _ in range(400):
            index = random.randrange(len(self.instances))
            started = time.perf_counter()
            try:
                reply = await http.request(
                    method, self.instances[index].url + path, headers=headers, json=json
                )
            except httpx.TransportError:
                await asyncio.sleep(0.05)  # the instance is down: try again, maybe elsewhere
                continue
            elapsed = time.perf_counter() - started
            self.phase.statuses[reply.status_code] += 1
            if path.startswith("/auth/"):
                self.phase.slowest_account = max(self.phase.slowest_account, elapsed)
            else:
                self.phase.slowest = max(self.phase.slowest, elapsed)
            if reply.status_code >= 500 and reply.status_code != 503:
                self.errors.append(f"{reply.status_code} on {method} {path}: {reply.text}")
            if reply.status_code != 503:
                return index, reply
            await asyncio.sleep(0.05)
        raise AssertionError(f"{method} {path}: 503 for 20 s")

    async def play(self, http: httpx.AsyncClient, token: str | None, burst: bool) -> bool:
        """One game; False if the player's login is gone (Redis restarted empty)."""
        index, created = await self.request(http, "POST", "/api/game/session", token)
        if created.status_code == 401:
            return False
        assert created.status_code == 201, created.text
        body = created.json()
        game = Game(body["sessionId"], index, body["degraded"], token)
        self.games.append(game)
        if burst:
            statuses = await asyncio.gather(*(self.answer(http, game, body, i) for i in range(10)))
            if set(statuses) != {200}:
                return 401 not in statuses
        else:
            for i in range(10):
                status = await self.answer(http, game, body, i)
                if status != 200:
                    return status == 404
                await asyncio.sleep(random.uniform(0, 0.1))
        _, done = await self.request(http, "GET", f"/api/game/results/{game.session_id}", token)
        return done.status_code != 401

    async def answer(self, http: httpx.AsyncClient, game: Game, body: Json, i: int) -> int:
        """Answer question i: 200 acknowledged; 404 the game, or 401 the player's login, went
        with Redis's empty restart."""
        payload = answer_body(body, i, self.bank, correct=random.random() < 0.7, remaining=20)
        _, reply = await self.request(http, "POST", "/api/game/answer", game.token, json=payload)
        if reply.status_code in (404, 401) and self.empty_restarts:
            return reply.status_code
        assert reply.status_code == 200, reply.text
        game.acknowledged[payload["questionId"]] = reply.json()
        game.last_ack = time.monotonic()
        return 200

    async def player(self, signed_in: bool, burst: bool, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            token = await self.sign_up(http) if signed_in else None
            while not stop.is_set():
                if not await self.play(http, token, burst):
                    # The account went with Redis: a new one, within a few seconds, as players
                    # come back one by one rather than in the same instant.
                    await asyncio.sleep(random.uniform(0, 3))
                    token = await self.sign_up(http)

    async def sign_up(self, http: httpx.AsyncClient) -> str:
        email = f"soak.{uuid.uuid4().hex[:10]}@example.org"
        body = {"email": email, "password": "Correct-Horse-9", "name": "Soak"}
        _, created = await self.request(http, "POST", "/auth/signup", None, json=body)
        assert created.status_code == 201, created.text
        login = {"email": email, "password": body["password"]}
        _, reply = await self.request(http, "POST", "/auth/login", None, json=login)
        assert reply.status_code == 200, reply.text
        token: str = reply.json()["accessToken"]
        return token


@pytest.fixture
def redis_server() -> Iterator[LocalRedis]:
    server = LocalRedis()
    server.start(True)
    yield server
    if server.process is not None:
        server.signal(signal.SIGCONT)
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture
def instances(redis_server: LocalRedis, tmp_path: Path) -> Iterator[list[ApiProcess]]:
    started = [
        ApiProcess({"REDIS_URL": redis_server.url}, log=tmp_path / f"instance-{i}.log")
        for i in range(2)
    ]
    for process in started:
        process.start()
    yield started
    for process in started:
        process.kill()
    for process in started:  # what went wrong, if anything, in the instances' own words
        assert process.log is not None
        errors = [line for line in process.log.read_text().splitlines() if "ERROR" in line]
        print(f"{process.log.name}: {len(errors)} error lines", *errors[:5], sep="\n  ")


@contextlib.asynccontextmanager
async def redis_client(server: LocalRedis) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(server.url, socket_timeout=5)
    try:
        yield client
    finally:
        await client.aclose()


async def test_soak(
    redis_server: LocalRedis, instances: list[ApiProcess], bank: QuestionBank
) -> None:
    soak = Soak(instances, redis_server, bank, phases=[Phase("warm-up", time.monotonic())])
    stop = asyncio.Event()  # 10 signed-in players, 20 anonymous; one in five sends at once
    players = [asyncio.create_task(soak.player(i < 10, i % 5 == 4, stop)) for i in range(30)]

    async def phase(name: str, fault: Callable[[], Awaitable[None]]) -> None:
        soak.phases.append(Phase(name, time.monotonic()))
        await fault()
        await asyncio.sleep(PHASE_SECONDS)

    await asyncio.sleep(PHASE_SECONDS)
    for round_ in (1, 2):
        await phase(f"Redis SIGSTOP 5 s ({round_})", lambda: pause_redis(redis_server))
        await phase(f"Redis SIGKILL, AOF ({round_})", lambda: restart_redis(redis_server))
        await phase(f"Redis SIGKILL, empty ({round_})", lambda: restart_redis(redis_server, soak))
        await phase(f"instance SIGKILL ({round_})", lambda: restart_instance(instances[0], soak))
        await phase(f"CLIENT PAUSE WRITE 3 s ({round_})", lambda: pause_writes(redis_server))
        await phase(f"maxmemory below use 5 s ({round_})", lambda: squeeze_memory(redis_server))
    soak.phases.append(Phase("cool-down", time.monotonic()))
    stop.set()
    await asyncio.gather(*players)
    await check(soak)


async def pause_redis(server: LocalRedis) -> None:
    server.signal(signal.SIGSTOP)
    await asyncio.sleep(5)
    server.signal(signal.SIGCONT)


async def restart_redis(server: LocalRedis, emptied: Soak | None = None) -> None:
    server.stop()  # SIGKILL
    if emptied is not None:
        shutil.rmtree(server.directory)
        server.directory.mkdir()
        emptied.empty_restarts.append(time.monotonic())
    await asyncio.sleep(1)
    server.start(True)


async def restart_instance(instance: ApiProcess, soak: Soak) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        held = (await http.get(instance.url + "/health")).json()["fallbackSessions"]
    instance.kill()
    soak.kills.append((time.monotonic(), held))
    await asyncio.to_thread(instance.start)


async def pause_writes(server: LocalRedis) -> None:
    async with redis_client(server) as client:
        await client.client_pause(3000, all=False)


async def squeeze_memory(server: LocalRedis) -> None:
    async with redis_client(server) as client:
        used = (await client.info("memory"))["used_memory"]
        await client.config_set("maxmemory", used // 2)
        await asyncio.sleep(5)
        await client.config_set("maxmemory", 0)


async def check(soak: Soak) -> None:
    """Read every game back from the instance that did not create it, then judge. Where the
    player's login went with an empty restart (401), the game's own document is read from
    Redis instead: its answers must still be there."""
    lost: Counter[str] = Counter()
    explained = with_instance = 0
    async with httpx.AsyncClient(timeout=10) as http, redis_client(soak.redis) as client:
        for game in [g for g in soak.games if g.acknowledged]:  # nothing acknowledged: no loss
            other = soak.instances[1 - game.created_on].url
            reply = await read(http, other + f"/api/game/results/{game.session_id}", game.token)
            stored = await stored_points(reply, game, client)
            missing = missing_answers(game, stored)
            if not missing:
                continue
            if stored is None and gone_with_redis(game, soak):
                explained += missing  # the game went with Redis's data
            elif died_with_instance(game, soak):
                with_instance += 1
            else:
                lost[phase_of(soak, max(game.created, game.last_ack))] += missing
                soak.errors.append(describe_loss(game, reply, stored, missing, soak))
        without_ttl = [k async for k in client.scan_iter("session:*") if await client.pttl(k) < 0]
    print_table(soak, lost, explained)
    print(f"{with_instance} games were in the killed instance's memory when it was killed")
    assert with_instance <= sum(held for _, held in soak.kills)
    assert soak.errors == [], soak.errors[:20]
    assert without_ttl == []
    assert all(p.slowest <= BUDGET_SECONDS for p in soak.phases), [
        (p.name, p.slowest) for p in soak.phases
    ]
    assert sum(g.degraded for g in soak.games) > 0  # the outages did send games to memory


async def stored_points(
    reply: httpx.Response, game: Game, client: redis.asyncio.Redis
) -> dict[str, int] | None:
    """Points per answered question as stored; None if the game is gone. A 401 means the
    player's account went with Redis's data, while the game may not have (one made in memory
    by a player whose login was still valid then): the document in Redis is the record."""
    if reply.status_code == 200:
        answers = reply.json()["answers"]
        stored = {a["questionId"]: a["totalPoints"] for a in answers}
        assert len(stored) == len(answers), f"game {game.session_id}: an answer stored twice"
        return stored
    assert reply.status_code in (401, 404), reply.text
    if reply.status_code == 404:
        return None
    key = keys.session(game.session_id)
    document = await client.execute_command("JSON.GET", key)  # type: ignore[no-untyped-call]
    if document is None:
        return None
    rows = json.loads(document)["a"]  # StoredAnswer arrays: [0] question id, [6] total points
    assert len({r[0] for r in rows}) == len(rows), f"game {game.session_id}: an answer stored twice"
    return {r[0]: r[6] for r in rows}


def missing_answers(game: Game, stored: dict[str, int] | None) -> int:
    """Acknowledged answers of `game` missing or changed in what is stored (all, if gone)."""
    if stored is None:
        return len(game.acknowledged)
    return sum(stored.get(qid) != acked["totalPoints"] for qid, acked in game.acknowledged.items())


async def read(http: httpx.AsyncClient, url: str, token: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    for _ in range(200):
        reply = await http.get(url, headers=headers)
        if reply.status_code != 503:
            return reply
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url}: 503 for 20 s")


def gone_with_redis(game: Game, soak: Soak) -> bool:
    """A game created before Redis restarted empty lived in Redis then (a game made in memory
    is written back within a second of an outage): it is gone with Redis's data. A game made
    in memory during that outage is not."""
    return any(game.created <= restart for restart in soak.empty_restarts)


def died_with_instance(game: Game, soak: Soak) -> bool:
    """A game made in instance 0's memory before it was killed while holding games in memory:
    its latest answers may have been in that memory only."""
    return (
        game.degraded
        and game.created_on == 0
        and any(game.created <= at and held > 0 for at, held in soak.kills)
    )


def describe_loss(
    game: Game, reply: httpx.Response, stored: dict[str, int] | None, missing: int, soak: Soak
) -> str:
    """What the judge saw of a lost game, with its times relative to the faults."""
    start = soak.phases[0].started
    return (
        f"game {game.session_id}: {missing} of {len(game.acknowledged)} acknowledged answers "
        f"lost or changed; read back {reply.status_code}, "
        f"{'gone' if stored is None else f'{len(stored)} answers stored'}; made on "
        f"instance {game.created_on} {'in memory' if game.degraded else 'in Redis'} at "
        f"{game.created - start:.2f} s, last acknowledged at {game.last_ack - start:.2f} s; "
        f"empty restarts at {[round(t - start, 2) for t in soak.empty_restarts]}, "
        f"instance kills at {[round(t - start, 2) for t, _ in soak.kills]}"
    )


def phase_of(soak: Soak, moment: float) -> str:
    return [p.name for p in soak.phases if p.started <= moment][-1]


def print_table(soak: Soak, lost: Counter[str], explained: int) -> None:
    print("\n| phase | requests | statuses | slowest game request, s", end="")
    print(" | slowest sign-up or login, s | lost |")
    print("|---|---|---|---|---|---|")
    for p in soak.phases:
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(p.statuses.items()))
        print(
            f"| {p.name} | {sum(p.statuses.values())} | {statuses} | {p.slowest:.3f} |"
            f" {p.slowest_account:.3f} | {lost[p.name]} |"
        )
    answers = sum(len(g.acknowledged) for g in soak.games)
    print(
        f"\n{len(soak.games)} games ({sum(g.degraded for g in soak.games)} made in memory), "
        f"{answers} acknowledged answers, {sum(lost.values())} lost, {explained} gone with "
        f"Redis's empty restarts"
    )
