"""The run's terminal report: the decision table (one row per preset — per preset and suite when a run kept
several suites apart — in the shape of the field's TL;DR, and the Δ of two presets), per-level pass rates,
failed gates."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from pytest_quantgate.render.format import megabytes, memory_cell, number, percent, signed
from pytest_quantgate.render.lanes import LANES_TITLE, has_lanes, lane_table
from pytest_quantgate.render.table import table

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from pytest_quantgate.gates import GateOutcome
    from pytest_quantgate.levels import RunAggregate


class Judged(Protocol):
    """A gate's outcome as the verdict reads it: a live :class:`GateOutcome` or a stored ``GateRecord``."""

    @property
    def passed(self) -> bool: ...


def verdict(outcomes: Sequence[Judged], errors: int) -> str:
    failed = sum(not o.passed for o in outcomes)
    if failed:
        # Not "2/3 gates": most people read that as 2 passed.
        return f"FAIL ({failed} of {len(outcomes)} gates failed)"
    if errors:
        return f"ERROR ({errors} level runs)"
    if not outcomes:
        return "no gates"
    return f"PASS ({len(outcomes)} gates)"


def decision_rows(aggs: Sequence[RunAggregate], gates: Mapping[str, Sequence[GateOutcome]]) -> list[list[str]]:
    rows = []
    for agg in aggs:
        s, t = agg.score, agg.tps
        ci = f"[{number(s.ci_low)}, {number(s.ci_high)}]" if s and s.ci_defined else "—"
        tps = f"{number(t.mean, 0)} ±{number(t.sd, 0)} ({number(t.min, 0)}–{number(t.max, 0)})" if t else "—"
        ttft = agg.ttft_ms
        rows.append(
            [
                agg.label,
                str(s.n) if s else "0",
                number(s.mean if s else None),
                number(s.sd if s else None),
                f"{number(s.min, 0)}/{number(s.max, 0)}" if s else "—",
                ci,
                tps,
                f"{number(ttft.median, 0)}/{number(ttft.p95, 0)}" if ttft else "—",
                memory_cell(agg.memory_mb, agg.memory_mb_source),
                memory_cell(agg.memory_peak_mb, agg.memory_source) if agg.memory_reported_mb is not None else "—",
                number(agg.load_s, 2),
                verdict(gates.get(agg.label, ()), agg.errors),
            ]
        )
    return rows


DECISION_HEADERS = (
    "variant", "n", "score %", "σ", "min/max", "95% CI", "tok/s ±σ (min–max)", "TTFT p50/p95 ms",
    "memory MB", "measured peak MB", "load s", "verdict",
)  # fmt: skip


def delta_row(base: RunAggregate, cand: RunAggregate) -> list[str]:
    def d(a: float | None, b: float | None, digits: int = 1, pct: bool = False) -> str:
        if a is None or b is None:
            return "—"
        if pct:
            return percent(b / a - 1) if a else "—"
        return signed(b - a, digits)

    s0, s1, t0, t1 = base.score, cand.score, base.tps, cand.tps
    return [
        f"Δ {cand.label} − {base.label}",
        "",
        d(s0.mean if s0 else None, s1.mean if s1 else None),
        d(s0.sd if s0 else None, s1.sd if s1 else None),
        "",
        "",
        d(t0.mean if t0 else None, t1.mean if t1 else None, pct=True),
        d(base.ttft_ms.median if base.ttft_ms else None, cand.ttft_ms.median if cand.ttft_ms else None, 0),
        _memory_delta(base, cand),
        d(base.memory_peak_mb, cand.memory_peak_mb, 0) if base.memory_source == cand.memory_source else "—",
        d(base.load_s, cand.load_s, 2),
        "",
    ]


def _memory_delta(base: RunAggregate, cand: RunAggregate) -> str:
    """The memory figures' difference, only between figures of one source (llama.cpp's or one probe's)."""
    a, b = base.memory_mb, cand.memory_mb
    if a is None or b is None or base.memory_mb_source != cand.memory_mb_source:
        return "—"
    return f"{'+' if b >= a else '−'}{megabytes(abs(b - a))}"


def level_table(aggs: Sequence[RunAggregate]) -> str:
    names: dict[str, tuple[str, float]] = {}
    for agg in aggs:
        for lv in agg.levels:
            names.setdefault(lv.level, (lv.name, lv.points))
    headers = ["level", "points", *(a.label for a in aggs)]
    shown = [name for name, _ in names.values()]
    rows = []
    for level, (name, points) in names.items():
        # The same test name in two suites of one run: the level key tells them apart.
        row = [level if shown.count(name) > 1 else name, number(points, 0)]
        for agg in aggs:
            found = next((x for x in agg.levels if x.level == level), None)
            row.append(f"{found.rate.passed}/{found.rate.n} {100 * found.rate.rate:5.1f}%" if found else "—")
        rows.append(row)
    return table(headers, rows, right=frozenset(range(1, len(headers))))


MEASURE_HEADERS = ("variant", "measurement", "unit", "better", "n", "mean", "σ", "min", "max", "median", "p95")


def measure_rows(aggs: Sequence[RunAggregate]) -> list[list[str]]:
    """One row per (preset or preset · suite, recorded measurement): its summary over iterations."""
    rows = []
    for agg in aggs:
        for name, series in agg.measures.items():
            s = series.summary
            stats = [s.mean, s.sd, s.min, s.max, s.median, s.p95] if s else [None] * 6
            rows.append(
                [agg.label, name, series.unit or "—", series.better, str(s.n if s else 0), *(number(x) for x in stats)]
            )
    return rows


def measure_table(aggs: Sequence[RunAggregate]) -> str:
    return table(MEASURE_HEADERS, measure_rows(aggs), right=frozenset(range(4, 11)))


def render(aggs: Sequence[RunAggregate], gates: Mapping[str, Sequence[GateOutcome]]) -> str:
    """The whole terminal report: decision table, Δ for two presets, per-level pass rates, failed gates."""
    rows = decision_rows(aggs, gates)
    if len(aggs) == 2 and aggs[0].suite == aggs[1].suite:  # two presets on one suite, not one on two
        rows.append(delta_row(aggs[0], aggs[1]))
    parts = [table(DECISION_HEADERS, rows, right=frozenset(range(1, 11)))]
    if has_lanes(aggs):
        parts += ["", LANES_TITLE, lane_table(aggs)]
    parts += ["", "per-level pass rates:", level_table(aggs)]
    if any(agg.measures for agg in aggs):
        parts += ["", "measurements (per iteration: the mean of what the levels recorded):", measure_table(aggs)]
    failed = [o for outcomes in gates.values() for o in outcomes if not o.passed]
    if failed:
        parts += ["", "failed gates:", *(f"  gate[{o.id}] {o.message}" for o in failed)]
    return "\n".join(parts)


__all__ = [
    "DECISION_HEADERS",
    "MEASURE_HEADERS",
    "decision_rows",
    "delta_row",
    "level_table",
    "measure_rows",
    "measure_table",
    "render",
    "verdict",
]
