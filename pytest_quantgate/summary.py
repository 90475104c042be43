"""The summary a result file carries: one pydantic model, its writer and its reader side by side.

The writer is :meth:`SummaryRecord.of` (a run's :class:`~pytest_quantgate.levels.RunAggregate` → the model);
the readers turn it back into the values the comparison needs (:meth:`SummaryRecord.level_aggregates`,
:meth:`SummaryRecord.iteration_scores`, :meth:`SummaryRecord.stat`, :meth:`SummaryRecord.series`). Nothing
else reads a summary's keys. Files written before measurements existed load unchanged (every field has a
default); an interrupted run's stream has an empty summary.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pytest_quantgate.levels import IterationScore, LevelAggregate, RunAggregate
from pytest_quantgate.measures import Series
from pytest_quantgate.stats import Summary, wilson


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StatRecord(_Model):
    """A :class:`~pytest_quantgate.stats.Summary`; an interval end that is infinite (n = 1) is stored as null."""

    n: int
    mean: float
    sd: float
    min: float
    max: float
    ci_low: float | None = None
    ci_high: float | None = None
    median: float
    p95: float
    confidence: float = 0.95

    @classmethod
    def of(cls, s: Summary | None) -> StatRecord | None:
        if s is None:
            return None
        return cls(n=s.n, mean=s.mean, sd=s.sd, min=s.min, max=s.max, ci_low=_finite(s.ci_low),
                   ci_high=_finite(s.ci_high), median=s.median, p95=s.p95, confidence=s.confidence)  # fmt: skip

    def summary(self) -> Summary:
        return Summary(
            n=self.n, mean=self.mean, sd=self.sd, min=self.min, max=self.max,
            ci_low=-math.inf if self.ci_low is None else self.ci_low,
            ci_high=math.inf if self.ci_high is None else self.ci_high,
            median=self.median, p95=self.p95, confidence=self.confidence,
        )  # fmt: skip


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None  # JSON has no infinity


class IterationRecord(_Model):
    iteration: int
    raw: float
    percent: float
    tokens_per_s: float | None = None
    errors: int = 0


class LevelRecord(_Model):
    name: str
    points: float
    passed: int
    n: int


class MeasureRecord(_Model):
    """A recorded measurement over the run: its value per iteration and their summary."""

    unit: str = ""
    better: Literal["higher", "lower", "neither"] = "higher"
    per_iteration: list[tuple[int, float]] = Field(default_factory=list)
    summary: StatRecord | None = None
    count: int = 0


class SummaryRecord(_Model):
    """What a run added up to, per preset: the decision table's numbers and the per-level counts."""

    preset: str | None = None
    max_points: float = 0.0
    iterations: list[IterationRecord] = Field(default_factory=list)
    levels: dict[str, LevelRecord] = Field(default_factory=dict)
    score: StatRecord | None = None
    score_raw: StatRecord | None = None
    tps: StatRecord | None = None
    ttft_ms: StatRecord | None = None
    ttft_first_ms: float | None = None
    load_s: float | None = None
    memory_peak_mb: float | None = None
    memory_idle_mb: float | None = None
    memory_source: str | None = None
    errors: int = 0
    n_samples: int = 0
    extra: dict[str, float] = Field(default_factory=dict)
    measures: dict[str, MeasureRecord] = Field(default_factory=dict)

    # -- writer -------------------------------------------------------------------------------------

    @classmethod
    def of(cls, agg: RunAggregate) -> SummaryRecord:
        return cls(
            preset=agg.preset,
            max_points=agg.max_points,
            iterations=[
                IterationRecord(
                    iteration=it.iteration,
                    raw=it.raw,
                    percent=it.percent,
                    tokens_per_s=it.tokens_per_s,
                    errors=it.errors,
                )
                for it in agg.iterations
            ],
            levels={
                lv.level: LevelRecord(name=lv.name, points=lv.points, passed=lv.rate.passed, n=lv.rate.n)
                for lv in agg.levels
            },
            score=StatRecord.of(agg.score),
            score_raw=StatRecord.of(agg.score_raw),
            tps=StatRecord.of(agg.tps),
            ttft_ms=StatRecord.of(agg.ttft_ms),
            ttft_first_ms=agg.ttft_first_ms,
            load_s=agg.load_s,
            memory_peak_mb=agg.memory_peak_mb,
            memory_idle_mb=agg.memory_idle_mb,
            memory_source=agg.memory_source,
            errors=agg.errors,
            n_samples=agg.n_samples,
            extra=dict(agg.extra),
            measures={
                name: MeasureRecord(
                    unit=s.unit,
                    better=s.better,
                    per_iteration=list(s.per_iteration),
                    summary=StatRecord.of(s.summary),
                    count=s.count,
                )
                for name, s in agg.measures.items()
            },
        )

    # -- readers ------------------------------------------------------------------------------------

    def level_aggregates(self) -> dict[str, LevelAggregate]:
        """Per-level pass counts by level key. Order within a level is lost in a summary; only the
        counts matter to the stratified analysis."""
        out = {}
        for key, lv in self.levels.items():
            outcomes = (True,) * lv.passed + (False,) * (lv.n - lv.passed)
            out[key] = LevelAggregate(key, lv.name or key, lv.points, wilson(lv.passed, lv.n), outcomes)
        return out

    def iteration_scores(self) -> tuple[IterationScore, ...]:
        return tuple(
            IterationScore(
                iteration=it.iteration, raw=it.raw, percent=it.percent, tokens_per_s=it.tokens_per_s, errors=it.errors
            )
            for it in self.iterations
        )

    def stat(self, name: Literal["score", "score_raw", "tps", "ttft_ms"]) -> Summary | None:
        record: StatRecord | None = getattr(self, name)
        return record.summary() if record is not None else None

    def series(self) -> dict[str, Series]:
        return {
            name: Series(
                name=name,
                unit=m.unit,
                better=m.better,
                per_iteration=tuple(m.per_iteration),
                summary=m.summary.summary() if m.summary else None,
                count=m.count,
            )
            for name, m in self.measures.items()
        }


__all__ = ["IterationRecord", "LevelRecord", "MeasureRecord", "StatRecord", "SummaryRecord"]
