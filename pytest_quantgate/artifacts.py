"""Per-iteration artifacts: what was asked, what came back, and what the validator said.

One JSON Lines file per preset and iteration (``<run>/<preset>/iter-07.jsonl``), one line per level run.
Measured on the benchmark machine (B1): a file per level run cost ~0.85 ms per level, more than half of
the harness's own work per level, and even one ``write`` to a file that was idle for a few milliseconds
costs ~0.1 ms (the file system journals the inode's new mtime), and so does encoding one record between
two requests, where the code runs cold. So records are collected and encoded and written together: at
least once a second, at the end of each iteration's file, at a miss or an error (the records most likely
to be read), and at the end of the run. On real models a level takes seconds, so each line goes out on
its own; only the tiny model's millisecond levels are batched.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from types import TracebackType

    from pytest_quantgate.levels import Sample
    from pytest_quantgate.llm import Exchange


def artifact_path(preset_dir: Path, iteration: int) -> Path:
    return preset_dir / f"iter-{iteration:02d}.jsonl"


def artifact_record(sample: Sample, exchanges: Sequence[Exchange], validator_output: str | None) -> dict[str, Any]:
    return {
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
                "params": request_params(ex),
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


def request_params(exchange: Exchange) -> dict[str, Any]:
    """The parameters a request went out with: the body as sent (the preset's sampler and max_tokens
    where the level set none, the stream flags) less its prompt or messages, which the record holds
    apart, and what the test asked of the client that is not in the body (``timeout_s``, ``system``).
    A value the test left at None was not sent: the client used the preset's."""
    asked = {key: value for key, value in exchange.params.items() if value is not None}
    sent = {key: value for key, value in exchange.completion.request.items() if key not in _PROMPT_KEYS}
    return asked | sent


_PROMPT_KEYS = ("prompt", "messages")


def _open_append(path: Path) -> int:
    """A descriptor appending to *path*, its directory made when missing (tried after the open fails, not
    before each batch: the directory is there for all but the first)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    try:
        return os.open(path, flags, 0o644)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, flags, 0o644)


def read_artifacts(preset_dir: str | os.PathLike[str], iteration: int) -> dict[str, dict[str, Any]]:
    """An iteration's artifacts by level name (the last record wins if a level ran twice)."""
    path = artifact_path(Path(preset_dir), iteration)
    return {record["name"]: record for record in _records(path)}


def _records(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


class ArtifactWriter:
    """Collects level records and appends them to the iterations' files; :meth:`close` writes the rest.

    Each batch is complete lines in one ``write`` on a descriptor opened with ``O_APPEND``, so xdist workers
    appending to the same iteration's file never interleave within a line. A process killed outright loses
    at most the last second of artifacts; the measurements themselves are in the results stream already.
    """

    def __init__(self, *, flush_after_s: float = 1.0) -> None:
        self._flush_after_s = flush_after_s
        self._path: dict[Path, Path] = {}  # preset dir → the iteration file its lines go to
        # iteration file → records not yet written. They refer only to values nobody changes afterwards
        # (frozen samples and completions, each exchange's copy of its parameters): encoding later is safe.
        self._records: dict[Path, list[dict[str, Any]]] = {}
        self._last_flush = time.monotonic()
        self.errors: list[str] = []

    def write(
        self, preset_dir: Path, sample: Sample, exchanges: Sequence[Exchange], validator_output: str | None
    ) -> Path:
        """Add one level run's record; returns the file it goes to. Failures are kept in :attr:`errors`,
        not raised: the measurement itself is already in the results stream."""
        path = artifact_path(preset_dir, sample.iteration)
        previous = self._path.get(preset_dir)
        if previous is not None and previous != path:
            self._flush(previous)  # that iteration is over (levels run iteration by iteration)
        self._path[preset_dir] = path
        self._records.setdefault(path, []).append(artifact_record(sample, exchanges, validator_output))
        if sample.outcome != "passed" or time.monotonic() - self._last_flush >= self._flush_after_s:
            self.flush()
        return path

    def flush(self) -> None:
        for path in list(self._records):
            self._flush(path)
        self._last_flush = time.monotonic()

    def _flush(self, path: Path) -> None:
        records = self._records.pop(path, None)
        if not records:
            return
        data = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records).encode("utf-8")
        try:
            fd = _open_append(path)
            try:
                if os.write(fd, data) != len(data):
                    self.errors.append(f"{path}: short write (is the disk full?)")
            finally:
                os.close(fd)
        except OSError as exc:
            self.errors.append(f"{path}: {exc.strerror or exc}")

    def close(self) -> list[str]:
        """Write everything collected; returns the failures met ("path: reason")."""
        self.flush()
        return self.errors

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
