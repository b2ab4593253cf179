"""The shipped question bank meets the content rules."""

from __future__ import annotations

import random
import re
from collections import Counter
from typing import get_args

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.models import Category, PublicQuestion, Question
from app.questions import QuestionBank

QUESTIONS = len(QuestionBank.load())


def test_size_and_ids(bank: QuestionBank) -> None:
    questions = bank.all()
    assert len(questions) >= 150
    assert len({q.id for q in questions}) == len(questions)
    assert len({q.text.strip().lower() for q in questions}) == len(questions)


def test_options_are_four_distinct_and_answer_not_in_text(bank: QuestionBank) -> None:
    for q in bank.all():
        assert len({o.strip().lower() for o in q.options}) == 4, q.id
        assert all(o.strip() for o in q.options), q.id
        assert q.options[q.correct_answer].lower() not in q.text.lower(), q.id


def test_correct_positions_spread_evenly(bank: QuestionBank) -> None:
    counts = Counter(q.correct_answer for q in bank.all())
    for position in range(4):
        share = counts[position] / len(bank)
        assert 0.20 <= share <= 0.30, (position, share)


def test_every_category_has_at_least_eight(bank: QuestionBank) -> None:
    counts = Counter(q.topic_category for q in bank.all())
    for category in get_args(Category):
        assert counts[category] >= 8, category


def test_explanations_are_one_to_three_sentences(bank: QuestionBank) -> None:
    for q in bank.all():
        text = re.sub(r"\b(U\.S|v|Mr|Mrs|Dr|St|No|Jr)\.", "", q.explanation.strip())
        sentences = [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", text) if s]
        assert 1 <= len(sentences) <= 3, q.id
        assert q.topic.strip(), q.id


def test_public_view_gives_nothing_away(bank: QuestionBank) -> None:
    for q in bank.all():
        public = msgspec.to_builtins(bank.public(q.id))
        assert set(public) == {"id", "text", "options", "difficulty", "topic", "topicCategory"}
        assert isinstance(bank.public(q.id), PublicQuestion)


def test_draw_is_distinct_and_random(bank: QuestionBank) -> None:
    draws = [tuple(bank.draw(10)) for _ in range(20)]
    assert all(len(set(d)) == 10 for d in draws)
    assert len(set(draws)) > 1


def assert_fair_game(bank: QuestionBank, game: list[str], count: int) -> None:
    """As many questions as asked (or as the groups allow), no repeats, one per group."""
    assert len(game) == min(count, bank.largest_game)
    assert len(set(game)) == len(game)
    groups = [group for group in (bank.get(qid).group for qid in game) if group]
    assert len(set(groups)) == len(groups), game


@given(count=st.integers(1, QUESTIONS), seed=st.integers(0, 2**64 - 1))
def test_no_drawn_game_holds_two_questions_of_one_group(
    bank: QuestionBank, count: int, seed: int
) -> None:
    assert_fair_game(bank, bank.draw(count, random.Random(seed)), count)


def made_up_bank(groups: list[str | None], game_size: int = 1) -> QuestionBank:
    questions = [
        Question(
            id=f"t{i}",
            text=f"Question {i}?",
            options=["a", "b", "c", "d"],
            correct_answer=0,
            explanation="Because.",
            difficulty="easy",
            topic="Test",
            topic_category="voting",
            group=group,
        )
        for i, group in enumerate(groups)
    ]
    return QuestionBank(questions, game_size)


# Twelve questions in which groups bind hard: a game holds at most the four ungrouped ones
# and one each of groups a, b and c.
CROWDED = ["a", "a", "a", "a", "b", "b", "b", None, None, None, None, "c"]


@given(count=st.integers(1, len(CROWDED)), seed=st.integers(0, 2**64 - 1))
def test_groups_hold_in_a_crowded_bank(count: int, seed: int) -> None:
    bank = made_up_bank(CROWDED)
    assert bank.largest_game == 7
    assert_fair_game(bank, bank.draw(count, random.Random(seed)), count)


def test_a_bank_that_cannot_fill_a_game_fails_at_load() -> None:
    made_up_bank(CROWDED, game_size=7)
    with pytest.raises(ValueError, match="at most 7"):
        made_up_bank(CROWDED, game_size=8)
    QuestionBank.load(game_size=10)


def test_draw_reaches_every_question_about_evenly(bank: QuestionBank) -> None:
    rng = random.Random(16)
    games = 4000
    counts = Counter(qid for _ in range(games) for qid in bank.draw(10, rng))
    expected = games * 10 / len(bank)
    assert set(counts) == {q.id for q in bank.all()}
    assert 0.6 * expected < min(counts.values()) <= max(counts.values()) < 1.4 * expected
