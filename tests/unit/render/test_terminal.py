"""Tests of pytest_quantgate.render.terminal: the decision table, its Δ row, per-level pass rates."""

from __future__ import annotations

import dataclasses

import pytest
from result_builders import base, cand

from pytest_quantgate.compare import result_aggregate
from pytest_quantgate.gates import GateOutcome, parse_gate
from pytest_quantgate.render.format import MINUS
from pytest_quantgate.render.terminal import DECISION_HEADERS, decision_rows, delta_row, render, verdict


def cells(row: list[str]) -> dict[str, str]:
    return dict(zip(DECISION_HEADERS, row, strict=True))


def test_the_delta_row_writes_differences_with_the_minus_sign() -> None:
    b = result_aggregate(base())
    c = result_aggregate(cand(misses={"test_add3": 10}, tps=70.0, memory_mb=900.0))
    row = cells(delta_row(b, c))
    assert row["variant"] == "Δ tiny-q4_0 − tiny-f16"
    assert row["score %"] == f"{MINUS}10.0"
    assert row["tok/s ±σ (min–max)"] == f"{MINUS}30.0%"
    assert row["memory MB"] == f"{MINUS}100"  # both measured by the same probe: comparable
    assert row["TTFT p50/p95 ms"] == "+0"
    assert row["load s"] == "+0.00"


def test_the_delta_row_leaves_what_one_side_lacks_blank() -> None:
    row = cells(delta_row(result_aggregate(base(tps=None)), result_aggregate(cand())))
    assert row["tok/s ±σ (min–max)"] == "—"


def test_a_decision_row_shows_a_missing_measurement_as_a_dash() -> None:
    row = cells(decision_rows([result_aggregate(base(tps=None, ttft_s=None))], {})[0])
    assert row["variant"] == "tiny-f16"
    assert row["n"] == "15"
    assert row["score %"] == "100.0"
    assert row["tok/s ±σ (min–max)"] == "—"
    assert row["TTFT p50/p95 ms"] == "—"
    assert row["verdict"] == "no gates"


def test_two_presets_get_the_delta_row_and_the_level_table() -> None:
    text = render([result_aggregate(base()), result_aggregate(cand(misses={"test_add3": 10}))], {})
    lines = text.splitlines()
    label = "Δ tiny-q4_0 − tiny-f16"
    cells = next(line for line in lines if line.startswith(label)).removeprefix(label)
    assert f"{MINUS}10.0" in cells and "-" not in cells
    assert "per-level pass rates:" in lines
    assert any(line.startswith("test_add3") and line.endswith("15/15 100.0%   5/15  33.3%") for line in lines)


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


def test_recorded_measurements_get_a_table_of_their_own() -> None:
    import dataclasses

    from pytest_quantgate.levels import aggregate
    from pytest_quantgate.measures import Measurement
    from pytest_quantgate.render.terminal import measure_rows

    result = base()
    samples = [
        dataclasses.replace(s, measures=(Measurement("chars_per_s", 10.0 * s.iteration, "chars/s"),))
        for s in result.samples
    ]
    agg = aggregate(result.preset.id, samples)
    (row,) = measure_rows([agg])
    assert row[:5] == [result.preset.id, "chars_per_s", "chars/s", "higher", "15"]
    assert row[5] == "80.0"  # mean of 10, 20, ..., 150
    text = render([agg], {})
    assert "measurements (per iteration" in text and "chars_per_s" in text
    assert "measurements" not in render([result_aggregate(result)], {})


def test_one_preset_on_two_suites_gets_a_row_each_and_no_delta_row() -> None:
    """Suites kept apart: rows are named preset · suite, gates are looked up by that label, and a level
    name found in both suites is shown by its key."""
    a = dataclasses.replace(result_aggregate(base()), suite="a/test_tiny.py")
    moved = tuple(dataclasses.replace(lv, level=f"b/{lv.level}") for lv in a.levels)
    b = dataclasses.replace(a, suite="b/test_tiny.py", levels=moved)
    text = render([a, b], {"tiny-f16 · b/test_tiny.py": [outcome(False)]})
    rows = [line for line in text.splitlines() if line.startswith("tiny-f16 · ")]
    assert [row.split("  ")[0] for row in rows] == ["tiny-f16 · a/test_tiny.py", "tiny-f16 · b/test_tiny.py"]
    assert rows[0].endswith("no gates") and rows[1].endswith("FAIL (1 of 1 gates failed)")
    assert not any(line.startswith("Δ") for line in text.splitlines())
    assert any(line.startswith("b/test_tiny.py::test_add3") for line in text.splitlines())
