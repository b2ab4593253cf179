"""What a probe of the running service found, each as a test: limits that hold under
concurrency, rewards that cannot be farmed, a timer the server's clock bounds, secrets nobody
else knows, bounded work, revocation that reaches every token of a login."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import jwt
import pytest
from argon2 import PasswordHasher
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis

from app import keys
from app.auth import _key_id
from app.main import create_app
from app.questions import QuestionBank
from app.settings import KNOWN_SECRETS, Settings
from tests.conftest import METRICS, client_address, make_settings
from tests.play import Json, answer_body
from tests.servers import TEST_SECRET, ApiProcess

PASSWORD = "Correct-Horse-9"
OLD_SECRET = "previous-secret-" + "fedcba9876543210" * 2


@pytest.fixture
def backend() -> str:
    return "redis-json"


@pytest.fixture
def settings(request: pytest.FixtureRequest, backend: str) -> Settings:
    return make_settings(
        request,
        backend,
        creates_per_client=3,
        signups_per_client=2,
        login_max_failures_per_client=6,
        jwt_previous_secrets=OLD_SECRET,
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[LifespanManager]:
    """The app on the real clock: the attack on the timer is about real time."""
    async with LifespanManager(create_app(settings)) as manager:
        yield manager


def client(app: LifespanManager, address: str | None = None) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(
        app=app.app, client=(address, 4000) if address else client_address()
    )
    return httpx.AsyncClient(transport=transport, base_url="http://test")


@pytest.fixture
async def api(app: LifespanManager) -> AsyncIterator[httpx.AsyncClient]:
    async with client(app) as opened:
        yield opened


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    opened = Redis.from_url(settings.redis_url)
    yield opened
    await opened.aclose()


def new_email() -> str:
    return f"probe.{uuid.uuid4().hex[:10]}@example.org"


async def account(app: LifespanManager, email: str | None = None) -> tuple[str, str]:
    """A new player (signed up from an address of its own); (email, access token)."""
    email = email or new_email()
    async with client(app) as own:
        body = {"email": email, "password": PASSWORD, "name": "Probe"}
        assert (await own.post("/auth/signup", json=body)).status_code == 201
        login = await own.post("/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        return email, login.json()["accessToken"]


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


# --- 3. knowing the answer, at full speed --------------------------------------------------------


async def test_ten_answers_within_milliseconds_do_not_score_the_maximum(
    api: httpx.AsyncClient, bank: QuestionBank
) -> None:
    game = (await api.post("/api/game/session")).json()
    replies: list[Json] = []
    for i in range(10):  # each right, each claiming 0.5 s, all within milliseconds
        body = answer_body(game, i, bank, remaining=24.5 if i < 9 else 49.5)
        replies.append((await api.post("/api/game/answer", json=body)).json())
    with_bonus = [r for r in replies[:9] if r["speedBonus"] > 0]
    assert len(with_bonus) <= 2  # 1 s of slack: two claims of 0.5 s fit, no more
    assert all(r["flagged"] for r in replies[len(with_bonus) :])
    results = (await api.get(f"/api/game/results/{game['sessionId']}")).json()
    assert results["totalScore"] < 9 * 150


# --- 4. secrets ----------------------------------------------------------------------------------


@pytest.mark.parametrize("secret", ["", "too-short", *KNOWN_SECRETS])
def test_start_up_refuses_a_missing_short_or_published_secret(
    settings: Settings, secret: str
) -> None:
    with pytest.raises(SystemExit, match="JWT_SECRET"):
        create_app(Settings(redis_url=settings.redis_url, jwt_secret=secret))


def forged(secret: str, user_id: str, kid: str | None = None, **claims: object) -> str:
    now = int(time.time())
    body = {"sub": user_id, "jti": "x", "fam": "f", "typ": "access", "iat": now, "exp": now + 60}
    headers = {"kid": kid or _key_id(secret)}
    return jwt.encode({**body, **claims}, secret, algorithm="HS256", headers=headers)


async def test_a_token_with_an_absurd_expiry_is_refused_not_an_error(
    app: LifespanManager, api: httpx.AsyncClient
) -> None:
    _, token = await account(app)
    user_id = jwt.decode(token, options={"verify_signature": False})["sub"]
    absurd = forged(TEST_SECRET, user_id, exp=10**300)
    for call in (
        api.post("/auth/logout", headers=bearer(absurd)),
        api.get("/api/users/profile", headers=bearer(absurd)),
    ):
        assert (await call).status_code == 401


async def test_rotation_previous_secret_verifies_removed_secret_does_not(
    app: LifespanManager, api: httpx.AsyncClient
) -> None:
    email, token = await account(app)
    claims = jwt.decode(token, options={"verify_signature": False})
    # A token signed before the rotation with the previous secret, of a live login: accepted.
    old = jwt.encode(claims, OLD_SECRET, algorithm="HS256", headers={"kid": _key_id(OLD_SECRET)})
    assert (await api.get("/api/users/profile", headers=bearer(old))).status_code == 200
    # Signed with a secret no longer listed (removed after the rotation): refused.
    gone = "removed-secret-" + "0123456789abcdef" * 2
    removed = jwt.encode(claims, gone, algorithm="HS256", headers={"kid": _key_id(gone)})
    assert (await api.get("/api/users/profile", headers=bearer(removed))).status_code == 401
    # A token claiming the current secret's id but signed with another: refused.
    lying = jwt.encode(claims, gone, algorithm="HS256", headers={"kid": _key_id(TEST_SECRET)})
    assert (await api.get("/api/users/profile", headers=bearer(lying))).status_code == 401
    # New tokens are signed with the current secret.
    assert jwt.get_unverified_header(token)["kid"] == _key_id(TEST_SECRET)
    assert email


# --- 6. unbounded creation, and a Redis eviction policy that never evicts a session --------------


async def test_creates_per_client_are_limited_and_refused_ones_leave_nothing(
    app: LifespanManager, redis: Redis
) -> None:
    async with client(app) as flooder, client(app) as other:
        before = await session_keys(redis)
        made = [await flooder.post("/api/game/session") for _ in range(4)]
        assert [m.status_code for m in made] == [201, 201, 201, 429]
        assert int(made[3].headers["retry-after"]) >= 1
        assert "new games" in made[3].json()["error"]
        assert await session_keys(redis) == before + 3  # the refused one was discarded
        assert (await other.post("/api/game/session")).status_code == 201  # others still play


async def session_keys(redis: Redis) -> int:
    return len([key async for key in redis.scan_iter("session:*", count=1000)])


async def test_signups_per_client_are_limited_before_hashing(app: LifespanManager) -> None:
    async with client(app) as flooder:
        bodies = [{"email": new_email(), "password": PASSWORD, "name": "Flood"} for _ in range(3)]
        made = [await flooder.post("/auth/signup", json=body) for body in bodies]
    assert [m.status_code for m in made] == [201, 201, 429]
    assert made[2].headers["retry-after"]


# --- 7, 11, 12, 13. bodies, content types, look-alike emails, caching ----------------------------


@pytest.mark.parametrize(
    "route", ["/api/game/session", "/api/game/answer", "/auth/signup", "/auth/login"]
)
async def test_invalid_utf8_is_a_400(api: httpx.AsyncClient, route: str) -> None:
    response = await api.post(
        route, content=b'{"email": "\xff\xfe"}', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "Invalid request body" in response.json()["error"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
@pytest.mark.parametrize("route", ["/auth/signup", "/auth/login", "/api/game/answer"])
async def test_json_routes_refuse_other_content_types(
    api: httpx.AsyncClient, route: str, content_type: str
) -> None:
    body = b'{"email": "a@b.org", "password": "Correct-Horse-9", "name": "Ada"}'
    response = await api.post(route, content=body, headers={"content-type": content_type})
    assert response.status_code == 415
    assert "application/json" in response.json()["error"]


async def test_look_alike_emails_do_not_make_separate_accounts(app: LifespanManager) -> None:
    local = f"alice{uuid.uuid4().hex[:8]}"
    email = f"{local}@example.org"
    await account(app, email)
    async with client(app) as other:
        for invisible in (f"{local}\u200b@example.org", f"{local}@example.org\x00"):
            body = {"email": invisible, "password": PASSWORD, "name": "Mallory"}
            refused = await other.post("/auth/signup", json=body)
            assert refused.status_code == 400
            assert refused.json()["errors"][0]["field"] == "email"
        fullwidth = "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in local)
        body = {"email": f"{fullwidth}@example.org", "password": PASSWORD, "name": "Mallory"}
        assert (await other.post("/auth/signup", json=body)).status_code == 409
        login = {"email": f"{fullwidth.upper()}@EXAMPLE.ORG", "password": PASSWORD}
        assert (await other.post("/auth/login", json=login)).status_code == 200


async def test_token_responses_are_never_cached(
    app: LifespanManager, api: httpx.AsyncClient
) -> None:
    email, _ = await account(app)
    login = await api.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert login.headers["cache-control"] == "no-store"
    refreshed = await api.post("/auth/refresh")
    assert refreshed.status_code == 200
    assert refreshed.headers["cache-control"] == "no-store"


# --- 8. access tokens end with their login -------------------------------------------------------


async def test_logout_revokes_every_access_token_of_the_login(
    app: LifespanManager, api: httpx.AsyncClient
) -> None:
    email, _ = await account(app)
    first = (await api.post("/auth/login", json={"email": email, "password": PASSWORD})).json()
    second = (await api.post("/auth/refresh")).json()
    assert (
        await api.post("/auth/logout", headers=bearer(second["accessToken"]))
    ).status_code == 200
    refused = await api.get("/api/users/profile", headers=bearer(first["accessToken"]))
    assert refused.status_code == 401


async def test_reuse_detection_revokes_the_family_access_tokens(
    app: LifespanManager, api: httpx.AsyncClient, redis: Redis
) -> None:
    email, _ = await account(app)
    token = (await api.post("/auth/login", json={"email": email, "password": PASSWORD})).json()
    family = jwt.decode(token["accessToken"], options={"verify_signature": False})["fam"]
    await redis.delete(keys.refresh(family))  # what reuse detection does to the family
    refused = await api.get("/api/users/profile", headers=bearer(token["accessToken"]))
    assert refused.status_code == 401


# --- 10. per-client limits beside the per-email one ----------------------------------------------


async def test_an_attacker_does_not_lock_the_owner_out(app: LifespanManager) -> None:
    email, _ = await account(app)
    async with client(app, "203.0.113.7") as attacker, client(app, "198.51.100.9") as owner:
        wrong = {"email": email, "password": "Wrong-pass-1"}
        statuses = [(await attacker.post("/auth/login", json=wrong)).status_code for _ in range(6)]
        assert statuses == [401] * 5 + [429]
        right = {"email": email, "password": PASSWORD}
        assert (await owner.post("/auth/login", json=right)).status_code == 200


async def test_one_guess_sprayed_over_many_accounts_is_limited(app: LifespanManager) -> None:
    async with client(app) as sprayer:
        statuses = [
            (
                await sprayer.post(
                    "/auth/login", json={"email": new_email(), "password": "Summer-2026"}
                )
            ).status_code
            for _ in range(7)
        ]
    assert statuses == [401] * 6 + [429]  # LOGIN_MAX_FAILURES_PER_CLIENT=6 in this module


# --- 15. metrics ---------------------------------------------------------------------------------


async def test_metrics_need_the_token(api: httpx.AsyncClient, settings: Settings) -> None:
    assert (await api.get("/metrics")).status_code == 401
    assert (await api.get("/metrics", headers={"authorization": "Bearer wrong"})).status_code == 401
    assert (await api.get("/metrics", headers=METRICS)).status_code == 200
    off = Settings(redis_url=settings.redis_url, jwt_secret=TEST_SECRET)
    async with LifespanManager(create_app(off)) as manager, client(manager) as plain:
        assert (await plain.get("/metrics")).status_code == 404


async def test_a_login_refused_as_busy_is_not_an_attempt(request: pytest.FixtureRequest) -> None:
    """A login refused because hashing is busy (503) checked no password: retrying it through a
    flood must not use up the player's attempts and lock them out (429)."""
    settings = make_settings(request, "redis-json", password_hash_queue=0)
    async with LifespanManager(create_app(settings)) as app, client(app) as http:
        email, _ = await account(app)
        busy = 0
        while busy <= settings.login_max_failures:  # more refusals than attempts allowed
            hashing = asyncio.create_task(  # holds the one hashing slot for a hash's time
                http.post("/auth/login", json={"email": new_email(), "password": PASSWORD})
            )
            await asyncio.sleep(0.005)
            real = await http.post("/auth/login", json={"email": email, "password": PASSWORD})
            busy += real.status_code == 503
            assert real.status_code in (200, 503), real.text
            await hashing
        real = await http.post("/auth/login", json={"email": email, "password": PASSWORD})
        assert real.status_code == 200, real.text


# --- 1 and 9. concurrency and floods, against a real process -------------------------------------


@pytest.fixture
def server(redis_url: str) -> Iterator[ApiProcess]:
    process = ApiProcess({"REDIS_URL": redis_url, "LOGIN_MAX_FAILURES_PER_CLIENT": "1000000"})
    process.start()
    yield process
    process.kill()


@pytest.mark.processes
async def test_parallel_wrong_logins_check_no_more_guesses_than_allowed(
    server: ApiProcess,
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        email = new_email()
        body = {"email": email, "password": PASSWORD, "name": "Target"}
        assert (await http.post("/auth/signup", json=body)).status_code == 201
        wrong = {"email": email, "password": "Wrong-pass-1"}
        burst = await asyncio.gather(*(http.post("/auth/login", json=wrong) for _ in range(100)))
        statuses = [r.status_code for r in burst]
        assert statuses.count(401) == 5  # LOGIN_MAX_FAILURES: the only guesses checked
        assert statuses.count(429) == 95
        # The right password after a burst of 40: refused too, the window is used up.
        right = {"email": email, "password": PASSWORD}
        assert (await http.post("/auth/login", json=right)).status_code == 429


@pytest.mark.processes
async def test_a_login_flood_does_not_starve_a_real_player(server: ApiProcess) -> None:
    """200 logins with random emails at once (the probe stretched a real login to 17.8 s): the
    hashing work waiting is bounded, so the excess is refused at once (503) and a real player's
    login, retried on 503 like any client would, gets through within a few hashes' time."""
    many = httpx.Limits(max_connections=300)
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=60, limits=many) as attacker,
        httpx.AsyncClient(base_url=server.url, timeout=60) as http,
    ):
        email = new_email()
        body = {"email": email, "password": PASSWORD, "name": "Real"}
        assert (await http.post("/auth/signup", json=body)).status_code == 201
        flood = [
            asyncio.create_task(
                attacker.post("/auth/login", json={"email": new_email(), "password": PASSWORD})
            )
            for _ in range(200)
        ]
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        while True:
            real = await http.post("/auth/login", json={"email": email, "password": PASSWORD})
            if real.status_code != 503:
                break
            await asyncio.sleep(float(real.headers["retry-after"]) / 10)
        waited = time.perf_counter() - started
        statuses = [r.status_code for r in await asyncio.gather(*flood)]
    assert real.status_code == 200
    assert statuses.count(503) > 100  # refused at once, not queued
    assert set(statuses) <= {401, 503}
    # The hashes admitted (PASSWORD_HASH_CONCURRENCY running, PASSWORD_HASH_QUEUE waiting) are
    # all the real login may wait for, never the 200: measured against this machine's own hash
    # time, with room for the flood's HTTP and Redis work.
    defaults = Settings(jwt_secret=TEST_SECRET)
    admitted = defaults.password_hash_concurrency + defaults.password_hash_queue
    assert waited < 3 * admitted / defaults.password_hash_concurrency * hash_seconds() + 1


def hash_seconds() -> float:
    hasher = PasswordHasher()
    started = time.perf_counter()
    for _ in range(3):
        hasher.hash(PASSWORD)
    return (time.perf_counter() - started) / 3
