"""A comparison as people read it: decision table rows, per-level differences, recommendation, verdict."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_quantgate.render.format import listing, memory_cell, number, p_value, percent, signed
from pytest_quantgate.render.table import table
from pytest_quantgate.render.terminal import DECISION_HEADERS, decision_rows, delta_row

if TYPE_CHECKING:
    from pytest_quantgate.compare import Comparison
    from pytest_quantgate.inference import SpeedDelta


def quality_verdict(comparison: Comparison) -> str:
    """The quality criterion in words: non-inferior, inferior, worse, or undecided, with the bound (of the
    item analysis when the suite recorded items, else of the level analysis)."""
    q, m = comparison.items or comparison.quality, comparison.options.margin
    if q.non_inferior:
        return f"non-inferior: lower bound {signed(q.lower_bound)} > {signed(-m)}"
    if q.upper_bound < -m:
        return f"inferior: upper bound {signed(q.upper_bound)} < {signed(-m)}"
    if q.upper_bound < 0:
        return f"worse: upper bound {signed(q.upper_bound)} < 0, lower {signed(q.lower_bound)} ≤ {signed(-m)}"
    return f"undecided: lower bound {signed(q.lower_bound)} ≤ {signed(-m)}"


def _speed_cell(delta: SpeedDelta | None) -> str:
    if delta is None:
        return "not compared"
    return f"{percent(delta.relative_change)}: {delta.verdict} ({p_value(delta.p_value)})"


def recommendation_rows(comparison: Comparison) -> list[list[str]]:
    """The field's recommendation table: criterion, baseline, candidate, verdict."""
    c = comparison
    q = c.items or c.quality
    unit = f"{c.items.n_items} items" if c.items else "score"
    rows = [
        [
            f"quality ({unit}, margin {c.options.margin:g})",
            number(q.baseline_score, 1, " %"),
            number(q.candidate_score, 1, " %"),
            f"Δ {signed(q.difference)}; {quality_verdict(c)}",
        ]
    ]
    if c.sequential is not None:
        sq = c.sequential
        rows.append(["quality (sequential test)", "", f"n={sq.iterations}", f"{sq.decision}: {sq.reason}"])
    if c.unpaired is not None:
        u = c.unpaired
        rows.append(
            [
                "quality (iteration scores, unpaired)",
                f"n={u.n_baseline}",
                f"n={u.n_candidate}",
                f"Δ {signed(u.difference)}, lower {signed(u.lower_bound)}; Welch {p_value(u.welch_p_value)}",
            ]
        )
    measured = c.candidate_aggregate.memory_source or c.baseline_aggregate.memory_source
    per_iteration = f"memory per iteration MB ({measured})" if measured else "memory per iteration MB"
    speed = (("tokens/s (median)", c.tps, 1), ("TTFT median ms", c.ttft, 0), (per_iteration, c.memory, 0))
    for label, delta, digits in speed:
        rows.append(
            [
                label,
                number(delta.baseline_median, digits) if delta else "—",
                number(delta.candidate_median, digits) if delta else "—",
                _speed_cell(delta),
            ]
        )
    for m in c.measures:
        unit = f" {m.unit}" if m.unit else ""
        rows.append(
            [
                f"{m.name}{unit} (median)",
                number(m.delta.baseline_median, 1),
                number(m.delta.candidate_median, 1),
                _speed_cell(m.delta),
            ]
        )
    ba, ca = c.baseline_aggregate, c.candidate_aggregate
    change = "—"
    if ba.memory_mb and ca.memory_mb:
        change = percent(ca.memory_mb / ba.memory_mb - 1)
        if ba.memory_mb_source != ca.memory_mb_source:
            change += " (different sources: not comparable)"
    rows.append(
        [
            "memory MB",
            memory_cell(ba.memory_mb, ba.memory_mb_source),
            memory_cell(ca.memory_mb, ca.memory_mb_source),
            change,
        ]
    )
    if ba.memory_reported_mb is not None or ca.memory_reported_mb is not None:
        rows.append(
            [
                "measured peak MB",
                memory_cell(ba.memory_peak_mb, ba.memory_source),
                memory_cell(ca.memory_peak_mb, ca.memory_source),
                "beside llama.cpp's figure: depends on host, load and suite length",
            ]
        )
    if c.ceiling is None:
        ceiling = ["memory ceiling", "—", "not set", "—"]
    else:
        state = {True: "within", False: "EXCEEDED", None: "not checked (no reading)"}[c.ceiling.within]
        ceiling = ["memory ceiling", "—", number(c.ceiling.ceiling_mb, 0, " MB"), state]
    rows.append(ceiling)
    load = "—"
    if c.baseline_load_s and c.candidate_load_s:
        load = f"{percent(c.candidate_load_s / c.baseline_load_s - 1)} (one start each: not tested)"
    rows.append(["load time s", number(c.baseline_load_s, 2), number(c.candidate_load_s, 2), load])
    return rows


RECOMMENDATION_HEADERS = ("criterion", "baseline", "candidate", "verdict")
LEVEL_HEADERS = ("level", "points", "baseline", "candidate", "Δ pts", "90% interval", "")


def level_rows(comparison: Comparison) -> list[list[str]]:
    """Per-level pass rates on both sides, the difference (pp of the level's pass rate) and its interval.

    The interval is two-sided at 1 − 2α (90 % by default): its ends are the one-sided bounds the verdict
    uses. The last column flags levels shown worse (upper end < 0) or better (lower end > 0).
    """
    rows = []
    for lv in comparison.quality.levels:
        flag = "worse" if lv.upper < 0 else "better" if lv.lower > 0 else ""
        rows.append(
            [
                comparison.level_names.get(lv.level, lv.level),
                f"{lv.points:g}",
                f"{lv.baseline_passed}/{lv.baseline_n} {100 * lv.baseline_passed / lv.baseline_n:5.1f}%",
                f"{lv.candidate_passed}/{lv.candidate_n} {100 * lv.candidate_passed / lv.candidate_n:5.1f}%",
                signed(lv.difference),
                f"[{signed(lv.lower)}, {signed(lv.upper)}]",
                flag,
            ]
        )
    return rows


def decision_table_rows(comparison: Comparison) -> list[list[str]]:
    """Both presets' decision-table rows (common levels only) and the Δ row, in terminal.DECISION_HEADERS."""
    base, cand = comparison.baseline_aggregate, comparison.candidate_aggregate
    rows = decision_rows([base, cand], {})
    rows[0][0], rows[0][-1] = f"{comparison.baseline_label} (baseline)", "baseline"
    rows[1][0], rows[1][-1] = f"{comparison.candidate_label} (candidate)", comparison.verdict
    delta = delta_row(base, cand)
    delta[0] = "Δ candidate − baseline"
    return [*rows, delta]


def render(comparison: Comparison) -> str:
    """The comparison as terminal text: decision table, per-level differences, recommendation, verdict."""
    c, q = comparison, comparison.quality
    conf = 100 * (1 - c.options.alpha)
    parts = [
        f"candidate {c.candidate_label} against baseline {c.baseline_label}",
        "",
        table(DECISION_HEADERS, decision_table_rows(c), right=frozenset(range(1, 11))),
        "",
        f"per-level pass rates (Δ = candidate − baseline, {100 * (1 - 2 * c.options.alpha):g}% interval):",
        table(LEVEL_HEADERS, level_rows(c), right=frozenset({1, 2, 3, 4})),
        "",
        f"quality: Δ {signed(q.difference)} pts (candidate {number(q.candidate_score, 1, ' %')} vs baseline "
        f"{number(q.baseline_score, 1, ' %')}), one-sided {conf:g}% bounds [{signed(q.lower_bound)}, "
        f"{signed(q.upper_bound)}], margin {c.options.margin:g}: {quality_verdict(c)} ({q.method})",
    ]
    if c.items is not None:
        parts += _item_lines(c)
    if c.sequential is not None:
        sq = c.sequential
        parts.append(f"sequential test: {sq.decision} after {sq.iterations} iterations ({sq.reason})")
    if c.unpaired is not None:
        u = c.unpaired
        parts.append(
            f"iteration scores (unpaired, ignores levels): Δ {signed(u.difference)} pts, one-sided bounds "
            f"[{signed(u.lower_bound)}, {signed(u.upper_bound)}], Welch {p_value(u.welch_p_value)}, Mann-Whitney "
            f"{p_value(u.mann_whitney_p_value)}"
        )
    if c.planning is not None and c.planning.per_preset is not None:
        parts.append(
            f"planning: about {c.planning.per_preset} iterations per preset for 80% power "
            f"(planning Δ {signed(c.planning.planning_difference)} pts; {c.planning.method})"
        )
    parts += [
        "",
        "recommendation:",
        table(RECOMMENDATION_HEADERS, recommendation_rows(c)),
    ]
    if c.caveats:
        parts += ["", "caveats (the runs differ in more than the model):", *(f"  - {x}" for x in c.caveats)]
    if c.problems:
        parts += ["", "limits of this comparison:", *(f"  - {x}" for x in c.problems)]
    parts += ["", c.message]
    return "\n".join(parts)


def _item_lines(c: Comparison) -> list[str]:
    """What decided: the items, their bounds, and how much repeating them changed."""
    i = c.items
    assert i is not None
    conf = 100 * (1 - c.options.alpha)
    names = c.item_names
    lines = [
        f"items (decide quality): Δ {signed(i.difference)} pts (candidate {number(i.candidate_score, 1, ' %')} vs "
        f"baseline {number(i.baseline_score, 1, ' %')}) over {i.n_items} paired items, one-sided {conf:g}% bounds "
        f"[{signed(i.lower_bound)}, {signed(i.upper_bound)}]; {i.n_pairs} item-iterations, but each item counts "
        f"once: its repeats are not independent evidence ({i.method})",
        f"  answers that changed between iterations: baseline {i.baseline_changed} item(s) "
        f"({i.baseline_changed_after_first} after the first iteration), candidate {i.candidate_changed} "
        f"({i.candidate_changed_after_first})",
    ]
    if i.worse:
        lines.append(f"  items worse: {listing([names.get(k, k) for k in i.worse], 10)}")
    if i.better:
        lines.append(f"  items better: {listing([names.get(k, k) for k in i.better], 10)}")
    return lines


__all__ = [
    "LEVEL_HEADERS",
    "RECOMMENDATION_HEADERS",
    "decision_table_rows",
    "level_rows",
    "quality_verdict",
    "recommendation_rows",
    "render",
]
