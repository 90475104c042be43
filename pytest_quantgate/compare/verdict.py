"""The verdict of a comparison (swap, keep or inconclusive) with its evidence and its limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pytest_quantgate.compare.caveats import provenance_caveats
from pytest_quantgate.compare.items import item_message, paired_items_of
from pytest_quantgate.compare.matching import match_levels
from pytest_quantgate.compare.options import CompareOptions
from pytest_quantgate.compare.sides import read_side, restricted_aggregate, speed_series
from pytest_quantgate.errors import ResultsError, SpecError
from pytest_quantgate.inference import (
    ItemComparison,
    ItemSequentialDecision,
    IterationsNeeded,
    NonInferiorityResult,
    SequentialDecision,
    SpeedDelta,
    UnpairedComparison,
    iterations_needed,
    quality_noninferiority,
    speed_delta,
    unpaired_comparison,
)
from pytest_quantgate.render.format import count_range, listing, number, percent, signed

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from pytest_quantgate.levels import RunAggregate
    from pytest_quantgate.results import ResultFile

Verdict = Literal["swap", "keep", "inconclusive"]


@dataclass(frozen=True, slots=True)
class CeilingCheck:
    """The candidate's peak memory against its preset's ``memory_ceiling_mb``; ``within`` is None when
    no reading exists (an attached server), so the ceiling cannot be checked."""

    ceiling_mb: float
    peak_mb: float | None
    within: bool | None
    source: str | None


@dataclass(frozen=True, slots=True)
class MeasureChange:
    """A recorded measurement on both sides: per-iteration values compared like tokens/s (significant AND
    beyond the noise floor). ``better`` "neither" reports the direction without judging it."""

    name: str
    unit: str
    better: str
    delta: SpeedDelta


@dataclass(frozen=True, slots=True)
class Comparison:
    """A candidate result against a baseline result: the verdict, the evidence, and its limits."""

    verdict: Verdict
    passed: bool  # verdict == "swap"
    message: str  # one line, for the gate outcome and CI logs
    more_iterations: int | None
    baseline_id: str
    candidate_id: str
    baseline_label: str  # preset id, with the run id when both sides are the same preset
    candidate_label: str
    quality: NonInferiorityResult  # stratified by level, common levels only (descriptive when items decide)
    items: ItemComparison | None  # paired by item, clustered by item: decides quality when both sides have samples
    item_names: Mapping[str, str]  # item key → display name, "test_add3[12+30]"
    sequential: SequentialDecision | ItemSequentialDecision | None  # the run's sequential test, if it used one
    unpaired: UnpairedComparison | None  # iteration scores, ignores levels; labelled unpaired
    planning: IterationsNeeded | None
    tps: SpeedDelta | None  # tokens/s per iteration
    ttft: SpeedDelta | None  # ms per request, lower is better
    memory: SpeedDelta | None  # highest reading per iteration, lower is better
    measures: tuple[MeasureChange, ...]  # recorded measurements present on both sides
    ceiling: CeilingCheck | None
    baseline_load_s: float | None
    candidate_load_s: float | None
    baseline_aggregate: RunAggregate  # common levels only
    candidate_aggregate: RunAggregate
    level_names: Mapping[str, str]  # level key → display name
    only_in_baseline: tuple[str, ...]
    only_in_candidate: tuple[str, ...]
    caveats: tuple[str, ...]
    problems: tuple[str, ...]
    options: CompareOptions


def _speed(
    what: str,
    base: Sequence[float],
    cand: Sequence[float],
    options: CompareOptions,
    problems: list[str],
    **kwargs: Any,
) -> SpeedDelta | None:
    if not base or not cand:
        side = "baseline" if not base else "candidate"
        problems.append(f"{what} not compared: the {side} recorded none")
        return None
    try:
        return speed_delta(base, cand, floor=options.speed_floor, alpha=options.alpha, **kwargs)
    except SpecError as exc:
        problems.append(f"{what} not compared: {exc}")
        return None


def compare(
    baseline: ResultFile,
    candidate: ResultFile,
    options: CompareOptions | None = None,
    *,
    sequential: SequentialDecision | ItemSequentialDecision | None = None,
) -> Comparison:
    """Compare *candidate* against *baseline*: may the candidate's preset replace the baseline's?

    Only the levels both runs hold are compared (matched by level key, or by file and test name when
    the suites were run from different directories); missing levels are listed in ``problems``. Raises
    :class:`~pytest_quantgate.errors.ResultsError` when the two results share no level.

    *sequential*: the latest :class:`~pytest_quantgate.inference.SequentialDecision` of a run that looked
    after every iteration (``--sequential``). Its decision then replaces the fixed analysis for "swap":
    a fixed bound computed after repeated looks would inflate the false-swap rate. "keep" from the fixed
    analysis still stands (it cannot cause a false swap).
    """
    options = options or CompareOptions()
    base, cand = read_side(baseline, "baseline"), read_side(candidate, "candidate")
    b_map, c_map, loose = match_levels(base.levels, cand.levels)
    caveats: list[str] = []
    problems: list[str] = []
    only_b = tuple(k for k in base.levels if k not in b_map)
    only_c = tuple(k for k in cand.levels if k not in c_map)
    if not b_map:
        raise ResultsError(
            f"baseline {baseline.preset.id} (run {baseline.run_id}) and candidate {candidate.preset.id} (run "
            f"{candidate.run_id}) share no level: they come from different suites. Baseline levels: "
            f"{listing(base.levels)}; candidate levels: {listing(cand.levels)}. Run the same suite on both presets"
        )
    if only_b or only_c:
        problems.append(
            f"different level sets: compared on the {len(b_map)} common level(s) only; only in the baseline: "
            f"{listing(only_b) or 'none'}; only in the candidate: {listing(only_c) or 'none'}"
        )
    if loose:
        example = f"{loose[0][0]} ↔ {loose[0][1]}"
        caveats.append(
            f"{len(loose)} level(s) matched by file and test name because their paths differ (suites run from "
            f"another directory?), e.g. {example}"
        )
    inverse_c = {common: key for key, common in c_map.items()}
    points: dict[str, float] = {}
    for key in b_map:
        pb, pc = base.levels[key].points, cand.levels[inverse_c[key]].points
        points[key] = pc
        if pb != pc:
            caveats.append(
                f"level {base.levels[key].name} is worth {pb:g} points in the baseline and {pc:g} in the "
                "candidate (the suite changed); the candidate's points are used"
            )
    base_agg = restricted_aggregate(base, b_map)
    cand_agg = restricted_aggregate(cand, c_map)
    b_out = {lv.level: lv.outcomes for lv in base_agg.levels}
    c_out = {lv.level: lv.outcomes for lv in cand_agg.levels}
    quality = quality_noninferiority(b_out, c_out, points, options.margin, options.alpha)

    n_b = max((len(v) for v in b_out.values()), default=0)
    n_c = max((len(v) for v in c_out.values()), default=0)
    if n_b != n_c or quality.n_baseline != n_b or quality.n_candidate != n_c:
        caveats.append(
            f"different iteration counts: baseline {count_range(quality.n_baseline, n_b)}, candidate "
            f"{count_range(quality.n_candidate, n_c)} per level"
        )
    caveats += provenance_caveats(baseline, candidate, options)
    for role, side, n in (("baseline", base, quality.n_baseline), ("candidate", cand, quality.n_candidate)):
        if n == 1:
            problems.append(
                f"{role} has a single iteration: its score has no spread and no t interval, and the unpaired "
                "score comparison needs 2; the per-level Wilson bounds still hold but are wide, so expect "
                f"'inconclusive' — run the {role} preset with --iterations 15"
            )
        if not side.from_samples:
            problems.append(
                f"{role} has no per-iteration samples, only its summary: quality uses its per-level counts; TTFT "
                "per request, memory per iteration and matched items are not available"
            )
    for role, agg in (("baseline", base_agg), ("candidate", cand_agg)):
        if agg.errors:
            problems.append(
                f"{role} had {agg.errors} errored level run(s) (server or request failures), counted as misses; "
                "its quality may be understated"
            )
    if baseline.run_id == candidate.run_id and baseline.preset.id == candidate.preset.id:
        problems.append(f"baseline and candidate are the same run ({baseline.run_id}): the comparison says nothing")

    items, item_names = paired_items_of(base, cand, b_map, c_map, options, problems)
    unpaired = None
    if items is None:  # with items it would count an item's repeats as evidence
        b_scores = [it.percent for it in base_agg.iterations]
        c_scores = [it.percent for it in cand_agg.iterations]
        if len(b_scores) >= 2 and len(c_scores) >= 2:
            unpaired = unpaired_comparison(b_scores, c_scores, options.margin, options.alpha)

    b_tps, b_ttft, b_mem = speed_series(base, base_agg, b_map)
    c_tps, c_ttft, c_mem = speed_series(cand, cand_agg, c_map)
    tps = _speed("tokens/s", b_tps, c_tps, options, problems)
    ttft = _speed("TTFT", b_ttft, c_ttft, options, problems, higher_is_better=False)
    memory = None
    if b_mem or c_mem:  # silent when neither side measured memory (attached servers)
        memory = _speed(
            "memory", b_mem, c_mem, options, problems, higher_is_better=False, better_label="smaller",
            worse_label="larger",
        )  # fmt: skip

    measures = _measure_changes(base_agg, cand_agg, options, problems)

    ceiling = None
    if candidate.preset.memory_ceiling_mb is not None:
        peak = cand_agg.memory_mb  # llama.cpp's report when there is one: the same on every machine
        ceiling = CeilingCheck(
            ceiling_mb=candidate.preset.memory_ceiling_mb,
            peak_mb=peak,
            within=None if peak is None else peak <= candidate.preset.memory_ceiling_mb,
            source=cand_agg.memory_mb_source,
        )
        if peak is None:
            problems.append(
                f"memory ceiling {candidate.preset.memory_ceiling_mb:g} MB set but the candidate has no memory "
                "reading (attached server?): the ceiling cannot be checked, so no swap; boot the server from "
                "the preset, or drop memory_ceiling_mb"
            )
    if options.require_faster and tps is None:
        problems.append("--require-faster but tokens/s could not be compared: the speed condition cannot be met")

    call = _quality_call(items or quality, sequential, options)
    verdict, reasons = _decide(call, tps, ceiling, options)
    planning = None
    more = None
    if verdict == "inconclusive" and not call.ok and items is None:
        planning = _plan(b_out, c_out, points, quality, options)
        if planning is not None and planning.additional is not None:
            more = max(1, planning.additional)
    labels = _labels(baseline, candidate)
    names = {lv.level: lv.name for lv in (*cand_agg.levels, *base_agg.levels)}
    if items is not None:
        message = item_message(verdict, call.ok, call.bad, call.why, items, reasons, item_names, labels)
    else:
        message = _message(verdict, call, quality, reasons, planning, more, names, labels)
    return Comparison(
        verdict=verdict,
        passed=verdict == "swap",
        message=message,
        more_iterations=more,
        baseline_id=baseline.preset.id,
        candidate_id=candidate.preset.id,
        baseline_label=labels[0],
        candidate_label=labels[1],
        quality=quality,
        items=items,
        item_names=item_names,
        sequential=sequential,
        unpaired=unpaired,
        planning=planning,
        tps=tps,
        ttft=ttft,
        memory=memory,
        measures=measures,
        ceiling=ceiling,
        baseline_load_s=base_agg.load_s,
        candidate_load_s=cand_agg.load_s,
        baseline_aggregate=base_agg,
        candidate_aggregate=cand_agg,
        level_names=names,
        only_in_baseline=only_b,
        only_in_candidate=only_c,
        caveats=tuple(caveats),
        problems=tuple(problems),
        options=options,
    )


_LABELS = {"higher": ("better", "worse"), "lower": ("better", "worse"), "neither": ("higher", "lower")}


def _measure_changes(
    base: RunAggregate, cand: RunAggregate, options: CompareOptions, problems: list[str]
) -> tuple[MeasureChange, ...]:
    """Every recorded measurement of either side, compared where both recorded it."""
    changes = []
    for name in dict.fromkeys([*base.measures, *cand.measures]):
        b, c = base.measures.get(name), cand.measures.get(name)
        ref = c or b
        assert ref is not None
        better_label, worse_label = _LABELS[ref.better]
        delta = _speed(
            f"measurement {name}", b.values if b else [], c.values if c else [], options, problems,
            higher_is_better=ref.better != "lower", better_label=better_label, worse_label=worse_label,
        )  # fmt: skip
        if delta is not None:
            changes.append(MeasureChange(name, ref.unit, ref.better, delta))
    return tuple(changes)


def _plan(
    b_out: Mapping[str, Sequence[bool]],
    c_out: Mapping[str, Sequence[bool]],
    points: Mapping[str, float],
    quality: NonInferiorityResult,
    options: CompareOptions,
) -> IterationsNeeded | None:
    """Iterations for 80 % power if the presets are truly equal; pessimistic (observed Δ) when that plan
    is already met, since the bound still fell short."""
    plan = iterations_needed(b_out, c_out, points, options.margin, options.alpha, max_iterations=2000)
    if plan.additional == 0 and quality.difference < 0:
        plan = iterations_needed(
            b_out, c_out, points, options.margin, options.alpha,
            planning_difference=quality.difference, max_iterations=2000,
        )  # fmt: skip
    return plan


@dataclass(frozen=True, slots=True)
class _QualityCall:
    ok: bool  # non-inferior: quality allows a swap
    bad: bool  # shown inferior or worse: keep
    why: str  # the quality part of the message


def _quality_call(
    quality: NonInferiorityResult | ItemComparison,
    sequential: SequentialDecision | ItemSequentialDecision | None,
    options: CompareOptions,
) -> _QualityCall:
    """Read the quality verdict off the inference results (the sequential decision first, when given)."""
    m = options.margin
    d, lo, hi = signed(quality.difference), signed(quality.lower_bound), signed(quality.upper_bound)
    if isinstance(quality, ItemComparison):
        n = f"{quality.n_items} items ({quality.n_pairs} pairs)"
    else:
        low, high = sorted((quality.n_baseline, quality.n_candidate))
        n = f"n={count_range(low, high)}"
    margin = f"{signed(-m)} (margin)"
    if sequential is not None and sequential.decision != "continue":
        why = f"score Δ {d} pts, sequential test after {sequential.iterations} iterations: {sequential.reason}"
        return _QualityCall(sequential.decision == "swap", sequential.decision == "keep", why)
    if quality.upper_bound < -m:
        return _QualityCall(
            False, True, f"score Δ {d} pts, lower bound {lo} < {margin}, upper bound {hi} < {signed(-m)} at {n}"
        )
    if quality.upper_bound < 0 and not quality.non_inferior:
        return _QualityCall(
            False, True, f"score Δ {d} pts, lower bound {lo} < {margin}, upper bound {hi} < 0 (shown worse) at {n}"
        )
    if quality.non_inferior and sequential is None:
        return _QualityCall(True, False, f"score Δ {d} pts, lower bound {lo} > {margin} at {n}")
    why = f"lower bound {lo} vs margin {signed(-m)} at {n}"
    if sequential is not None:
        why += f"; sequential test: {sequential.reason}"
    return _QualityCall(False, False, why)


def _decide(
    call: _QualityCall,
    tps: SpeedDelta | None,
    ceiling: CeilingCheck | None,
    options: CompareOptions,
) -> tuple[Verdict, list[str]]:
    """The verdict and the reasons that are not about quality (memory, speed)."""
    keep: list[str] = []
    block: list[str] = []
    if ceiling is not None:
        if ceiling.within is False:
            assert ceiling.peak_mb is not None
            peak, limit = number(ceiling.peak_mb, 0, " MB"), number(ceiling.ceiling_mb, 0, " MB")
            keep.append(f"memory {peak} ({ceiling.source}) > ceiling {limit}")
        elif ceiling.within is None:
            block.append(f"memory ceiling {number(ceiling.ceiling_mb, 0, ' MB')} not checked (no reading)")
    if options.require_faster:
        if tps is None:
            block.append("tok/s not compared (--require-faster)")
        elif tps.verdict == "slower":
            keep.append(f"tok/s {percent(tps.relative_change)} slower (--require-faster)")
        elif tps.verdict != "faster":
            block.append(f"tok/s {percent(tps.relative_change)}, {tps.verdict} (--require-faster)")
    if call.bad or keep:
        return "keep", keep
    if call.ok and not block:
        return "swap", []
    return "inconclusive", block


def _message(
    verdict: Verdict,
    call: _QualityCall,
    quality: NonInferiorityResult,
    reasons: list[str],
    planning: IterationsNeeded | None,
    more: int | None,
    names: Mapping[str, str],
    labels: tuple[str, str],
) -> str:
    tail = f"preset {labels[1]} vs {labels[0]}"
    if verdict == "swap":
        return f"verdict swap: {call.why}; {tail}"
    if verdict == "keep":
        parts = [call.why] if call.bad else []
        worse = sorted((lv for lv in quality.levels if lv.upper < 0), key=lambda lv: lv.difference)
        if call.bad and worse:
            shown = ", ".join(f"{names.get(lv.level, lv.level)} {signed(lv.difference, 0)} pts" for lv in worse[:3])
            more_levels = f" (+{len(worse) - 3} more)" if len(worse) > 3 else ""
            parts.append(f"levels {shown}{more_levels}")
        parts += reasons
        return f"verdict keep: {', '.join(parts)}; {tail}"
    if call.ok:
        why = "; ".join(reasons) or "not settled"
        return f"verdict inconclusive — quality non-inferior ({call.why}) but {why}; {tail}"
    extra = f"; also {'; '.join(reasons)}" if reasons else ""
    if more is not None:
        return f"verdict inconclusive — about {more} more iterations needed ({call.why}){extra}; {tail}"
    if planning is not None:
        return (
            f"verdict inconclusive — no practical number of iterations settles a {quality.margin:g}-point margin "
            f"({call.why}); widen --margin or compare richer data (more items per level){extra}; {tail}"
        )
    return f"verdict inconclusive ({call.why}){extra}; {tail}"


def _labels(baseline: ResultFile, candidate: ResultFile) -> tuple[str, str]:
    if baseline.preset.id == candidate.preset.id:
        return f"{baseline.preset.id}@{baseline.run_id}", f"{candidate.preset.id}@{candidate.run_id}"
    return baseline.preset.id, candidate.preset.id


__all__ = ["CeilingCheck", "Comparison", "Verdict", "compare"]
