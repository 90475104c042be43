"""The lane table: one row per preset with the speed figures the field's write-ups show side by side —
load s, prefill tok/s, decode tok/s, the fixed request's wall time, the N-slot aggregate, draft acceptance.

Each cell is the mean over iterations of the measurement the lane suite (``example_suites/perf``) recorded;
a figure the preset's server could not give is ``n/a`` (the run's skip or warning said why), never 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_quantgate.render.format import number
from pytest_quantgate.render.table import table

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pytest_quantgate.levels import RunAggregate

NOT_MEASURED = "n/a"
LANES_TITLE = "lanes (means over iterations; n/a: the server could not give the figure, the run said why):"
LANE_HEADERS = ("lane", "load s", "prefill tok/s", "decode tok/s", "fixed request s", "N-slot tok/s", "acceptance")
# The figures that make a run a lane run: without any of them there is no lane table.
LANE_FIGURES = ("prefill_tps", "decode_tps", "fixed_wall_s", "slots_aggregate_tps", "draft_acceptance")


def _mean(agg: RunAggregate, name: str) -> float | None:
    series = agg.measures.get(name)
    return series.summary.mean if series is not None and series.summary is not None else None


def _cell(value: float | None, digits: int, unit: str = "") -> str:
    return NOT_MEASURED if value is None else number(value, digits, unit)


def has_lanes(aggs: Sequence[RunAggregate]) -> bool:
    return any(name in agg.measures for agg in aggs for name in LANE_FIGURES)


def lane_rows(aggs: Sequence[RunAggregate]) -> list[list[str]]:
    """One row per preset that recorded any lane figure."""
    rows = []
    for agg in aggs:
        if not any(name in agg.measures for name in LANE_FIGURES):
            continue
        wall = _cell(_mean(agg, "fixed_wall_s"), 2)
        prompt, output = _mean(agg, "fixed_prompt_tokens"), _mean(agg, "fixed_output_tokens")
        if wall != NOT_MEASURED and prompt is not None and output is not None:
            wall += f" ({prompt:.0f}→{output:.0f})"
        slots = _cell(_mean(agg, "slots_aggregate_tps"), 0)
        streams = _mean(agg, "slots_n")
        if slots != NOT_MEASURED and streams is not None:
            slots += f" (×{streams:.0f})"
        acceptance = _mean(agg, "draft_acceptance")
        rows.append(
            [
                agg.preset,
                _cell(agg.load_s, 2),
                _cell(_mean(agg, "prefill_tps"), 0),
                _cell(_mean(agg, "decode_tps"), 0),
                wall,
                slots,
                _cell(None if acceptance is None else 100 * acceptance, 1, " %"),
            ]
        )
    return rows


def lane_table(aggs: Sequence[RunAggregate]) -> str:
    return table(LANE_HEADERS, lane_rows(aggs), right=frozenset(range(1, len(LANE_HEADERS))))


__all__ = ["LANES_TITLE", "LANE_FIGURES", "LANE_HEADERS", "NOT_MEASURED", "has_lanes", "lane_rows", "lane_table"]
