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
from pytest_quantgate.measures import BUILTIN_METRICS, STATS, MetricRef, resolve_metric

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


# The built-in metrics (score_mean, tps_min, ttft_p95_ms, memory_peak_mb, pass_rate[...], ...); a recorded
# measurement NAME adds NAME_mean, NAME_sigma, ... (see pytest_quantgate.measures).
METRICS: dict[str, MetricRef] = BUILTIN_METRICS


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
    try:
        ref = resolve_metric(metric)
    except SpecError:
        raise SpecError(
            f"{prefix}gate {text!r} names unknown metric {metric!r}; known metrics: {', '.join(METRICS)}; a "
            f"measurement a level records as NAME is gated as NAME_STAT, STAT one of {', '.join(STATS)}"
        ) from None
    level = match["level"]
    if level and not ref.per_level:
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
        if resolve_metric(spec.metric).per_level:
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
    value, context = metric_value(resolve_metric(spec.metric), agg)
    if value is None:
        return _no_data(spec, agg, context or "no data")
    return _judge(spec, agg.preset, value, context, None)


_MISSING = {
    "score": "no level ran: nothing to score",
    "tps": "no decode rate was measured",
    "ttft": "no TTFT (requests must stream) was measured",
    "load": "the server was not started by this run",
    "memory": "no llama.cpp buffer report and no memory reading (attached server?)",
    "memory_peak": "no memory reading (attached server?)",
    "memory_idle": "no idle reading",
}


def metric_value(ref: MetricRef, agg: RunAggregate) -> tuple[float | None, str]:
    """(the value a suite metric names, its context for the message) — or (None, why there is none)."""
    if ref.stat == "first":
        return agg.ttft_first_ms, "" if agg.ttft_first_ms is not None else "no streamed request"
    if ref.stat == "value":
        value = agg.scalar(ref.measure)
        if value is None:
            return None, _MISSING[ref.measure]
        if ref.measure == "memory_peak":
            return value, f"source {agg.memory_source}" if agg.memory_source else ""
        if ref.measure == "memory":
            return value, _memory_context(agg)
        if ref.measure == "errors":
            return value, f"{agg.n_samples} level runs"
        return value, ""
    summary = agg.summary_of(ref.measure)
    if summary is None:
        if ref.builtin:
            return None, _MISSING[ref.measure]
        recorded = f"; recorded: {', '.join(agg.measures)}" if agg.measures else ""
        return None, f"no level recorded a measurement named {ref.measure!r}{recorded}"
    if ref.stat.startswith("ci_") and not summary.ci_defined:
        return None, summary.why_no_ci
    stat: float = getattr(summary, STATS[ref.stat][0])
    return stat, _summary_context(summary)


def _memory_context(agg: RunAggregate) -> str:
    """``source llama.cpp (CPU); measured peak 45 MB (rss)``: the figure's source, the measured one beside it."""
    context = f"source {agg.memory_mb_source}" if agg.memory_mb_source else ""
    if agg.memory_reported_mb is None:
        return f"{context}, no llama.cpp buffer report" if context else "no llama.cpp buffer report"
    if agg.memory_peak_mb is not None:
        context += f"; measured peak {agg.memory_peak_mb:.0f} MB ({agg.memory_source})"
    return context


def _level_outcome(spec: GateSpec, agg: RunAggregate, lv: LevelAggregate) -> GateOutcome:
    rate = lv.rate
    value = 100 * (rate.rate if spec.metric == "pass_rate" else rate.low)
    context = f"{rate.passed}/{rate.n} passed, 95% Wilson CI [{100 * rate.low:.1f}, {100 * rate.high:.1f}]"
    return _judge(spec, agg.preset, value, context, lv.name)


def _summary_context(s: Summary) -> str:
    if s.ci_defined:
        ci = f"95% CI [{_fmt(s.ci_low)}, {_fmt(s.ci_high)}]"
    else:
        ci = "CI undefined at n=1" if s.n <= 1 else "no CI: every iteration gave the same value"
    return f"n={s.n}, σ={_fmt(s.sd)}, {ci}"


def _judge(spec: GateSpec, preset: str, value: float, context: str, level: str | None) -> GateOutcome:
    label = resolve_metric(spec.metric).label
    passed = _OPS[spec.op](value, spec.bound) and not math.isnan(value)
    op = spec.op if passed else _NEGATION[spec.op]
    subject = f"{label} of {level}" if level else label
    details = ", ".join(x for x in (context, f"preset {preset}") if x)
    message = f"{subject} {_fmt(value)} {op} {_fmt(spec.bound)} ({details})"
    return GateOutcome(spec=spec, preset=preset, passed=passed, observed=value, message=message, level=level)


def _no_data(spec: GateSpec, agg: RunAggregate, why: str) -> GateOutcome:
    message = f"{resolve_metric(spec.metric).label}: cannot evaluate {spec.expr}: {why} (preset {agg.preset})"
    return GateOutcome(spec=spec, preset=agg.preset, passed=False, observed=None, message=message, level=spec.level)


def _fmt(value: float) -> str:
    """One decimal for percents, tok/s and ms; three significant digits below 1 (a KL divergence of 0.1003
    against a bound of 0.05 must not read "0.1 > 0.1") and for very large values."""
    if abs(value) >= 1e6 or 0 < abs(value) < 1:
        return f"{value:.3g}"
    return f"{value:.1f}"
