"""The game rules as pure functions: scoring, wagers, accepting an answer, building results.

No I/O here. `accept_answer` is the rule both stores apply atomically; `lua/submit_answer.lua`
is its Redis twin and the two are held to the same behavioural tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import msgspec

from app.errors import NotYourSession, QuestionNotInSession, WagerNotAllowed, WagerTooHigh
from app.models import (
    AnswerCandidate,
    AnswerView,
    FastestAnswer,
    Progression,
    Question,
    Results,
    StoredAnswer,
    StoredSession,
    WagerResult,
)

BASE_POINTS = 100
FAST_BONUS, FAST_SECONDS = 50, 15.0
QUICK_BONUS, QUICK_SECONDS = 25, 5.0
# Faster than this is not a human reading the question; flagged for review, never penalised.
MIN_HUMAN_SECONDS = 0.5
# Clock differences between instances and timer rounding, allowed on top of the time the
# server saw pass when it checks a game's claimed answer times (`timer_is_plausible`).
CLOCK_SLACK_SECONDS = 1.0


def speed_bonus(time_remaining: float, timer_multiplier: float = 1.0) -> int:
    """A player with more time (timer multiplier) gets the bonus for the same share of it."""
    if time_remaining >= FAST_SECONDS * timer_multiplier:
        return FAST_BONUS
    if time_remaining >= QUICK_SECONDS * timer_multiplier:
        return QUICK_BONUS
    return 0


XP_PER_GAME, GEMS_PER_GAME = 50, 10


def progression(total_correct: int) -> Progression:
    """What a finished game earns its signed-in player: one XP and one gem per correct answer
    on top of a base."""
    return Progression(
        xp_earned=XP_PER_GAME + total_correct, gems_earned=GEMS_PER_GAME + total_correct
    )


def score_answer(
    question: Question,
    selected_option: int | None,
    time_remaining: float,
    limit: float,
    *,
    final: bool,
    wager: int | None,
    timer_multiplier: float = 1.0,
) -> StoredAnswer:
    """Score one answer as if it were at a regular (`final=False`) or the final position.

    `limit` is already multiplied by the player's timer multiplier."""
    clamped = min(time_remaining, limit)
    response_time = round(limit - clamped, 3)
    flagged = time_remaining > limit or response_time < MIN_HUMAN_SECONDS
    correct = selected_option == question.correct_answer
    if final:
        base = bonus = 0
        total = 0 if wager is None else (wager if correct else -wager)
    else:
        base = BASE_POINTS if correct else 0
        bonus = speed_bonus(clamped, timer_multiplier) if correct else 0
        total = base + bonus
    return StoredAnswer(
        question_id=question.id,
        selected_option=selected_option,
        response_time=response_time,
        correct=correct,
        base_points=base,
        speed_bonus=bonus,
        total_points=total,
        flagged=flagged,
        wager=wager if final else None,
    )


def candidate(
    question: Question,
    selected_option: int | None,
    time_remaining: float,
    *,
    question_seconds: float,
    final_question_seconds: float,
    wager: int | None,
    received_at: float,
    timer_multiplier: float = 1.0,
) -> AnswerCandidate:
    """Every scoring of a submission; the store picks one once it knows the position and the
    game's stored answer times.

    A player's timer multiplier (1, 1.5 or 2) stretches both time limits and the bonus tiers."""
    m = timer_multiplier
    regular = score_answer(
        question,
        selected_option,
        time_remaining,
        question_seconds * m,
        final=False,
        wager=None,
        timer_multiplier=m,
    )
    final = score_answer(
        question,
        selected_option,
        time_remaining,
        final_question_seconds * m,
        final=True,
        wager=wager,
        timer_multiplier=m,
    )
    return AnswerCandidate(
        question_id=question.id,
        regular=regular,
        final=final,
        wager=wager,
        regular_implausible=implausible(regular),
        final_implausible=implausible(final),
        received_at=received_at,
    )


def implausible(answer: StoredAnswer) -> StoredAnswer:
    """The answer when the server's clock contradicts its timer: flagged, no speed bonus."""
    return msgspec.structs.replace(
        answer,
        speed_bonus=0,
        total_points=answer.total_points - answer.speed_bonus,
        flagged=True,
    )


def timer_is_plausible(session: StoredSession, claimed_seconds: float, received_at: float) -> bool:
    """Whether the game's claimed answer times fit in the time the server saw pass.

    A question can only be answered after the game was created, and the questions of a game are
    played one after another, so the response times a game claims (this one included) add up to
    at most the time since its creation. A client that claims more — all ten answers sent
    within milliseconds, each "after 0.5 s" — is not timing a player. `submit_answer.lua`
    applies the same rule.
    """
    claimed = claimed_seconds + sum(answer.response_time for answer in session.answers)
    return claimed <= received_at - session.created_at.timestamp() + CLOCK_SLACK_SECONDS


class Submission(NamedTuple):
    answer: StoredAnswer
    duplicate: bool  # already answered: `answer` is the stored one, nothing changed
    completed: bool  # this answer was the last unanswered question of the session


def check_owner(session: StoredSession, user_id: str | None) -> None:
    """A session created by a signed-in player is theirs alone; anonymous ones are open to
    whoever holds the id."""
    if session.owner is not None and session.owner != user_id:
        raise NotYourSession()


def max_wager(score: int) -> int:
    return max(score, 0) // 2


def accept_answer(session: StoredSession, answer: AnswerCandidate) -> Submission:
    """Append the answer to `session`, or return the stored one if the question was answered.

    Order matters and matches the Lua script: unknown question, then duplicate (a retry gets the
    stored result whatever it carries), then the wager checks against the score at this moment,
    then the claimed time against the server's clock.
    """
    if answer.question_id not in session.question_ids:
        raise QuestionNotInSession(answer.question_id)
    score = 0
    for stored in session.answers:
        if stored.question_id == answer.question_id:
            return Submission(stored, duplicate=True, completed=False)
        score += stored.total_points
    if answer.question_id != session.question_ids[-1]:
        if answer.wager is not None:
            raise WagerNotAllowed()
        accepted, otherwise = answer.regular, answer.regular_implausible
    else:
        if answer.wager is not None and answer.wager > max_wager(score):
            raise WagerTooHigh(max_wager(score))
        accepted, otherwise = answer.final, answer.final_implausible
    if not timer_is_plausible(session, accepted.response_time, answer.received_at):
        accepted = otherwise
    session.answers.append(accepted)
    completed = len(session.answers) == len(session.question_ids)
    return Submission(accepted, duplicate=False, completed=completed)


def build_results(
    session_id: str,
    session: StoredSession,
    question: Callable[[str], Question],
    *,
    degraded: bool,
) -> Results:
    by_id = {answer.question_id: answer for answer in session.answers}
    views = [
        _view(index, by_id[qid], question(qid))
        for index, qid in enumerate(session.question_ids)
        if qid in by_id
    ]
    final_answer = by_id.get(session.question_ids[-1])
    return Results(
        session_id=session_id,
        complete=len(views) == len(session.question_ids),
        answers=views,
        total_score=sum(v.total_points for v in views),
        total_base_points=sum(v.base_points for v in views),
        total_speed_bonus=sum(v.speed_bonus for v in views),
        total_correct=sum(v.correct for v in views),
        total_questions=len(session.question_ids),
        fastest_answer=_fastest(views),
        wager_result=_wager_result(final_answer),
        progression=None,
        degraded=degraded,
    )


def _view(index: int, answer: StoredAnswer, question: Question) -> AnswerView:
    return AnswerView(
        question_id=answer.question_id,
        question_index=index,
        selected_option=answer.selected_option,
        correct=answer.correct,
        correct_answer=question.correct_answer,
        base_points=answer.base_points,
        speed_bonus=answer.speed_bonus,
        total_points=answer.total_points,
        response_time=answer.response_time,
        flagged=answer.flagged,
        wager=answer.wager,
    )


def _fastest(views: list[AnswerView]) -> FastestAnswer | None:
    correct = [v for v in views if v.correct]
    if not correct:
        return None
    best = min(correct, key=lambda v: (v.response_time, v.question_index))
    return FastestAnswer(
        question_index=best.question_index,
        response_time=best.response_time,
        points=best.total_points,
    )


def _wager_result(final_answer: StoredAnswer | None) -> WagerResult | None:
    if final_answer is None or final_answer.wager is None:
        return None
    return WagerResult(
        wager_amount=final_answer.wager,
        won=final_answer.correct,
        points_change=final_answer.total_points,
    )
