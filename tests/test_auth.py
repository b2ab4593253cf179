"""Accounts, tokens, ownership and progression through the HTTP API, on both Redis storages."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import httpx
import jwt
import msgspec
import pytest
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis

from app import keys
from app.accounts import ACCESS_CACHE_SECONDS, AccessCache, AccountStore
from app.errors import EmailTaken
from app.main import create_app
from app.metrics import Metrics
from app.models import StoredUser
from app.questions import QuestionBank
from app.redis_link import RedisLink, connect
from app.settings import Settings
from tests.conftest import PlayedClock, client_address, make_settings
from tests.play import Json, answer, answer_body, new_game, results
from tests.servers import TEST_SECRET

pytestmark = pytest.mark.parametrize("backend", ["redis-json", "redis"])

PASSWORD = "Correct-Horse-9"


@pytest.fixture
def sleeps() -> list[float]:
    """The delays the login slow-down asked for (recorded, not waited)."""
    return []


@pytest.fixture
def settings(request: pytest.FixtureRequest, backend: str) -> Settings:
    return make_settings(request, backend, login_lockout_seconds=3, login_slowdown_seconds=0.3)


class Clock:
    """The accounts' wall clock, moved on by hand (token times, the refresh grace window)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def api(
    settings: Settings, sleeps: list[float], clock: Clock
) -> AsyncIterator[httpx.AsyncClient]:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async with LifespanManager(
        create_app(settings, clock=clock, sleep=sleep, game_clock=PlayedClock())
    ) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=client_address())
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    """The backend's Redis, to look at or age keys directly."""
    client = Redis.from_url(settings.redis_url)
    yield client
    await client.aclose()


def new_email() -> str:
    return f"Player.{uuid.uuid4().hex[:10]}@Example.org "


async def signup(client: httpx.AsyncClient, email: str | None = None) -> Json:
    body = {"email": email or new_email(), "password": PASSWORD, "name": "Ada Player"}
    response = await client.post("/auth/signup", json=body)
    assert response.status_code == 201, response.text
    created: Json = response.json()
    return created


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    response = await client.post("/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    token: str = response.json()["accessToken"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_signup_login_profile(api: httpx.AsyncClient) -> None:
    email = new_email()
    created = await signup(api, email)
    assert created["user"]["email"] == email.strip().lower()
    assert set(created["user"]) == {"id", "email", "name"}
    response = await api.post("/auth/login", json={"email": email.upper(), "password": PASSWORD})
    assert response.status_code == 200
    assert "password" not in response.text.lower()
    cookie = response.headers["set-cookie"].lower()
    assert "refreshtoken=" in cookie
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    token = response.json()["accessToken"]
    profile = (await api.get("/api/users/profile", headers=bearer(token))).json()
    assert profile == {
        "name": "Ada Player",
        "email": email.strip().lower(),
        "totalXp": 0,
        "totalGems": 0,
        "gamesPlayed": 0,
        "bestScore": 0,
        "overallAccuracy": 0,
        "timerMultiplier": 1.0,
        "avatarUrl": None,
    }


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"email": "nope", "password": PASSWORD, "name": "Ada"}, {"email"}),
        ({"email": "a@b.org", "password": "short1A", "name": "Ada"}, {"password"}),
        ({"email": "a@b.org", "password": "alllowercase1", "name": "Ada"}, {"password"}),
        ({"email": "a@b.org", "password": "NoDigitsHere", "name": "A"}, {"password", "name"}),
        ({"email": "a@b.org", "password": PASSWORD, "name": "x" * 51}, {"name"}),
    ],
)
async def test_signup_validation(api: httpx.AsyncClient, body: Json, fields: set[str]) -> None:
    response = await api.post("/auth/signup", json=body)
    assert response.status_code == 400
    assert response.json()["error"]
    assert {e["field"] for e in response.json()["errors"]} == fields


async def test_signup_rejects_bad_shapes(api: httpx.AsyncClient) -> None:
    for body in (
        {"email": "a@b.org"},
        {"email": 1, "password": PASSWORD, "name": "Ada"},
        {"email": "a@b.org", "password": PASSWORD, "name": "Ada", "admin": True},
    ):
        response = await api.post("/auth/signup", json=body)
        assert response.status_code == 400
        assert response.json()["error"]


async def test_concurrent_duplicate_signups_make_one_account(api: httpx.AsyncClient) -> None:
    email = new_email()
    body = {"email": email, "password": PASSWORD, "name": "Twin"}
    responses = await asyncio.gather(*(api.post("/auth/signup", json=body) for _ in range(10)))
    assert sorted(r.status_code for r in responses) == [201] + [409] * 9
    assert all(r.json()["error"] for r in responses if r.status_code == 409)
    await login(api, email)


async def test_wrong_password_and_unknown_email_are_401(api: httpx.AsyncClient) -> None:
    email = new_email()
    await signup(api, email)
    for body in (
        {"email": email, "password": "Wrong-pass-1"},
        {"email": new_email(), "password": PASSWORD},
    ):
        response = await api.post("/auth/login", json=body)
        assert response.status_code == 401
        assert response.json()["error"] == "Wrong email or password"


async def test_login_throttling_slows_then_refuses_then_expires(
    api: httpx.AsyncClient, sleeps: list[float], redis: Redis
) -> None:
    email = new_email()
    await signup(api, email)
    wrong = {"email": email, "password": "Wrong-pass-1"}
    for _ in range(5):
        assert (await api.post("/auth/login", json=wrong)).status_code == 401
    assert sleeps == pytest.approx([0.3, 0.6])  # the 4th failure waited 0.3 s, the 5th 0.6 s
    refused = await api.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert refused.status_code == 429
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 3
    await redis.pexpire(keys.login_attempts(email.strip().lower()), 0)  # the window ends
    await login(api, email)


async def test_refresh_rotates_and_reuse_revokes_the_family(
    api: httpx.AsyncClient, clock: Clock, settings: Settings
) -> None:
    email = new_email()
    await signup(api, email)
    await login(api, email)
    first_cookie = api.cookies["refreshToken"]
    rotated = await api.post("/auth/refresh")
    assert rotated.status_code == 200
    assert rotated.json()["user"]["email"] == email.strip().lower()
    second_cookie = api.cookies["refreshToken"]
    assert second_cookie != first_cookie
    assert (
        await api.get("/api/users/profile", headers=bearer(rotated.json()["accessToken"]))
    ).status_code == 200

    clock.now += settings.refresh_reuse_grace_seconds + 1
    api.cookies.set("refreshToken", first_cookie)  # an attacker replays the used token, late
    reused = await api.post("/auth/refresh")
    assert reused.status_code == 401
    assert "reused" in reused.json()["error"]
    api.cookies.set("refreshToken", second_cookie)  # the legitimate one is revoked with it
    assert (await api.post("/auth/refresh")).status_code == 401


async def test_two_refreshes_at_once_share_one_successor(api: httpx.AsyncClient) -> None:
    """A client that refreshes twice at the same moment with the same cookie stays logged in:
    within the grace window the used token gets the family's live token again."""
    email = new_email()
    await signup(api, email)
    await login(api, email)
    cookie = api.cookies["refreshToken"]
    api.cookies.clear()
    sent = {"cookie": f"refreshToken={cookie}"}
    both = await asyncio.gather(*(api.post("/auth/refresh", headers=sent) for _ in range(2)))
    assert [r.status_code for r in both] == [200, 200]
    successors = {
        jwt.decode(r.cookies["refreshToken"], options={"verify_signature": False})["jti"]
        for r in both
    }
    assert len(successors) == 1  # the same successor token id for both
    for response in both:  # and both sessions keep working
        assert (
            await api.get("/api/users/profile", headers=bearer(response.json()["accessToken"]))
        ).status_code == 200
    again = await api.post(
        "/auth/refresh", headers={"cookie": f"refreshToken={both[0].cookies['refreshToken']}"}
    )
    assert again.status_code == 200


async def test_refresh_without_or_with_bad_cookie(api: httpx.AsyncClient) -> None:
    assert (await api.post("/auth/refresh")).status_code == 401
    api.cookies.set("refreshToken", "not-a-jwt")
    response = await api.post("/auth/refresh")
    assert response.status_code == 401
    assert "refreshToken=" in response.headers["set-cookie"]  # cleared


async def test_logout_revokes_access_and_refresh(api: httpx.AsyncClient) -> None:
    email = new_email()
    await signup(api, email)
    token = await login(api, email)
    assert (await api.post("/auth/logout", headers=bearer(token))).status_code == 200
    refused = await api.get("/api/users/profile", headers=bearer(token))
    assert refused.status_code == 401
    assert "revoked" in refused.json()["error"]
    assert (await api.post("/auth/logout", headers=bearer(token))).status_code == 401
    assert (await api.post("/auth/refresh")).status_code == 401


async def test_expired_tampered_and_wrong_kind_tokens(api: httpx.AsyncClient) -> None:
    created = await signup(api)
    user_id = created["user"]["id"]
    now = int(time.time())
    expired = jwt.encode(
        {
            "sub": user_id,
            "jti": "x",
            "fam": "f",
            "typ": "access",
            "iat": now - 100,
            "exp": now - 10,
        },
        TEST_SECRET,
        algorithm="HS256",
    )
    forged = jwt.encode(
        {"sub": user_id, "jti": "x", "fam": "f", "typ": "access", "iat": now, "exp": now + 60},
        "another-secret-of-the-same-length-as-the-real-one",
        algorithm="HS256",
    )
    token = await login(api, created["user"]["email"])
    tampered = token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb")
    refresh_as_access = api.cookies["refreshToken"]
    for bad in (expired, forged, tampered, refresh_as_access, "garbage"):
        response = await api.get("/api/users/profile", headers=bearer(bad))
        assert response.status_code == 401, bad
        assert response.json()["error"]
    assert (await api.get("/api/users/profile")).status_code == 401


async def test_settings(api: httpx.AsyncClient) -> None:
    created = await signup(api)
    token = await login(api, created["user"]["email"])
    updated = await api.patch(
        "/api/users/profile/settings", json={"timerMultiplier": 1.5}, headers=bearer(token)
    )
    assert updated.status_code == 200
    assert updated.json()["timerMultiplier"] == 1.5
    for bad in ({"timerMultiplier": 3}, {"timerMultiplier": "2"}, {}, {"x": 1}):
        response = await api.patch("/api/users/profile/settings", json=bad, headers=bearer(token))
        assert response.status_code == 400, bad
    assert (
        await api.patch("/api/users/profile/settings", json={"timerMultiplier": 2})
    ).status_code == 401
    profile = (await api.get("/api/users/profile", headers=bearer(token))).json()
    assert profile["timerMultiplier"] == 1.5


async def test_timer_multiplier_stretches_limits(
    api: httpx.AsyncClient, bank: QuestionBank
) -> None:
    created = await signup(api)
    token = await login(api, created["user"]["email"])
    await api.patch(
        "/api/users/profile/settings", json={"timerMultiplier": 2.0}, headers=bearer(token)
    )
    game = await new_game_as(api, token)
    # 40 s left of a 50 s (2 x 25) timer: not over the limit, and fast enough for the top bonus
    reply = await api.post(
        "/api/game/answer", json=answer_body(game, 0, bank, remaining=40), headers=bearer(token)
    )
    assert (reply.json()["flagged"], reply.json()["speedBonus"]) == (False, 50)


async def new_game_as(client: httpx.AsyncClient, token: str | None) -> Json:
    headers = bearer(token) if token else {}
    response = await client.post("/api/game/session", headers=headers)
    assert response.status_code == 201, response.text
    game: Json = response.json()
    return game


async def test_owned_sessions_are_private(api: httpx.AsyncClient, bank: QuestionBank) -> None:
    alice = await signup(api)
    alice_token = await login(api, alice["user"]["email"])
    bob = await signup(api)
    bob_token = await login(api, bob["user"]["email"])
    api.cookies.clear()
    game = await new_game_as(api, alice_token)
    body = answer_body(game, 0, bank)
    sid = game["sessionId"]
    for headers in (bearer(bob_token), {}):
        refused = await api.post("/api/game/answer", json=body, headers=headers)
        assert refused.status_code == 403
        assert refused.json()["error"]
        assert (await api.get(f"/api/game/results/{sid}", headers=headers)).status_code == 403
    assert (
        await api.post("/api/game/answer", json=body, headers=bearer(alice_token))
    ).status_code == 200
    mine = await api.get(f"/api/game/results/{sid}", headers=bearer(alice_token))
    assert len(mine.json()["answers"]) == 1
    anonymous = await new_game(api)  # anonymous games stay open to whoever holds the id
    await answer(api, answer_body(anonymous, 0, bank))
    ok = await api.post(
        "/api/game/answer", json=answer_body(anonymous, 1, bank), headers=bearer(bob_token)
    )
    assert ok.status_code == 200


async def test_web_client_flow(api: httpx.AsyncClient, bank: QuestionBank) -> None:
    """Refresh on page load, log in, game calls with cookies only, refresh once on 401."""
    assert (await api.post("/auth/refresh")).status_code == 401  # page load, logged out
    email = new_email()
    await signup(api, email)
    await login(api, email)
    cookie_only = await api.post("/api/game/session")
    assert cookie_only.status_code == 401
    token = (await api.post("/auth/refresh")).json()["accessToken"]
    game = await new_game_as(api, token)
    assert (
        await api.post("/api/game/answer", json=answer_body(game, 0, bank), headers=bearer(token))
    ).status_code == 200


async def play_to_the_end(
    client: httpx.AsyncClient, game: Json, bank: QuestionBank, token: str, count: int = 10
) -> None:
    for i in range(count):
        reply = await client.post(
            "/api/game/answer",
            json=answer_body(game, i, bank, correct=i % 2 == 0),
            headers=bearer(token),
        )
        assert reply.status_code == 200, reply.text


async def test_progression_exactly_once(api: httpx.AsyncClient, bank: QuestionBank) -> None:
    created = await signup(api)
    token = await login(api, created["user"]["email"])
    game = await new_game_as(api, token)
    await play_to_the_end(api, game, bank, token, count=9)
    partial = await api.get(f"/api/game/results/{game['sessionId']}", headers=bearer(token))
    assert partial.json()["progression"] is None  # incomplete: nothing awarded
    await play_to_the_end(api, game, bank, token)
    calls = await asyncio.gather(
        *(
            api.get(f"/api/game/results/{game['sessionId']}", headers=bearer(token))
            for _ in range(20)
        )
    )
    bodies = [c.json() for c in calls]
    correct = bodies[0]["totalCorrect"]
    assert {(b["progression"]["xpEarned"], b["progression"]["gemsEarned"]) for b in bodies} == {
        (50 + correct, 10 + correct)
    }
    profile = (await api.get("/api/users/profile", headers=bearer(token))).json()
    assert (profile["totalXp"], profile["totalGems"], profile["gamesPlayed"]) == (
        50 + correct,
        10 + correct,
        1,
    )
    assert profile["bestScore"] == bodies[0]["totalScore"]
    assert profile["overallAccuracy"] == round(100 * correct / 10)


async def test_anonymous_games_award_nothing(api: httpx.AsyncClient, bank: QuestionBank) -> None:
    game = await new_game(api)
    for i in range(10):
        await answer(api, answer_body(game, i, bank))
    assert (await results(api, game["sessionId"]))["progression"] is None


def test_production_refuses_the_development_secret(backend: str) -> None:
    with pytest.raises(SystemExit, match="JWT_SECRET"):
        create_app(Settings(environment="production", cookie_secure=True))
    with pytest.raises(SystemExit, match="COOKIE_SECURE"):
        create_app(Settings(environment="production", jwt_secret=TEST_SECRET))
    create_app(Settings(environment="production", jwt_secret=TEST_SECRET, cookie_secure=True))


@pytest.mark.parametrize("chosen", [1, 10, 20])
async def test_games_with_chosen_questions_earn_nothing(
    api: httpx.AsyncClient, bank: QuestionBank, chosen: int
) -> None:
    """Practice games (the client chose the questions) never award XP, gems or best score:
    one-question games farmed 51 XP each, and 20-question games inflated the best score."""
    email = new_email()
    await signup(api, email)
    token = await login(api, email)
    ids = [q.id for q in bank.all()[:chosen]]
    game = (
        await api.post("/api/game/session", json={"questionIds": ids}, headers=bearer(token))
    ).json()
    for i in range(chosen):
        body = answer_body(game, i, bank, remaining=20)
        assert (
            await api.post("/api/game/answer", json=body, headers=bearer(token))
        ).status_code == 200
    url = f"/api/game/results/{game['sessionId']}"
    done = (await api.get(url, headers=bearer(token))).json()
    assert done["complete"] is True
    assert done["progression"] is None
    profile = (await api.get("/api/users/profile", headers=bearer(token))).json()
    assert (profile["totalXp"], profile["gamesPlayed"], profile["bestScore"]) == (0, 0, 0)


def test_the_access_cache_trusts_only_while_subscribed_and_briefly(backend: str) -> None:
    now = [0.0]
    cache = AccessCache(clock=lambda: now[0])
    cache.put("f1", "u1", 1.5, cache.generation)
    assert cache.get("f1", "u1") is None  # not subscribed: nothing cached
    cache.subscribed()
    cache.put("f1", "u1", 1.5, cache.generation)
    assert cache.get("f1", "u1") == 1.5
    assert cache.get("f1", "someone else") is None
    now[0] += ACCESS_CACHE_SECONDS + 0.01
    assert cache.get("f1", "u1") is None  # a lost invalidation is trusted this long at most
    reading = cache.generation
    cache.forget(b"family:f9")  # an invalidation arrives while a check is being read
    cache.put("f1", "u1", 1.5, reading)
    assert cache.get("f1", "u1") is None  # that read may be stale: not kept
    cache.put("f1", "u1", 1.5, cache.generation)
    cache.put("f2", "u1", 1.5, cache.generation)
    cache.forget(b"user:u1")
    assert (cache.get("f1", "u1"), cache.get("f2", "u1")) == (None, None)
    cache.put("f1", "u1", 2.0, cache.generation)
    cache.lost()  # the subscription ended: everything goes, nothing is trusted
    assert cache.get("f1", "u1") is None


async def test_a_logout_and_a_settings_change_reach_another_instance(
    settings: Settings, api: httpx.AsyncClient, clock: Clock
) -> None:
    """Instance b keeps what it read of a login for a few seconds; the logout on instance a is
    published, and b refuses the token as soon as the message arrives."""
    async with LifespanManager(create_app(settings, clock=clock)) as other:
        transport = httpx.ASGITransport(app=other.app, client=client_address())
        async with httpx.AsyncClient(transport=transport, base_url="http://b") as b:
            email = new_email()
            await signup(api, email)
            token = await login(api, email)
            await wait_until_listening(b)
            assert (await b.get("/api/users/profile", headers=bearer(token))).status_code == 200
            game = (await b.post("/api/game/session", headers=bearer(token))).json()
            changed = await api.patch(
                "/api/users/profile/settings", json={"timerMultiplier": 2.0}, headers=bearer(token)
            )
            assert changed.status_code == 200
            await within_a_second(lambda: final_limit_is(b, token, game, 50 * 2.0))
            assert (await api.post("/auth/logout", headers=bearer(token))).status_code == 200
            await within_a_second(lambda: refused(b, token))


async def wait_until_listening(client: httpx.AsyncClient) -> None:
    """The other app subscribes in the background just after start-up."""
    await asyncio.sleep(0.3)


async def refused(client: httpx.AsyncClient, token: str) -> bool:
    return (await client.get("/api/users/profile", headers=bearer(token))).status_code == 401


async def final_limit_is(client: httpx.AsyncClient, token: str, game: Json, limit: float) -> bool:
    state = await client.get(f"/api/game/session/{game['sessionId']}", headers=bearer(token))
    return bool(state.json()["finalQuestionSeconds"] == limit)


async def within_a_second(condition: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + 1
    while not await condition():
        assert time.monotonic() < deadline, "not seen by the other instance within 1 s"
        await asyncio.sleep(0.02)


async def test_a_sign_up_step_sent_twice_is_one_sign_up(settings: Settings) -> None:
    """redis-py sends a batch again when its reply timed out, though Redis may have applied it:
    a sign-up whose steps all arrive twice is still one player, with the email pointing at it;
    another player's sign-up for that email is still refused and leaves nothing behind."""
    link = RedisLink(connect(settings), settings, Metrics())
    assert await link.connect()
    accounts = AccountStore(link)
    email = new_email().strip().lower()
    user = StoredUser(
        id=str(uuid.uuid4()),
        email=email,
        name="Ada",
        password_hash="x",
        created_at=datetime.now(UTC),
    )
    try:
        await accounts.create_user(user)
        await accounts.create_user(user)  # every step again, as after a lost reply
        assert (await accounts.user_by_email(email)) == user
        rival = msgspec.structs.replace(user, id=str(uuid.uuid4()), name="Eve")
        with pytest.raises(EmailTaken):
            await accounts.create_user(rival)
        assert await accounts.user(rival.id) is None
        assert (await accounts.user_by_email(email)) == user
    finally:
        await link.close()
