"""The shipped question bank meets the content rules."""

from __future__ import annotations

import random
import re
from collections import Counter
from datetime import date, timedelta
from importlib import resources
from typing import get_args

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.models import Category, PublicQuestion, Question
from app.questions import QuestionBank

QUESTIONS = len(QuestionBank.load())

# Time-sensitive facts. A fact is time-sensitive when law, chamber rules or a state can change it
# without a constitutional amendment: a count set by statute or rules, the number of amendments
# ratified, a state's practice. The bank words such facts so they stay true ("As of 2026, ...",
# "Under current Senate rules, ...") and marks them with asOf and reviewBy. A question must have
# reviewBy when
#   1. its text, options or explanation tie a statement to the present (PRESENT), or
#   2. its answer is a count (it begins with a number that is not a year: "435", "Every 10
#      years") and its explanation does not name the article or amendment of the Constitution
#      that fixes that number (CITES_CONSTITUTION).
PRESENT = re.compile(
    r"\b(current|currently|as of|today|nowadays|now|at present|presently|most recent|latest"
    r"|so far|to date|no longer)\b",
    re.IGNORECASE,
)
NUMBER = re.compile(
    r"\b(\d+|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen"
    r"|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty"
    r"|hundred)\b",
    re.IGNORECASE,
)
COUNT = re.compile(rf"(?:every )?{NUMBER.pattern}", re.IGNORECASE)
YEAR = re.compile(r"1[6-9]\d\d|20\d\d")
CITES_CONSTITUTION = re.compile(r"\bArticle [IVX]+\b|\b[\w-]+(?:st|nd|rd|th) Amendment\b")
# Named in issue #16 as time-sensitive: they must stay marked whatever their wording.
TIME_SENSITIVE = {"q012", "q054", "q058", "q124", "q139", "q147"}
# How long a checked fact may go unchecked.
LONGEST_REVIEW = timedelta(days=2 * 366)

# Give-aways: the text or an option of the first question answers the second (its correct option
# is shown once it is answered), spoiling the second in a game that holds both. Each is fixed by
# rewording, so the string that gave it away is gone from the first question's text and options,
# or by a group shared by both, so the draw never puts them in one game.
GIVE_AWAYS = [
    # named in issue #16
    ("q102", "q140", "Twenty-second Amendment"),
    ("q152", "q051", "Seventeenth Amendment"),
    ("q005", "q045", "Twentieth Amendment"),
    ("q033", "q094", "Eighth Amendment"),
    ("q058", "q054", "Selective Service"),
    ("q023", "q144", "1965"),
    ("q029", "q022", "House impeachment"),
    # found when the whole bank was read for more of the same kind
    ("q140", "q102", "more than twice"),
    ("q022", "q029", "impeach"),
    ("q055", "q022", "Senate trial"),
    ("q015", "q006", "four-year"),
    ("q024", "q048", "Article I"),
    ("q044", "q130", "Article III"),
    ("q075", "q111", "approved by Congress"),
    ("q098", "q137", "Senate"),
    ("q105", "q023", "literacy tests"),
    ("q105", "q092", "bilingual"),
    ("q138", "q004", "New England"),
    ("q161", "q101", "After the vice president"),
    ("q010", "q151", "veto"),
    ("q085", "q151", "veto"),
    ("q104", "q056", "Federal Register"),
    ("q104", "q117", "executive orders"),
    ("q019", "q038", "First Amendment"),
    ("q088", "q143", "538"),
    ("q143", "q088", "270"),
    ("q001", "q100", "Absentee"),
    ("q027", "q128", "FEC"),
]
# Difficulty: a question is not hard when its answer can be guessed from its own words, as when
# a law's name restates the question. The test's rule: the correct option shares a distinctive
# word with the text (five letters or more, compared by its first six letters, in no wrong option).
NOT_HARD = {"q001", "q028", "q068", "q084"}  # issue #16: the law's name gives the answer
MEDIUM = {"q036", "q139"}  # issue #16

# Near-duplicates ask one fact twice or mirror each other: they always share a group.
NEAR_DUPLICATES = [("q064", "q097"), ("q014", "q074"), ("q074", "q095")]


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


def is_time_sensitive(q: Question) -> bool:
    if PRESENT.search(" ".join([q.text, *q.options, q.explanation])):
        return True
    count = COUNT.match(q.options[q.correct_answer])
    return bool(count and not YEAR.fullmatch(count[1])) and not CITES_CONSTITUTION.search(
        q.explanation
    )


def test_rule_finds_time_sensitive_wording(bank: QuestionBank) -> None:
    """The rule itself, on known cases, so that a weakened pattern shows up here."""
    assert is_time_sensitive(bank.get("q127"))  # "Under current federal law"
    assert is_time_sensitive(bank.get("q062"))  # 435: set by statute
    assert not is_time_sensitive(bank.get("q145"))  # 35: Article II
    assert not is_time_sensitive(bank.get("q102"))  # two: the Twenty-second Amendment
    assert not is_time_sensitive(bank.get("q066"))  # 1791: a year


def test_time_sensitive_questions_have_a_review_date(bank: QuestionBank) -> None:
    unmarked = [q.id for q in bank.all() if is_time_sensitive(q) and q.review_by is None]
    assert unmarked == []
    assert all(bank.get(qid).review_by for qid in TIME_SENSITIVE)


def test_review_dates_are_real_dates() -> None:
    raw = resources.files("app").joinpath("questions.json").read_bytes()
    for entry in msgspec.json.decode(raw):
        for field in ("asOf", "reviewBy"):
            if field in entry:
                assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", entry[field]), entry["id"]
                date.fromisoformat(entry[field])


def test_review_dates_follow_the_check(bank: QuestionBank) -> None:
    """A marked fact says when it was checked, and is checked again within two years."""
    for q in bank.all():
        assert (q.as_of is None) == (q.review_by is None), q.id
        if q.as_of and q.review_by:
            assert q.as_of < q.review_by <= q.as_of + LONGEST_REVIEW, q.id
            for year in re.findall(r"\b[Aa]s of (\d{4})\b", f"{q.text} {q.explanation}"):
                assert int(year) == q.as_of.year, q.id


def test_overdue_reviews_are_reported(bank: QuestionBank) -> None:
    """A passed reviewBy date is reported (start-up warning, `python -m app.questions`), not a
    failing test: a date passing must not turn an unrelated change's checks red."""
    dated = [q for q in bank.all() if q.review_by is not None]
    earliest = min(q.review_by for q in dated if q.review_by is not None)
    assert bank.overdue(earliest) == []
    assert bank.overdue(date(2100, 1, 1)) == dated
    assert {q.id for q in bank.overdue(earliest + timedelta(days=1))} == {
        q.id for q in dated if q.review_by == earliest
    }


def same_group(a: Question, b: Question) -> bool:
    return a.group is not None and a.group == b.group


def test_give_aways_are_reworded_or_grouped(bank: QuestionBank) -> None:
    for source, target, give_away in GIVE_AWAYS:
        a, b = bank.get(source), bank.get(target)
        shown = " ".join([a.text, *a.options])
        found = re.search(rf"\b{re.escape(give_away)}\b", shown, re.IGNORECASE)
        assert same_group(a, b) or not found, (source, target, give_away)
    for first, second in NEAR_DUPLICATES:
        assert same_group(bank.get(first), bank.get(second)), (first, second)


def test_the_27th_amendment_rules_out_no_count(bank: QuestionBank) -> None:
    """q153 answers "the 27th Amendment"; q012's options must not fall below it."""
    assert min(int(option) for option in bank.get("q012").options) >= 27


def stems(text: str) -> set[str]:
    return {word[:6] for word in re.findall(r"[a-z]+", text.lower()) if len(word) >= 5}


def guessable_from_words(q: Question) -> set[str]:
    wrong = [o for i, o in enumerate(q.options) if i != q.correct_answer]
    return (stems(q.options[q.correct_answer]) & stems(q.text)) - stems(" ".join(wrong))


def test_hard_questions_cannot_be_guessed_from_their_words(bank: QuestionBank) -> None:
    assert guessable_from_words(bank.get("q084")) == {"electo"}  # "Electoral Count Act"
    guessable = {q.id: guessable_from_words(q) for q in bank.all() if q.difficulty == "hard"}
    assert {qid: words for qid, words in guessable.items() if words} == {}


def test_difficulty_labels(bank: QuestionBank) -> None:
    assert {qid for qid in NOT_HARD if bank.get(qid).difficulty == "hard"} == set()
    assert {bank.get(qid).difficulty for qid in MEDIUM} == {"medium"}
    # q046's wrong options are real laws, not made-up names.
    real = {"The Judiciary Act of 1801", "The Evarts Act of 1891", "The Process Act of 1789"}
    assert real <= set(bank.get("q046").options)
