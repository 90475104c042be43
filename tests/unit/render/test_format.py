"""Tests of pytest_quantgate.render.format: one convention for every number people read."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_quantgate.render.format import MINUS, count_range, listing, number, p_value, percent, signed


@pytest.mark.parametrize(
    ("value", "digits", "unit", "expected"),
    [
        (None, 1, "", "—"),
        (math.nan, 1, " MB", "—"),
        (math.inf, 1, "", "∞"),
        (-math.inf, 1, "", "−∞"),
        (1234.56, 1, "", "1,234.6"),
        (1234.56, 0, " MB", "1,235 MB"),
        (-1234.56, 2, "", "−1,234.56"),
        (0.0, 1, "", "0.0"),
        (-0.0, 1, "", "0.0"),
        (-0.04, 1, " %", "0.0 %"),  # rounds to zero: no sign of its own
        (2, 2, "", "2.00"),
    ],
)
def test_number(value, digits, unit, expected) -> None:
    assert number(value, digits, unit) == expected


@pytest.mark.parametrize(
    ("value", "digits", "expected"),
    [
        (None, 1, "—"),
        (math.nan, 1, "—"),
        (math.inf, 1, "+∞"),
        (-math.inf, 1, "−∞"),
        (1.46, 1, "+1.5"),
        (-1.46, 1, "−1.5"),
        (-66.66, 0, "−67"),
        (0.0, 1, "+0.0"),
        (-0.0, 1, "+0.0"),
        (-0.04, 1, "+0.0"),
        (-0.4, 0, "+0"),
        (-1234.5, 1, "−1234.5"),  # differences carry no thousands separator (table columns stay narrow)
    ],
)
def test_signed(value, digits, expected) -> None:
    assert signed(value, digits) == expected


def test_the_minus_sign_is_u2212() -> None:
    assert MINUS == "\u2212"
    assert signed(-3.0) == "\u22123.0"


@pytest.mark.parametrize(
    ("fraction", "digits", "expected"),
    [
        (-0.3, 1, "−30.0%"),
        (0.3, 1, "+30.0%"),
        (0.0, 1, "+0.0%"),
        (-0.00025, 0, "+0%"),
        (None, 1, "—"),
        (math.nan, 1, "—"),
    ],
)
def test_percent(fraction, digits, expected) -> None:
    assert percent(fraction, digits) == expected


@pytest.mark.parametrize(
    ("value", "expected"), [(0.0004, "p < 0.001"), (0.001, "p = 0.001"), (0.0423, "p = 0.042"), (1.0, "p = 1.000")]
)
def test_p_value(value, expected) -> None:
    assert p_value(value) == expected


def test_count_range() -> None:
    assert count_range(5, 5) == "5"
    assert count_range(5, 15) == "5–15"


def test_listing_says_how_many_more() -> None:
    assert listing(["a", "b"]) == "a, b"
    assert listing([f"k{i}" for i in range(8)], 3) == "k0, k1, k2 (+5 more)"
    assert listing([]) == ""


@given(st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=0, max_value=4))
def test_no_hyphen_and_no_negative_zero_ever(value, digits) -> None:
    for text in (number(value, digits), signed(value, digits), percent(value, digits)):
        assert "-" not in text
        digits_only = text.lstrip("+" + MINUS).rstrip("%").replace(",", "").replace(".", "")
        if text.startswith(MINUS) and digits_only.isdigit():
            assert digits_only.strip("0"), f"negative zero {text!r} for {value!r}"
    s = signed(value, digits)
    assert s == "—" or s[0] in ("+", MINUS)
