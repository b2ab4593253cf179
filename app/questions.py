"""The question bank: static data shipped with the service, loaded once at start-up."""

from __future__ import annotations

import random
import sys
from datetime import date
from importlib import resources

import msgspec

from app.errors import InvalidInput
from app.models import PublicQuestion, Question

_decode_bank = msgspec.json.Decoder(list[Question])


class QuestionBank:
    def __init__(self, questions: list[Question], game_size: int = 1) -> None:
        """Index the questions; refuse a bank whose groups cannot fill a game of `game_size`."""
        self._by_id = {q.id: q for q in questions}
        if len(self._by_id) != len(questions):
            raise ValueError("question ids must be unique")
        self._public = {q.id: _public(q) for q in questions}
        self._ids = list(self._by_id)
        self._group = {q.id: q.group for q in questions if q.group is not None}
        # Every ungrouped question, plus one question per group.
        self.largest_game = len(self._ids) - len(self._group) + len(set(self._group.values()))
        if self.largest_game < game_size:
            raise ValueError(
                f"the question bank fills games of at most {self.largest_game} questions "
                f"(one per group), fewer than {game_size}"
            )

    @classmethod
    def load(cls, game_size: int = 1) -> QuestionBank:
        raw = resources.files("app").joinpath("questions.json").read_bytes()
        return cls(_decode_bank.decode(raw), game_size)

    def __len__(self) -> int:
        return len(self._ids)

    def all(self) -> list[Question]:
        return list(self._by_id.values())

    def get(self, question_id: str) -> Question:
        try:
            return self._by_id[question_id]
        except KeyError:
            raise InvalidInput(f"Unknown questionId {question_id!r}") from None

    def overdue(self, today: date) -> list[Question]:
        """Questions whose time-sensitive fact is past its review date (README, Question bank)."""
        return [q for q in self._by_id.values() if q.review_by is not None and q.review_by < today]

    def public(self, question_id: str) -> PublicQuestion:
        return self._public[question_id]

    def draw(self, count: int, rng: random.Random | None = None) -> list[str]:
        """`count` distinct question ids at random, never two of one group.

        The first `count` admissible ids of a uniformly random order, shuffled lazily
        (Fisher-Yates), so a game of 10 costs about 10 random numbers, not one per question.
        A question that shares a group is drawn slightly less often than one that does not.
        """
        randrange = rng.randrange if rng else random.randrange
        wanted = min(count, self.largest_game)
        order = list(self._ids)
        picked: list[str] = []
        taken: set[str] = set()
        for i in range(len(order)):
            if len(picked) >= wanted:
                break
            j = randrange(i, len(order))
            order[i], order[j] = order[j], order[i]
            group = self._group.get(order[i])
            if group is not None:
                if group in taken:
                    continue
                taken.add(group)
            picked.append(order[i])
        return picked

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


def main() -> int:
    """`python -m app.questions`: list the questions due for review; exit 1 if any."""
    due = QuestionBank.load().overdue(date.today())
    for question in due:
        print(f"{question.id}: review by {question.review_by} — {question.text}")
    return 1 if due else 0


if __name__ == "__main__":
    sys.exit(main())
