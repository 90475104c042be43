"""Tests of pytest_quantgate.report: the decision table's verdict column."""

from __future__ import annotations

import pytest

from pytest_quantgate.gates import GateOutcome, parse_gate
from pytest_quantgate.report import verdict


def outcome(passed: bool) -> GateOutcome:
    return GateOutcome(spec=parse_gate("score_mean >= 95"), preset="p", passed=passed, observed=90.0, message="")


@pytest.mark.parametrize(
    ("passed", "errors", "shown"),
    [
        ([False, False, True], 0, "FAIL (2 of 3 gates failed)"),  # "2/3 gates" read as "2 passed"
        ([False, True], 4, "FAIL (1 of 2 gates failed)"),
        ([True, True, True], 0, "PASS (3 gates)"),
        ([True], 2, "ERROR (2 level runs)"),
        ([], 0, "no gates"),
    ],
)
def test_the_verdict_says_how_many_gates_failed(passed: list[bool], errors: int, shown: str) -> None:
    assert verdict([outcome(p) for p in passed], errors) == shown
