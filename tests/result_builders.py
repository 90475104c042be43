"""Hand-built result files with known samples, for the compare and render tests."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from pytest_quantgate.levels import RequestRecord, Sample, aggregate
from pytest_quantgate.results import PresetRecord, ResultFile, ServerRecord

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

# The tiny suite's shape: five levels, points 25/25/25/15/10.
TINY_POINTS = {"test_copy": 25.0, "test_reverse": 25.0, "test_add2": 25.0, "test_add3": 15.0, "test_mul": 10.0}
HOST = {
    "hostname": "gpu-box",
    "platform": "Linux-6.8.0-x86_64",
    "cpu": "AMD Ryzen 9 7950X",
    "cpu_count": 32,
    "ram_mb": 128000,
    "gpu": "NVIDIA GeForce RTX 4090 (24564 MiB)",
    "python": "3.11.7",
}
MODEL = "/models/tiny-f16.gguf"

Levels = dict[str, tuple[float, list[bool]]]


def tiny_levels(n: int = 15, misses: Mapping[str, int] | None = None, prefix: str = "test_tiny.py") -> Levels:
    """The tiny suite with *n* iterations; ``misses[name]`` = how many of the last iterations that level fails."""
    misses = misses or {}
    return {
        f"{prefix}::{name}": (points, [k <= n - misses.get(name, 0) for k in range(1, n + 1)])
        for name, points in TINY_POINTS.items()
    }


def item_levels(items: int, n: int, wrong: Mapping[str, Sequence[int]] | None = None) -> Levels:
    """A knowledge-style suite: one parametrized level per item, 1 point each; ``wrong[item]`` = iterations
    in which that item is answered wrongly."""
    wrong = wrong or {}
    return {
        f"test_knowledge.py::test_question[q{i:02d}]": (
            1.0,
            [k not in wrong.get(f"q{i:02d}", ()) for k in range(1, n + 1)],
        )
        for i in range(1, items + 1)
    }


def make_result(
    preset: str,
    levels: Levels,
    *,
    tps: float | None = 100.0,
    ttft_s: float | None = 0.05,
    memory_mb: float | None = 1000.0,
    run_id: str | None = None,
    started_at: str = "2026-11-20T10:00:00+00:00",
    complete: bool = True,
    host: Mapping[str, Any] | None = None,
    plugin_version: str = "0.1.0",
    load_s: float | None = 2.0,
    memory_source: str | None = "nvml-process",
    **preset_fields: Any,
) -> ResultFile:
    """A result whose every (level, iteration) sample is known; speed has a fixed ±2 % jitter per iteration
    so that rank tests see spread, and identical settings give identical values on both sides."""
    samples = []
    n = max(len(outcomes) for _points, outcomes in levels.values())
    for k in range(1, n + 1):
        jitter = 1 + 0.01 * ((7 * k) % 5 - 2)
        for key, (points, outcomes) in levels.items():
            if k > len(outcomes):
                continue
            request = RequestRecord(
                endpoint="/v1/chat/completions",
                wall_s=1.0,
                ttft_s=None if ttft_s is None else ttft_s * jitter,
                predicted_n=None if tps is None else 100,
                predicted_ms=None if tps is None else 100 / (tps * jitter) * 1000,
            )
            memory = None if memory_mb is None else memory_mb + k
            samples.append(
                Sample(
                    preset=preset,
                    level=key,
                    name=key.rpartition("::")[2],
                    iteration=k,
                    points=points,
                    outcome="passed" if outcomes[k - 1] else "failed",
                    duration_s=0.5,
                    requests=(request,),
                    memory_mb=memory,
                    memory_peak_mb=memory,
                    memory_source=memory_source if memory is not None else None,
                )
            )
    fields: dict[str, Any] = {
        "model": MODEL,
        "model_size_bytes": 4_000_000,
        "model_digest": "sha256:aaaa",
        "binary": "/opt/llama.cpp/bin/llama-server",
        "binary_version": "version: 6000 (abc123)",
        "binary_sha256": "sampled-sha256:bbbb",
        "context_size": 4096,
        "sampler": {"temperature": 1.0, "top_p": 0.95},
        "extra_args": ["-ngl", "99"],
    }
    fields.update(preset_fields)
    return ResultFile(
        plugin_version=plugin_version,
        run_id=run_id or f"20261120-100000-{preset}",
        started_at=started_at,
        preset=PresetRecord(id=preset, name=preset, driver="llamacpp", **fields),
        host=dict(HOST if host is None else host),
        complete=complete,
        iterations_planned=n,
        server=ServerRecord(load_s=load_s, memory_source=memory_source if memory_mb is not None else None),
        samples=samples,
    )


def summary_only(result: ResultFile) -> ResultFile:
    """The same result with its samples dropped and the summary the recorder writes."""
    from pytest_quantgate.summary import SummaryRecord

    agg = aggregate(result.preset.id, result.samples, load_s=result.server.load_s)
    stripped = result.model_copy(update={"samples": [], "summary": SummaryRecord.of(agg)})
    return ResultFile.model_validate_json(stripped.model_dump_json())  # as read back from a file


def with_samples(result: ResultFile, samples: Sequence[Sample]) -> ResultFile:
    return result.model_copy(update={"samples": list(samples)})


def renamed(result: ResultFile, prefix: str) -> ResultFile:
    """The same samples with the level keys' file path under *prefix* (a suite run from another rootdir)."""
    return with_samples(result, [dataclasses.replace(s, level=f"{prefix}/{s.level}") for s in result.samples])


def base(n: int = 15, **kw: Any) -> ResultFile:
    """The tiny suite on the baseline preset ``tiny-f16``, every level passed in every iteration."""
    return make_result("tiny-f16", tiny_levels(n), **kw)


def cand(n: int = 15, misses: Mapping[str, int] | None = None, **kw: Any) -> ResultFile:
    """The tiny suite on the candidate preset ``tiny-q4_0``; ``misses`` as in :func:`tiny_levels`."""
    return make_result("tiny-q4_0", tiny_levels(n, misses), **kw)
