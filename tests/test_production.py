"""The production checklist with real processes: the least-privilege Redis user of
deploy/redis/, TLS to Redis, start-up refusing a Redis that refuses its configuration, and the
rollback to memory-only sessions.

Each test starts its own redis-server (as deployed: the shipped ACL file with test passwords
filled in, or a TLS-only port with test certificates) and real uvicorn processes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
import trustme
from redis.backoff import NoBackoff
from redis.retry import Retry

from app import keys, scripts
from app.metrics import Metrics
from app.questions import QuestionBank
from app.redis_link import RedisLink, connect
from app.settings import Settings
from tests.conftest import METRICS
from tests.play import Json, answer, answer_body, health_until, new_game, results
from tests.servers import (
    ROOT,
    SERVICE,
    TEST_SECRET,
    ApiProcess,
    LocalRedis,
    free_port,
    server_command,
)

pytestmark = [pytest.mark.processes, pytest.mark.timeout(120)]

SERVICE_USER = "civic-trivia-game"
ACL_FILES = {
    "redis-json": ROOT / "deploy" / "redis" / "users.acl",
    "redis": ROOT / "deploy" / "redis" / "users-plain.acl",
}
PASSWORD = "Correct-Horse-9"
FAST_PROBE = {"BREAKER_PROBE_SECONDS": "0.2"}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Deployed:
    """A redis-server on the shipped ACL file: `server.url` is the admin's, for the tests."""

    server: LocalRedis
    service_password: str

    def service_url(self, password: str | None = None) -> str:
        secret = self.service_password if password is None else password
        return f"redis://{SERVICE_USER}:{secret}@127.0.0.1:{self.server.port}/0"

    def refusals(self) -> list[dict[str, object]]:
        """ACL LOG entries of the service's user: what Redis refused it."""
        with redis.Redis.from_url(self.server.url, decode_responses=True) as admin:
            entries: list[dict[str, object]] = admin.acl_log(count=1000)
        return [e for e in entries if e["username"] == SERVICE_USER]


def deployed_redis(storage: str) -> Deployed:
    """The shipped ACL file as an operator fills it in (passwords as SHA-256), not started."""
    service_password, admin_password = secrets.token_hex(16), secrets.token_hex(16)
    server = LocalRedis(json_module=storage == "redis-json", user=f"admin:{admin_password}")
    acl = ACL_FILES[storage].read_text()
    acl = acl.replace("#SERVICE_PASSWORD_SHA256", "#" + sha256(service_password))
    acl = acl.replace("#ADMIN_PASSWORD_SHA256", "#" + sha256(admin_password))
    (server.directory / "users.acl").write_text(acl)
    server.extra = ("--aclfile", str(server.directory / "users.acl"))
    return Deployed(server, service_password)


@pytest.fixture(params=["redis-json", "redis"])
def deployed(request: pytest.FixtureRequest) -> Iterator[Deployed]:
    setup = deployed_redis(request.param)
    setup.server.start(appendonly=True)
    yield setup
    setup.server.stop()
    shutil.rmtree(setup.server.directory, ignore_errors=True)


def plain_client(port: int) -> redis.Redis:
    """No user, no TLS, no retries (redis-py's default retries a refusal for seconds)."""
    return redis.Redis(port=port, socket_timeout=1, retry=Retry(NoBackoff(), 0))


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def play(client: httpx.AsyncClient, bank: QuestionBank, token: str | None = None) -> Json:
    """A complete game (as a player when `token` is given); its results."""
    headers = bearer(token) if token else {}
    game = (await client.post("/api/game/session", headers=headers)).json()
    for i in range(10):
        body = answer_body(game, i, bank, correct=i % 3 != 0, wager=0 if i == 9 else None)
        reply = await client.post("/api/game/answer", json=body, headers=headers)
        assert reply.status_code == 200, reply.text
    done = await client.get(f"/api/game/results/{game['sessionId']}", headers=headers)
    assert done.status_code == 200, done.text
    finished: Json = done.json()
    assert finished["complete"] is True
    return finished


async def accounts_and_progression(client: httpx.AsyncClient, bank: QuestionBank) -> None:
    """Every account route, a throttled login and a signed-in game's progression."""
    email = f"acl-{uuid.uuid4().hex[:8]}@example.org"
    account = {"email": email, "password": PASSWORD, "name": "Ada"}
    assert (await client.post("/auth/signup", json=account)).status_code == 201
    wrong = await client.post("/auth/login", json={"email": email, "password": "Wrong-Horse-9"})
    assert wrong.status_code == 401
    login = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    refreshed = await client.post("/auth/refresh")
    assert refreshed.status_code == 200, refreshed.text
    token = refreshed.json()["accessToken"]
    settings = {"timerMultiplier": 1.5}
    patched = await client.patch(
        "/api/users/profile/settings", json=settings, headers=bearer(token)
    )
    assert patched.json()["timerMultiplier"] == 1.5
    done = await play(client, bank, token)
    assert done["progression"] == {
        "xpEarned": 50 + done["totalCorrect"],
        "gemsEarned": 10 + done["totalCorrect"],
    }
    profile = (await client.get("/api/users/profile", headers=bearer(token))).json()
    assert (profile["gamesPlayed"], profile["totalXp"]) == (1, 50 + done["totalCorrect"])
    assert (await client.post("/auth/logout", headers=bearer(token))).status_code == 200
    assert (await client.get("/api/users/profile", headers=bearer(token))).status_code == 401


async def write_back(client: httpx.AsyncClient, server: LocalRedis, bank: QuestionBank) -> None:
    """Redis killed: a game in memory; Redis back (from its AOF): the game is written back."""
    before = await new_game(client)
    server.stop()
    refused = await client.get(f"/api/game/results/{before['sessionId']}")
    assert refused.status_code == 503  # and the failure starts the probe
    await health_until(client, "breaker", "open")
    game = await new_game(client)
    assert game["degraded"] is True
    first = await answer(client, answer_body(game, 0, bank))
    server.start(appendonly=True)
    await health_until(client, "fallbackSessions", 0)
    stored = await results(client, game["sessionId"])
    assert stored["degraded"] is False
    assert stored["answers"][0]["totalPoints"] == first["totalPoints"]


# --- 1. the least-privilege Redis user ------------------------------------------------------------


async def test_the_service_user_may_do_all_the_service_does(
    deployed: Deployed, start_api: type[ApiProcess], bank: QuestionBank
) -> None:
    storage = "redis-json" if deployed.server.json_module else "redis"
    api = start_api({"REDIS_URL": deployed.service_url(), **FAST_PROBE})
    api.start()
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
        health = (await client.get("/health")).json()
        assert (health["status"], health["storage"], health["redis"]) == (
            "ok",
            storage,
            "connected",
        )
        await play(client, bank)
        await accounts_and_progression(client, bank)
        await write_back(client, deployed.server, bank)  # SCRIPT LOAD after the restart too
    assert deployed.refusals() == []  # no command, key or script step was refused


def test_the_service_user_may_do_nothing_else(deployed: Deployed) -> None:
    refused = redis.exceptions.NoPermissionError
    with redis.Redis.from_url(deployed.service_url(), driver_info=None) as service:
        assert service.ping()
        for command in (
            ("FLUSHALL",),
            ("FLUSHDB",),
            ("KEYS", "*"),
            ("SCAN", "0"),
            ("CONFIG", "GET", "*"),
            ("CONFIG", "SET", "appendonly", "no"),
            ("SCRIPT", "FLUSH"),
            ("EVAL", "return 1", "0"),
            ("ACL", "LIST"),
            ("SHUTDOWN",),
            ("PUBLISH", "channel", "message"),
        ):
            with pytest.raises(refused):
                service.execute_command(*command)
        for outside in ("other", "sessions", "config:x", "user:1"):  # only its key patterns
            with pytest.raises(refused):
                service.get(outside)
            with pytest.raises(refused):
                service.set(outside, "1")
        # Inside a script Redis checks the caller's rights: the service's own script on a key
        # outside its patterns, and a script of anyone's calling a command it may not run.
        create = scripts.load("create_document")
        sha = service.script_load(create.source)
        with pytest.raises(refused):
            service.evalsha(sha, 1, "other", "{}", 0, "string")
        flush = service.script_load("return redis.call('FLUSHALL')")
        with pytest.raises(redis.exceptions.ResponseError, match="can't run this command"):
            service.evalsha(flush, 0)
        sneaky = service.script_load("return redis.call('GET', 'other')")
        with pytest.raises(redis.exceptions.ResponseError, match="can't access"):
            service.evalsha(sneaky, 0)
        assert service.evalsha(sha, 1, keys.session("x"), "{}", 0, "string") == 1
    with (
        plain_client(deployed.server.port) as anonymous,
        pytest.raises(redis.exceptions.AuthenticationError),
    ):
        anonymous.ping()  # the default user is disabled
    refusals = deployed.refusals()
    assert {"flushall", "keys", "config|get", "other"} <= {e["object"] for e in refusals}


def test_the_shipped_acl_file_refuses_to_load_until_passwords_are_set() -> None:
    for shipped in ACL_FILES.values():
        server = LocalRedis(json_module=shipped.name == "users.acl")
        started = subprocess.run(
            ["redis-server", "--port", str(server.port), "--aclfile", str(shipped)],
            capture_output=True,
            text=True,
            timeout=10,
        )
        shutil.rmtree(server.directory, ignore_errors=True)
        assert started.returncode != 0
        assert "password hash must be exactly 64 characters" in started.stdout


# --- 2. TLS to Redis ------------------------------------------------------------------------------


@dataclass
class Certificates:
    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    directory = tmp_path_factory.mktemp("tls")
    ca, other = trustme.CA(), trustme.CA()
    server, client = ca.issue_cert("127.0.0.1", "localhost"), ca.issue_cert("civic-trivia-game")
    files = Certificates(*(directory / name for name in ("ca", "other", "sc", "sk", "cc", "ck")))
    ca.cert_pem.write_to_path(str(files.ca))
    other.cert_pem.write_to_path(str(files.other_ca))
    server.cert_chain_pems[0].write_to_path(str(files.server_cert))
    server.private_key_pem.write_to_path(str(files.server_key))
    client.cert_chain_pems[0].write_to_path(str(files.client_cert))
    client.private_key_pem.write_to_path(str(files.client_key))
    return files


def tls_redis(files: Certificates, client_certificates: bool) -> LocalRedis:
    """A TLS-only redis-server (no plain port); with `client_certificates` it requires one."""
    server = LocalRedis()
    server.extra = (
        *("--port", "0", "--tls-port", str(server.port)),
        *("--tls-cert-file", str(files.server_cert), "--tls-key-file", str(files.server_key)),
        *("--tls-ca-cert-file", str(files.ca)),
        *("--tls-auth-clients", "yes" if client_certificates else "no"),
    )
    server.tls = {"ssl_ca_certs": str(files.ca)}
    if client_certificates:
        server.tls |= {"ssl_certfile": str(files.client_cert), "ssl_keyfile": str(files.client_key)}
    return server


@pytest.fixture
def tls_server(certificates: Certificates, request: pytest.FixtureRequest) -> Iterator[LocalRedis]:
    server = tls_redis(certificates, client_certificates=request.param)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


def tls_env(server: LocalRedis) -> dict[str, str]:
    """The settings for a TLS Redis. A TLS handshake on a loaded two-core machine can take
    longer than the default 0.25 s connect timeout, which sends games to memory: these tests
    are about TLS, so they allow 2 s."""
    names = {"ssl_ca_certs": "CA", "ssl_certfile": "CERT", "ssl_keyfile": "KEY"}
    assert server.tls is not None
    return {f"REDIS_{names[k]}_FILE": v for k, v in server.tls.items()} | {
        "REDIS_URL": server.url,
        "REDIS_TIMEOUT_SECONDS": "2",
    }


@pytest.mark.parametrize(
    "tls_server", [False, True], ids=["server-cert", "client-cert-too"], indirect=True
)
async def test_full_games_over_tls(
    tls_server: LocalRedis, start_api: type[ApiProcess], bank: QuestionBank
) -> None:
    with pytest.raises(redis.exceptions.ConnectionError):  # no plain port
        plain_client(tls_server.port).ping()
    api = start_api({**tls_env(tls_server), **FAST_PROBE})
    api.start()
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
        health = (await client.get("/health")).json()
        assert (health["status"], health["storage"], health["redis"]) == (
            "ok",
            "redis-json",
            "connected",
        )
        for _ in range(3):
            assert (await play(client, bank))["degraded"] is False
        await accounts_and_progression(client, bank)


# --- Redis refusing the configuration stops start-up with one line -------------------------------


@dataclass
class Misconfigured:
    server: LocalRedis
    env: dict[str, str]
    line: tuple[str, str]  # its start and end


def misconfigured(case: str, files: Certificates) -> Misconfigured:
    if case == "wrong CA":
        server = tls_redis(files, client_certificates=False)
        wrong = tls_env(server) | {"REDIS_CA_FILE": str(files.other_ca)}
        where = f"127.0.0.1:{server.port}"
        line = (f"Redis TLS: certificate verify failed for {where}: ", "(check REDIS_CA_FILE)")
        return Misconfigured(server, wrong, line)
    if case == "no client certificate":
        server = tls_redis(files, client_certificates=True)
        wrong = {"REDIS_URL": server.url, "REDIS_CA_FILE": str(files.ca)}
        line = (f"Redis TLS: 127.0.0.1:{server.port} refused this client: ", "REDIS_KEY_FILE)")
        return Misconfigured(server, wrong, line)
    setup = deployed_redis("redis-json")
    wrong = {"REDIS_URL": setup.service_url(password="not-the-password")}
    start = f"Redis authentication failed for 127.0.0.1:{setup.server.port}: invalid username"
    return Misconfigured(setup.server, wrong, (start, "(check REDIS_URL)"))


@pytest.mark.parametrize("case", ["wrong CA", "no client certificate", "wrong password"])
def test_redis_refusing_the_configuration_stops_start_up_with_one_line(
    case: str, certificates: Certificates
) -> None:
    setup = misconfigured(case, certificates)
    setup.server.start()
    try:
        started = time.monotonic()
        run = subprocess.run(
            server_command(SERVICE, free_port()),
            cwd=ROOT,
            env={**clean_environment(), **setup.env},
            capture_output=True,
            text=True,
            timeout=30,
        )
        elapsed = time.monotonic() - started
    finally:
        setup.server.stop()
        shutil.rmtree(setup.server.directory, ignore_errors=True)
    assert elapsed < 5, run.stderr  # not a hang, nor a degraded instance that waits on Redis
    assert run.returncode == 3, run.stderr  # uvicorn's "startup failed"
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 2, run.stderr
    ours = errors[0].removeprefix("ERROR:").strip()
    assert ours.startswith(setup.line[0]), ours
    assert ours.endswith(setup.line[1]), ours
    assert errors[1] == "ERROR:    Application startup failed. Exiting."
    assert "not-the-password" not in run.stderr


def clean_environment() -> dict[str, str]:
    """This process's environment without the service's own settings, and a test secret."""
    names = {name.upper() for name in Settings.__struct_fields__}
    return {**{k: v for k, v in os.environ.items() if k not in names}, "JWT_SECRET": TEST_SECRET}


async def test_a_misconfiguration_found_after_start_up_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis absent at start-up, then present but refusing the password: the instance serves
    already (degraded), so it logs the line once and keeps treating Redis as unreachable."""
    setup = deployed_redis("redis-json")
    settings = Settings(redis_url=setup.service_url(password="not-the-password"))
    link = RedisLink(connect(settings), settings, Metrics())
    try:
        assert await link.connect() is False  # absent: an outage
        setup.server.start()
        with caplog.at_level(logging.ERROR, logger="app.storage"):
            assert [await link.connect() for _ in range(3)] == [False] * 3
    finally:
        await link.close()
        setup.server.stop()
        shutil.rmtree(setup.server.directory, ignore_errors=True)
    lines = [r.getMessage() for r in caplog.records if r.name == "app.storage"]
    assert len(lines) == 1
    assert lines[0].startswith("Redis authentication failed")


# --- rollback: memory-only sessions ---------------------------------------------------------------


async def test_rollback_to_memory_sessions(start_api: type[ApiProcess], bank: QuestionBank) -> None:
    """USE_MEMORY_SESSIONS=true, the rollback plan: games without Redis (none runs here);
    accounts say that they need Redis."""
    api = start_api({"USE_MEMORY_SESSIONS": "true", "REDIS_URL": "redis://127.0.0.1:1/0"})
    api.start()
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
        health = (await client.get("/health")).json()
        assert (health["status"], health["storage"], health["redis"]) == (
            "ok",
            "memory",
            "not-configured",
        )
        for _ in range(2):
            done = await play(client, bank)
            assert done["degraded"] is False
        account = {"email": "rollback@example.org", "password": PASSWORD, "name": "Ada"}
        refused = await client.post("/auth/signup", json=account)
        assert refused.status_code == 503
        assert "USE_MEMORY_SESSIONS" in refused.json()["error"]
        metrics = (await client.get("/metrics", headers=METRICS)).text
        assert 'sessions_created_total{storage="memory"} 2.0' in metrics
