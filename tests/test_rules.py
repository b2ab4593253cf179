"""Pure game rules: unit and property tests (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app import rules
from app.auth import profile_of
from app.errors import QuestionNotInSession, WagerNotAllowed, WagerTooHigh
from app.models import AnswerCandidate, Question, StoredSession, StoredUser, WagerResult

LIMIT, FINAL_LIMIT = 25.0, 50.0


def question(qid: str = "q1", correct: int = 2) -> Question:
    return Question(
        id=qid,
        text="Which?",
        options=["a", "b", "c", "d"],
        correct_answer=correct,
        explanation="Because.",
        difficulty="easy",
        topic="Test",
        topic_category="voting",
    )


HOUR_LATER = datetime.now(UTC).timestamp() + 3600  # any game below has had time to be played


def candidate(
    q: Question,
    selected: int | None = 2,
    remaining: float = 20.0,
    wager: int | None = None,
    received_at: float = HOUR_LATER,
) -> AnswerCandidate:
    return rules.candidate(
        q,
        selected,
        remaining,
        question_seconds=LIMIT,
        final_question_seconds=FINAL_LIMIT,
        wager=wager,
        received_at=received_at,
    )


def session(n: int = 3) -> StoredSession:
    return StoredSession(question_ids=[f"q{i}" for i in range(n)], created_at=datetime.now(UTC))


times = st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False)
options = st.one_of(st.none(), st.integers(0, 3))


@pytest.mark.parametrize(
    ("remaining", "bonus"),
    [(25, 50), (15, 50), (14.999, 25), (5, 25), (4.999, 0), (0, 0)],
)
def test_speed_bonus_tiers(remaining: float, bonus: int) -> None:
    answer = rules.score_answer(question(), 2, remaining, LIMIT, final=False, wager=None)
    assert (answer.base_points, answer.speed_bonus, answer.total_points) == (
        100,
        bonus,
        100 + bonus,
    )


@given(selected=options, remaining=times)
def test_regular_scoring(selected: int | None, remaining: float) -> None:
    answer = rules.score_answer(question(), selected, remaining, LIMIT, final=False, wager=None)
    clamped = min(remaining, LIMIT)
    assert answer.correct == (selected == 2)
    assert answer.response_time == pytest.approx(LIMIT - clamped, abs=1e-3)
    assert 0 <= answer.response_time <= LIMIT
    assert answer.flagged == (remaining > LIMIT or LIMIT - clamped < rules.MIN_HUMAN_SECONDS)
    if answer.correct:
        assert answer.base_points == 100
        assert answer.speed_bonus == (50 if clamped >= 15 else 25 if clamped >= 5 else 0)
    else:
        assert (answer.base_points, answer.speed_bonus) == (0, 0)
    assert answer.total_points == answer.base_points + answer.speed_bonus
    assert answer.wager is None


@given(selected=options, remaining=times, wager=st.one_of(st.none(), st.integers(0, 1000)))
def test_final_scoring_is_the_wager_only(
    selected: int | None, remaining: float, wager: int | None
) -> None:
    answer = rules.score_answer(
        question(), selected, remaining, FINAL_LIMIT, final=True, wager=wager
    )
    assert (answer.base_points, answer.speed_bonus) == (0, 0)
    assert answer.correct == (selected == 2)
    expected = 0 if wager is None else (wager if answer.correct else -wager)
    assert answer.total_points == expected
    assert answer.wager == wager
    assert answer.response_time <= FINAL_LIMIT


def test_too_fast_and_over_limit_are_flagged_without_penalty() -> None:
    fast = rules.score_answer(question(), 2, 24.7, LIMIT, final=False, wager=None)
    over = rules.score_answer(question(), 2, 99, LIMIT, final=False, wager=None)
    assert fast.flagged
    assert fast.total_points == 150
    assert over.flagged
    assert over.response_time == 0
    assert over.total_points == 150


@given(score=st.integers(-10_000, 10_000))
def test_max_wager_is_half_the_score_rounded_down(score: int) -> None:
    limit = rules.max_wager(score)
    assert limit >= 0
    assert limit <= max(score, 0) / 2 < limit + 1


def test_accept_answer_appends_then_returns_duplicate() -> None:
    s = session()
    first, dup, _ = rules.accept_answer(s, candidate(question("q0"), 2))
    again, dup2, _ = rules.accept_answer(s, candidate(question("q0"), 1))
    assert (dup, dup2) == (False, True)
    assert again == first
    assert len(s.answers) == 1


def test_accept_answer_refuses_foreign_question_and_wagers() -> None:
    s = session()
    with pytest.raises(QuestionNotInSession):
        rules.accept_answer(s, candidate(question("zz")))
    with pytest.raises(WagerNotAllowed):
        rules.accept_answer(s, candidate(question("q0"), wager=0))
    assert s.answers == []


@given(
    picks=st.lists(st.tuples(options, times), min_size=2, max_size=2),
    wager=st.integers(0, 400),
)
def test_wager_limit_uses_score_at_acceptance(
    picks: list[tuple[int | None, float]], wager: int
) -> None:
    s = session()
    for i, (selected, remaining) in enumerate(picks):
        rules.accept_answer(s, candidate(question(f"q{i}"), selected, remaining))
    score = sum(a.total_points for a in s.answers)
    final = candidate(question("q2"), 2, 30, wager=wager)
    if wager > score // 2:
        with pytest.raises(WagerTooHigh) as info:
            rules.accept_answer(s, final)
        assert info.value.max_wager == score // 2
        assert len(s.answers) == 2
    else:
        stored, duplicate, completed = rules.accept_answer(s, final)
        assert stored.total_points == wager
        assert (duplicate, completed) == (False, True)


@given(
    order=st.permutations(range(4)),
    picks=st.lists(st.tuples(options, times), min_size=4, max_size=4),
)
def test_results_are_in_question_order_and_add_up(
    order: list[int], picks: list[tuple[int | None, float]]
) -> None:
    s = session(4)
    bank = {f"q{i}": question(f"q{i}") for i in range(4)}
    for i in order:
        selected, remaining = picks[i]
        rules.accept_answer(s, candidate(bank[f"q{i}"], selected, remaining))
    results = rules.build_results("sid", s, bank.__getitem__, degraded=False)
    assert [a.question_index for a in results.answers] == [0, 1, 2, 3]
    assert results.complete
    assert results.total_score == sum(a.total_points for a in results.answers)
    assert results.total_correct == sum(1 for a in results.answers if a.correct)
    assert results.total_questions == 4
    correct = [a for a in results.answers if a.correct]
    if correct:
        assert results.fastest_answer is not None
        assert results.fastest_answer.response_time == min(a.response_time for a in correct)
    else:
        assert results.fastest_answer is None
    assert results.wager_result is None  # no wager was placed


def test_wager_result_and_final_counts_as_correct() -> None:
    s = session(2)
    rules.accept_answer(s, candidate(question("q0"), 2, 20))  # 150 points
    rules.accept_answer(s, candidate(question("q1"), 2, 30, wager=75))
    results = rules.build_results("sid", s, lambda qid: question(qid), degraded=False)
    assert results.total_correct == 2
    assert results.total_score == 225
    assert results.wager_result == WagerResult(wager_amount=75, won=True, points_change=75)
    assert results.progression is None


def test_accuracy_rounds_half_up() -> None:
    def accuracy(correct: int, questions: int) -> int:
        user = StoredUser(
            id="u",
            email="a@b.org",
            name="Ada",
            password_hash="x",
            created_at=datetime.now(UTC),
            total_correct=correct,
            total_questions=questions,
        )
        return profile_of(user).overall_accuracy

    assert (accuracy(5, 8), accuracy(1, 8), accuracy(0, 0), accuracy(7, 10)) == (63, 13, 0, 70)


# --- the server's clock against the claimed answer times --------------------------------------


def test_answers_faster_than_the_clock_allows_lose_the_speed_bonus() -> None:
    s = session(3)
    start = s.created_at.timestamp()
    # 5 s claimed (20 s left of 25) but received 6 s after creation: plausible.
    first, _, _ = rules.accept_answer(s, candidate(question("q0"), 2, 20, received_at=start + 6))
    assert (first.speed_bonus, first.total_points, first.flagged) == (50, 150, False)
    # 5 s more claimed, received 1 s later: 10 s claimed in 7 s (+1 s slack): implausible.
    second, _, _ = rules.accept_answer(s, candidate(question("q1"), 2, 20, received_at=start + 7))
    assert (second.base_points, second.speed_bonus, second.total_points) == (100, 0, 100)
    assert second.flagged
    # The final keeps its wager outcome, flagged.
    final, _, _ = rules.accept_answer(
        s, candidate(question("q2"), 2, 45, wager=50, received_at=start + 8)
    )
    assert (final.total_points, final.wager, final.flagged) == (50, 50, True)


@given(
    claims=st.lists(st.floats(0, 25), min_size=1, max_size=10),
    gaps=st.lists(st.floats(0, 40), min_size=10, max_size=10),
)
def test_timer_check_is_the_cumulative_rule(claims: list[float], gaps: list[float]) -> None:
    s = session(len(claims))
    start, elapsed, claimed = s.created_at.timestamp(), 0.0, 0.0
    for i, (claim, gap) in enumerate(zip(claims, gaps, strict=False)):
        elapsed += gap
        stored, _, _ = rules.accept_answer(
            s, candidate(question(f"q{i}"), 2, LIMIT - claim, received_at=start + elapsed)
        )
        claimed += stored.response_time
        plausible = claimed <= elapsed + rules.CLOCK_SLACK_SECONDS
        assert stored.flagged or plausible
        assert (stored.speed_bonus == 0) or plausible
