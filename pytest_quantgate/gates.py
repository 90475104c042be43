"""Gates: assertions on a run's aggregates, each evaluated into a pass/fail outcome with a clear message.

A gate is ``metric OP bound``, e.g. ``score_mean >= 95`` or ``pass_rate[test_add3] >= 80``.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pytest_quantgate.errors import SpecError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from pytest_quantgate.levels import LevelAggregate, RunAggregate
    from pytest_quantgate.stats import Summary

GateSource = Literal["mark", "ini", "preset", "option", "ceiling"]

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
}
_NEGATION = {">=": "<", "<=": ">", ">": "<=", "<": ">=", "==": "!="}
_GATE = re.compile(
    r"^\s*(?P<metric>[a-z][a-z0-9_]*)\s*(?:\[\s*(?P<level>.+?)\s*\])?\s*"
    r"(?P<op>>=|<=|==|>|<)\s*(?P<bound>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*%?\s*$"
)


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    label: str  # how the message names it: "score mean"
    unit: str
    help: str
    per_level: bool = False


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("score_mean", "score mean", "%", "mean suite score over iterations, % of the maximum"),
        Metric("score_sigma", "score σ", "%", "standard deviation of the suite score over iterations"),
        Metric("score_min", "score min", "%", "lowest iteration score"),
        Metric("score_max", "score max", "%", "highest iteration score"),
        Metric("score_ci_low", "score CI low", "%", "lower end of the 95% t interval of the mean score"),
        Metric("score_ci_high", "score CI high", "%", "upper end of the 95% t interval of the mean score"),
        Metric("tps_mean", "tok/s mean", " tok/s", "mean decode tokens/s over iterations"),
        Metric("tps_min", "tok/s min", " tok/s", "slowest iteration's decode tokens/s"),
        Metric("tps_max", "tok/s max", " tok/s", "fastest iteration's decode tokens/s"),
        Metric("tps_sigma", "tok/s σ", " tok/s", "standard deviation of decode tokens/s over iterations"),
        Metric("ttft_median_ms", "TTFT median", " ms", "median time to first token over requests"),
        Metric("ttft_p95_ms", "TTFT p95", " ms", "95th percentile time to first token"),
        Metric("ttft_first_ms", "TTFT first", " ms", "time to first token of the first request (cold)"),
        Metric("load_s", "load time", " s", "server start to ready"),
        Metric("memory_peak_mb", "memory peak", " MB", "peak memory of the server (GPU via NVML, else RSS)"),
        Metric("memory_idle_mb", "memory idle", " MB", "server memory after the first iteration"),
        Metric("errors", "errors", "", "level runs that errored (not: failed their validator)"),
        Metric("pass_rate", "pass rate", "%", "a level's pass rate; per level", per_level=True),
        Metric(
            "pass_rate_low",
            "pass rate CI low",
            "%",
            "Wilson lower bound of a level's pass rate",
            per_level=True,
        ),
    )
}


@dataclass(frozen=True, slots=True)
class GateSpec:
    metric: str
    op: str
    bound: float
    level: str | None = None
    source: GateSource = "option"

    @property
    def expr(self) -> str:
        target = f"{self.metric}[{self.level}]" if self.level else self.metric
        return f"{target}{self.op}{_bound_text(self.bound)}"


@dataclass(frozen=True, slots=True)
class GateOutcome:
    spec: GateSpec
    preset: str
    passed: bool
    observed: float | None
    message: str
    level: str | None = None  # the level a per-level gate judged

    @property
    def id(self) -> str:
        target = f"{self.spec.metric}[{self.level}]" if self.level else self.spec.metric
        return f"{target}{self.spec.op}{_bound_text(self.spec.bound)}"


def _bound_text(bound: float) -> str:
    """The shortest text that parses back to *bound* (mark gates travel on samples as text): ``95``, not
    ``95.0``; all 17 digits of ``1000000000000001`` where ``.15g`` would round it."""
    text = repr(bound)
    return text.removesuffix(".0")


def parse_gate(text: str, source: GateSource = "option", where: str = "") -> GateSpec:
    """Parse ``metric OP number``. Unknown metrics list the known ones."""
    prefix = f"{where}: " if where else ""
    match = _GATE.match(text)
    if not match:
        raise SpecError(
            f"{prefix}cannot read gate {text!r}; write it as METRIC OP NUMBER, e.g. 'score_mean >= 95' "
            f"(OP one of {', '.join(_OPS)})"
        )
    metric = match["metric"]
    if metric not in METRICS:
        raise SpecError(f"{prefix}gate {text!r} names unknown metric {metric!r}; known metrics: {', '.join(METRICS)}")
    level = match["level"]
    if level and not METRICS[metric].per_level:
        raise SpecError(f"{prefix}gate {text!r}: {metric} is a suite metric and takes no [level]")
    bound = float(match["bound"])
    if not math.isfinite(bound):  # "1e999" reads as inf, and every value is < inf
        raise SpecError(f"{prefix}gate {text!r}: the bound {match['bound']} is not a finite number")
    return GateSpec(metric=metric, op=match["op"], bound=bound, level=level, source=source)


def dedupe(specs: Iterable[GateSpec]) -> list[GateSpec]:
    seen: dict[str, GateSpec] = {}
    for spec in specs:
        seen.setdefault(spec.expr, spec)
    return list(seen.values())


def evaluate(
    specs: Iterable[GateSpec],
    agg: RunAggregate,
    *,
    level_gates: dict[str, tuple[GateSpec, ...]] | None = None,
) -> list[GateOutcome]:
    """Evaluate suite gates and per-level gates. A gate with no data fails: it could not be shown to hold.

    A per-level gate without ``[level]`` in *specs* applies to every level; *level_gates* carries the
    ones a level's own mark declared, which apply to that level alone.
    """
    outcomes: list[GateOutcome] = []
    for spec in specs:
        if METRICS[spec.metric].per_level:
            targets = [lv for lv in agg.levels if spec.level in (None, lv.name, lv.level)]
            if spec.level and not targets:
                outcomes.append(_no_data(spec, agg, f"no level named {spec.level!r} ran"))
            outcomes += [_level_outcome(spec, agg, lv) for lv in targets]
        else:
            outcomes.append(_suite_outcome(spec, agg))
    for lv in agg.levels:
        for spec in (level_gates or {}).get(lv.level, ()):
            outcomes.append(_level_outcome(spec, agg, lv))
    return outcomes


def _suite_outcome(spec: GateSpec, agg: RunAggregate) -> GateOutcome:
    value, context = _suite_value(spec.metric, agg)
    if value is None:
        return _no_data(spec, agg, context or "no data")
    return _judge(spec, agg.preset, value, context, None)


def _suite_value(metric: str, agg: RunAggregate) -> tuple[float | None, str]:
    def from_summary(summary: Summary | None, attr: str, what: str) -> tuple[float | None, str]:
        if summary is None:
            return None, f"no {what} was measured"
        return getattr(summary, attr), _summary_context(summary)

    score_attrs = {"score_mean": "mean", "score_sigma": "sd", "score_min": "min", "score_max": "max",
                   "score_ci_low": "ci_low", "score_ci_high": "ci_high"}  # fmt: skip
    if metric in score_attrs:
        if agg.score is None:
            return None, "no level ran: nothing to score"
        if metric.startswith("score_ci") and not agg.score.ci_defined:
            return None, "a confidence interval needs at least 2 iterations (run with --iterations 2 or more)"
        return from_summary(agg.score, score_attrs[metric], "score")
    tps_attrs = {"tps_mean": "mean", "tps_min": "min", "tps_max": "max", "tps_sigma": "sd"}
    if metric in tps_attrs:
        return from_summary(agg.tps, tps_attrs[metric], "decode rate")
    if metric == "ttft_median_ms":
        return from_summary(agg.ttft_ms, "median", "TTFT (requests must stream)")
    if metric == "ttft_p95_ms":
        return from_summary(agg.ttft_ms, "p95", "TTFT (requests must stream)")
    if metric == "ttft_first_ms":
        return agg.ttft_first_ms, "" if agg.ttft_first_ms is not None else "no streamed request"
    if metric == "load_s":
        return agg.load_s, "" if agg.load_s is not None else "the server was not started by this run"
    if metric == "memory_peak_mb":
        src = f"source {agg.memory_source}" if agg.memory_source else ""
        return (
            agg.memory_peak_mb,
            src if agg.memory_peak_mb is not None else "no memory reading (attached server?)",
        )
    if metric == "memory_idle_mb":
        return agg.memory_idle_mb, "" if agg.memory_idle_mb is not None else "no idle reading"
    if metric == "errors":
        return float(agg.errors), f"{agg.n_samples} level runs"
    raise AssertionError(f"unhandled metric {metric}")  # METRICS and this function are kept in step


def _level_outcome(spec: GateSpec, agg: RunAggregate, lv: LevelAggregate) -> GateOutcome:
    rate = lv.rate
    value = 100 * (rate.rate if spec.metric == "pass_rate" else rate.low)
    context = f"{rate.passed}/{rate.n} passed, 95% Wilson CI [{100 * rate.low:.1f}, {100 * rate.high:.1f}]"
    return _judge(spec, agg.preset, value, context, lv.name)


def _summary_context(s: Summary) -> str:
    ci = f"95% CI [{s.ci_low:.1f}, {s.ci_high:.1f}]" if s.ci_defined else "CI undefined at n=1"
    return f"n={s.n}, σ={s.sd:.1f}, {ci}"


def _judge(spec: GateSpec, preset: str, value: float, context: str, level: str | None) -> GateOutcome:
    meta = METRICS[spec.metric]
    passed = _OPS[spec.op](value, spec.bound) and not math.isnan(value)
    op = spec.op if passed else _NEGATION[spec.op]
    subject = f"{meta.label} of {level}" if level else meta.label
    details = ", ".join(x for x in (context, f"preset {preset}") if x)
    message = f"{subject} {_fmt(value)} {op} {_fmt(spec.bound)} ({details})"
    return GateOutcome(spec=spec, preset=preset, passed=passed, observed=value, message=message, level=level)


def _no_data(spec: GateSpec, agg: RunAggregate, why: str) -> GateOutcome:
    message = f"{METRICS[spec.metric].label}: cannot evaluate {spec.expr}: {why} (preset {agg.preset})"
    return GateOutcome(spec=spec, preset=agg.preset, passed=False, observed=None, message=message, level=spec.level)


def _fmt(value: float) -> str:
    return f"{value:.1f}" if abs(value) < 1e6 else f"{value:.3g}"
