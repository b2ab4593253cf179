"""The HTTP API end to end, on every store: shapes, status codes, rules and bad input."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from app.questions import QuestionBank
from app.settings import Settings
from tests.conftest import METRICS
from tests.play import Json, answer, answer_body, new_game, results

PUBLIC_FIELDS = {"id", "text", "options", "difficulty", "topic", "topicCategory"}
RESULT_FIELDS = {
    "questionId",
    "correct",
    "correctAnswer",
    "explanation",
    "basePoints",
    "speedBonus",
    "totalPoints",
    "flagged",
}


async def test_create_session_shape(api: httpx.AsyncClient) -> None:
    bodies: list[Json | None] = [None, {}]
    for body in bodies:
        game = await new_game(api, body)
        assert uuid.UUID(game["sessionId"]).version == 4
        assert game["degraded"] is False
        assert len(game["questions"]) == 10
        assert len({q["id"] for q in game["questions"]}) == 10
        for question in game["questions"]:
            assert set(question) == PUBLIC_FIELDS
            assert len(question["options"]) == 4


async def test_create_with_chosen_questions_keeps_order(
    api: httpx.AsyncClient, bank: QuestionBank
) -> None:
    ids = [q.id for q in bank.all()[:5]][::-1]
    game = await new_game(api, {"questionIds": ids})
    assert [q["id"] for q in game["questions"]] == ids


@pytest.mark.parametrize(
    "body",
    [
        {"questionIds": []},
        {"questionIds": ["q001", "q001"]},
        {"questionIds": ["no-such-question"]},
        {"questionIds": [f"q{i:03d}" for i in range(1, 22)]},
        {"questionIds": "q001"},
        {"questionIds": [1, 2]},
        {"questions": ["q001"]},
        [],
    ],
)
async def test_create_rejects_bad_input(api: httpx.AsyncClient, body: Any) -> None:
    response = await api.post("/api/game/session", json=body)
    assert response.status_code == 400
    assert response.json()["error"]


async def test_play_full_game(api: httpx.AsyncClient, bank: QuestionBank) -> None:
    game = await new_game(api)
    sid = game["sessionId"]
    first = await answer(api, answer_body(game, 0, bank, remaining=20))
    assert set(first) == RESULT_FIELDS
    assert (first["correct"], first["basePoints"], first["speedBonus"], first["totalPoints"]) == (
        True,
        100,
        50,
        150,
    )
    assert first["explanation"]
    assert first["correctAnswer"] == bank.get(first["questionId"]).correct_answer
    tiers = [(10, True, 125), (2, True, 100), (20, False, 0), (30, True, 150)]
    for i, (remaining, correct, points) in enumerate((tiers * 2)[:7], start=1):
        result = await answer(api, answer_body(game, i, bank, correct=correct, remaining=remaining))
        assert result["totalPoints"] == points
    timeout = answer_body(game, 8, bank, remaining=0)
    timeout["selectedOption"] = None
    assert (await answer(api, timeout))["totalPoints"] == 0
    partial = await results(api, sid)
    assert partial["complete"] is False
    assert partial["progression"] is None
    score = partial["totalScore"]
    final = await answer(
        api, answer_body(game, 9, bank, correct=False, remaining=40, wager=score // 2)
    )
    assert (final["correct"], final["totalPoints"], final["wager"]) == (
        False,
        -(score // 2),
        score // 2,
    )
    assert (final["basePoints"], final["speedBonus"]) == (0, 0)

    done = await results(api, sid)
    assert done["complete"] is True
    assert [a["questionIndex"] for a in done["answers"]] == list(range(10))
    assert done["totalScore"] == score - score // 2
    assert done["totalCorrect"] == sum(a["correct"] for a in done["answers"])
    assert done["totalQuestions"] == 10
    assert done["totalBasePoints"] == sum(a["basePoints"] for a in done["answers"])
    assert done["totalSpeedBonus"] == sum(a["speedBonus"] for a in done["answers"])
    assert done["wagerResult"] == {
        "wagerAmount": score // 2,
        "won": False,
        "pointsChange": -(score // 2),
    }
    assert done["fastestAnswer"]["responseTime"] == min(
        a["responseTime"] for a in done["answers"] if a["correct"]
    )
    assert done["answers"][1]["responseTime"] == 15.0
    assert done["degraded"] is False


async def test_final_correct_counts_in_total_correct(
    api: httpx.AsyncClient, bank: QuestionBank
) -> None:
    game = await new_game(api, {"questionIds": [q.id for q in bank.all()[:2]]})
    await answer(api, answer_body(game, 0, bank, remaining=20))
    final = await answer(api, answer_body(game, 1, bank, remaining=45, wager=75))
    assert (final["correct"], final["totalPoints"]) == (True, 75)
    done = await results(api, game["sessionId"])
    assert (done["totalCorrect"], done["totalScore"]) == (2, 225)
    assert done["answers"][1]["responseTime"] == 5.0  # 50 s limit on the final


async def test_clamping_and_flagging(api: httpx.AsyncClient, bank: QuestionBank) -> None:
    game = await new_game(api)
    over = await answer(api, answer_body(game, 0, bank, remaining=99))
    fast = await answer(api, answer_body(game, 1, bank, remaining=24.8))
    normal = await answer(api, answer_body(game, 2, bank, remaining=10))
    assert over["flagged"]
    assert over["totalPoints"] == 150
    assert fast["flagged"]
    assert fast["totalPoints"] == 150
    assert not normal["flagged"]
    done = await results(api, game["sessionId"])
    assert done["answers"][0]["responseTime"] == 0


async def test_duplicate_answer_returns_stored_result(
    api: httpx.AsyncClient, bank: QuestionBank
) -> None:
    game = await new_game(api)
    first = await api.post("/api/game/answer", json=answer_body(game, 0, bank))
    again = await api.post(
        "/api/game/answer", json=answer_body(game, 0, bank, correct=False, remaining=1)
    )
    assert again.status_code == 200
    assert again.json() == first.json()
    assert len((await results(api, game["sessionId"]))["answers"]) == 1


async def test_unknown_and_malformed_sessions_are_404(
    api: httpx.AsyncClient, bank: QuestionBank
) -> None:
    game = await new_game(api)
    for sid in (str(uuid.uuid4()), "not-a-uuid", "../../etc"):
        body = answer_body(game, 0, bank) | {"sessionId": sid}
        response = await api.post("/api/game/answer", json=body)
        assert response.status_code == 404
        assert response.json()["error"]
        response = await api.get(f"/api/game/results/{sid}")
        assert response.status_code == 404
        assert response.json()["error"]


def _bad_answers(game: Json, bank: QuestionBank) -> dict[str, Any]:
    ok = answer_body(game, 1, bank)

    def drop(key: str) -> Json:
        return {k: v for k, v in ok.items() if k != key}

    return {
        "option as string": ok | {"selectedOption": "2"},
        "time as string": ok | {"timeRemaining": "fast"},
        "time as bool": ok | {"timeRemaining": True},
        "session as number": ok | {"sessionId": 5},
        "missing questionId": drop("questionId"),
        "missing selectedOption": drop("selectedOption"),
        "missing timeRemaining": drop("timeRemaining"),
        "unknown field": ok | {"cheat": True},
        "option 4": ok | {"selectedOption": 4},
        "option -1": ok | {"selectedOption": -1},
        "negative time": ok | {"timeRemaining": -1},
        "negative wager": answer_body(game, 9, bank, wager=-5),
        "wager on Q2": ok | {"wager": 0},
        "wager above half the score": answer_body(game, 9, bank, wager=76),
        "question from another game": ok | {"questionId": _outsider(game, bank)},
        "unknown question": ok | {"questionId": "no-such-question"},
        "array body": [ok],
        "null body": None,
    }


def _outsider(game: Json, bank: QuestionBank) -> str:
    ids = {q["id"] for q in game["questions"]}
    return next(q.id for q in bank.all() if q.id not in ids)


async def test_bad_answers_get_4xx_and_change_nothing(
    api: httpx.AsyncClient, bank: QuestionBank
) -> None:
    game = await new_game(api)
    await answer(api, answer_body(game, 0, bank, remaining=20))  # score 150: wager limit 75
    before = await results(api, game["sessionId"])
    raw_bodies = {
        "malformed JSON": b'{"sessionId": ',
        "not JSON": b"hello",
        "huge body": b'{"sessionId": "' + b"x" * 70_000 + b'"}',
    }
    requests = [("json", name, body) for name, body in _bad_answers(game, bank).items()]
    requests += [("raw", name, body) for name, body in raw_bodies.items()]
    for kind, name, body in requests:
        if kind == "json":
            response = await api.post("/api/game/answer", json=body)
        else:
            response = await api.post(
                "/api/game/answer", content=body, headers={"content-type": "application/json"}
            )
        assert 400 <= response.status_code < 500, (name, response.status_code, response.text)
        assert response.json()["error"], name
    assert await results(api, game["sessionId"]) == before


async def test_huge_body_is_413(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/game/session", content=b"{" + b" " * 70_000 + b"}")
    assert response.status_code == 413
    assert "64 KiB" in response.json()["error"]


async def test_unknown_route_and_method(api: httpx.AsyncClient) -> None:
    missing = await api.get("/api/nothing")
    assert missing.status_code == 404
    assert missing.json()["error"]
    wrong = await api.get("/api/game/answer")
    assert wrong.status_code == 405
    assert wrong.json()["error"]


async def test_health(api: httpx.AsyncClient, backend: str) -> None:
    body = (await api.get("/health")).json()
    assert body["status"] == "ok"
    if backend == "memory":
        assert (body["storage"], body["redis"], body["breaker"]) == (
            "memory",
            "not-configured",
            None,
        )
    else:
        assert (body["storage"], body["redis"]) == (backend, "connected")
        assert body["breaker"] == "closed"
    assert body["fallbackMode"] is False
    assert body["fallbackSessions"] == 0
    assert body["uptimeSeconds"] >= 0
    assert body["version"]


async def test_metrics_count_requests_and_answers(
    api: httpx.AsyncClient, bank: QuestionBank
) -> None:
    game = await new_game(api)
    await answer(api, answer_body(game, 0, bank))
    await answer(api, answer_body(game, 0, bank))
    text = (await api.get("/metrics", headers=METRICS)).text
    assert 'http_requests_total{method="POST",route="/api/game/answer",status="200"} 2.0' in text
    assert 'answers_total{outcome="accepted"} 1.0' in text
    assert 'answers_total{outcome="duplicate"} 1.0' in text
    assert "sessions_created_total" in text
    assert game["sessionId"] not in text


async def test_cors_allows_the_frontend_with_credentials(api: httpx.AsyncClient) -> None:
    preflight = await api.options(
        "/api/game/answer",
        headers={
            "origin": "http://localhost:5173",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type,authorization",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert preflight.headers["access-control-allow-credentials"] == "true"
    other = await api.post("/api/game/session", headers={"origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers


async def test_100_copies_of_one_answer_at_once(api: httpx.AsyncClient, bank: QuestionBank) -> None:
    game = await new_game(api)
    bodies = [answer_body(game, 0, bank, correct=i % 2 == 0, remaining=i / 5) for i in range(100)]
    responses = await asyncio.gather(*(api.post("/api/game/answer", json=b) for b in bodies))
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    assert len((await results(api, game["sessionId"]))["answers"]) == 1


async def test_all_ten_answers_at_once(api: httpx.AsyncClient, bank: QuestionBank) -> None:
    game = await new_game(api)
    bodies = [answer_body(game, i, bank, remaining=20) for i in range(9)]
    bodies.append(answer_body(game, 9, bank, remaining=20))
    responses = await asyncio.gather(*(api.post("/api/game/answer", json=b) for b in bodies))
    assert {r.status_code for r in responses} == {200}
    done = await results(api, game["sessionId"])
    assert done["complete"] is True
    assert done["totalScore"] == sum(r.json()["totalPoints"] for r in responses) == 9 * 150


@pytest.fixture
async def redis_client(settings: Settings) -> AsyncIterator[Redis]:
    """A client of the Redis that this test's app uses."""
    client = Redis.from_url(settings.redis_url)
    yield client
    await client.aclose()


@pytest.mark.parametrize("backend", ["redis-json", "redis"])
async def test_ttl_is_reset_by_every_operation(
    api: httpx.AsyncClient, bank: QuestionBank, redis_client: Redis, settings: Settings
) -> None:
    ttl_ms = settings.session_ttl_seconds * 1000

    async def assert_fresh_ttl(sid: str) -> None:
        remaining = await redis_client.pttl(f"session:{sid}")
        assert ttl_ms - 1000 <= remaining <= ttl_ms

    game = await new_game(api)
    sid = game["sessionId"]
    await assert_fresh_ttl(sid)
    answers = [
        answer_body(game, 0, bank),
        answer_body(game, 0, bank),  # duplicate
        answer_body(game, 1, bank, wager=1),  # refused
    ]
    for body in answers:
        await redis_client.pexpire(f"session:{sid}", 5000)
        await api.post("/api/game/answer", json=body)
        await assert_fresh_ttl(sid)
    await redis_client.pexpire(f"session:{sid}", 5000)
    await api.get(f"/api/game/results/{sid}")
    await assert_fresh_ttl(sid)


@pytest.mark.parametrize("backend", ["redis-json", "redis"])
async def test_expired_session_is_404_and_not_recreated(
    api: httpx.AsyncClient, bank: QuestionBank, redis_client: Redis
) -> None:
    game = await new_game(api)
    key = f"session:{game['sessionId']}"
    await redis_client.pexpire(key, 0)  # expired now
    late = await api.post("/api/game/answer", json=answer_body(game, 0, bank))
    assert late.status_code == 404
    assert await redis_client.exists(key) == 0
    assert (await api.get(f"/api/game/results/{game['sessionId']}")).status_code == 404
