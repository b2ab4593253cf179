"""The shipped question bank meets the content rules."""

from __future__ import annotations

import re
from collections import Counter
from typing import get_args

import msgspec

from app.models import Category, PublicQuestion
from app.questions import QuestionBank


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
