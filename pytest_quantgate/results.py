"""Result files: one per preset per run, streamed as samples arrive, finalised at the end.

``result.jsonl`` gets a header line, then one line per sample, flushed at once: a crash or Ctrl-C loses
nothing already measured. ``result.json`` is the finished file (written atomically). A run without errors
also goes to the store, ``<dir>/results/<preset>/<suite file>.json``: the latest result of each (preset,
suite), which ``--baseline PRESET`` reads (see :func:`suite_id` and ``docs/baselines.md``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pytest_quantgate.errors import ResultsError
from pytest_quantgate.keys import suite_of
from pytest_quantgate.levels import Sample, aggregate
from pytest_quantgate.summary import SummaryRecord

if TYPE_CHECKING:
    from collections.abc import Iterable

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
    cache_prompt: bool | None = None  # what requests sent as llama-server's cache_prompt (None: not sent)
    draft: dict[str, Any] | None = None  # speculative decoding: model, its digest, spec_type, n_max, args
    # What the server reported it runs with (/props, /slots): see pytest_quantgate.effective.
    effective: dict[str, Any] | None = None


class BufferRecord(_Model):
    """One buffer llama.cpp reported allocating (memory_report.py)."""

    device: str  # CPU for host memory, else the backend device: CUDA0, ROCm0, Metal
    buffer_type: str  # as llama.cpp names it: CPU_Mapped, CUDA0, CUDA_Host
    kind: str  # model, kv, compute, output, rs, lora, other
    mb: float  # MiB, as every memory figure here


class ServerRecord(_Model):
    base_url: str | None = None
    attached: bool = False
    load_s: float | None = None
    memory_idle_mb: float | None = None
    memory_source: str | None = None  # of the measured figures: rss, nvml-process, nvml-device, amdsmi, ...
    log: str | None = None
    memory_peak_mb: float | None = None  # measured, like memory_idle_mb
    # What llama.cpp says it allocated: the figure ceilings and comparisons read by default.
    llama_memory_mb: float | None = None
    llama_memory_scope: str | None = None  # the device(s) llama_memory_mb covers: CPU, CUDA0, CUDA0+CUDA1
    llama_buffers: list[BufferRecord] = Field(default_factory=list)
    prompt_cache_mb: float | None = None  # the prompt cache's size as last logged: RAM beyond the buffers
    prompt_cache_prompts: int | None = None
    prompt_cache_limit_mb: float | None = None  # --cache-ram as the server announced it; None: no cache
    devices: list[str] = Field(default_factory=list)  # the GPUs the server was pinned to, as the machine numbers them
    memory_notes: list[str] = Field(default_factory=list)  # why a figure is missing or a fallback

    @field_validator("memory_source")
    @classmethod
    def _current_label(cls, value: str | None) -> str | None:
        # Results written before the labels were split said "nvml" for NVML's per-process figure.
        return "nvml-process" if value == "nvml" else value


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
    iterations_run: int | None = None  # against iterations_planned: fewer when --sequential settled early
    stopped_early: str | None = None  # the sequential test's decision when it ended the preset's run
    finished_at: str | None = None
    server: ServerRecord = Field(default_factory=ServerRecord)
    samples: list[Sample] = Field(default_factory=list)
    gates: list[GateRecord] = Field(default_factory=list)
    summary: SummaryRecord = Field(default_factory=SummaryRecord)

    def level_keys(self) -> list[str]:
        """The level keys the run holds, from its samples, or from its summary when it has none."""
        if self.samples:
            return list(dict.fromkeys(s.level for s in self.samples))
        return list(self.summary.levels)

    @property
    def suite(self) -> str:
        """The :func:`suite_id` of the run."""
        return suite_id(self.level_keys())

    def only_levels(self, level_keys: Iterable[str]) -> ResultFile:
        """This result restricted to *level_keys*: the part of a result over several suites (as earlier
        versions wrote them) that one suite is compared with. Its summary is recomputed from the samples
        kept (a summary-only result keeps the per-level counts of those levels); its gates, which judged
        the whole, are dropped."""
        keep = set(level_keys)
        if set(self.level_keys()) <= keep:
            return self
        samples = [s for s in self.samples if s.level in keep]
        if samples:
            agg = aggregate(self.preset.id, samples, load_s=self.server.load_s)
            summary = SummaryRecord.of(agg)
        else:
            levels = {k: v for k, v in self.summary.levels.items() if k in keep}
            summary = self.summary.model_copy(
                update={
                    "levels": levels,
                    "max_points": sum(lv.points for lv in levels.values()),
                    "iterations": [],
                    "score": None,
                    "score_raw": None,
                    "measures": {},
                }
            )
        return self.model_copy(update={"samples": samples, "summary": summary, "gates": []})

    @property
    def errors(self) -> int:
        """Level runs that errored (server or request failures, broken tests), not wrong answers."""
        return sum(1 for s in self.samples if s.outcome == "error")

    def origin(self, path: Path) -> str:
        """Where this result came from, for a reader: ``PATH (run ID, started ISO-TIME)``."""
        return f"{path} (run {self.run_id}, started {self.started_at})"


def suite_id(level_keys: Iterable[str]) -> str:
    """The identity of the suite a run measured: the test modules of its levels, sorted, joined by ", ".

    A level key is the test's pytest node id without the iteration, so the module paths are relative to the
    rootdir: ``test_tiny.py`` for ``pytest example_suites/tiny`` (whose pytest.ini makes that the rootdir),
    ``suites/coding/test_fifo.py, suites/knowledge/test_knowledge.py`` for a run over two directories.
    Levels added to or dropped from a module keep its suite; another set of modules is another suite.
    """
    return ", ".join(sorted({suite_of(key) for key in level_keys}))


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


def write_final(result: ResultFile, directory: Path) -> Path:
    """Write ``result.json`` atomically. Returns its path."""
    path = directory / "result.json"
    _atomic_write(path, result.model_dump_json(indent=1))
    return path


# -- the store: the latest result of each (preset, suite) -----------------------------------------------


def stored_path(results_dir: Path, preset_id: str, suite: str) -> Path:
    """Where the store keeps the latest result of *preset_id* on *suite*."""
    return results_dir / preset_id / suite_file_name(suite)


def suite_file_name(suite: str) -> str:
    """``<first module's name>[+N more modules]-<hash of the suite id>.json``: readable, and one per suite."""
    modules = suite.split(", ") if suite else []
    stem = PurePosixPath(modules[0]).stem if modules else "no-levels"
    more = f"+{len(modules) - 1}" if len(modules) > 1 else ""
    digest = hashlib.sha256(suite.encode("utf-8")).hexdigest()[:10]
    return f"{stem}{more}-{digest}.json"


def legacy_stored_path(results_dir: Path, preset_id: str) -> Path:
    """``<results_dir>/<preset>.json``: the one latest result per preset that earlier versions kept (read only)."""
    return results_dir / f"{preset_id}.json"


def why_not_stored(result: ResultFile) -> str | None:
    """Why *result* may not replace the stored one (None: it may): only a complete run without errors may."""
    if not result.samples:
        return "it holds no level results"
    if not result.complete:
        return "the run was interrupted"
    if result.errors:
        return f"{result.errors} level run(s) errored"
    return None


def store_latest(result: ResultFile, results_dir: Path) -> Path:
    """Make *result* the stored latest result of its (preset, suite); check :func:`why_not_stored` first."""
    path = stored_path(results_dir, result.preset.id, result.suite)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, result.model_dump_json(indent=1))
    return path


def stored_results(store: Path, legacy: Path | None = None) -> list[Path]:
    """The results in *store* (one preset's directory in the store), one per suite; when there are none,
    *legacy* (an earlier version's ``<preset>.json``) if it exists."""
    found = sorted(store.glob("*.json")) if store.is_dir() else []
    if not found and legacy is not None and legacy.is_file():
        found = [legacy]
    return found


def named_results(spec: str, results_dir: Path) -> list[Path]:
    """The result files *spec* may mean: a file; a preset's directory in a store (its results, one per
    suite); or a preset id, whose directory is ``<results_dir>/<id>`` (and, when that holds none, the
    ``<results_dir>/<id>.json`` of an earlier version)."""
    path = _as_path(spec)
    if path.is_file():
        return [path]
    store, legacy = _store(spec, results_dir)
    return stored_results(store, legacy)


def find_result(spec: str, results_dir: Path, suite: str | None = None) -> Path:
    """The one result file *spec* names (see :func:`named_results`).

    With *suite*, a store's result for that suite (else an earlier version's ``<id>.json``, whose suite the
    caller checks); without it, the store must hold a single result. Raises ResultsError naming what was
    looked for and what is there.
    """
    path = _as_path(spec)
    if path.is_file():
        return path
    store, legacy = _store(spec, results_dir)
    found = stored_results(store, legacy)
    if suite is not None:
        exact = store / suite_file_name(suite)
        if exact.is_file():
            return exact
        if legacy is not None and legacy.is_file():
            return legacy
    elif len(found) == 1:
        return found[0]
    if not found and ("/" in spec or os.sep in spec or spec.endswith((".json", ".jsonl"))):
        raise ResultsError(f"{path}: no such result file; pass the path of a result.json or result.jsonl")
    if not found:
        where = f"no {store}{os.sep}*.json" + (f", and {legacy} does not exist" if legacy is not None else "")
        raise ResultsError(
            f"{spec!r} is neither a result file nor a preset with a stored result ({where}); pass "
            f"the path of a result.json or result.jsonl, or run `pytest --preset {spec}` on the suite first"
        )
    listed = "; ".join(str(p) for p in found)
    if suite is not None:
        raise ResultsError(
            f"{spec!r} has no stored result for the suite being run ({suite}; it would be {exact}); stored: "
            f"{listed}. Run `pytest --preset {spec}` on this suite first, or pass the path of a result file"
        )
    raise ResultsError(f"{spec!r} has stored results of {len(found)} suites: {listed}; pass the path of one")


def _as_path(spec: str) -> Path:
    return Path(spec).expanduser().absolute()


def _store(spec: str, results_dir: Path) -> tuple[Path, Path | None]:
    """(the preset's directory in the store, an earlier version's file) for a directory or a preset id.

    A directory counts only when written as a path (with a slash): a bare name is a preset id, even where a
    directory of that name happens to exist.
    """
    path = _as_path(spec)
    if path.is_dir() and ("/" in spec or os.sep in spec):
        return path, None
    return results_dir / spec, legacy_stored_path(results_dir, spec)


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
    "BufferRecord",
    "GateRecord",
    "Header",
    "PresetRecord",
    "ResultFile",
    "ResultStream",
    "ServerRecord",
    "find_result",
    "legacy_stored_path",
    "load_result",
    "named_results",
    "store_latest",
    "stored_path",
    "stored_results",
    "suite_file_name",
    "suite_id",
    "why_not_stored",
    "write_final",
]
