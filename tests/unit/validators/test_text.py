"""Tests of pytest_quantgate.validators.text."""

from __future__ import annotations

import time

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_quantgate.errors import ValidationError
from pytest_quantgate.validators import (
    TextRules,
    assert_text,
    check_text,
    count_words,
    find_phrase,
    paragraphs,
    parse_json,
)

ESSAY = "First paragraph here.\n\nSecond one, longer.\n\n\nThird and last."


class Person(pydantic.BaseModel):
    name: str
    age: int


def test_paragraph_counts() -> None:
    assert paragraphs(ESSAY) == ["First paragraph here.", "Second one, longer.", "Third and last."]
    assert paragraphs("One\r\n\r\nTwo\r\n  \r\nThree") == ["One", "Two", "Three"]
    assert check_text(ESSAY, paragraphs=3) == []
    assert check_text(ESSAY, paragraphs=2) == ["3 paragraphs (expected exactly 2)"]
    assert check_text(ESSAY, min_paragraphs=4) == ["3 paragraphs (expected at least 4)"]
    assert check_text(ESSAY, max_paragraphs=1) == ["3 paragraphs (expected at most 1)"]


def test_markdown_checks_name_the_lines() -> None:
    text = "# Title\n\nSome **bold** words.\n\n- one\n- two\n\n1. first\n\nSubtitle\n--------\n"
    assert check_text(text, no_headers=True, no_bold=True, no_bullets=True, no_numbered_lists=True) == [
        "bullet list at lines 5, 6",
        "numbered list at line 8",
        "header at lines 1, 10",
        "bold text at line 3",
    ]


def test_markdown_inside_code_fences_and_plain_rules_are_fine() -> None:
    text = "Before.\n\n```\n# comment\n- not a bullet\n```\n\nAfter.\n\n---\n\nEnd."
    assert check_text(text, no_headers=True, no_bullets=True) == []


def test_word_and_character_limits() -> None:
    assert count_words("Don't stop — it's a well-known fact.") == 6
    assert check_text("one two three", max_words=2) == ["3 words (expected at most 2)"]
    assert check_text("one two three", min_words=4) == ["3 words (expected at least 4)"]
    assert check_text("  abcdef  ", max_chars=5) == ["6 characters (expected at most 5)"]
    assert check_text("abc", min_chars=5) == ["3 characters (expected at least 5)"]


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("Let us Delve into it.", "delve"),
        ("It delves deep.", "delve"),
        ("A real game-changer.", "game changer"),
        ("A real game changer.", "game-changer"),
        ("Real game\u2014changers all.", "game changer"),
        ("I don\u2019t know.", "don't"),
        ("In the \u201crealm\u201d of ideas", '"realm"'),
        ("The TAPESTRY of life", "tapestry"),
        ("boxes everywhere", "box"),
    ],
)
def test_banned_phrases_match_variants(text: str, phrase: str) -> None:
    assert find_phrase(text, phrase), (text, phrase)
    assert check_text(text, banned=[phrase])[0].startswith(f"banned phrase {phrase!r} at word")


@pytest.mark.parametrize(("text", "phrase"), [("The delver went home.", "delve"), ("today", "to day")])
def test_banned_phrases_do_not_match_other_words(text: str, phrase: str) -> None:
    assert find_phrase(text, phrase) == []


def test_banned_phrase_positions_are_word_numbers() -> None:
    assert find_phrase("We delve, then we delve again.", "delve") == [2, 5]
    assert check_text("We delve, then we delve again.", banned="delve") == ["banned phrase 'delve' at words 2, 5"]


def test_required_phrases_and_openings() -> None:
    text = "Dear team,\n\nThe release is ready.\n\nBest regards"
    assert check_text(text, required=["release"], starts_with="dear team", ends_with="Best regards") == []
    assert check_text(text, required=["rollback"]) == ["required phrase 'rollback' is missing"]
    problems = check_text(text, starts_with="Hello", ends_with="Cheers")
    assert problems[0].startswith("does not start with 'Hello' (starts with 'Dear team,")
    assert problems[1].startswith("does not end with 'Cheers'")


def test_endings_forgive_dash_kinds_but_not_missing_dashes() -> None:
    assert check_text("Good night.\n\n\u2013 Bramble", ends_with="\u2014 Bramble") == []
    assert check_text("Good night.\n\n- bramble", ends_with="\u2014 Bramble") == []
    assert check_text("Good night. Bramble", ends_with="\u2014 Bramble")[0].startswith("does not end with")
    assert check_text("Wow! Great.", banned=["!"]) == ["banned phrase '!' at word 2"]


def test_json_against_a_model_fences_and_prose_stripped() -> None:
    assert check_text('```json\n{"name": "Ada", "age": 36}\n```', json_model=Person) == []
    assert check_text('Here you go: {"name": "Ada", "age": 36} Enjoy!', json_model=Person) == []
    assert parse_json('{"name": "Ada", "age": 36}', Person) == Person(name="Ada", age=36)
    assert parse_json("[1, 2]", list[int]) == [1, 2]
    assert check_text('{"name": "Ada"}', json_model=Person) == ["JSON does not fit Person: age: Field required"]
    assert check_text('{"name": "Ada", "age": 3', json_model=Person)[0].startswith("invalid JSON: Expecting")
    with pytest.raises(AssertionError, match="no JSON: the answer is empty"):
        parse_json("  ", Person)


def test_assert_text_lists_every_problem() -> None:
    text = "One.\n\nTwo.\n\nThree.\n\n- four\n\nWe delve here."
    with pytest.raises(AssertionError) as info:
        assert_text(text, paragraphs=3, no_bullets=True, banned=["delve"])
    assert str(info.value) == (
        "3 problems: 5 paragraphs (expected exactly 3); bullet list at line 7; banned phrase 'delve' at word 6"
    )
    with pytest.raises(AssertionError, match=r"^1 problem: "):
        assert_text("a b c", max_words=2)
    assert_text(ESSAY, TextRules(paragraphs=3))


def test_rule_mistakes_are_validation_errors() -> None:
    with pytest.raises(ValidationError, match=r"unknown text rule.*max_word.*valid rules"):
        check_text("x", max_word=3)
    with pytest.raises(ValidationError, match="banned must hold non-empty strings"):
        TextRules(banned=[""])
    with pytest.raises(ValidationError, match="not both"):
        check_text("x", TextRules(), max_words=3)


@settings(max_examples=200, deadline=None)
@given(text=st.text(), phrase=st.text(min_size=1).filter(str.strip))
def test_check_text_never_raises_on_any_text(text: str, phrase: str) -> None:
    rules = TextRules(
        paragraphs=2, no_bullets=True, no_bold=True, no_headers=True, no_numbered_lists=True,
        banned=(phrase,), required=(phrase,), starts_with=phrase, ends_with=phrase, json_model=Person,
        max_words=5, min_chars=3,
    )  # fmt: skip
    problems = check_text(text, rules)
    assert all(isinstance(problem, str) and problem for problem in problems)


@pytest.mark.parametrize("text", ["**a " * 50000, "**" * 100000, "x y " * 50000, "for x in " * 20000])
def test_pathological_texts_take_linear_time(text: str) -> None:
    # Regression guard against quadratic regexes and position counting; the bound is loose on purpose.
    start = time.monotonic()
    check_text(text, no_bold=True, no_bullets=True, no_headers=True, banned=["x y"], paragraphs=1)
    assert time.monotonic() - start < 5
