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


ECHO = "A) Boron\nB) Oxygen\nC) Nitrogen\nD) Carbon\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (ECHO, None),  # the last option line is not a choice
        ("Options:\n" + ECHO, None),  # nor is a lead-in that heads the list
        ("Answer:\n\n" + ECHO, None),
        ("A. Boron\nB. Oxygen\nC. Nitrogen\nD. Carbon", None),
        ("- **(A)** Boron\n- **(B)** Oxygen", None),
        ("A\nB\nC\nD", None),
        ("Which element has atomic number 6?\n\n" + ECHO + "\nFinish with a line `Answer: X`.", None),
        (ECHO + "\nAnswer: D", "D"),
        (ECHO + "\nThe answer is (B).", "B"),
        (ECHO + "\nAnswer:\n**C**", "C"),
        ("Answer: D) Carbon\n\n" + ECHO, "D"),  # stated, then the list echoed
        ("A) Boron has 5 protons.\nB) Oxygen has 8.\nC) Nitrogen has 7.\nD) Carbon has 6.\n\nD", "D"),
        (ECHO + "\nC\nD", None),  # two lone letters: no single answer
        ("B) Oxygen", "B"),
        ("- **B)** Oxygen", "B"),
        ("The answer is B", "B"),
    ],
)
def test_an_answer_that_lists_the_options_states_one_or_is_no_answer(text: str, expected: str | None) -> None:
    assert extract_choice(text) == expected


_OPTION_TEXT = st.one_of(
    st.sampled_from(["Boron", "Oxygen", "NaCl", "3", "2.5 mol", "none of these", "H2O", "the mitochondria"]),
    st.text(alphabet="0123456789 xyz.,%+-", min_size=1, max_size=20).filter(str.strip),
)
_OPTION_FORMS = (
    "{L}) {T}",
    "{L}. {T}",
    "({L}) {T}",
    "{L}: {T}",
    "**{L})** {T}",
    "**{L}.** {T}",
    "- {L}) {T}",
    "* ({L}) {T}",
    "{L})  {T}",
    "{L}) **{T}**",
    "{l}) {T}",
)
_HEADERS = ("", "Options:\n", "Choices:\n", "Answer choices:\n", "Answer:\n", "Which is it?\n\n", "The options:\n\n")


@st.composite
def _option_list(draw: st.DrawFn, min_letters: int = 2) -> str:
    """Two or more of the options A-D, in any order, each in any of the usual formats."""
    letters = draw(st.permutations("ABCD"))[: draw(st.integers(min_letters, 4))]
    lines = [
        draw(st.sampled_from(_OPTION_FORMS)).format(L=letter, l=letter.lower(), T=draw(_OPTION_TEXT))
        for letter in letters
    ]
    return draw(st.sampled_from(["\n", "\n\n", "\r\n"])).join(lines)


@settings(max_examples=300, deadline=None)
@given(options=_option_list(), header=st.sampled_from(_HEADERS), end=st.sampled_from(["", "\n", "\n\n"]))
def test_an_echo_of_the_options_is_never_an_answer(options: str, header: str, end: str) -> None:
    assert extract_choice(header + options + end) is None


_STATED_FORMS = (
    "{L}) {T}",
    "{L}. {T}",
    "({L}) {T}",
    "{L}: {T}",
    "**{L})** {T}",
    "- {L}) {T}",
    "{L}",
    "**{L}**",
    "({L})",
    "Answer: {L}",
    "**Answer: {L}**",
    "The answer is {L}",
    "The answer is ({L}) {T}",
    "Final answer: {L}) {T}",
    "\\boxed{{{L}}}",
)
# The forms that still settle it after a list of the options: a statement, or a lone letter.
_STATED_AFTER_A_LIST = tuple(form for form in _STATED_FORMS if "{T}" not in form or "nswer" in form)


@settings(max_examples=300, deadline=None)
@given(
    letter=st.sampled_from("ABCD"),
    text=_OPTION_TEXT,
    data=st.data(),
    preamble=st.sampled_from(["", "Let me think about it.\n\n", "Carbon has six protons.\n"]),
    options=st.one_of(st.none(), _option_list(min_letters=4)),
)
def test_a_single_stated_option_is_always_the_answer(
    letter: str, text: str, data: st.DataObject, preamble: str, options: str | None
) -> None:
    forms = _STATED_FORMS if options is None else _STATED_AFTER_A_LIST
    stated = data.draw(st.sampled_from(forms)).format(L=letter, T=text)
    answer = preamble + (f"{options}\n\n" if options else "") + stated
    assert extract_choice(answer) == letter


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
    with pytest.raises(AssertionError, match=r"\(expected D\); it lists options A, B, C, D without stating one"):
        assert_choice("A) Boron\nB) Oxygen\nC) Nitrogen\nD) Carbon\n", "D")
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
