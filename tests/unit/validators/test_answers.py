"""Tests of pytest_quantgate.validators.answers."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_quantgate.errors import ValidationError
from pytest_quantgate.validators import (
    assert_choice,
    assert_exact,
    assert_number,
    extract_choice,
    extract_number,
    normalize,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is (C)", "C"),
        ("**C**", "C"),
        ("C)", "C"),
        ("Answer: C", "C"),
        ("C. Paris", "C"),
        ("Let me think.\nA is wrong, B is odd.\nC", "C"),
        ("Option B looks right. Final answer: **D**", "D"),
        ("Considering (A) and (B)... the correct answer is B.", "B"),
        ("\\boxed{B}", "B"),
        ("the answer is c", "C"),
        ("The answer is: **B) Paris**", "B"),
        ("The answer is a bit tricky, but (C) fits.", "C"),
        ("I think B) is right.", "B"),
        ("E", None),  # not among the choices
        ("A dog barks.", None),
        ("The answer is A or C", None),
        ("Answer: A, B", None),
        ("A) Rome B) Paris", None),
        ("(A) and (C) both seem right", None),
        ("No idea.", None),
        ("", None),
    ],
)
def test_extract_choice(text: str, expected: str | None) -> None:
    assert extract_choice(text) == expected


def test_extract_choice_with_more_letters() -> None:
    assert extract_choice("The answer is E.", choices="ABCDE") == "E"
    with pytest.raises(ValidationError, match="choices must be letters"):
        extract_choice("A", choices="12")


def test_assert_choice_messages() -> None:
    assert_choice("The answer is (C)", "c")
    with pytest.raises(AssertionError, match=r"^answered B, expected C$"):
        assert_choice("Answer: B", "C")
    with pytest.raises(AssertionError, match=r"no single answer among ABCD found \(expected C\); answer ends"):
        assert_choice("It could be A or maybe B; hard to say.", "C")
    with pytest.raises(ValidationError, match="not one of"):
        assert_choice("A", "Z")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,234.5", 1234.5),
        ("-3", -3.0),
        ("The temperature fell to \u22127 degrees", -7.0),
        ("it is 3/4 of the total", 0.75),
        ("\\boxed{\\frac{3}{4}}", 0.75),
        ("x = 12, so the answer is 42. I checked it 3 times.", 42.0),
        ("Work...\n#### 1,000", 1000.0),
        ("1.5e3", 1500.0),
        ("It costs $12.50", 12.5),
        ("about .5 of it", 0.5),
        ("first 1 then 2 then 3", 3.0),
        ("no numbers", None),
    ],
)
def test_extract_number(text: str, expected: float | None) -> None:
    assert extract_number(text) == expected


def test_extract_number_first_and_without_explicit_marks() -> None:
    assert extract_number("first 1 then 2", which="first") == 1.0
    assert extract_number("the answer is 42. Checked 3 times.", prefer_explicit=False) == 3.0
    assert extract_number("Dates like 12/25/2024 are not fractions") == 2024.0


def test_assert_number_with_tolerance() -> None:
    assert_number("about 3.1416", 3.14159, rel_tol=1e-4)
    assert_number("0.30000000000000004", 0.3)
    assert_number("1,000", 1000, abs_tol=0.5)
    with pytest.raises(AssertionError, match=r"^answered 41.5, expected 42 \(rel_tol=1e-09, abs_tol=0\)$"):
        assert_number("I get 41.5", 42)
    with pytest.raises(AssertionError, match="no number found in the answer"):
        assert_number("many", 3)


def test_normalize() -> None:
    assert normalize('  "Paris." ') == "paris"
    assert normalize("`3.14`") == "3.14"
    assert normalize("Hello,   World!") == "hello world"
    assert normalize("Don\u2019t") == "don't"
    assert normalize("**New  York**") == "new york"


def test_assert_exact() -> None:
    assert_exact("Answer: Paris.", "paris")
    assert_exact("`O(n log n)`", "O(n log n)")
    assert_exact("The answer is New York", ["NYC", "new york"])
    with pytest.raises(AssertionError, match=r"answered 'Lyon', expected 'Paris' \(compared as 'lyon'\)"):
        assert_exact("Lyon", "Paris")
    with pytest.raises(AssertionError):
        assert_exact("Answer: Paris", "paris", strip_lead_in=False)
    with pytest.raises(ValidationError, match="at least one expected answer"):
        assert_exact("x", [])


@settings(max_examples=300, deadline=None)
@given(
    text=st.one_of(
        st.text(),
        st.lists(
            st.sampled_from(["The answer is", " (", "C", ")", "**", "A", "\n", "or", "\\boxed{", "}", "B.", " "])
        ).map("".join),
    )
)
def test_choice_extraction_never_raises(text: str) -> None:
    assert extract_choice(text) in (None, "A", "B", "C", "D")


@settings(max_examples=300, deadline=None)
@given(
    text=st.one_of(
        st.text(),
        st.lists(st.sampled_from(["1", ",", "234", ".", "5", "/", "0", "-", "e", "9" * 400, "\\frac{", "}{", "}"])).map(
            "".join
        ),
    )
)
def test_number_extraction_never_raises(text: str) -> None:
    value = extract_number(text)
    assert value is None or isinstance(value, float)
    normalize(text)


@pytest.mark.parametrize(
    "text",
    ["answer is" + " " * 20000 + "x", "\\boxed{" * 20000, "answer " * 20000, "The answer is " * 20000, "1/" * 20000],
)
def test_pathological_answers_take_linear_time(text: str) -> None:
    # A regression guard against catastrophic regex backtracking (it once took minutes at this size); the
    # bound is loose on purpose, so that a busy machine does not make it flaky.
    start = time.monotonic()
    extract_choice(text)
    extract_number(text)
    normalize(text)
    assert time.monotonic() - start < 5
