"""The question bank: static data shipped with the service, loaded once at start-up."""

from __future__ import annotations

import random
from importlib import resources

import msgspec

from app.errors import InvalidInput
from app.models import PublicQuestion, Question

_decode_bank = msgspec.json.Decoder(list[Question])


class QuestionBank:
    def __init__(self, questions: list[Question]) -> None:
        self._by_id = {q.id: q for q in questions}
        if len(self._by_id) != len(questions):
            raise ValueError("question ids must be unique")
        self._public = {q.id: _public(q) for q in questions}
        self._ids = list(self._by_id)

    @classmethod
    def load(cls) -> QuestionBank:
        raw = resources.files("app").joinpath("questions.json").read_bytes()
        return cls(_decode_bank.decode(raw))

    def __len__(self) -> int:
        return len(self._ids)

    def all(self) -> list[Question]:
        return list(self._by_id.values())

    def get(self, question_id: str) -> Question:
        try:
            return self._by_id[question_id]
        except KeyError:
            raise InvalidInput(f"Unknown questionId {question_id!r}") from None

    def public(self, question_id: str) -> PublicQuestion:
        return self._public[question_id]

    def draw(self, count: int, rng: random.Random | None = None) -> list[str]:
        """`count` distinct question ids at random (uniformly, without repeats)."""
        return (rng or random).sample(self._ids, min(count, len(self._ids)))

    def check_ids(self, question_ids: list[str]) -> list[str]:
        """Validate a client-chosen list: distinct, known, kept in the given order."""
        if len(set(question_ids)) != len(question_ids):
            raise InvalidInput("questionIds must be distinct")
        for question_id in question_ids:
            self.get(question_id)
        return question_ids


def _public(question: Question) -> PublicQuestion:
    return PublicQuestion(
        id=question.id,
        text=question.text,
        options=list(question.options),
        difficulty=question.difficulty,
        topic=question.topic,
        topic_category=question.topic_category,
    )
