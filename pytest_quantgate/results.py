"""Result files: one per preset per run, streamed as samples arrive, finalised at the end.

``result.jsonl`` gets a header line, then one line per sample, flushed at once: a crash or Ctrl-C loses
nothing already measured. ``result.json`` is the finished file (written atomically), and a copy goes to
``<dir>/results/<preset>.json`` so the latest result of a preset can serve as a baseline by name.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pytest_quantgate.errors import ResultsError
from pytest_quantgate.levels import Sample

if TYPE_CHECKING:
    from pathlib import Path

SCHEMA_VERSION = 1
KIND = "pytest-quantgate-result"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PresetRecord(_Model):
    id: str
    name: str
    driver: str
    origin: str = "quantgate"
    source: str | None = None
    source_sha256: str | None = None
    model: str | None = None
    model_size_bytes: int | None = None
    model_digest: str | None = None
    binary: str | None = None
    binary_version: str | None = None
    binary_sha256: str | None = None
    argv: list[str] = Field(default_factory=list)
    base_url: str | None = None
    context_size: int | None = None
    parallel: int = 1
    extra_args: list[str] = Field(default_factory=list)
    sampler: dict[str, Any] = Field(default_factory=dict)
    chat_template_kwargs: dict[str, Any] = Field(default_factory=dict)
    memory_ceiling_mb: float | None = None
    max_tokens: int | None = None


class ServerRecord(_Model):
    base_url: str | None = None
    attached: bool = False
    load_s: float | None = None
    memory_idle_mb: float | None = None
    memory_source: str | None = None
    log: str | None = None


class GateRecord(_Model):
    id: str
    passed: bool
    observed: float | None
    message: str
    source: str


class Header(_Model):
    kind: Literal["pytest-quantgate-result"] = "pytest-quantgate-result"
    schema_version: int = SCHEMA_VERSION
    plugin_version: str
    run_id: str
    started_at: str
    preset: PresetRecord
    host: dict[str, Any] = Field(default_factory=dict)
    iterations_planned: int | None = None


class ResultFile(Header):
    complete: bool = False
    finished_at: str | None = None
    server: ServerRecord = Field(default_factory=ServerRecord)
    samples: list[Sample] = Field(default_factory=list)
    gates: list[GateRecord] = Field(default_factory=list)
    summary: dict[str, Any] = Field(default_factory=dict)


class ResultStream:
    """Appends samples to ``result.jsonl`` as they arrive (one process: the controller)."""

    def __init__(self, directory: Path, header: Header) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.header = header
        self.path = directory / "result.jsonl"
        self._fh = self.path.open("a", encoding="utf-8")
        self._write({"header": header.model_dump(mode="json")})

    def add(self, sample: Sample) -> None:
        self._write({"sample": sample.to_dict()})

    def _write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


def write_final(result: ResultFile, directory: Path, latest_dir: Path | None = None) -> Path:
    """Write ``result.json`` atomically (and the per-preset latest copy). Returns its path."""
    path = directory / "result.json"
    text = result.model_dump_json(indent=1)
    _atomic_write(path, text)
    if latest_dir is not None:
        latest_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(latest_dir / f"{result.preset.id}.json", text)
    return path


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def load_result(path: Path) -> ResultFile:
    """Read a finished ``result.json`` or a streamed (possibly interrupted) ``result.jsonl``.

    Whatever the file holds, the only exception is :class:`~pytest_quantgate.errors.ResultsError`, naming
    the file and what is wrong with it.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ResultsError(f"cannot read results file {path}: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ResultsError(
            f"{path} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}), so it is not a "
            "pytest-quantgate result file; pass the result.json or result.jsonl of a run"
        ) from None
    if path.suffix == ".jsonl":
        return _from_stream(text, path)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ResultsError(
            f"{path} is not valid JSON ({_why(exc)}); if the run was interrupted, use the result.jsonl beside it"
        ) from None
    return _validate(data, path)


def _why(exc: Exception) -> str:
    return "nested too deeply" if isinstance(exc, RecursionError) else str(exc)


def _validate(data: object, path: Path) -> ResultFile:
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise ResultsError(f"{path} is not a pytest-quantgate result file (no kind: {KIND!r})")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ResultsError(
            f"{path} has schema version {version!r}; this pytest-quantgate reads version {SCHEMA_VERSION}. "
            "Re-run the suite with this version to get a comparable result."
        )
    try:
        return ResultFile.model_validate(data)
    except ValidationError as exc:
        raise ResultsError(f"{path} does not match the result schema:\n{exc}") from None


def _from_stream(text: str, path: Path) -> ResultFile:
    header: dict[str, Any] | None = None
    samples: list[dict[str, Any]] = []
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            if number == len(lines):
                break  # a line cut short by a crash: everything before it still counts
            raise ResultsError(f"{path}, line {number}: not valid JSON") from None
        if not isinstance(record, dict):
            raise ResultsError(f"{path}, line {number}: not a JSON object")
        for kind in ("header", "sample"):
            if kind in record and not isinstance(record[kind], dict):
                raise ResultsError(f"{path}, line {number}: the {kind} is not a JSON object")
        if "header" in record:
            header = record["header"]
        elif "sample" in record:
            samples.append(record["sample"])
    if header is None:
        raise ResultsError(f"{path} has no header line; it is not a pytest-quantgate result stream")
    return _validate({**header, "samples": samples, "complete": False}, path)


__all__ = [
    "SCHEMA_VERSION",
    "GateRecord",
    "Header",
    "PresetRecord",
    "ResultFile",
    "ResultStream",
    "ServerRecord",
    "load_result",
    "write_final",
]
