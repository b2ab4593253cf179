"""The session-state route a client resumes a game with: owner-checked, TTL slid, answers shown."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from app.questions import QuestionBank
from app.settings import Settings
from tests.play import Json, answer, answer_body, new_game
from tests.test_auth import bearer, login, signup


async def state(client: httpx.AsyncClient, session_id: str, token: str | None = None) -> Json:
    headers = bearer(token) if token else {}
    response = await client.get(f"/api/game/session/{session_id}", headers=headers)
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


async def test_create_tells_the_time_limits(api: httpx.AsyncClient) -> None:
    game = await new_game(api)
    assert (game["questionSeconds"], game["finalQuestionSeconds"]) == (25, 50)


async def test_state_of_a_new_game(api: httpx.AsyncClient) -> None:
    game = await new_game(api)
    fresh = await state(api, game["sessionId"])
    assert fresh == {
        "sessionId": game["sessionId"],
        "questions": game["questions"],
        "answers": [],
        "totalScore": 0,
        "maxWager": 0,
        "complete": False,
        "degraded": False,
        "questionSeconds": 25,
        "finalQuestionSeconds": 50,
    }


async def test_state_shows_answer_results_in_question_order(
    api: httpx.AsyncClient, bank: QuestionBank
) -> None:
    game = await new_game(api)
    second = await answer(api, answer_body(game, 1, bank, correct=False))
    first = await answer(api, answer_body(game, 0, bank, remaining=20))
    third = await answer(api, answer_body(game, 2, bank, remaining=10))
    now = await state(api, game["sessionId"])
    assert [a["questionIndex"] for a in now["answers"]] == [0, 1, 2]
    for shown, result in zip(now["answers"], (first, second, third), strict=True):
        assert {k: v for k, v in shown.items() if k not in ("questionIndex", "selectedOption")} == (
            result
        )
        assert shown["explanation"] == bank.get(shown["questionId"]).explanation
    assert now["answers"][1]["selectedOption"] != bank.get(second["questionId"]).correct_answer
    assert now["totalScore"] == 150 + 0 + 125
    assert now["maxWager"] == 275 // 2
    assert now["complete"] is False
    assert "explanation" not in str(now["questions"])


async def test_state_of_a_finished_game_with_a_wager(
    api: httpx.AsyncClient, bank: QuestionBank
) -> None:
    game = await new_game(api, {"questionIds": [q.id for q in bank.all()[:3]]})
    for i in range(2):
        await answer(api, answer_body(game, i, bank, remaining=20))
    await answer(api, answer_body(game, 2, bank, correct=False, wager=100))
    done = await state(api, game["sessionId"])
    assert done["complete"] is True
    assert done["answers"][2]["wager"] == 100
    assert done["totalScore"] == 300 - 100
    assert "wager" not in done["answers"][0]


async def test_unknown_and_malformed_ids_are_404(api: httpx.AsyncClient) -> None:
    for sid in (str(uuid.uuid4()), "not-a-uuid"):
        response = await api.get(f"/api/game/session/{sid}")
        assert response.status_code == 404
        assert response.json()["error"]


@pytest.fixture
async def redis_client(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url)
    yield client
    await client.aclose()


@pytest.mark.parametrize("backend", ["redis-json", "redis"])
async def test_state_slides_the_ttl(
    api: httpx.AsyncClient, redis_client: Redis, settings: Settings
) -> None:
    game = await new_game(api)
    key = f"session:{game['sessionId']}"
    await redis_client.pexpire(key, 5000)
    await state(api, game["sessionId"])
    assert await redis_client.pttl(key) > settings.session_ttl_seconds * 1000 - 1000


@pytest.mark.parametrize("backend", ["redis-json", "redis"])
async def test_a_players_game_is_theirs_alone(
    api: httpx.AsyncClient, bank: QuestionBank, redis_client: Redis
) -> None:
    alice = await login(api, (await signup(api))["user"]["email"])
    bob = await login(api, (await signup(api))["user"]["email"])
    api.cookies.clear()
    await api.patch(
        "/api/users/profile/settings", json={"timerMultiplier": 2.0}, headers=bearer(alice)
    )
    created = await api.post("/api/game/session", headers=bearer(alice))
    game = created.json()
    assert (game["questionSeconds"], game["finalQuestionSeconds"]) == (50, 100)
    key = f"session:{game['sessionId']}"
    await redis_client.pexpire(key, 5000)
    for headers in (bearer(bob), {}):
        refused = await api.get(f"/api/game/session/{game['sessionId']}", headers=headers)
        assert refused.status_code == 403
        assert refused.json()["error"]
    assert await redis_client.pttl(key) <= 5000  # a stranger's read is not use
    mine = await state(api, game["sessionId"], alice)
    assert (mine["questionSeconds"], mine["finalQuestionSeconds"]) == (50, 100)
