"""The web page in a real browser: Debian's chromium driven by Playwright for Python, against a
real uvicorn process on the test Redis.

Every test also fails on a console error, an uncaught exception, or a request to any host but
the service. `SCREENSHOTS=docs/screenshots` saves the main screens there (the README shows them).
Without /usr/bin/chromium these tests skip, unless REQUIRE_BROWSER is set (CI sets it).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw
from playwright.async_api import (
    Browser,
    BrowserContext,
    FilePayload,
    Page,
    Request,
    ViewportSize,
    async_playwright,
    expect,
)

from app.models import Question
from app.questions import QuestionBank
from tests.servers import ApiProcess, LocalRedis

pytestmark = [pytest.mark.browser, pytest.mark.processes]

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# The machine's notes: without the background-networking flags chromium tries Google's hosts at
# every start, which a closed network refuses.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP: ViewportSize = {"width": 1100, "height": 820}
PHONE: ViewportSize = {"width": 390, "height": 844}
PASSWORD = "Correct-Horse-9"
SCREENSHOTS = os.environ.get("SCREENSHOTS")
CHROMIUM_FOUND = Path(CHROMIUM).exists()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM_FOUND:
        message = f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium)"
        if os.environ.get("REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        await launched.close()


@pytest.fixture(scope="module")
def server(redis_url: str) -> Iterator[ApiProcess]:
    process = ApiProcess({"REDIS_URL": redis_url, "LOG_LEVEL": "warning"})
    process.start()
    yield process
    process.kill()


@dataclass
class Player:
    """A browser tab on the page, and what it did that no test may allow."""

    page: Page
    context: BrowserContext
    origin: str
    problems: list[str] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)

    def watch(self) -> None:
        self.page.on(
            "console",
            lambda m: (
                self.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
            ),
        )
        self.page.on("pageerror", lambda e: self.problems.append(f"uncaught: {e}"))
        self.context.on("request", self.saw)

    def saw(self, request: Request) -> None:
        if not request.url.startswith(self.origin + "/"):
            self.problems.append(f"request outside the service: {request.url}")
        elif request.url.endswith("/api/game/answer"):
            self.answers.append(json.loads(request.post_data or "{}"))


async def open_player(browser: Browser, origin: str, viewport: ViewportSize) -> Player:
    context = await browser.new_context(base_url=origin, viewport=viewport)
    player = Player(await context.new_page(), context, origin)
    player.watch()
    return player


@pytest.fixture
async def player(browser: Browser, server: ApiProcess) -> AsyncIterator[Player]:
    opened = await open_player(browser, server.url, DESKTOP)
    yield opened
    await opened.context.close()
    assert opened.problems == []


@pytest.fixture
async def phone(browser: Browser, server: ApiProcess) -> AsyncIterator[Player]:
    opened = await open_player(browser, server.url, PHONE)
    yield opened
    await opened.context.close()
    assert opened.problems == []


async def screenshot(page: Page, name: str, *, full_page: bool = False) -> None:
    if SCREENSHOTS:
        await page.mouse.move(0, 0)  # no hover effect in the picture
        await page.screenshot(path=Path(SCREENSHOTS) / f"{name}.png", full_page=full_page)


# --- steps a player takes ---------------------------------------------------------------------


def new_email() -> str:
    return f"player.{uuid.uuid4().hex[:10]}@example.org"


async def sign_up_on_the_page(page: Page, name: str, email: str, *, shot: bool = False) -> None:
    await page.goto("/")
    await page.locator("#nav-signin").click()
    await page.locator("#tab-signup").click()
    await page.locator("#signup-name").fill(name)
    await page.locator("#signup-email").fill(email)
    await page.locator("#signup-password").fill(PASSWORD)
    if shot:
        await screenshot(page, "sign-up")
    await page.locator("#form-signup button[type=submit]").click()
    await expect(page.locator("#who-name")).to_have_text(name)
    await expect(page.locator("#screen-home")).to_be_visible()


async def sign_up_by_api(origin: str, name: str = "Grace Voter") -> str:
    email = new_email()
    async with httpx.AsyncClient(base_url=origin) as client:
        body = {"email": email, "password": PASSWORD, "name": name}
        assert (await client.post("/auth/signup", json=body)).status_code == 201
    return email


async def sign_in_on_the_page(page: Page, email: str) -> None:
    await page.goto("/")
    await page.locator("#nav-signin").click()
    await page.locator("#signin-email").fill(email)
    await page.locator("#signin-password").fill(PASSWORD)
    await page.keyboard.press("Enter")
    await expect(page.locator("#nav-logout")).to_be_visible()


async def current_question(page: Page, bank: QuestionBank) -> Question:
    await expect(page.locator("#screen-question")).to_be_visible()
    await expect(page.locator("#lock-row")).to_be_visible()
    question_id = await page.locator("#q-text").get_attribute("data-question-id")
    assert question_id
    return bank.get(question_id)


async def answer(page: Page, bank: QuestionBank, *, correct: bool, keyboard: bool = True) -> int:
    """Answer the question on screen; check the reveal; return the points it scored."""
    question = await current_question(page, bank)
    right = question.correct_answer
    pick = right if correct else (right + 1) % 4
    if keyboard:
        await page.keyboard.press(str(pick + 1))
        await page.keyboard.press("Enter")
    else:
        await page.locator(f'#options .option[data-option="{pick}"]').click()
        await page.locator("#lock-in").click()
    await expect(page.locator("#reveal")).to_be_visible()
    await expect(page.locator("#explanation")).to_have_text(question.explanation)
    verdict = await page.locator("#verdict").inner_text()
    assert verdict.startswith("Correct!" if correct else "Not quite.")
    if not correct:
        assert f"{'ABCD'[right]}: {question.options[right]}" in verdict
        await expect(page.locator(f'.option[data-option="{pick}"]')).to_have_class(
            "option is-wrong"
        )
    await expect(page.locator(f'.option[data-option="{right}"]')).to_have_class("option is-correct")
    return int(await page.locator("#q-score").inner_text())


async def go_on(page: Page, *, keyboard: bool = True) -> None:
    if keyboard:
        await expect(page.locator("#next")).to_be_focused()
        await page.keyboard.press("Enter")
    else:
        await page.locator("#next").click()


async def play_to_the_wager(page: Page, bank: QuestionBank, *, keyboard: bool = True) -> int:
    """Answer the nine regular questions (right, wrong, right, ...); return the score."""
    score = 0
    for index in range(9):
        await expect(page.locator("#q-progress")).to_have_text(f"Question {index + 1} of 10")
        await page.clock.run_for(3_000 + 700 * index)  # a player's think time
        score = await answer(page, bank, correct=index % 2 == 0, keyboard=keyboard)
        await go_on(page, keyboard=keyboard)
    return score


def honest(answers: list[dict[str, Any]], limit: float) -> None:
    """Every answer sent a countdown value, never more than the limit."""
    assert answers
    for sent in answers:
        assert 0 <= sent["timeRemaining"] <= limit, sent


# --- the flows ---------------------------------------------------------------------------------


async def test_signed_in_game_with_wager_results_profile_and_logout(
    player: Player, bank: QuestionBank
) -> None:
    page = player.page
    await page.clock.install()  # think time without waiting for it: the clock is moved on
    await page.goto("/")
    await expect(page.locator("#screen-home")).to_be_visible()
    await screenshot(page, "home")
    await sign_up_on_the_page(page, "Ada Lovelace", new_email(), shot=True)

    await page.locator("#play").click()
    await expect(page.locator("#timer-count")).to_have_text("24", timeout=3000)
    await screenshot(page, "question")
    await page.clock.run_for(4_000)
    score = await answer(page, bank, correct=True)
    await go_on(page)
    await page.clock.run_for(7_000)
    score = await answer(page, bank, correct=False)
    await screenshot(page, "reveal", full_page=True)
    await go_on(page)
    for index in range(2, 9):
        await page.clock.run_for(2_000 + 1_000 * index)
        score = await answer(page, bank, correct=index % 2 == 0)
        await go_on(page)

    await expect(page.locator("#screen-wager")).to_be_visible()
    assert await page.locator("#wager-range").get_attribute("max") == str(score // 2)
    await expect(page.locator("#wager-range")).to_be_focused()
    await page.keyboard.press("End")  # the slider's maximum
    await expect(page.locator("#wager-value")).to_have_text(str(score // 2))
    await screenshot(page, "wager")
    await page.keyboard.press("Enter")
    await expect(page.locator("#q-wager")).to_have_text(f"Wager {score // 2}")
    await expect(page.locator("#q-progress")).to_have_text("Final question (10 of 10)")
    await page.clock.run_for(12_000)
    final = await answer(page, bank, correct=True)
    assert final == score + score // 2
    assert player.answers[-1]["wager"] == score // 2
    await expect(page.locator("#next")).to_have_text("See your results")
    await go_on(page)

    await expect(page.locator("#screen-results")).to_be_visible()
    await expect(page.locator("#r-score")).to_have_text(str(final))
    await expect(page.locator("#r-summary")).to_contain_text("6 of 10 correct")
    await expect(page.locator("#r-xp")).to_have_text("56")
    await expect(page.locator("#r-gems")).to_have_text("16")
    await expect(page.locator("#r-wager")).to_contain_text(f"Final wager of {score // 2}: won")
    await expect(page.locator("#review li")).to_have_count(10)
    await expect(page.locator("#review li.wrong")).to_have_count(4)
    await screenshot(page, "results", full_page=True)
    honest(player.answers[:9], 25)
    honest(player.answers[9:], 50)

    await page.locator("#r-profile").click()
    await expect(page.locator("#screen-profile")).to_be_visible()
    await expect(page.locator("#p-xp")).to_have_text("56")
    await expect(page.locator("#p-gems")).to_have_text("16")
    await expect(page.locator("#p-games")).to_have_text("1")
    await expect(page.locator("#p-best")).to_have_text(str(final))
    await expect(page.locator("#p-accuracy")).to_have_text("60%")
    await page.locator("input[name=timer][value='1.5']").check()
    await expect(page.locator("#timer-status")).to_have_text(
        "Saved: your next game uses this timer."
    )
    picture: FilePayload = {"name": "me.png", "mimeType": "image/png", "buffer": portrait()}
    await page.locator("#p-file").set_input_files(picture)
    await expect(page.locator("#p-file-status")).to_have_text("Picture saved.")
    avatar = page.locator("#p-avatar")
    await expect(avatar).to_be_visible()
    assert (await avatar.get_attribute("src") or "").startswith("/uploads/avatars/")
    await page.wait_for_function("document.getElementById('p-avatar').naturalWidth === 128")
    await screenshot(page, "profile", full_page=True)

    await page.locator("#nav-logout").click()
    await expect(page.locator("#nav-signin")).to_be_visible()
    await expect(page.locator("#notice-info")).to_contain_text("logged out")
    assert not [c for c in await player.context.cookies() if c["name"] == "refreshToken"]
    await page.reload()
    await expect(page.locator("#screen-home")).to_be_visible()
    await expect(page.locator("#nav-signin")).to_be_visible()


def portrait() -> bytes:
    """A small picture to upload: a figure on a coloured ground."""
    image = Image.new("RGB", (240, 180), (69, 123, 157))
    draw = ImageDraw.Draw(image)
    draw.ellipse((90, 30, 150, 90), fill=(247, 244, 236))
    draw.rounded_rectangle((70, 100, 170, 180), radius=40, fill=(247, 244, 236))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


async def test_anonymous_game_on_a_phone(phone: Player, bank: QuestionBank) -> None:
    page = phone.page
    await page.clock.install()
    await page.goto("/")
    await page.locator("#play").click()
    await expect(page.locator("#timer-count")).to_have_text("24", timeout=3000)
    await screenshot(page, "phone-question")
    score = await play_to_the_wager(page, bank, keyboard=False)
    await expect(page.locator("#wager-max")).to_have_text(str(score // 2))
    for _ in range(3):
        await page.locator("#wager-range").press("ArrowRight")
    await page.locator("#wager-lock").click()
    await current_question(page, bank)
    await page.reload()  # the wager stays locked: no second look at it with the question seen
    await expect(page.locator("#q-progress")).to_have_text("Final question (10 of 10)")
    await expect(page.locator("#q-wager")).to_have_text("Wager 3")
    await answer(page, bank, correct=False, keyboard=False)
    await go_on(page, keyboard=False)
    await expect(page.locator("#r-score")).to_have_text(str(score - 3))
    await expect(page.locator("#r-wager")).to_have_text("Final wager of 3: lost (\u22123).")
    await expect(page.locator("#r-no-rewards")).to_contain_text("without an account")
    await expect(page.locator("#r-rewards")).to_be_hidden()
    await screenshot(page, "phone-results")
    honest(phone.answers, 50)
    assert phone.answers[-1]["wager"] == 3


async def test_a_reload_mid_game_resumes_it(
    player: Player, bank: QuestionBank, server: ApiProcess
) -> None:
    page = player.page
    await sign_in_on_the_page(page, await sign_up_by_api(server.url))
    await page.locator("#play").click()
    for _ in range(3):
        score = await answer(page, bank, correct=True)
        await go_on(page)
    question = await current_question(page, bank)
    session_id = await page.evaluate("JSON.parse(sessionStorage.getItem('trivia.game')).sessionId")
    await page.wait_for_timeout(1500)
    await page.reload()

    await expect(page.locator("#nav-logout")).to_be_visible()  # still signed in: the cookie
    await expect(page.locator("#q-progress")).to_have_text("Question 4 of 10")
    assert (await current_question(page, bank)).id == question.id
    await expect(page.locator("#q-score")).to_have_text(str(score))
    await expect(page.locator("#notice-info")).to_contain_text("question 4 of 10")
    assert int(await page.locator("#timer-count").inner_text()) <= 24  # no time given back
    await answer(page, bank, correct=True)
    assert {sent["sessionId"] for sent in player.answers} == {session_id}


async def test_running_out_of_time(player: Player, bank: QuestionBank) -> None:
    page = player.page
    await page.clock.install()
    await page.goto("/")
    await page.locator("#play").click()
    await current_question(page, bank)
    await page.clock.run_for(10_000)
    await answer(page, bank, correct=True)  # 10 s after it was shown: about 15 s left
    assert 14 <= player.answers[-1]["timeRemaining"] <= 15
    await go_on(page)
    question = await current_question(page, bank)
    await page.clock.fast_forward(26_000)
    await expect(page.locator("#verdict")).to_contain_text("Time ran out.")
    await expect(page.locator("#explanation")).to_have_text(question.explanation)
    assert player.answers[-1] | {"sessionId": ""} == {
        "sessionId": "",
        "questionId": question.id,
        "selectedOption": None,
        "timeRemaining": 0,
    }


async def test_redis_down_a_signed_in_player_plays_without_an_account(
    browser: Browser, bank: QuestionBank
) -> None:
    """Redis dies while a player is signed in; after a reload no token can be had, so the
    page says accounts are unavailable and degraded, and the game goes on without an account."""
    redis = LocalRedis()
    redis.start()
    process = ApiProcess({"REDIS_URL": redis.url, "LOG_LEVEL": "critical"})
    process.start()
    try:
        player = await open_player(browser, process.url, DESKTOP)
        page = player.page
        await sign_in_on_the_page(page, await sign_up_by_api(process.url))
        redis.stop()
        await page.reload()
        await expect(page.locator("#notice-error")).to_contain_text(
            "Accounts are temporarily unavailable"
        )
        await expect(page.locator("#nav-signin")).to_be_visible()
        await page.locator("#play").click()
        await expect(page.locator("#notice-degraded")).to_contain_text("kept on one server")
        await current_question(page, bank)
        await screenshot(page, "degraded")
        await answer(page, bank, correct=True)
        await player.context.close()
        refused = "Failed to load resource: the server responded with a status of 503"
        assert [p for p in player.problems if refused not in p] == []  # the refresh, refused
    finally:
        process.kill()
        redis.stop()
        shutil.rmtree(redis.directory, ignore_errors=True)
