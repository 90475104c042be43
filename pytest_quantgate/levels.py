"""Levels, samples and scores: what one level run produced, and what a whole run adds up to.

A *level* is one test that asks the model and validates the answer; it is worth some points. Each level
runs once per iteration; the suite's score for iteration k is the sum of the points of the levels that
passed in iteration k (raw, and as % of the maximum).
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal

from pytest_quantgate.errors import SpecError
from pytest_quantgate.measures import ItemOutcome, Measurement, Series, series
from pytest_quantgate.stats import Rate, Summary, percentile, summarize, wilson

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from pytest_quantgate.completion import Completion

Outcome = Literal["passed", "failed", "error", "skipped"]
LEVEL_MARK_KWARGS = ("points", "name", "iterations", "max_tokens", "timeout_s")
MAX_TIMEOUT_S = 1e9  # httpx's deadlines overflow time_t near 1e10 s (OverflowError at request time)
_MAX_TIMEOUT_TEXT = "1e9"


@dataclass(frozen=True, slots=True)
class LevelSpec:
    """What ``@pytest.mark.level(...)`` says about a test."""

    points: float = 1.0
    name: str | None = None
    iterations: int | None = None
    max_tokens: int | None = None
    timeout_s: float | None = None

    @classmethod
    def from_mark(cls, args: tuple[Any, ...], kwargs: Mapping[str, Any], where: str) -> LevelSpec:
        """Read the mark at collection; a value the request would fail on later (a timeout of 0, a
        max_tokens of "64") is a :class:`SpecError` naming *where* (the test), the argument and the value."""
        unknown = sorted(set(kwargs) - set(LEVEL_MARK_KWARGS))
        if unknown:
            raise SpecError(
                f"{where}: unknown argument(s) {', '.join(map(repr, unknown))} to @pytest.mark.level; "
                f"allowed: {', '.join(LEVEL_MARK_KWARGS)}"
            )
        if len(args) > 1:
            raise SpecError(f"{where}: @pytest.mark.level takes at most one positional argument (points)")
        raw_points = kwargs.get("points", args[0] if args else 1)
        points = _finite(raw_points)
        if points is None or points < 0:
            raise _bad(where, "points", "a number >= 0", raw_points)
        name = kwargs.get("name")
        if name is not None and not isinstance(name, str):
            raise _bad(where, "name", "a string", name)
        return cls(
            points=points,
            name=name,
            iterations=_count(where, "iterations", kwargs.get("iterations")),
            max_tokens=_count(where, "max_tokens", kwargs.get("max_tokens")),
            timeout_s=_seconds(where, "timeout_s", kwargs.get("timeout_s")),
        )


def _finite(value: object) -> float | None:
    """An int or a float (a bool is neither here) as a finite float; anything else None."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond float's range
        return None
    return number if math.isfinite(number) else None


def _count(where: str, argument: str, value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _bad(where, argument, "an integer >= 1", value)
    return int(value)


def _seconds(where: str, argument: str, value: object) -> float | None:
    if value is None:
        return None
    seconds = _finite(value)
    if seconds is None or not 0 < seconds <= MAX_TIMEOUT_S:
        raise _bad(where, argument, f"a number of seconds > 0 and <= {_MAX_TIMEOUT_TEXT}", value)
    return seconds


def _bad(where: str, argument: str, expected: str, value: object) -> SpecError:
    return SpecError(f"{where}: level {argument} must be {expected}, got {value!r}")


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """The measured part of one request (the texts go to the artifact, not here)."""

    endpoint: str
    wall_s: float
    ttft_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_ms: float | None = None
    predicted_ms: float | None = None
    predicted_n: int | None = None
    predicted_per_second: float | None = None
    prompt_per_second: float | None = None
    cache_n: int | None = None
    draft_n: int | None = None
    draft_n_accepted: int | None = None
    tokens_per_s: float | None = None
    content_chars: int = 0
    reasoning_chars: int = 0

    @property
    def chars_per_s(self) -> float | None:
        """Characters of answer and reasoning per second of wall time (the field's length-neutral rate)."""
        chars = self.content_chars + self.reasoning_chars
        return chars / self.wall_s if self.wall_s > 0 and chars else None

    @classmethod
    def of(cls, completion: Completion) -> RequestRecord:
        t = completion.timings
        return cls(
            endpoint=completion.endpoint,
            wall_s=completion.wall_s,
            ttft_s=completion.ttft_s,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            prompt_ms=t.prompt_ms if t else None,
            predicted_ms=t.predicted_ms if t else None,
            predicted_n=t.predicted_n if t else None,
            predicted_per_second=t.predicted_per_second if t else None,
            prompt_per_second=t.prompt_per_second if t else None,
            cache_n=t.cache_n if t else None,
            draft_n=t.draft_n if t else None,
            draft_n_accepted=t.draft_n_accepted if t else None,
            tokens_per_s=completion.tokens_per_s,
            content_chars=len(completion.content),
            reasoning_chars=len(completion.reasoning),
        )


@dataclass(frozen=True, slots=True)
class Sample:
    """One level in one iteration on one preset."""

    preset: str
    level: str  # stable key: the test's node id without parameters
    name: str  # display name
    iteration: int
    points: float
    outcome: Outcome
    duration_s: float
    error: str | None = None
    requests: tuple[RequestRecord, ...] = ()
    memory_mb: float | None = None  # reading when the level finished
    memory_peak_mb: float | None = None  # peak seen by this process's sampler so far
    memory_source: str | None = None
    gates: tuple[str, ...] = ()  # gate expressions declared by marks on this level
    measures: tuple[Measurement, ...] = ()  # what the level recorded with the ``measure`` fixture
    items: tuple[ItemOutcome, ...] = ()  # the items it asked (``measure.item``); none: the level is one item

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"

    def to_dict(self) -> dict[str, Any]:
        # Field by field rather than dataclasses.asdict, whose recursive deep copy cost ~30 µs per level
        # on the run's path (this is called for every level, twice).
        data = {name: getattr(self, name) for name in _SAMPLE_FIELDS}
        data["requests"] = [{name: getattr(r, name) for name in _REQUEST_FIELDS} for r in self.requests]
        data["gates"] = list(self.gates)
        data["measures"] = [m.to_dict() for m in self.measures]
        data["items"] = [i.to_dict() for i in self.items]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Sample:
        fields = dict(data)
        fields["requests"] = tuple(RequestRecord(**r) for r in fields.get("requests", ()))
        fields["gates"] = tuple(fields.get("gates", ()))
        fields["measures"] = tuple(Measurement(**m) for m in fields.get("measures", ()))
        fields["items"] = tuple(ItemOutcome(**i) for i in fields.get("items", ()))
        return cls(**fields)


_SAMPLE_FIELDS = tuple(f.name for f in fields(Sample))
_REQUEST_FIELDS = tuple(f.name for f in fields(RequestRecord))


@dataclass(frozen=True, slots=True)
class LevelAggregate:
    level: str
    name: str
    points: float
    rate: Rate
    outcomes: tuple[bool, ...]  # pass/fail by iteration order


@dataclass(frozen=True, slots=True)
class IterationScore:
    iteration: int
    raw: float
    percent: float
    tokens_per_s: float | None
    errors: int


@dataclass(frozen=True, slots=True)
class RunAggregate:
    """Everything the decision table and the gates read, for one preset."""

    preset: str
    max_points: float
    iterations: tuple[IterationScore, ...]
    levels: tuple[LevelAggregate, ...]
    score: Summary | None  # percent of the maximum, over iterations
    score_raw: Summary | None
    tps: Summary | None  # decode tokens/s per iteration
    ttft_ms: Summary | None  # over requests
    ttft_first_ms: float | None  # first request of iteration 1 (cold)
    load_s: float | None
    memory_peak_mb: float | None
    memory_idle_mb: float | None
    memory_source: str | None
    errors: int
    n_samples: int
    extra: dict[str, float] = field(default_factory=dict)
    measures: Mapping[str, Series] = field(default_factory=dict)  # recorded by levels, by name
    memory_reported_mb: float | None = None  # what llama.cpp says the server allocated (memory_report.py)
    memory_reported_scope: str | None = None  # the device(s) it is for: "CPU", "CUDA0"
    suite: str | None = None  # the suite (test module), named when a run kept several apart

    @property
    def label(self) -> str:
        """How tables and outcomes name this row: the preset, and its suite when the run had several."""
        return f"{self.preset} · {self.suite}" if self.suite else self.preset

    @property
    def memory_mb(self) -> float | None:
        """The memory figure ceilings and comparisons read: llama.cpp's report, else the measured peak."""
        return self.memory_reported_mb if self.memory_reported_mb is not None else self.memory_peak_mb

    @property
    def memory_mb_source(self) -> str | None:
        """Where :attr:`memory_mb` comes from: ``llama.cpp (CPU)``, or the measured peak's source."""
        if self.memory_reported_mb is not None:
            return f"llama.cpp ({self.memory_reported_scope})" if self.memory_reported_scope else "llama.cpp"
        return self.memory_source

    def summary_of(self, measure: str) -> Summary | None:
        """The per-iteration (per-request for TTFT) summary of a built-in or recorded figure."""
        builtin = {"score": self.score, "tps": self.tps, "ttft": self.ttft_ms}
        if measure in builtin:
            return builtin[measure]
        found = self.measures.get(measure)
        return found.summary if found else None

    def scalar(self, measure: str) -> float | None:
        """A built-in figure with one value per run (load, memory, errors)."""
        values = {
            "load": self.load_s,
            "memory": self.memory_mb,
            "memory_peak": self.memory_peak_mb,
            "memory_idle": self.memory_idle_mb,
            "errors": float(self.errors),
        }
        return values[measure]


def _clip(summary: Summary | None, low: float, high: float) -> Summary | None:
    """A score cannot leave [0, 100]; a t interval on few iterations can (e.g. [91.6, 103.1])."""
    if summary is None or not summary.ci_defined:
        return summary
    return dataclasses.replace(summary, ci_low=max(low, summary.ci_low), ci_high=min(high, summary.ci_high))


@dataclass(frozen=True, slots=True)
class ItemScores:
    """One preset's items over a run: the scores of each item by iteration order, and its weight in points.

    An item key is ``<level key>::<item id>``; a level that recorded no item is the item ``<level key>``,
    scored 1 when it passed and 0 otherwise, weighing its points. Recorded items share their level's
    points by weight. Errored levels count (as the misses they are); skipped ones do not.
    """

    scores: Mapping[str, tuple[float, ...]]
    weights: Mapping[str, float]
    names: Mapping[str, str]  # display names: "test_add3[12+30]"


def item_scores(samples: Iterable[Sample]) -> ItemScores:
    scores: dict[str, list[float]] = defaultdict(list)
    weights: dict[str, float] = {}
    names: dict[str, str] = {}
    for s in sorted((s for s in samples if s.outcome != "skipped"), key=lambda s: s.iteration):
        if not s.items:
            scores[s.level].append(1.0 if s.passed else 0.0)
            weights.setdefault(s.level, s.points)
            names.setdefault(s.level, s.name)
            continue
        total = math.fsum(i.weight for i in s.items)
        for i in s.items:
            key = f"{s.level}::{i.id}"
            scores[key].append(i.score)
            weights.setdefault(key, s.points * i.weight / total)
            names.setdefault(key, f"{s.name}[{i.id}]")
    return ItemScores({k: tuple(v) for k, v in scores.items()}, weights, names)


def iteration_tokens_per_s(samples: Iterable[Sample]) -> float | None:
    """Decode rate over one iteration: Σ tokens / Σ decode seconds (server-reported when available).

    Completions of a single token are left out: their decode time is ~0 (the token comes out of the
    prefill), so they would report absurd rates such as 1,000,000 tok/s.
    """
    tokens = 0.0
    seconds = 0.0
    client_rates = []
    for sample in samples:
        for r in sample.requests:
            if r.predicted_n is not None and r.predicted_n < 2:
                continue
            if r.predicted_n and r.predicted_ms:
                tokens += r.predicted_n
                seconds += r.predicted_ms / 1000
            elif r.tokens_per_s:
                client_rates.append(r.tokens_per_s)
    if seconds > 0:
        return tokens / seconds
    if client_rates:
        return math.fsum(client_rates) / len(client_rates)
    return None


def iteration_scores(preset: str, samples: Iterable[Sample]) -> list[IterationScore]:
    """Each iteration's score so far (what the progress line shows), without the rest of :func:`aggregate`."""
    judged = _judged(preset, samples)
    points = {level: max(x.points for x in xs) for level, xs in _levels(judged).items()}
    return _iteration_scores(judged, math.fsum(points.values()))


def _judged(preset: str, samples: Iterable[Sample]) -> list[Sample]:
    return [s for s in samples if s.preset == preset and s.outcome != "skipped"]


def _levels(judged: list[Sample]) -> dict[str, list[Sample]]:
    levels: dict[str, list[Sample]] = defaultdict(list)
    for s in judged:
        levels[s.level].append(s)
    return levels


def _iteration_scores(judged: list[Sample], max_points: float) -> list[IterationScore]:
    by_iteration: dict[int, list[Sample]] = defaultdict(list)
    for s in judged:
        by_iteration[s.iteration].append(s)
    return [_iteration_score(k, by_iteration[k], max_points) for k in sorted(by_iteration)]


def _iteration_score(iteration: int, judged: list[Sample], max_points: float) -> IterationScore:
    raw = _raw(judged)
    return IterationScore(
        iteration=iteration,
        raw=raw,
        percent=_percent(raw, max_points),
        tokens_per_s=iteration_tokens_per_s(judged),
        errors=sum(s.outcome == "error" for s in judged),
    )


def _raw(judged: Iterable[Sample]) -> float:
    return math.fsum(s.points for s in judged if s.passed)


def _percent(raw: float, max_points: float) -> float:
    return 100 * raw / max_points if max_points else 0.0


class IterationTally:
    """One preset's iteration scores kept up to date sample by sample: what the progress line shows after
    each iteration, as :func:`iteration_scores` computes it from every sample so far, without that pass
    over the whole run (which made a run's progress lines quadratic in its length)."""

    def __init__(self) -> None:
        self._points: dict[str, float] = {}  # per level: the most points any of its samples is worth
        self._judged: dict[int, list[Sample]] = {}  # per iteration, in arrival order
        self._raw: dict[int, float] = {}  # per iteration: points passed (dropped when a sample arrives)

    def add(self, sample: Sample) -> None:
        if sample.outcome == "skipped":
            return
        self._points[sample.level] = max(self._points.get(sample.level, sample.points), sample.points)
        self._judged.setdefault(sample.iteration, []).append(sample)
        self._raw.pop(sample.iteration, None)

    def score(self, iteration: int) -> IterationScore | None:
        """*iteration*'s score so far (None before a judged sample of it), as :func:`iteration_scores` has it."""
        judged = self._judged.get(iteration)
        return _iteration_score(iteration, judged, self._max_points()) if judged else None

    def mean_percent(self) -> float | None:
        """The mean of every iteration's percentage so far (None before a judged sample)."""
        if not self._judged:
            return None
        max_points = self._max_points()
        return sum(_percent(self._raw_of(k), max_points) for k in sorted(self._judged)) / len(self._judged)

    def _raw_of(self, iteration: int) -> float:
        if (raw := self._raw.get(iteration)) is None:
            raw = self._raw[iteration] = _raw(self._judged[iteration])
        return raw

    def _max_points(self) -> float:
        return math.fsum(self._points.values())


def aggregate(
    preset: str,
    samples: Iterable[Sample],
    *,
    load_s: float | None = None,
    memory_reported: tuple[float, str] | None = None,
    suite: str | None = None,
) -> RunAggregate:
    """Add one preset's samples up (of one suite, named by *suite* when the run kept several apart).
    Skipped samples are left out (they were never judged)."""
    judged = _judged(preset, samples)
    levels = _levels(judged)
    points = {level: max(x.points for x in xs) for level, xs in levels.items()}
    max_points = math.fsum(points.values())
    iterations = _iteration_scores(judged, max_points)
    level_aggs = []
    for level, xs in levels.items():
        xs.sort(key=lambda s: s.iteration)
        passed = sum(s.passed for s in xs)
        level_aggs.append(
            LevelAggregate(
                level=level,
                name=xs[0].name,
                points=points[level],
                rate=wilson(passed, len(xs)),
                outcomes=tuple(s.passed for s in xs),
            )
        )
    requests = [r for s in sorted(judged, key=lambda s: s.iteration) for r in s.requests]
    ttfts = [r.ttft_s * 1000 for r in requests if r.ttft_s is not None]
    first = min(judged, key=lambda s: s.iteration, default=None)
    first_ttft = None
    if first is not None:
        first_ttft = next(
            (r.ttft_s * 1000 for s in judged if s.iteration == first.iteration for r in s.requests if r.ttft_s),
            None,
        )
    peaks = [m for s in judged for m in (s.memory_mb, s.memory_peak_mb) if m is not None]
    # "Idle" as the field reads it: the steady state after iteration 1 (weights and caches settled).
    steady = [s.memory_mb for s in judged if s.memory_mb is not None and s.iteration > 1]
    steady = steady or [s.memory_mb for s in judged if s.memory_mb is not None]
    return RunAggregate(
        preset=preset,
        max_points=max_points,
        iterations=tuple(iterations),
        levels=tuple(level_aggs),
        score=_clip(summarize([it.percent for it in iterations]), 0.0, 100.0),
        score_raw=summarize([it.raw for it in iterations]),
        tps=summarize([it.tokens_per_s for it in iterations if it.tokens_per_s is not None]),
        ttft_ms=summarize(ttfts),
        ttft_first_ms=first_ttft,
        load_s=load_s,
        memory_peak_mb=max(peaks) if peaks else None,
        memory_idle_mb=percentile(steady, 50) if steady else None,
        memory_source=next((s.memory_source for s in judged if s.memory_source), None),
        errors=sum(s.outcome == "error" for s in judged),
        n_samples=len(judged),
        measures=series((s.iteration, m) for s in sorted(judged, key=lambda s: s.iteration) for m in s.measures),
        memory_reported_mb=memory_reported[0] if memory_reported else None,
        memory_reported_scope=memory_reported[1] if memory_reported else None,
        suite=suite,
    )
