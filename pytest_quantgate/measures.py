"""The measurement model: named numbers a level records, and the built-in figures as instances of it.

A level records a :class:`Measurement` (name, value, unit, which direction is better) through the
``measure`` fixture. Over a run, each name becomes a :class:`Series`: one value per iteration (the mean of
what that iteration recorded under the name), summarised like every built-in figure (mean, σ, min, max,
median, p95 and a t interval). Gates name a series and a statistic — ``chars_per_s_mean >= 50`` — with the
same grammar as the built-ins (``score_mean``, ``tps_min``, ``ttft_p95_ms``): :func:`resolve_metric` turns a
gate's metric name into a :class:`MetricRef`.

The built-ins (score, decode tok/s, TTFT, load time, memory, errors) are :class:`MeasureDef` instances in
:data:`BUILTINS`; their series are computed by :mod:`pytest_quantgate.levels`, not recorded by levels.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pytest_quantgate.errors import SpecError
from pytest_quantgate.stats import Summary, summarize

if TYPE_CHECKING:
    from collections.abc import Iterable

Better = Literal["higher", "lower", "neither"]  # "neither": a change is reported, not judged (output length)
BETTER: tuple[Better, ...] = ("higher", "lower", "neither")

NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_NAME = 64

# Statistic → (Summary attribute, how a message names it). "value" is the statistic of a scalar figure.
STATS: dict[str, tuple[str, str]] = {
    "mean": ("mean", "mean"),
    "sigma": ("sd", "σ"),
    "min": ("min", "min"),
    "max": ("max", "max"),
    "median": ("median", "median"),
    "p95": ("p95", "p95"),
    "ci_low": ("ci_low", "CI low"),
    "ci_high": ("ci_high", "CI high"),
}
_CUSTOM_METRIC = re.compile(rf"^(?P<measure>[a-z][a-z0-9_]*?)_(?P<stat>{'|'.join(STATS)})$")


@dataclass(frozen=True, slots=True)
class Measurement:
    """One value a level recorded."""

    name: str
    value: float
    unit: str = ""
    better: Better = "higher"

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "value": self.value, "unit": self.unit, "better": self.better}


def measurement(name: object, value: object, unit: object = "", better: object = "higher") -> Measurement:
    """A validated :class:`Measurement`; a :class:`SpecError` names the argument that is wrong."""
    if not isinstance(name, str) or not NAME_RE.match(name) or len(name) > MAX_NAME:
        raise SpecError(
            f"measurement name {name!r} must be lower-case letters, digits and '_', starting with a letter "
            f"(at most {MAX_NAME} characters), e.g. 'chars_per_s': gates name it as '<name>_mean >= ...'"
        )
    if name in BUILTINS or name in RESERVED:
        raise SpecError(f"measurement name {name!r} is a built-in figure's; choose another, e.g. 'my_{name}'")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SpecError(f"measurement {name!r}: value {value!r} is not a finite number")
    if not isinstance(unit, str) or len(unit) > 32 or "\n" in unit:
        raise SpecError(f"measurement {name!r}: unit {unit!r} must be a short string, e.g. 'chars/s'")
    if better not in BETTER:
        raise SpecError(f"measurement {name!r}: better={better!r} must be one of {', '.join(map(repr, BETTER))}")
    return Measurement(name, float(value), unit, better)


MAX_ITEM_ID = 200


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    """One item a level asked: a stable id (the same question on every preset), a score in [0, 1] (partial
    credit allowed) and a relative weight within its level."""

    id: str
    score: float
    weight: float = 1.0

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "score": self.score, "weight": self.weight}


def item_outcome(item_id: object, score: object, weight: object = 1.0) -> ItemOutcome:
    """A validated :class:`ItemOutcome`; ``True``/``False`` scores 1/0."""
    if not isinstance(item_id, str) or not item_id.strip() or len(item_id) > MAX_ITEM_ID:
        raise SpecError(
            f"item id {item_id!r} must be a non-empty string of at most {MAX_ITEM_ID} characters that names the "
            "question the same way on every preset, e.g. '12+30' or 'q17'"
        )
    if isinstance(score, bool):
        score = float(score)
    if not isinstance(score, int | float) or not (0.0 <= score <= 1.0):
        raise SpecError(f"item {item_id!r}: score {score!r} must be a number in [0, 1] (or True/False)")
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not (0.0 < weight < math.inf):
        raise SpecError(f"item {item_id!r}: weight {weight!r} must be a positive finite number")
    return ItemOutcome(item_id, float(score), float(weight))


class Measure:
    """What the ``measure`` fixture returns: call it to record a value in the running level.

    ``measure("chars_per_s", 41.5, unit="chars/s")``; ``better="lower"`` for figures where less is better
    (latency, memory), ``better="neither"`` for figures that are reported but not judged (output length).
    """

    __slots__ = ("items", "recorded")

    def __init__(self) -> None:
        self.recorded: list[Measurement] = []
        self.items: list[ItemOutcome] = []

    def item(self, item_id: str, score: float | bool, *, weight: float = 1.0) -> ItemOutcome:
        """Record one item the level asked: ``measure.item("12+30", answer == "42")``.

        Items are the unit of the comparison against a baseline: the same item id on both presets is one
        pair. A level that records none counts as one item (passed or not, weighted by its points); a level
        that records items shares its points among them by *weight*.
        """
        __tracebackhide__ = True
        outcome = item_outcome(item_id, score, weight)
        if any(known.id == outcome.id for known in self.items):
            raise SpecError(f"item {item_id!r} was recorded twice in this level run: item ids name one question each")
        self.items.append(outcome)
        return outcome

    def __call__(self, name: str, value: float, *, unit: str = "", better: Better = "higher") -> Measurement:
        __tracebackhide__ = True
        m = measurement(name, value, unit, better)
        earlier = next((r for r in self.recorded if r.name == name), None)
        if earlier is not None and (earlier.unit, earlier.better) != (m.unit, m.better):
            raise SpecError(
                f"measurement {name!r} was recorded with unit={earlier.unit!r}, better={earlier.better!r} and now "
                f"with unit={m.unit!r}, better={m.better!r}: one name, one unit and direction"
            )
        self.recorded.append(m)
        return m


@dataclass(frozen=True, slots=True)
class MeasureDef:
    """What a figure is: how it is named, its unit, which direction is better."""

    name: str
    label: str
    unit: str
    better: Better
    help: str
    scalar: bool = False  # one value per run (load time, memory peak), not a series over iterations


BUILTINS: dict[str, MeasureDef] = {
    d.name: d
    for d in (
        MeasureDef("score", "score", "%", "higher", "suite score per iteration, % of the maximum"),
        MeasureDef("tps", "tok/s", "tok/s", "higher", "decode tokens/s per iteration"),
        MeasureDef("ttft", "TTFT", "ms", "lower", "time to first streamed token, per request"),
        MeasureDef("load", "load time", "s", "lower", "server start to ready", scalar=True),
        MeasureDef("memory", "memory", "MB", "lower", "llama.cpp's buffer report, else the measured peak", True),
        MeasureDef("memory_peak", "memory peak", "MB", "lower", "peak memory of the server", scalar=True),
        MeasureDef("memory_idle", "memory idle", "MB", "lower", "server memory after the first iteration", True),
        MeasureDef("errors", "errors", "", "lower", "level runs that errored (not: failed their validator)", True),
        MeasureDef("pass_rate", "pass rate", "%", "higher", "a level's pass rate over iterations (per level)", True),
    )
}
# Names a recorded measurement may not take: they would shadow a built-in gate metric's prefix.
RESERVED = frozenset({"ttft_first", "load_s", "memory_mb", "memory_peak_mb", "memory_idle_mb"})


@dataclass(frozen=True, slots=True)
class MetricRef:
    """What a gate's metric name refers to: a figure (built-in or recorded) and one statistic of it."""

    metric: str  # as written in the gate: "score_mean", "chars_per_s_p95"
    measure: str  # "score", "chars_per_s"
    stat: str  # a key of STATS, or "value" for scalars, or "first" (TTFT of the first request)
    builtin: bool
    per_level: bool = False

    @property
    def label(self) -> str:
        """How a gate message names it: "score mean", "TTFT p95", "chars_per_s median"."""
        definition = BUILTINS.get(self.measure)
        name = definition.label if definition else self.measure
        if self.stat == "value":
            return name
        if self.stat == "first":
            return f"{name} first"
        return f"{name} {STATS[self.stat][1]}"


def _builtin_metrics() -> dict[str, MetricRef]:
    refs: dict[str, MetricRef] = {}
    for stat in STATS:
        refs[f"score_{stat}"] = MetricRef(f"score_{stat}", "score", stat, True)
    for stat in STATS:
        refs[f"tps_{stat}"] = MetricRef(f"tps_{stat}", "tps", stat, True)
    for stat in STATS:
        refs[f"ttft_{stat}_ms"] = MetricRef(f"ttft_{stat}_ms", "ttft", stat, True)
    refs["ttft_first_ms"] = MetricRef("ttft_first_ms", "ttft", "first", True)
    refs["load_s"] = MetricRef("load_s", "load", "value", True)
    refs["memory_mb"] = MetricRef("memory_mb", "memory", "value", True)
    refs["memory_peak_mb"] = MetricRef("memory_peak_mb", "memory_peak", "value", True)
    refs["memory_idle_mb"] = MetricRef("memory_idle_mb", "memory_idle", "value", True)
    refs["errors"] = MetricRef("errors", "errors", "value", True)
    refs["pass_rate"] = MetricRef("pass_rate", "pass_rate", "value", True, per_level=True)
    refs["pass_rate_low"] = MetricRef("pass_rate_low", "pass_rate", "ci_low", True, per_level=True)
    return refs


BUILTIN_METRICS: dict[str, MetricRef] = _builtin_metrics()


def resolve_metric(metric: str) -> MetricRef:
    """The figure and statistic a gate's metric names; a :class:`SpecError` lists what can be named."""
    if metric in BUILTIN_METRICS:
        return BUILTIN_METRICS[metric]
    match = _CUSTOM_METRIC.match(metric)
    if match and match["measure"] not in BUILTINS:
        return MetricRef(metric, match["measure"], match["stat"], False)
    shown = ", ".join(m for m in BUILTIN_METRICS if not m.startswith(("score_p", "tps_ci", "ttft_ci")))
    raise SpecError(
        f"unknown metric {metric!r}; built-in metrics: {shown}; a recorded measurement NAME is gated as "
        f"NAME_STAT with STAT one of {', '.join(STATS)} (e.g. chars_per_s_mean)"
    )


@dataclass(frozen=True, slots=True)
class Series:
    """One recorded measurement over a run: a value per iteration, and their summary."""

    name: str
    unit: str
    better: Better
    per_iteration: tuple[tuple[int, float], ...]  # (iteration, mean of that iteration's values)
    summary: Summary | None
    count: int  # values recorded in all

    @property
    def values(self) -> list[float]:
        return [v for _, v in self.per_iteration]

    def stat(self, stat: str) -> float | None:
        """The named statistic (a key of :data:`STATS`), None when not defined (a CI from one iteration)."""
        if self.summary is None:
            return None
        if stat.startswith("ci_") and not self.summary.ci_defined:
            return None
        value: float = getattr(self.summary, STATS[stat][0])
        return value


def series(recorded: Iterable[tuple[int, Measurement]]) -> dict[str, Series]:
    """Group (iteration, measurement) pairs by name into :class:`Series`, names in first-seen order.

    Within one iteration the values of a name are averaged (one value per iteration, like the built-ins'
    per-iteration figures); unit and direction are the first recorded ones.
    """
    by_name: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    first: dict[str, Measurement] = {}
    for iteration, m in recorded:
        first.setdefault(m.name, m)
        by_name[m.name][iteration].append(m.value)
    out: dict[str, Series] = {}
    for name, per in by_name.items():
        points = tuple((k, math.fsum(per[k]) / len(per[k])) for k in sorted(per))
        out[name] = Series(
            name=name,
            unit=first[name].unit,
            better=first[name].better,
            per_iteration=points,
            summary=summarize([v for _, v in points]),
            count=sum(len(v) for v in per.values()),
        )
    return out


__all__ = [
    "BETTER",
    "BUILTINS",
    "BUILTIN_METRICS",
    "STATS",
    "Better",
    "ItemOutcome",
    "Measure",
    "MeasureDef",
    "Measurement",
    "MetricRef",
    "Series",
    "item_outcome",
    "measurement",
    "resolve_metric",
    "series",
]
