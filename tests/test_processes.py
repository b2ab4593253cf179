"""Real uvicorn processes sharing one Redis: several instances, and a SIGKILL mid-game."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from app.questions import QuestionBank
from tests.play import answer, answer_body, new_game, results
from tests.servers import ApiProcess

pytestmark = [pytest.mark.processes, pytest.mark.timeout(120)]


@pytest.fixture
def instances(redis_url: str, start_api: type[ApiProcess]) -> list[ApiProcess]:
    started = [start_api({"REDIS_URL": redis_url}) for _ in range(2)]
    for process in started:
        process.start()
    return started


async def test_game_moves_between_instances(
    instances: list[ApiProcess], bank: QuestionBank
) -> None:
    one, two = instances
    async with httpx.AsyncClient(base_url=one.url) as a, httpx.AsyncClient(base_url=two.url) as b:
        game = await new_game(a)
        for i in range(10):  # answered at once, and claimed so: 0.05 s each
            await answer(b if i % 2 else a, answer_body(game, i, bank, remaining=24.95))
        done = await results(a, game["sessionId"])
        assert done["complete"] is True
        assert done["totalScore"] == 9 * 150
        assert done == await results(b, game["sessionId"])


async def test_game_survives_sigkill_of_its_instance(
    instances: list[ApiProcess], bank: QuestionBank
) -> None:
    one = instances[0]
    async with httpx.AsyncClient(base_url=one.url) as client:
        game = await new_game(client)
        acknowledged = [await answer(client, answer_body(game, i, bank)) for i in range(5)]
    one.kill()
    one.start()
    async with httpx.AsyncClient(base_url=one.url) as client:
        for i in range(5):  # retries after the crash get the stored results back
            assert (
                await answer(client, answer_body(game, i, bank, correct=False)) == acknowledged[i]
            )
        for i in range(5, 10):
            await answer(client, answer_body(game, i, bank))
        done = await results(client, game["sessionId"])
    assert done["complete"] is True
    assert [a["totalPoints"] for a in done["answers"][:5]] == [
        a["totalPoints"] for a in acknowledged
    ]


@pytest.mark.parametrize("complete", [True, False])
async def test_progression_once_across_instances(
    instances: list[ApiProcess], bank: QuestionBank, complete: bool
) -> None:
    one, two = instances
    async with httpx.AsyncClient(base_url=one.url) as a, httpx.AsyncClient(base_url=two.url) as b:
        email = f"racer-{uuid.uuid4().hex[:8]}@example.org"
        account = {"email": email, "password": "Correct-Horse-9", "name": "Racer"}
        assert (await a.post("/auth/signup", json=account)).status_code == 201
        login = await b.post("/auth/login", json={"email": email, "password": "Correct-Horse-9"})
        headers = {"authorization": f"Bearer {login.json()['accessToken']}"}
        a.cookies.clear()
        b.cookies.clear()
        game = (await a.post("/api/game/session", headers=headers)).json()
        for i in range(10 if complete else 9):
            body = answer_body(game, i, bank, correct=i != 3)
            assert (await b.post("/api/game/answer", json=body, headers=headers)).status_code == 200
        url = f"/api/game/results/{game['sessionId']}"
        calls = await asyncio.gather(
            *((a if i % 2 else b).get(url, headers=headers) for i in range(50))
        )
        assert {c.status_code for c in calls} == {200}
        progressions = {str(c.json()["progression"]) for c in calls}
        profile = (await a.get("/api/users/profile", headers=headers)).json()
    if complete:
        assert progressions == {str({"xpEarned": 59, "gemsEarned": 19})}
        assert (profile["totalXp"], profile["totalGems"], profile["gamesPlayed"]) == (59, 19, 1)
    else:
        assert progressions == {"None"}
        assert (profile["totalXp"], profile["totalGems"], profile["gamesPlayed"]) == (0, 0, 0)
