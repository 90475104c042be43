"""One side of a comparison: a result read into its samples, or into per-level counts from its summary."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_quantgate.errors import ResultsError
from pytest_quantgate.levels import LevelAggregate, RunAggregate, Sample, aggregate
from pytest_quantgate.stats import summarize

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pytest_quantgate.results import ResultFile


@dataclass(frozen=True, slots=True)
class Side:
    """One result as the comparison sees it: the judged samples of its preset, or, when it holds none,
    the per-level counts of its summary."""

    result: ResultFile
    preset: str  # the preset id on the samples
    samples: tuple[Sample, ...]  # judged (not skipped), this preset only
    levels: Mapping[str, LevelAggregate]  # by level key, all levels of the run
    from_samples: bool  # False: only the summary's aggregates exist


def read_side(result: ResultFile, role: str) -> Side:
    """*result* read for comparison; *role* ("baseline", "candidate") names it in errors. Raises
    :class:`~pytest_quantgate.errors.ResultsError` for samples of several presets or no level results."""
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
            return Side(result, preset, samples, {lv.level: lv for lv in agg.levels}, True)
    levels = result.summary.level_aggregates()
    if not levels:
        raise ResultsError(
            f"{where} holds no level results: no samples and no per-level counts in its summary. "
            "Nothing can be compared; re-run the suite on this preset"
        )
    return Side(result, result.preset.id, (), levels, False)


def restricted_aggregate(side: Side, keys: Mapping[str, str]) -> RunAggregate:
    """The side's aggregate over the compared levels; *keys* maps this side's level key → common key."""
    load_s = side.result.server.load_s
    server = side.result.server
    reported = (server.llama_memory_mb, server.llama_memory_scope or "") if server.llama_memory_mb is not None else None
    if side.from_samples:
        kept = [dataclasses.replace(s, level=keys[s.level]) for s in side.samples if s.level in keys]
        return aggregate(side.preset, kept, load_s=load_s, memory_reported=reported)
    levels = tuple(dataclasses.replace(side.levels[k], level=common) for k, common in keys.items())
    whole = len(keys) == len(side.levels)  # iteration scores in a summary cover every level of that run
    summary = side.result.summary
    iterations = summary.iteration_scores() if whole else ()
    tps = [it.tokens_per_s for it in iterations if it.tokens_per_s is not None]
    return RunAggregate(
        preset=side.preset,
        max_points=math.fsum(lv.points for lv in levels),
        iterations=iterations,
        levels=levels,
        score=summarize([it.percent for it in iterations]) if iterations else None,
        score_raw=summarize([it.raw for it in iterations]) if iterations else None,
        tps=summarize(tps) if tps else summary.stat("tps"),
        ttft_ms=summary.stat("ttft_ms"),
        ttft_first_ms=summary.ttft_first_ms,
        load_s=load_s if load_s is not None else summary.load_s,
        memory_peak_mb=summary.memory_peak_mb,
        memory_idle_mb=summary.memory_idle_mb,
        memory_source=side.result.server.memory_source,
        errors=summary.errors,
        n_samples=sum(lv.rate.n for lv in levels),
        measures=summary.series() if whole else {},
        memory_reported_mb=server.llama_memory_mb,
        memory_reported_scope=server.llama_memory_scope,
    )


def result_aggregate(result: ResultFile) -> RunAggregate:
    """The aggregate of one result: from its samples, or from its summary when it holds none."""
    side = read_side(result, "result")
    return restricted_aggregate(side, {k: k for k in side.levels})


def speed_series(
    side: Side, agg: RunAggregate, keys: Mapping[str, str]
) -> tuple[list[float], list[float], list[float]]:
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


__all__ = ["Side", "read_side", "restricted_aggregate", "result_aggregate", "speed_series"]
