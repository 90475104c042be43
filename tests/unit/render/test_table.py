"""Tests of pytest_quantgate.render.table: the plain aligned text table."""

from __future__ import annotations

from pytest_quantgate.render.table import table


def test_columns_are_as_wide_as_their_widest_cell_and_right_aligned_on_request() -> None:
    text = table(["name", "n"], [["a", "100"], ["longer", "7"]], right=frozenset({1}))
    assert text.splitlines() == [
        "name      n",
        "------  ---",
        "a       100",
        "longer    7",
    ]


def test_trailing_blanks_are_stripped() -> None:
    assert table(["a", "b"], [["x", ""]]).splitlines()[-1] == "x"
