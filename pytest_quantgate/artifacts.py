"""Per-iteration artifacts: what was asked, what came back, and what the validator said."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from pytest_quantgate.levels import Sample
    from pytest_quantgate.llm import Exchange

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def artifact_path(preset_dir: Path, sample: Sample) -> Path:
    name = _UNSAFE.sub("_", sample.name).strip("_") or "level"
    return preset_dir / f"iter-{sample.iteration:02d}" / f"{name}.json"


def write_artifact(
    preset_dir: Path, sample: Sample, exchanges: Sequence[Exchange], validator_output: str | None
) -> Path:
    """Write one level's artifact; returns its path."""
    path = artifact_path(preset_dir, sample)
    path.parent.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "level": sample.level,
        "name": sample.name,
        "iteration": sample.iteration,
        "outcome": sample.outcome,
        "points": sample.points,
        "duration_s": sample.duration_s,
        "validator": validator_output,
        "requests": [
            {
                "kind": ex.kind,
                "prompt": ex.prompt,
                "params": ex.params,
                "content": ex.completion.content,
                "reasoning": ex.completion.reasoning,
                "finish_reason": ex.completion.finish_reason,
                "wall_s": ex.completion.wall_s,
                "ttft_s": ex.completion.ttft_s,
                "completion_tokens": ex.completion.completion_tokens,
                "tokens_per_s": ex.completion.tokens_per_s,
            }
            for ex in exchanges
        ],
    }
    path.write_text(json.dumps(record, indent=1, default=str), encoding="utf-8")
    return path
