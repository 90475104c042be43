"""May the candidate replace the baseline? Two result files in, one verdict out, with its evidence.

:func:`compare` is pure: it reads two :class:`~pytest_quantgate.results.ResultFile` objects (finished or
interrupted, from this run or from disk) and returns a :class:`Comparison`. The statistics come from
:mod:`pytest_quantgate.inference` (see ``docs/statistics.md``); this module decides which of them apply
to the data at hand, what the data cannot support (``problems``) and what differs between the two runs
besides the model (``caveats``). ``docs/baselines.md`` explains the verdicts for users.

Verdict (quality ``Δ`` and its one-sided bounds are in points of the maximum score):

* **swap** — quality non-inferior (lower bound > −margin), within the candidate's memory ceiling when
  it has one, and faster when ``require_faster`` is set;
* **keep** — quality shown inferior (upper bound < −margin, or upper bound < 0 while the lower bound
  is not above −margin: the candidate is worse and not shown to be within the margin — the fixed
  analysis' version of :class:`~pytest_quantgate.inference.SequentialTest`'s futility rule), the memory
  ceiling exceeded, or slower when ``require_faster`` is set;
* **inconclusive** — anything else, with ``more_iterations`` from
  :func:`~pytest_quantgate.inference.iterations_needed` when more quality data would settle it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pytest_quantgate.errors import ResultsError, SpecError
from pytest_quantgate.inference import (
    IterationsNeeded,
    McNemarResult,
    NonInferiorityResult,
    PairedNonInferiorityResult,
    SequentialDecision,
    SpeedDelta,
    UnpairedComparison,
    iterations_needed,
    mcnemar,
    paired_noninferiority,
    quality_noninferiority,
    speed_delta,
    unpaired_comparison,
)
from pytest_quantgate.levels import IterationScore, LevelAggregate, RunAggregate, Sample, aggregate
from pytest_quantgate.stats import Summary, summarize, wilson

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from pathlib import Path

    from pytest_quantgate.results import ResultFile

Verdict = Literal["swap", "keep", "inconclusive"]

# Below this many matched items the "paired" analysis is just the stratified one with extra steps.
PAIRED_MIN_ITEMS = 2


@dataclass(frozen=True, slots=True)
class CompareOptions:
    """How strict the comparison is. Margins and bounds are in points of the maximum score (0-100)."""

    margin: float = 2.0  # non-inferiority margin, percentage points of the max score
    speed_floor: float = 0.05  # a TPS/TTFT/memory change counts only beyond this AND significant
    require_faster: bool = False  # a swap also needs the candidate to be faster (tokens/s)
    alpha: float = 0.05  # one-sided level of every bound, two-sided level of the speed tests
    max_age_days: float = 14.0  # runs further apart than this get a caveat

    def __post_init__(self) -> None:
        if not (math.isfinite(self.margin) and 0.0 <= self.margin < 100.0):
            raise SpecError(
                f"margin={self.margin!r} must be a number of score points in [0, 100), e.g. 2 "
                "(0 asks for 'not worse at all')"
            )
        if not (math.isfinite(self.speed_floor) and self.speed_floor >= 0.0):
            raise SpecError(f"speed_floor={self.speed_floor!r} must be a fraction ≥ 0, e.g. 0.05 for 5 %")
        if not 0.0 < self.alpha < 0.5:
            raise SpecError(f"alpha={self.alpha!r} must lie strictly between 0 and 0.5 (one-sided), e.g. 0.05")
        if not (self.max_age_days > 0.0):
            raise SpecError(f"max_age_days={self.max_age_days!r} must be a positive number of days, e.g. 14")


@dataclass(frozen=True, slots=True)
class PairedItems:
    """Matched items: the same parametrized level, same iteration number, on both presets.

    ``pairs`` = items x shared iterations. ``lost`` are the display names of items the candidate got wrong
    in some iteration where the baseline got them right (``gained`` the reverse), worst first.
    """

    items: int
    pairs: int
    mcnemar: McNemarResult
    noninferiority: PairedNonInferiorityResult
    lost: tuple[str, ...]
    gained: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CeilingCheck:
    """The candidate's peak memory against its preset's ``memory_ceiling_mb``; ``within`` is None when
    no reading exists (an attached server), so the ceiling cannot be checked."""

    ceiling_mb: float
    peak_mb: float | None
    within: bool | None
    source: str | None


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
    quality: NonInferiorityResult  # stratified by level, common levels only
    sequential: SequentialDecision | None  # when the run used the sequential test, its decision rules
    paired: PairedItems | None
    unpaired: UnpairedComparison | None  # iteration scores, ignores levels; labelled unpaired
    planning: IterationsNeeded | None
    tps: SpeedDelta | None  # tokens/s per iteration
    ttft: SpeedDelta | None  # ms per request, lower is better
    memory: SpeedDelta | None  # highest reading per iteration, lower is better
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


# --------------------------------------------------------------------------------------------------
# One side of the comparison
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Side:
    result: ResultFile
    preset: str  # the preset id on the samples
    samples: tuple[Sample, ...]  # judged (not skipped), this preset only
    levels: Mapping[str, LevelAggregate]  # by level key, all levels of the run
    from_samples: bool  # False: only the summary's aggregates exist


def _side(result: ResultFile, role: str) -> _Side:
    where = f"{role} {result.preset.id} (run {result.run_id})"
    if result.samples:
        ids = {s.preset for s in result.samples}
        preset = result.preset.id if result.preset.id in ids else (next(iter(ids)) if len(ids) == 1 else None)
        if preset is None:
            raise ResultsError(
                f"{where}: its samples belong to several presets ({', '.join(sorted(ids))}) and none is "
                f"{result.preset.id!r}; pass the result file of one preset"
            )
        samples = tuple(s for s in result.samples if s.preset == preset and s.outcome != "skipped")
        if samples:
            agg = aggregate(preset, samples)
            return _Side(result, preset, samples, {lv.level: lv for lv in agg.levels}, True)
    levels = _summary_levels(result, where)
    if not levels:
        raise ResultsError(
            f"{where} holds no level results: no samples and no per-level counts in its summary. "
            "Nothing can be compared; re-run the suite on this preset"
        )
    return _Side(result, result.preset.id, (), levels, False)


def _summary_levels(result: ResultFile, where: str) -> dict[str, LevelAggregate]:
    raw = result.summary.get("levels")
    if not isinstance(raw, dict):
        return {}
    out: dict[str, LevelAggregate] = {}
    for key, entry in raw.items():
        try:
            passed, n, points = int(entry["passed"]), int(entry["n"]), float(entry["points"])
            name = str(entry.get("name") or key)
            rate = wilson(passed, n)
        except (KeyError, TypeError, ValueError) as exc:
            raise ResultsError(
                f"{where}: summary entry for level {key!r} is unreadable ({exc}); expected passed, n, points"
            ) from None
        # Order within the level is lost in a summary; only the counts matter to the stratified analysis.
        out[str(key)] = LevelAggregate(str(key), name, points, rate, (True,) * passed + (False,) * (n - passed))
    return out


def _summary_stat(result: ResultFile, key: str) -> Summary | None:
    raw = result.summary.get(key)
    if not isinstance(raw, dict):
        return None
    try:
        return Summary(**raw)
    except TypeError:
        return None


def _summary_float(result: ResultFile, key: str) -> float | None:
    value = result.summary.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _summary_iterations(result: ResultFile) -> tuple[IterationScore, ...]:
    raw = result.summary.get("iterations")
    if not isinstance(raw, list | tuple):  # a tuple until the summary has been through JSON
        return ()
    try:
        return tuple(IterationScore(**entry) for entry in raw)
    except TypeError:
        return ()


def _restricted_aggregate(side: _Side, keys: Mapping[str, str]) -> RunAggregate:
    """The side's aggregate over the compared levels; *keys* maps this side's level key → common key."""
    load_s = side.result.server.load_s
    if side.from_samples:
        kept = [dataclasses.replace(s, level=keys[s.level]) for s in side.samples if s.level in keys]
        return aggregate(side.preset, kept, load_s=load_s)
    levels = tuple(dataclasses.replace(side.levels[k], level=common) for k, common in keys.items())
    whole = len(keys) == len(side.levels)  # iteration scores in a summary cover every level of that run
    iterations = _summary_iterations(side.result) if whole else ()
    tps = [it.tokens_per_s for it in iterations if it.tokens_per_s is not None]
    return RunAggregate(
        preset=side.preset,
        max_points=math.fsum(lv.points for lv in levels),
        iterations=iterations,
        levels=levels,
        score=summarize([it.percent for it in iterations]) if iterations else None,
        score_raw=summarize([it.raw for it in iterations]) if iterations else None,
        tps=summarize(tps) if tps else _summary_stat(side.result, "tps"),
        ttft_ms=_summary_stat(side.result, "ttft_ms"),
        ttft_first_ms=_summary_float(side.result, "ttft_first_ms"),
        load_s=load_s if load_s is not None else _summary_float(side.result, "load_s"),
        memory_peak_mb=_summary_float(side.result, "memory_peak_mb"),
        memory_idle_mb=_summary_float(side.result, "memory_idle_mb"),
        memory_source=side.result.server.memory_source,
        errors=int(_summary_float(side.result, "errors") or 0),
        n_samples=sum(lv.rate.n for lv in levels),
    )


def result_aggregate(result: ResultFile) -> RunAggregate:
    """The aggregate of one result: from its samples, or from its summary when it holds none."""
    side = _side(result, "result")
    return _restricted_aggregate(side, {k: k for k in side.levels})


# --------------------------------------------------------------------------------------------------
# Matching levels
# --------------------------------------------------------------------------------------------------


def _loose_key(key: str) -> str:
    """``suites/a/test_x.py::test_y[p]`` → ``test_x.py::test_y[p]``: the same test run from another rootdir."""
    path, sep, rest = key.partition("::")
    return path.rsplit("/", 1)[-1] + sep + rest


def _match_levels(
    base: Iterable[str], cand: Iterable[str]
) -> tuple[dict[str, str], dict[str, str], list[tuple[str, str]]]:
    """(baseline key → common key, candidate key → common key, loosely matched pairs)."""
    base_keys, cand_keys = list(base), list(cand)
    common = [k for k in base_keys if k in set(cand_keys)]
    b_map = {k: k for k in common}
    c_map = {k: k for k in common}
    rest_b = [k for k in base_keys if k not in b_map]
    rest_c = [k for k in cand_keys if k not in c_map]

    def unique(keys: list[str]) -> dict[str, str]:
        counts: dict[str, list[str]] = defaultdict(list)
        for k in keys:
            counts[_loose_key(k)].append(k)
        return {loose: ks[0] for loose, ks in counts.items() if len(ks) == 1}

    loose_b, loose_c = unique(rest_b), unique(rest_c)
    loose_pairs = [(loose_b[x], loose_c[x]) for x in loose_b if x in loose_c]
    for bk, ck in loose_pairs:
        b_map[bk] = bk
        c_map[ck] = bk
    return b_map, c_map, loose_pairs


# --------------------------------------------------------------------------------------------------
# Provenance
# --------------------------------------------------------------------------------------------------


def _show(value: object) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return "(not recorded)"
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def _size(n: int | None) -> str:
    if n is None:
        return "size not recorded"
    if n >= 1024**3:
        return f"{n / 1024**3:.2f} GiB"
    if n >= 1024**2:
        return f"{n / 1024**2:.1f} MiB"
    return f"{n / 1024:.1f} KiB"


def _parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _provenance_caveats(b: ResultFile, c: ResultFile, options: CompareOptions) -> list[str]:
    out: list[str] = []
    pb, pc = b.preset, c.preset
    if pb.model_digest != pc.model_digest or pb.model != pc.model or pb.model_size_bytes != pc.model_size_bytes:
        name_b = pb.model.rsplit("/", 1)[-1] if pb.model else "(not recorded)"
        name_c = pc.model.rsplit("/", 1)[-1] if pc.model else "(not recorded)"
        change = ""
        if pb.model_size_bytes and pc.model_size_bytes:
            change = f", {100 * (pc.model_size_bytes / pb.model_size_bytes - 1):+.0f}% size".replace("-", "−")
        if pb.model == pc.model and pb.model_digest != pc.model_digest:
            out.append(
                f"GGUF: same path {name_b} but different content (digest {pb.model_digest} → {pc.model_digest}): "
                "re-downloaded or re-quantised between the runs"
            )
        else:
            out.append(
                f"GGUF (expected): {name_b} ({_size(pb.model_size_bytes)}) → {name_c} "
                f"({_size(pc.model_size_bytes)}{change})"
            )
    if pb.driver != pc.driver:
        out.append(f"driver: {pb.driver} → {pc.driver}")
    if pb.binary != pc.binary:
        out.append(f"server binary path: {_show(pb.binary)} → {_show(pc.binary)}")
    if pb.binary_version != pc.binary_version:
        out.append(
            f"server binary version: {_show(pb.binary_version)} → {_show(pc.binary_version)}: speed and "
            "sampling may differ for reasons other than the model"
        )
    if pb.binary_sha256 != pc.binary_sha256:
        same = " with the same --version (a rebuilt binary?)" if pb.binary_version == pc.binary_version else ""
        out.append(f"server binary hash: {_show(pb.binary_sha256)} → {_show(pc.binary_sha256)}{same}")
    if pb.sampler != pc.sampler:
        keys = sorted(set(pb.sampler) | set(pc.sampler))
        changes = [
            f"{k} {pb.sampler.get(k, 'unset')} → {pc.sampler.get(k, 'unset')}"
            for k in keys
            if pb.sampler.get(k) != pc.sampler.get(k)
        ]
        out.append(f"sampler: {', '.join(changes)}: scores may differ because of sampling, not the model")
    if pb.extra_args != pc.extra_args:
        out.append(f"flags (extra_args): `{_show(pb.extra_args)}` → `{_show(pc.extra_args)}`")
    if pb.context_size != pc.context_size:
        out.append(f"context size: {_show(pb.context_size)} → {_show(pc.context_size)}")
    if pb.parallel != pc.parallel:
        out.append(f"parallel slots: {pb.parallel} → {pc.parallel}: per-request speed is not comparable")
    if pb.chat_template_kwargs != pc.chat_template_kwargs:
        out.append(f"chat template kwargs: {pb.chat_template_kwargs} → {pc.chat_template_kwargs}")
    if pb.max_tokens != pc.max_tokens:
        out.append(f"max_tokens: {_show(pb.max_tokens)} → {_show(pc.max_tokens)}")
    for key, label in (
        ("hostname", "host"),
        ("cpu", "host CPU"),
        ("cpu_count", "host CPU cores"),
        ("ram_mb", "host RAM (MB)"),
        ("gpu", "host GPU"),
        ("platform", "host OS"),
    ):
        vb, vc = b.host.get(key), c.host.get(key)
        if vb != vc:
            out.append(f"{label}: {_show(vb)} → {_show(vc)}")
    if b.plugin_version != c.plugin_version:
        out.append(f"pytest-quantgate version: {b.plugin_version} → {c.plugin_version}")
    if b.server.attached != c.server.attached:
        how = {True: "attached to a running server", False: "booted its server"}
        out.append(
            f"baseline {how[b.server.attached]}, candidate {how[c.server.attached]}: load time and memory "
            "are not measured the same way"
        )
    if b.server.memory_source and c.server.memory_source and b.server.memory_source != c.server.memory_source:
        out.append(
            f"memory measured differently: {b.server.memory_source} → {c.server.memory_source}; the memory rows "
            "compare different quantities"
        )
    tb, tc = _parse_time(b.started_at), _parse_time(c.started_at)
    if tb is not None and tc is not None:
        days = abs((tc - tb).total_seconds()) / 86400
        if days > options.max_age_days:
            out.append(
                f"runs {days:.1f} days apart ({b.started_at} → {c.started_at}), more than {options.max_age_days:g}: "
                "drivers, background load or the machine may have changed; re-run the baseline if speed matters"
            )
    for role, r in (("baseline", b), ("candidate", c)):
        if not r.complete:
            done = len({s.iteration for s in r.samples})
            planned = f" of {r.iterations_planned} planned" if r.iterations_planned else ""
            out.append(
                f"{role} incomplete (interrupted run {r.run_id}, or read from its result.jsonl): {done} "
                f"iteration(s){planned} recorded; compared as it stands"
            )
    return out


# --------------------------------------------------------------------------------------------------
# The comparison
# --------------------------------------------------------------------------------------------------


def _paired(
    base: _Side, cand: _Side, b_map: Mapping[str, str], c_map: Mapping[str, str], options: CompareOptions
) -> PairedItems | None:
    """Pairs for parametrized item levels (key ``test[...]``) present on both sides, by iteration number.

    Applies only when both sides have samples and at least :data:`PAIRED_MIN_ITEMS` items match: then each
    (item, iteration) answered by both presets is one pair — the knowledge-suite case. Plain levels are
    left to the stratified analysis: repeating one prompt gives no item to match.
    """
    if not (base.from_samples and cand.from_samples):
        return None
    by_b: dict[tuple[str, int], bool] = {}
    by_c: dict[tuple[str, int], bool] = {}
    names: dict[str, str] = {}
    for s in base.samples:
        if s.level in b_map and "[" in b_map[s.level]:
            by_b[(b_map[s.level], s.iteration)] = s.passed
            names.setdefault(b_map[s.level], s.name)
    for s in cand.samples:
        if s.level in c_map and "[" in c_map[s.level]:
            by_c[(c_map[s.level], s.iteration)] = s.passed
    keys = sorted(set(by_b) & set(by_c))
    items = {k for k, _ in keys}
    if len(items) < PAIRED_MIN_ITEMS:
        return None
    pairs = [(by_b[k], by_c[k]) for k in keys]
    lost: dict[str, int] = defaultdict(int)
    gained: dict[str, int] = defaultdict(int)
    for (item, _it), (ok_b, ok_c) in zip(keys, pairs, strict=True):
        if ok_b and not ok_c:
            lost[names[item]] += 1
        elif ok_c and not ok_b:
            gained[names[item]] += 1
    return PairedItems(
        items=len(items),
        pairs=len(pairs),
        mcnemar=mcnemar(pairs),
        noninferiority=paired_noninferiority(pairs, options.margin, options.alpha),
        lost=tuple(sorted(lost, key=lambda n: (-lost[n], n))),
        gained=tuple(sorted(gained, key=lambda n: (-gained[n], n))),
    )


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


def _series(side: _Side, agg: RunAggregate, keys: Mapping[str, str]) -> tuple[list[float], list[float], list[float]]:
    """(tokens/s per iteration, TTFT ms per request of the compared levels, highest memory reading per
    iteration — the server's, whatever level was running)."""
    tps = [it.tokens_per_s for it in agg.iterations if it.tokens_per_s is not None]
    if not side.from_samples:
        return tps, [], []
    ttft = [r.ttft_s * 1000 for s in side.samples if s.level in keys for r in s.requests if r.ttft_s is not None]
    memory: dict[int, float] = {}
    for s in side.samples:
        if s.memory_mb is not None:
            memory[s.iteration] = max(memory.get(s.iteration, 0.0), s.memory_mb)
    return tps, ttft, [memory[k] for k in sorted(memory)]


def compare(
    baseline: ResultFile,
    candidate: ResultFile,
    options: CompareOptions | None = None,
    *,
    sequential: SequentialDecision | None = None,
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
    base, cand = _side(baseline, "baseline"), _side(candidate, "candidate")
    b_map, c_map, loose = _match_levels(base.levels, cand.levels)
    caveats: list[str] = []
    problems: list[str] = []
    only_b = tuple(k for k in base.levels if k not in b_map)
    only_c = tuple(k for k in cand.levels if k not in c_map)
    if not b_map:
        raise ResultsError(
            f"baseline {baseline.preset.id} (run {baseline.run_id}) and candidate {candidate.preset.id} (run "
            f"{candidate.run_id}) share no level: they come from different suites. Baseline levels: "
            f"{_list(base.levels)}; candidate levels: {_list(cand.levels)}. Run the same suite on both presets"
        )
    if only_b or only_c:
        problems.append(
            f"different level sets: compared on the {len(b_map)} common level(s) only; only in the baseline: "
            f"{_list(only_b) or 'none'}; only in the candidate: {_list(only_c) or 'none'}"
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
    base_agg = _restricted_aggregate(base, b_map)
    cand_agg = _restricted_aggregate(cand, c_map)
    b_out = {lv.level: lv.outcomes for lv in base_agg.levels}
    c_out = {lv.level: lv.outcomes for lv in cand_agg.levels}
    quality = quality_noninferiority(b_out, c_out, points, options.margin, options.alpha)

    n_b = max((len(v) for v in b_out.values()), default=0)
    n_c = max((len(v) for v in c_out.values()), default=0)
    if n_b != n_c or quality.n_baseline != n_b or quality.n_candidate != n_c:
        caveats.append(
            f"different iteration counts: baseline {_range(quality.n_baseline, n_b)}, candidate "
            f"{_range(quality.n_candidate, n_c)} per level"
        )
    caveats += _provenance_caveats(baseline, candidate, options)
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

    paired = _paired(base, cand, b_map, c_map, options)
    b_scores = [it.percent for it in base_agg.iterations]
    c_scores = [it.percent for it in cand_agg.iterations]
    unpaired = None
    if len(b_scores) >= 2 and len(c_scores) >= 2:
        unpaired = unpaired_comparison(b_scores, c_scores, options.margin, options.alpha)

    b_tps, b_ttft, b_mem = _series(base, base_agg, b_map)
    c_tps, c_ttft, c_mem = _series(cand, cand_agg, c_map)
    tps = _speed("tokens/s", b_tps, c_tps, options, problems)
    ttft = _speed("TTFT", b_ttft, c_ttft, options, problems, higher_is_better=False)
    memory = None
    if b_mem or c_mem:  # silent when neither side measured memory (attached servers)
        memory = _speed(
            "memory", b_mem, c_mem, options, problems, higher_is_better=False, better_label="smaller",
            worse_label="larger",
        )  # fmt: skip

    ceiling = None
    if candidate.preset.memory_ceiling_mb is not None:
        peak = cand_agg.memory_peak_mb
        ceiling = CeilingCheck(
            ceiling_mb=candidate.preset.memory_ceiling_mb,
            peak_mb=peak,
            within=None if peak is None else peak <= candidate.preset.memory_ceiling_mb,
            source=cand_agg.memory_source,
        )
        if peak is None:
            problems.append(
                f"memory ceiling {candidate.preset.memory_ceiling_mb:g} MB set but the candidate has no memory "
                "reading (attached server?): the ceiling cannot be checked, so no swap; boot the server from "
                "the preset, or drop memory_ceiling_mb"
            )
    if options.require_faster and tps is None:
        problems.append("--require-faster but tokens/s could not be compared: the speed condition cannot be met")

    call = _quality_call(quality, sequential, options)
    verdict, reasons = _decide(call, tps, ceiling, options)
    planning = None
    more = None
    if verdict == "inconclusive" and not call.ok:
        planning = _plan(b_out, c_out, points, quality, options)
        if planning is not None and planning.additional is not None:
            more = max(1, planning.additional)
    labels = _labels(baseline, candidate)
    names = {lv.level: lv.name for lv in (*cand_agg.levels, *base_agg.levels)}
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
        sequential=sequential,
        paired=paired,
        unpaired=unpaired,
        planning=planning,
        tps=tps,
        ttft=ttft,
        memory=memory,
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
    quality: NonInferiorityResult, sequential: SequentialDecision | None, options: CompareOptions
) -> _QualityCall:
    """Read the quality verdict off the inference results (the sequential decision first, when given)."""
    m = options.margin
    d, lo, hi = _signed(quality.difference), _signed(quality.lower_bound), _signed(quality.upper_bound)
    n = f"n={_range(min(quality.n_baseline, quality.n_candidate), max(quality.n_baseline, quality.n_candidate))}"
    margin = f"{_signed(-m)} (margin)"
    if sequential is not None and sequential.decision != "continue":
        why = f"score Δ {d} pts, sequential test after {sequential.iterations} iterations: {sequential.reason}"
        return _QualityCall(sequential.decision == "swap", sequential.decision == "keep", why)
    if quality.upper_bound < -m:
        return _QualityCall(
            False, True, f"score Δ {d} pts, lower bound {lo} < {margin}, upper bound {hi} < {_signed(-m)}"
        )
    if quality.upper_bound < 0 and not quality.non_inferior:
        return _QualityCall(
            False, True, f"score Δ {d} pts, lower bound {lo} < {margin}, upper bound {hi} < 0 (shown worse)"
        )
    if quality.non_inferior and sequential is None:
        return _QualityCall(True, False, f"score Δ {d} pts, lower bound {lo} > {margin} at {n}")
    why = f"lower bound {lo} vs margin {_signed(-m)} at {n}"
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
            keep.append(f"memory peak {ceiling.peak_mb:,.0f} MB > ceiling {ceiling.ceiling_mb:,.0f} MB")
        elif ceiling.within is None:
            block.append(f"memory ceiling {ceiling.ceiling_mb:,.0f} MB not checked (no reading)")
    if options.require_faster:
        if tps is None:
            block.append("tok/s not compared (--require-faster)")
        elif tps.verdict == "slower":
            keep.append(f"tok/s {_pct(tps.relative_change)} slower (--require-faster)")
        elif tps.verdict != "faster":
            block.append(f"tok/s {_pct(tps.relative_change)}, {tps.verdict} (--require-faster)")
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
            shown = ", ".join(f"{names.get(lv.level, lv.level)} {_signed(lv.difference, 0)} pts" for lv in worse[:3])
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


# --------------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------------


def _signed(value: float, digits: int = 1) -> str:
    if math.isinf(value):
        return "+∞" if value > 0 else "−∞"
    text = f"{value:+.{digits}f}"
    if text.lstrip("+-").strip("0.") == "":
        text = f"{0.0:+.{digits}f}"  # no "−0.0"
    return text.replace("-", "−")


def _pct(fraction: float) -> str:
    return _signed(100 * fraction, 1) + "%"


def _fmt(value: float | None, digits: int = 1, unit: str = "") -> str:
    if value is None or math.isnan(value):
        return "—"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    return f"{value:,.{digits}f}{unit}"


def _range(low: int, high: int) -> str:
    return str(low) if low == high else f"{low}–{high}"


def _list(keys: Iterable[str], limit: int = 6) -> str:
    items = list(keys)
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def _labels(baseline: ResultFile, candidate: ResultFile) -> tuple[str, str]:
    if baseline.preset.id == candidate.preset.id:
        return f"{baseline.preset.id}@{baseline.run_id}", f"{candidate.preset.id}@{candidate.run_id}"
    return baseline.preset.id, candidate.preset.id


def _p(value: float) -> str:
    return "p < 0.001" if value < 0.001 else f"p = {value:.3f}"


def quality_verdict(comparison: Comparison) -> str:
    """The quality criterion in words: non-inferior, inferior, worse, or undecided, with the bound."""
    q, m = comparison.quality, comparison.options.margin
    if q.non_inferior:
        return f"non-inferior: lower bound {_signed(q.lower_bound)} > {_signed(-m)}"
    if q.upper_bound < -m:
        return f"inferior: upper bound {_signed(q.upper_bound)} < {_signed(-m)}"
    if q.upper_bound < 0:
        return f"worse: upper bound {_signed(q.upper_bound)} < 0, lower {_signed(q.lower_bound)} ≤ {_signed(-m)}"
    return f"undecided: lower bound {_signed(q.lower_bound)} ≤ {_signed(-m)}"


def _speed_cell(delta: SpeedDelta | None) -> str:
    if delta is None:
        return "not compared"
    return f"{_pct(delta.relative_change)}: {delta.verdict} ({_p(delta.p_value)})"


def recommendation_rows(comparison: Comparison) -> list[list[str]]:
    """The field's recommendation table: criterion, baseline, candidate, verdict."""
    c = comparison
    q = c.quality
    rows = [
        [
            f"quality (score, margin {c.options.margin:g})",
            f"{q.baseline_score:.1f} %",
            f"{q.candidate_score:.1f} %",
            f"Δ {_signed(q.difference)}; {quality_verdict(c)}",
        ]
    ]
    if c.sequential is not None:
        sq = c.sequential
        rows.append(["quality (sequential test)", "", f"n={sq.iterations}", f"{sq.decision}: {sq.reason}"])
    if c.paired is not None:
        pn = c.paired.noninferiority
        rows.append(
            [
                f"quality (matched items, {c.paired.items} items)",
                f"{c.paired.mcnemar.b} lost",
                f"{c.paired.mcnemar.c} gained",
                f"Δ {_signed(pn.difference)}, lower {_signed(pn.lower_bound)}; McNemar {_p(c.paired.mcnemar.p_value)}",
            ]
        )
    if c.unpaired is not None:
        u = c.unpaired
        rows.append(
            [
                "quality (iteration scores, unpaired)",
                f"n={u.n_baseline}",
                f"n={u.n_candidate}",
                f"Δ {_signed(u.difference)}, lower {_signed(u.lower_bound)}; Welch {_p(u.welch_p_value)}",
            ]
        )
    speed = (("tokens/s (median)", c.tps, 1), ("TTFT median ms", c.ttft, 0), ("memory per iteration MB", c.memory, 0))
    for label, delta, digits in speed:
        rows.append(
            [
                label,
                _fmt(delta.baseline_median, digits) if delta else "—",
                _fmt(delta.candidate_median, digits) if delta else "—",
                _speed_cell(delta),
            ]
        )
    ba, ca = c.baseline_aggregate, c.candidate_aggregate
    peak_change = ""
    if ba.memory_peak_mb and ca.memory_peak_mb:
        peak_change = _pct(ca.memory_peak_mb / ba.memory_peak_mb - 1)
    rows.append(["memory peak MB", _fmt(ba.memory_peak_mb, 0), _fmt(ca.memory_peak_mb, 0), peak_change or "—"])
    if c.ceiling is None:
        ceiling = ["memory ceiling", "—", "not set", "—"]
    else:
        state = {True: "within", False: "EXCEEDED", None: "not checked (no reading)"}[c.ceiling.within]
        ceiling = ["memory ceiling", "—", f"{c.ceiling.ceiling_mb:,.0f} MB", state]
    rows.append(ceiling)
    load = "—"
    if c.baseline_load_s and c.candidate_load_s:
        load = f"{_pct(c.candidate_load_s / c.baseline_load_s - 1)} (one start each: not tested)"
    rows.append(["load time s", _fmt(c.baseline_load_s, 2), _fmt(c.candidate_load_s, 2), load])
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
                _signed(lv.difference),
                f"[{_signed(lv.lower)}, {_signed(lv.upper)}]",
                flag,
            ]
        )
    return rows


def decision_table_rows(comparison: Comparison) -> list[list[str]]:
    """Both presets' decision-table rows (common levels only) and the Δ row, in report.DECISION_HEADERS."""
    from pytest_quantgate.report import decision_rows, delta_row

    base, cand = comparison.baseline_aggregate, comparison.candidate_aggregate
    rows = decision_rows([base, cand], {})
    rows[0][0], rows[0][-1] = f"{comparison.baseline_label} (baseline)", "baseline"
    rows[1][0], rows[1][-1] = f"{comparison.candidate_label} (candidate)", comparison.verdict
    delta = delta_row(base, cand)
    delta[0] = "Δ candidate − baseline"
    return [*rows, delta]


def render(comparison: Comparison) -> str:
    """The comparison as terminal text: decision table, per-level differences, recommendation, verdict."""
    from pytest_quantgate.report import DECISION_HEADERS, table

    c, q = comparison, comparison.quality
    conf = 100 * (1 - c.options.alpha)
    parts = [
        f"candidate {c.candidate_label} against baseline {c.baseline_label}",
        "",
        table(DECISION_HEADERS, decision_table_rows(c), right=frozenset(range(1, 10))),
        "",
        f"per-level pass rates (Δ = candidate − baseline, {100 * (1 - 2 * c.options.alpha):g}% interval):",
        table(LEVEL_HEADERS, level_rows(c), right=frozenset({1, 2, 3, 4})),
        "",
        f"quality: Δ {_signed(q.difference)} pts (candidate {q.candidate_score:.1f} % vs baseline "
        f"{q.baseline_score:.1f} %), one-sided {conf:g}% bounds [{_signed(q.lower_bound)}, "
        f"{_signed(q.upper_bound)}], margin {c.options.margin:g}: {quality_verdict(c)} ({q.method})",
    ]
    if c.sequential is not None:
        sq = c.sequential
        parts.append(f"sequential test: {sq.decision} after {sq.iterations} iterations ({sq.reason})")
    if c.paired is not None:
        p = c.paired
        pn = p.noninferiority
        parts.append(
            f"matched items: {p.items} items, {p.pairs} pairs; lost {p.mcnemar.b}, gained {p.mcnemar.c} "
            f"({p.mcnemar.method}, {_p(p.mcnemar.p_value)}); Δ {_signed(pn.difference)} pts, bounds "
            f"[{_signed(pn.lower_bound)}, {_signed(pn.upper_bound)}] ({pn.method}; pairs of one item across "
            "iterations are not independent, so read the p-value as approximate)"
        )
        if p.lost:
            parts.append(f"  items lost: {_list(p.lost, 10)}")
        if p.gained:
            parts.append(f"  items gained: {_list(p.gained, 10)}")
    if c.unpaired is not None:
        u = c.unpaired
        parts.append(
            f"iteration scores (unpaired, ignores levels): Δ {_signed(u.difference)} pts, one-sided bounds "
            f"[{_signed(u.lower_bound)}, {_signed(u.upper_bound)}], Welch {_p(u.welch_p_value)}, Mann-Whitney "
            f"{_p(u.mann_whitney_p_value)}"
        )
    if c.planning is not None and c.planning.per_preset is not None:
        parts.append(
            f"planning: about {c.planning.per_preset} iterations per preset for 80% power "
            f"(planning Δ {_signed(c.planning.planning_difference)} pts; {c.planning.method})"
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


def resolve_result(spec: str, results_dir: Path | None = None, *, suite: str | None = None) -> Path:
    """A result file named by path, or by preset id: its latest stored result, ``<dir>/results/<id>/``
    (one per suite; *suite* picks one when there are several). See :func:`~pytest_quantgate.results.find_result`."""
    from pytest_quantgate.results import find_result

    return find_result(spec, results_dir or default_results_dir(), suite)


def default_results_dir() -> Path:
    """The store ``quantgate`` reads preset ids from: ``$QUANTGATE_DIR/results``, else ``.quantgate/results``."""
    import os
    from pathlib import Path

    return Path(os.environ.get("QUANTGATE_DIR") or ".quantgate") / "results"


def compare_files(baseline: Path, candidate: Path, options: CompareOptions | None = None) -> Comparison:
    """:func:`compare` on two result files (``.json`` or an interrupted run's ``.jsonl``)."""
    from pytest_quantgate.results import load_result

    return compare(load_result(baseline), load_result(candidate), options)


__all__ = [
    "CeilingCheck",
    "CompareOptions",
    "Comparison",
    "PairedItems",
    "Verdict",
    "compare",
    "compare_files",
    "decision_table_rows",
    "level_rows",
    "quality_verdict",
    "recommendation_rows",
    "render",
    "resolve_result",
    "result_aggregate",
]
