"""Several instances at scale, with real processes: three uvicorn instances on one Redis, and
the repository's deploy/haproxy.cfg run by a real HAProxy in front of them.

- players hopping between instances on every request while one is SIGKILLed and restarted;
- HAProxy's health checks taking a killed instance out of rotation and putting it back;
- a game created while Redis is down, played through HAProxy by a browser (affinity cookie)
  and by a client without cookies;
- a client that trickles its request head: cut off by HAProxy, not by uvicorn alone;
- a rolling restart (SIGTERM, one instance at a time) under load, and a shutdown that writes
  back the games an instance holds in memory.

Each test prints its figures (`pytest -s`); the README's "Scaling" section shows a run. Players
retry 502/503/504 and connection errors as a client should (tests/play.py), and afterwards every
acknowledged answer is read back: missing, changed or doubled must be 0, every game complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, expect

from app.fallback import CLOSE_WRITE_BACK_SECONDS
from app.questions import QuestionBank
from app.shutdown import DRAIN_SECONDS
from tests.play import Ledger, Player, read_back
from tests.servers import ApiProcess, HAProxy, LocalRedis
from tests.test_browser import DESKTOP, browser, go_on, open_player, play_to_the_wager
from tests.test_browser import answer as answer_on_the_page

pytestmark = [pytest.mark.processes, pytest.mark.timeout(180)]

INSTANCES = 3
PLAYERS = 12  # a third of them send a game's answers at once
IN_FLIGHT_AT_MOST = PLAYERS // 3 * 10 + PLAYERS - PLAYERS // 3
# HAProxy checks /health every 500 ms (250 ms while a state changes, 1 s while down) and needs
# 2 checks to change its mind: out about 1 s after an instance dies, in about 1.5 s after it
# serves again. The budgets leave room for a shared 2-core machine; real time is the point.
OUT_OF_ROTATION_BUDGET = 3.0
INTO_ROTATION_BUDGET = 4.0
TRANSPORT_ERRORS = {"ConnectError", "ReadError", "RemoteProtocolError", "WriteError"}
__all__ = ["browser"]  # the browser tests' fixture, for the page through HAProxy


@dataclass
class Fleet:
    redis: LocalRedis
    instances: list[ApiProcess]
    balancer: HAProxy

    def name(self, instance: ApiProcess) -> str:
        """The instance's server name in HAProxy's statistics."""
        return f"api{self.instances.index(instance) + 1}"

    async def status(self, instance: ApiProcess) -> str:
        servers = await asyncio.to_thread(self.balancer.servers)
        return servers[self.name(instance)]["status"]


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    """Redis, three instances on it and HAProxy in front, every one stopped afterwards."""
    redis = LocalRedis()
    instances = [
        ApiProcess(
            {"REDIS_URL": redis.url, "BREAKER_PROBE_SECONDS": "0.2"}, log=tmp_path / f"api{i}.log"
        )
        for i in range(1, INSTANCES + 1)
    ]
    balancer = HAProxy([f"127.0.0.1:{i.port}" for i in instances], log=tmp_path / "haproxy.log")
    try:
        redis.start()
        for instance in instances:
            instance.start()
        balancer.start()
        yield Fleet(redis, instances, balancer)
    finally:
        balancer.stop()
        for instance in instances:
            instance.kill()
        redis.stop()
        shutil.rmtree(redis.directory, ignore_errors=True)


async def seconds_until(check: Callable[[], Awaitable[bool]], since: float, limit: float) -> float:
    """Poll `check` every 25 ms until it holds; the seconds from `since` (time.monotonic())."""
    while not await check():
        assert time.monotonic() - since < limit, f"not within {limit} s"
        await asyncio.sleep(0.025)
    return time.monotonic() - since


async def in_rotation(fleet: Fleet) -> None:
    async def all_up() -> bool:
        servers = await asyncio.to_thread(fleet.balancer.servers)
        return all(s["status"] == "UP" for s in servers.values())

    await seconds_until(all_up, time.monotonic(), 10)


def prefix(instance: ApiProcess) -> str:
    """The request-id prefix of the process now serving on the instance's port."""
    return httpx.get(instance.url + "/health").headers["x-request-id"].split("-")[0]


@contextlib.asynccontextmanager
async def crowd(
    bank: QuestionBank, ledger: Ledger, routes: list[Callable[[], str]], browsers: int
) -> AsyncIterator[list[Player]]:
    """Players on `routes` (the first `browsers` keep cookies) playing until the block ends;
    then each finishes the game in hand."""
    clients = [httpx.AsyncClient(timeout=10) for _ in routes]
    players = [
        Player(client, bank, ledger, route, cookies=i < browsers, burst=i % 3 == 2)
        for i, (client, route) in enumerate(zip(clients, routes, strict=True))
    ]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(player.play(stop)) for player in players]
    try:
        yield players
        stop.set()
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in clients:
            await client.aclose()


def hopping(urls: list[str], start: int) -> Callable[[], str]:
    """Each request on the next instance."""
    cycle = itertools.cycle(urls[start % len(urls) :] + urls[: start % len(urls)])
    return lambda: next(cycle)


async def judged(fleet: Fleet, ledger: Ledger, title: str) -> dict[str, int]:
    """Read every game back; print and return the figures."""
    integrity = await read_back(fleet.instances[0].url, ledger)
    print(
        f"\n{title}: {len(ledger.finished)} games, {sum(ledger.statuses.values())} responses"
        f" {dict(sorted(ledger.statuses.items()))}, retried {dict(ledger.retried)};"
        f" read back: {integrity}"
    )
    assert ledger.finished == ledger.started
    assert integrity["missing"] == integrity["changed"] == integrity["doubled"] == 0, integrity
    assert integrity["incomplete"] == 0
    return integrity


async def test_players_hopping_between_instances_lose_nothing_when_one_is_killed(
    fleet: Fleet, bank: QuestionBank
) -> None:
    ledger = Ledger()
    urls = [instance.url for instance in fleet.instances]
    victim = fleet.instances[1]
    async with crowd(bank, ledger, [hopping(urls, k) for k in range(PLAYERS)], browsers=0):
        await asyncio.sleep(3)
        victim.kill()
        await asyncio.sleep(1)
        started = time.monotonic()
        await asyncio.to_thread(victim.start)
        restarted = time.monotonic() - started
        await asyncio.sleep(3)
    print(f"\nkilled instance serving again {restarted:.1f} s after its restart began")
    await judged(fleet, ledger, "hopping players, one instance SIGKILLed and restarted")
    assert set(ledger.statuses) <= {200, 201}
    assert ledger.retried["ConnectError"] > 0  # the players did meet the dead instance
    assert ledger.served_by[prefix(victim)] > 0  # and the restarted one served them again


def counters(servers: dict[str, dict[str, str]], name: str) -> tuple[int, ...]:
    """What HAProxy sent an instance: requests, failed connections, retries."""
    return tuple(int(servers[name][key] or 0) for key in ("stot", "econ", "wretr"))


async def test_haproxy_takes_a_killed_instance_out_and_puts_it_back(
    fleet: Fleet, bank: QuestionBank
) -> None:
    await in_rotation(fleet)
    ledger = Ledger()
    victim = fleet.instances[0]
    name = fleet.name(victim)
    routes = [lambda: fleet.balancer.url] * PLAYERS
    async with crowd(bank, ledger, routes, browsers=PLAYERS // 2):
        await asyncio.sleep(3)
        killed = time.monotonic()
        victim.kill()
        out = await seconds_until(
            lambda: status_is(fleet, victim, "DOWN"), killed, OUT_OF_ROTATION_BUDGET
        )
        when_out = counters(await asyncio.to_thread(fleet.balancer.servers), name)
        await asyncio.sleep(2)
        after = counters(await asyncio.to_thread(fleet.balancer.servers), name)
        started = time.monotonic()
        await asyncio.to_thread(victim.start)
        serving = time.monotonic()
        back = await seconds_until(
            lambda: status_is(fleet, victim, "UP"), serving, INTO_ROTATION_BUDGET
        )
        new = prefix(victim)
        traffic = await seconds_until(lambda: served(ledger, new), serving, 10)
        await asyncio.sleep(2)
    print(
        f"\nSIGKILL: out of rotation {out:.2f} s later; {after[0] - when_out[0]} requests and"
        f" {after[1] - when_out[1]} connection attempts reached it in the 2 s after that;"
        f" restarted, serving {serving - started:.1f} s later, in rotation {back:.2f} s after"
        f" that, players on it {traffic:.2f} s after that"
    )
    await judged(fleet, ledger, "through HAProxy, one instance SIGKILLed and restarted")
    assert after == when_out  # once out, nothing was sent to it
    # The requests in flight in the killed process are lost with it: HAProxy answers 502 if it
    # was the first request on the client's connection, else closes that connection without
    # an answer (as a server closing a kept-alive connection would). The client retries both.
    # Nothing else reaches the client: a request sent to the dead instance before it is out of
    # rotation finds its port closed, and HAProxy sends it to another instance.
    assert set(ledger.retried) <= {"RemoteProtocolError", "502"}
    assert set(ledger.statuses) <= {200, 201, 502}
    assert ledger.retried.total() <= IN_FLIGHT_AT_MOST


async def status_is(fleet: Fleet, instance: ApiProcess, wanted: str) -> bool:
    return await fleet.status(instance) == wanted


async def served(ledger: Ledger, instance_prefix: str) -> bool:
    return ledger.served_by[instance_prefix] > 0


async def health(instance: ApiProcess) -> dict[str, object]:
    async with httpx.AsyncClient(timeout=5) as client:
        body: dict[str, object] = (await client.get(instance.url + "/health")).json()
        return body


async def every_instance(fleet: Fleet, field: str, value: object) -> None:
    async def agreed() -> bool:
        found = await asyncio.gather(*(health(i) for i in fleet.instances))
        return all(h[field] == value for h in found)

    await seconds_until(agreed, time.monotonic(), 20)


async def without_cookies(client: httpx.AsyncClient, url: str) -> httpx.Response:
    client.cookies.clear()
    return await client.get(url)


async def test_a_game_made_while_redis_is_down_through_haproxy(
    fleet: Fleet, bank: QuestionBank
) -> None:
    """A browser keeps HAProxy's cookie and so stays on the instance holding its game; a client
    without cookies is balanced round robin and reaches that instance on one request in three:
    the others answer 503 with Retry-After."""
    await in_rotation(fleet)
    fleet.redis.stop()  # SIGKILL
    await every_instance(fleet, "breaker", "open")
    assert {await fleet.status(i) for i in fleet.instances} == {"UP"}  # degraded stays in

    browser, cookieless = Ledger(), Ledger()
    async with httpx.AsyncClient(timeout=10) as one, httpx.AsyncClient(timeout=10) as two:
        url = fleet.balancer.url
        await Player(one, bank, browser, lambda: url).game()
        game = await Player(two, bank, cookieless, lambda: url, cookies=False).game()
        results = f"{url}/api/game/results/{game}"
        three = [await without_cookies(two, results) for _ in range(INSTANCES)]
    print(
        f"\nRedis down, through HAProxy: a browser's game {dict(browser.statuses)} on"
        f" {len(browser.served_by)} instance; a cookie-less client's game"
        f" {dict(cookieless.statuses)} over {len(cookieless.served_by)} instances;"
        f" its results asked {INSTANCES} times in a row: {[r.status_code for r in three]}"
    )
    assert browser.degraded == cookieless.degraded == 1
    assert browser.statuses == {201: 1, 200: 11}  # every request on the holder, first time
    assert len(browser.served_by) == 1
    assert set(cookieless.statuses) == {200, 201, 503}
    assert sorted(r.status_code for r in three) == [200] + [503] * (INSTANCES - 1)
    refused = [r for r in three if r.status_code == 503]
    assert {r.headers["retry-after"] for r in refused} == {"2"}
    assert {r.json()["error"] for r in refused} == {
        "Game storage is temporarily unavailable; retry shortly"
    }

    fleet.redis.start()  # empty: the games it had are gone, the two in memory come back
    await every_instance(fleet, "fallbackSessions", 0)
    async with httpx.AsyncClient(timeout=10) as two:
        after = [await without_cookies(two, results) for _ in range(INSTANCES)]
    assert [r.status_code for r in after] == [200] * INSTANCES  # any instance has it now
    assert after[0].json()["degraded"] is False


# deploy/haproxy.cfg's `timeout http-request`: real time is the point here.
HTTP_REQUEST_TIMEOUT = 5.0


async def trickle(port: int, seconds: float) -> tuple[float, bytes]:
    """Send a request head one byte every 0.5 s, for at most `seconds`: (when the server
    answered, what it sent until it closed the connection). Still open after that: the head is
    completed and the answer read, (seconds, the answer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Slow: ")
    try:
        while time.monotonic() - started < seconds:
            try:
                data = await asyncio.wait_for(reader.read(65536), 0.5)
                at = time.monotonic() - started
                return at, data + await asyncio.wait_for(reader.read(), 2)  # until closed
            except TimeoutError:
                writer.write(b"a")
                await writer.drain()
        writer.write(b"\r\n\r\n")
        return time.monotonic() - started, await reader.read(65536)
    finally:
        writer.close()


async def test_haproxy_cuts_off_a_client_that_trickles_its_headers(fleet: Fleet) -> None:
    await in_rotation(fleet)
    held = HTTP_REQUEST_TIMEOUT + 3
    (cut, said), (kept, answered) = await asyncio.gather(
        trickle(fleet.balancer.port, held), trickle(fleet.instances[0].port, held)
    )
    print(
        f"\na request head trickled one byte per 0.5 s: HAProxy answered"
        f" {said.split(b' ', 2)[1].decode()} and closed after {cut:.1f} s; uvicorn alone still"
        f" waited after {kept:.1f} s, then answered {answered.split(b' ', 2)[1].decode()}"
    )
    assert HTTP_REQUEST_TIMEOUT - 0.5 < cut < HTTP_REQUEST_TIMEOUT + 1.5
    assert said.startswith(b"HTTP/1.1 408")
    assert kept >= held
    assert answered.startswith(b"HTTP/1.1 200")


@dataclass
class Restart:
    name: str
    exited: float  # seconds from SIGTERM to the process's exit
    out: float  # from SIGTERM to HAProxy marking it DOWN
    serving: float  # from the new process's start to its /health answering
    back: float  # from then to HAProxy marking it UP


async def restart_gracefully(fleet: Fleet, instance: ApiProcess) -> Restart:
    """One step of a rolling restart: SIGTERM, wait for the exit, start it again, wait until
    HAProxy has it in rotation again."""
    stopping = time.monotonic()
    exiting = asyncio.create_task(asyncio.to_thread(instance.terminate))
    out = await seconds_until(lambda: status_is(fleet, instance, "DOWN"), stopping, 10)
    exited = await exiting
    started = time.monotonic()
    await asyncio.to_thread(instance.start)
    serving = time.monotonic()
    back = await seconds_until(lambda: status_is(fleet, instance, "UP"), serving, 10)
    return Restart(fleet.name(instance), exited, out, serving - started, back)


async def test_a_rolling_restart_under_load_loses_nothing(fleet: Fleet, bank: QuestionBank) -> None:
    await in_rotation(fleet)
    ledger = Ledger()
    routes = [lambda: fleet.balancer.url] * PLAYERS
    restarts = []
    async with crowd(bank, ledger, routes, browsers=PLAYERS // 2):
        await asyncio.sleep(2)
        for instance in fleet.instances:
            restarts.append(await restart_gracefully(fleet, instance))
            await asyncio.sleep(1)
    print(
        "\n| instance | exit after SIGTERM, s | out of rotation, s | serving after start, s"
        " | back in rotation, s |\n|---|---|---|---|---|"
    )
    for r in restarts:
        print(f"| {r.name} | {r.exited:.2f} | {r.out:.2f} | {r.serving:.2f} | {r.back:.2f} |")
    await judged(fleet, ledger, "rolling restart through HAProxy")
    for instance in fleet.instances:
        assert instance.log is not None
        assert "Application shutdown complete." in instance.log.read_text()
    assert not TRANSPORT_ERRORS & set(ledger.retried)
    assert set(ledger.statuses) <= {200, 201}


async def test_sigterm_leaves_the_rotation_first_then_stops(
    fleet: Fleet, bank: QuestionBank
) -> None:
    """For DRAIN_SECONDS after SIGTERM the instance still serves, but /health answers 503, so
    HAProxy takes it out before uvicorn closes anything; then it exits."""
    await in_rotation(fleet)
    instance = fleet.instances[0]
    assert instance.process is not None
    stopping = time.monotonic()
    instance.process.send_signal(signal.SIGTERM)
    async with httpx.AsyncClient(base_url=instance.url, timeout=5) as client:
        await asyncio.sleep(0.1)
        checked = await client.get("/health")
        created = await client.post("/api/game/session")
        out = await seconds_until(lambda: status_is(fleet, instance, "DOWN"), stopping, 5)
        still = await client.post("/api/game/session")
    exited = await asyncio.to_thread(instance.process.wait, 15)
    took = time.monotonic() - stopping
    instance.process = None
    print(f"\nSIGTERM: out of HAProxy's rotation {out:.2f} s later, exited {took:.2f} s later")
    assert checked.status_code == 503
    assert checked.json()["status"] == "stopping"
    assert created.status_code == still.status_code == 201  # serving all the while
    assert out < DRAIN_SECONDS  # out before it stopped serving
    assert exited == -signal.SIGTERM  # uvicorn's graceful path, which ends by re-raising it
    assert DRAIN_SECONDS <= took < DRAIN_SECONDS + 5  # nothing in flight: no other wait


@pytest.fixture
def slow_probing(fleet: Fleet, tmp_path: Path, start_api: type[ApiProcess]) -> list[ApiProcess]:
    """Two more instances on the fleet's Redis whose probe runs every 15 s while Redis is
    away, so only their shutdown writes their games back."""
    instances = [
        start_api({"REDIS_URL": fleet.redis.url, "BREAKER_PROBE_SECONDS": "60"}, log=log)
        for log in (tmp_path / "slow-a.log", tmp_path / "slow-b.log")
    ]
    for instance in instances:
        instance.start()
    return instances


async def games_in_memory(instance: ApiProcess, bank: QuestionBank, count: int) -> Ledger:
    """`count` games created and half played on the instance while Redis is down."""
    ledger = Ledger()
    async with httpx.AsyncClient(timeout=10) as client:
        player = Player(client, bank, ledger, lambda: instance.url, patience=5)
        for _ in range(count):
            created = await player.request("POST", "/api/game/session")
            game = created.json()
            assert game["degraded"] is True
            ledger.started.add(game["sessionId"])
            for i in range(5):
                await player.answer(game, i, None)
    return ledger


async def test_sigterm_writes_back_the_games_held_in_memory(
    fleet: Fleet, slow_probing: list[ApiProcess], bank: QuestionBank
) -> None:
    kept, lost = slow_probing
    fleet.redis.stop()
    held = await games_in_memory(kept, bank, 4)
    await games_in_memory(lost, bank, 2)

    exit_lost = await asyncio.to_thread(lost.terminate)  # Redis still down
    fleet.redis.start()  # back, empty; `kept` will not probe it for 15 s
    assert (await health(kept))["fallbackSessions"] == 4
    exit_kept = await asyncio.to_thread(kept.terminate)
    await every_instance(fleet, "breaker", "closed")
    print(
        f"\nSIGTERM with games in memory: Redis back, exit after {exit_kept:.2f} s;"
        f" Redis down, exit after {exit_lost:.2f} s"
    )
    assert kept.log is not None
    assert lost.log is not None
    assert "shutdown: all 4 fallback sessions written back to Redis" in kept.log.read_text()
    assert (
        "shutdown: 0 of 2 fallback sessions written back; 2 could not be (Redis unusable) and"
        " are lost with this process" in lost.log.read_text()
    )
    assert exit_lost < DRAIN_SECONDS + CLOSE_WRITE_BACK_SECONDS + 2
    integrity = await read_back(fleet.instances[0].url, held)  # on another instance
    assert integrity["games"] == 4
    assert integrity["answers"] == 4 * 5
    assert integrity["missing"] == integrity["changed"] == integrity["doubled"] == 0


# The shutdown's bound: the drain, uvicorn's --timeout-graceful-shutdown (tests/servers.py),
# the write-back, the last Redis replies (README "Rolling restarts"): under Docker's 10 s.
SHUTDOWN_BOUND = DRAIN_SECONDS + 4 + CLOSE_WRITE_BACK_SECONDS + 1


async def test_a_request_stuck_in_flight_does_not_hold_the_shutdown_up(
    redis_url: str, tmp_path: Path
) -> None:
    """A client that sent half a body holds its request open: uvicorn gives it its graceful
    timeout, then cancels it, and the instance exits within the stated bound."""
    instance = ApiProcess({"REDIS_URL": redis_url}, log=tmp_path / "api.log")
    instance.start()
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", instance.port)
        writer.write(
            b"POST /api/game/answer HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"sessionId":'
        )
        await writer.drain()
        await asyncio.sleep(0.2)
        took = await asyncio.to_thread(instance.terminate)
        writer.close()
    finally:
        instance.kill()
    print(f"\nSIGTERM with a request stuck in flight: exited after {took:.2f} s")
    assert "timeout graceful shutdown exceeded" in (tmp_path / "api.log").read_text()
    assert DRAIN_SECONDS + 4 <= took < SHUTDOWN_BOUND < 10


@pytest.mark.browser
async def test_the_page_plays_a_game_made_while_redis_is_down_through_haproxy(
    fleet: Fleet, browser: Browser, bank: QuestionBank
) -> None:
    """The web page in chromium, through HAProxy with Redis down: its game calls carry the
    affinity cookie, so every one reaches the instance holding the game, the first time."""
    await in_rotation(fleet)
    fleet.redis.stop()
    await every_instance(fleet, "breaker", "open")
    player = await open_player(browser, fleet.balancer.url, DESKTOP)
    page = player.page
    seen: list[int] = []
    page.on("response", lambda r: seen.append(r.status) if "/api/game/" in r.url else None)
    try:
        await page.clock.install()
        await page.goto("/")
        await page.locator("#play").click()
        await expect(page.locator("#notice-degraded")).to_contain_text("kept on one server")
        await play_to_the_wager(page, bank)
        await page.locator("#wager-lock").click()
        await answer_on_the_page(page, bank, correct=True)
        await go_on(page)
        await expect(page.locator("#screen-results")).to_be_visible()
    finally:
        await player.context.close()
        print(f"\nthe page, Redis down, through HAProxy: game calls answered {seen}")
    assert seen.count(201) == 1
    assert set(seen) == {200, 201}  # no 503: never on an instance without the game
    assert player.problems == []
