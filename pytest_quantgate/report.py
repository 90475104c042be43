"""The decision table: one row per preset in the shape of the field's TL;DR, per-level pass rates, Δ."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from pytest_quantgate.gates import GateOutcome
    from pytest_quantgate.levels import RunAggregate


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: frozenset[int] = frozenset()) -> str:
    """Plain aligned text table; *right* holds the indexes of right-aligned columns."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, (cell, width) in enumerate(zip(cells, widths, strict=False)):
            out.append(str(cell).rjust(width) if i in right else str(cell).ljust(width))
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def _num(value: float | None, digits: int = 1, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:,.{digits}f}{unit}"


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
        ci = f"[{_num(s.ci_low)}, {_num(s.ci_high)}]" if s and s.ci_defined else "—"
        tps = f"{_num(t.mean, 0)} ±{_num(t.sd, 0)} ({_num(t.min, 0)}–{_num(t.max, 0)})" if t else "—"
        ttft = agg.ttft_ms
        rows.append(
            [
                agg.preset,
                str(s.n) if s else "0",
                _num(s.mean if s else None),
                _num(s.sd if s else None),
                f"{_num(s.min, 0)}/{_num(s.max, 0)}" if s else "—",
                ci,
                tps,
                f"{_num(ttft.median, 0)}/{_num(ttft.p95, 0)}" if ttft else "—",
                _num(agg.memory_peak_mb, 0),
                _num(agg.load_s, 2),
                verdict(gates.get(agg.preset, ()), agg.errors),
            ]
        )
    return rows


DECISION_HEADERS = (
    "variant", "n", "score %", "σ", "min/max", "95% CI", "tok/s ±σ (min–max)", "TTFT p50/p95 ms",
    "mem peak MB", "load s", "verdict",
)  # fmt: skip


def delta_row(base: RunAggregate, cand: RunAggregate) -> list[str]:
    def d(a: float | None, b: float | None, digits: int = 1, pct: bool = False) -> str:
        if a is None or b is None:
            return "—"
        if pct:
            return f"{(b / a - 1) * 100:+.1f}%" if a else "—"
        return f"{b - a:+.{digits}f}"

    s0, s1, t0, t1 = base.score, cand.score, base.tps, cand.tps
    return [
        f"Δ {cand.preset} − {base.preset}",
        "",
        d(s0.mean if s0 else None, s1.mean if s1 else None),
        d(s0.sd if s0 else None, s1.sd if s1 else None),
        "",
        "",
        d(t0.mean if t0 else None, t1.mean if t1 else None, pct=True),
        d(base.ttft_ms.median if base.ttft_ms else None, cand.ttft_ms.median if cand.ttft_ms else None, 0),
        d(base.memory_peak_mb, cand.memory_peak_mb, 0),
        d(base.load_s, cand.load_s, 2),
        "",
    ]


def level_table(aggs: Sequence[RunAggregate]) -> str:
    names: dict[str, tuple[str, float]] = {}
    for agg in aggs:
        for lv in agg.levels:
            names.setdefault(lv.level, (lv.name, lv.points))
    headers = ["level", "points", *(a.preset for a in aggs)]
    rows = []
    for level, (name, points) in names.items():
        row = [name, _num(points, 0)]
        for agg in aggs:
            found = next((x for x in agg.levels if x.level == level), None)
            row.append(f"{found.rate.passed}/{found.rate.n} {100 * found.rate.rate:5.1f}%" if found else "—")
        rows.append(row)
    return table(headers, rows, right=frozenset(range(1, len(headers))))


def render(aggs: Sequence[RunAggregate], gates: Mapping[str, Sequence[GateOutcome]]) -> str:
    """The whole terminal report: decision table, Δ for two presets, per-level pass rates, failed gates."""
    rows = decision_rows(aggs, gates)
    if len(aggs) == 2:
        rows.append(delta_row(aggs[0], aggs[1]))
    parts = [
        table(DECISION_HEADERS, rows, right=frozenset(range(1, 10))),
        "",
        "per-level pass rates:",
        level_table(aggs),
    ]
    failed = [o for outcomes in gates.values() for o in outcomes if not o.passed]
    if failed:
        parts += ["", "failed gates:", *(f"  gate[{o.id}] {o.message}" for o in failed)]
    return "\n".join(parts)
