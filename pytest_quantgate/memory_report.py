"""What llama.cpp says it allocated: the buffer lines of a llama-server log, parsed.

llama.cpp logs every buffer it allocates while loading, one line each, with the buffer type (``CPU``,
``CPU_Mapped``, ``CUDA0``, ``CUDA_Host``, ``ROCm0``, ``Metal``, ``Vulkan0``, ...) and the size::

    load_tensors:   CPU_Mapped model buffer size =     0.24 MiB
    llama_kv_cache:        CPU KV buffer size =     0.12 MiB
    llama_context:        CPU  output buffer size =     0.00 MiB
    sched_reserve:        CPU compute buffer size =     0.47 MiB

For the same model file and flags these figures are the same on every machine, unlike a process's RSS
(which grows with the prompt cache) or a device's used memory (which holds other processes). In the
llama.cpp vendored by llama-cpp-python 0.3.36 they are logged at verbosity 4 (llama.cpp's INFO maps to the
server's TRACE), so quantgate starts llama-server with ``LLAMA_ARG_LOG_VERBOSITY=4`` unless the preset says
otherwise (see :func:`pytest_quantgate.server.spec_for`). Builds before the log rework of 2024 print them
unconditionally and name the functions differently (``llm_load_tensors: CPU buffer size``,
``llama_kv_cache_init``, ``llama_new_context_with_model``); the parser reads the line's shape, not its
function name, and ignores any line it does not recognise.

At that verbosity the server also logs its prompt cache (``cache state: N prompts, X MiB``), which is
RAM the process holds beyond these buffers and which grows with the length of a suite: it is reported
apart.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

HOST = "CPU"  # the device name host buffers are reported under

_UNITS = {"b": 1 / (1024 * 1024), "kib": 1 / 1024, "kb": 1 / 1024, "mib": 1.0, "mb": 1.0, "gib": 1024.0, "gb": 1024.0}
_BUFFER = re.compile(
    r"(?P<func>[A-Za-z_][\w]*):\s+(?P<buft>[A-Za-z][\w.\-]*)\s+(?P<label>(?:[A-Za-z][\w]*\s+){0,3}?)"
    r"buffer size\s*=\s*(?P<size>\d+(?:\.\d+)?)\s*(?P<unit>[KMG]i?B|B)\b",
    re.IGNORECASE,
)
_CACHE_STATE = re.compile(r"cache state:\s*(?P<n>\d+)\s+prompts?,\s*(?P<size>\d+(?:\.\d+)?)\s*MiB", re.IGNORECASE)
_CACHE_LIMIT = re.compile(r"prompt cache is enabled, size limit:\s*(?P<size>-?\d+(?:\.\d+)?)\s*MiB", re.IGNORECASE)
# One server process's log starts here (every build since 2023 prints its system info once at start): a
# log that holds several starts (a server restarted in the same run directory) is read for the last one.
_PROCESS_START = re.compile(r"system[_ ]info\s*:", re.IGNORECASE)
_KINDS = (("model", "model"), ("kv", "kv"), ("rs", "rs"), ("lora", "lora"), ("output", "output"),
          ("compute", "compute"), ("state", "kv"))  # fmt: skip
# Suffixes of host buffer types: mapped file pages, repacked weights, pinned host memory of a GPU backend.
_HOST_SUFFIXES = ("_Mapped", "_REPACK", "_AARCH64", "_KLEIDIAI", "_Host", "_HOST", "_Extra", "_EXTRA")


@dataclass(frozen=True, slots=True)
class Buffer:
    """One buffer llama.cpp allocated: its buffer type as llama.cpp names it, what it holds, its size."""

    buffer_type: str
    kind: str  # model, kv, compute, output, rs, lora, other
    mib: float

    @property
    def device(self) -> str:
        return device_of(self.buffer_type)


@dataclass(frozen=True, slots=True)
class LlamaMemory:
    """The buffers of one server start, and its prompt cache as last logged."""

    buffers: tuple[Buffer, ...]
    prompt_cache_mib: float | None = None  # the last "cache state" line's size
    prompt_cache_prompts: int | None = None
    prompt_cache_limit_mib: float | None = None  # the limit it announced (--cache-ram), None if no cache

    def by_device(self) -> dict[str, dict[str, float]]:
        """``{device: {kind: MiB}}``, devices in the order the log names them, the host as ``CPU``."""
        found: dict[str, dict[str, float]] = {}
        for buf in self.buffers:
            kinds = found.setdefault(buf.device, {})
            kinds[buf.kind] = kinds.get(buf.kind, 0.0) + buf.mib
        return found

    def device_totals(self) -> dict[str, float]:
        return {device: math.fsum(kinds.values()) for device, kinds in self.by_device().items()}

    @property
    def total_mib(self) -> float:
        """Every buffer on every device, host included."""
        return math.fsum(buf.mib for buf in self.buffers)

    def figure(self, devices: Iterable[str] | None = None) -> tuple[float, str]:
        """(MiB, scope) that a ceiling and a comparison read.

        The accelerators' buffers when the server put any there (a VRAM ceiling is about them: a partly
        offloaded model's host part does not count against it), else the host's. *devices* narrows it to
        the named devices (those a pinned preset was given).
        """
        totals = self.device_totals()
        wanted = set(devices) if devices is not None else None
        accel = {d: mib for d, mib in totals.items() if d != HOST and (wanted is None or d in wanted)}
        if accel:
            return math.fsum(accel.values()), "+".join(accel)
        return totals.get(HOST, 0.0), HOST


def device_of(buffer_type: str) -> str:
    """The device a buffer type lives on: ``CPU`` for host buffers (``CPU_Mapped``, ``CUDA_Host``), else
    the backend device itself (``CUDA0``, ``ROCm1``, ``Metal``, ``Vulkan0``)."""
    if buffer_type.upper().startswith("CPU"):
        return HOST
    for suffix in _HOST_SUFFIXES:
        if buffer_type.endswith(suffix):
            return HOST if suffix.lower() == "_host" else buffer_type[: -len(suffix)] or HOST
    return buffer_type


def _kind(func: str, label: str) -> str:
    words = label.lower().split()
    for word, kind in _KINDS:
        if word in words:
            return kind
    if not words and "load_tensors" in func.lower():  # older builds: "llm_load_tensors: CPU buffer size"
        return "model"
    return "other"


def parse_buffer_line(line: str) -> Buffer | None:
    """The buffer a log line reports, or None when it is not a buffer line (never raises)."""
    if "buffer size" not in line.lower():
        return None
    match = _BUFFER.search(line)
    if match is None:
        return None
    try:
        mib = float(match["size"]) * _UNITS[match["unit"].lower()]
    except (ValueError, KeyError):
        return None
    if not math.isfinite(mib):
        return None
    return Buffer(buffer_type=match["buft"], kind=_kind(match["func"], match["label"]), mib=mib)


def parse_log(lines: Iterable[str]) -> LlamaMemory | None:
    """The buffers of the last server start in *lines* that reported any; None when none did.

    Unknown lines are ignored, whatever they hold: the wording varies between builds, and the log is also
    the server's free-form output.
    """
    current: list[Buffer] = []
    cache: tuple[int, float] | None = None
    limit: float | None = None
    last: LlamaMemory | None = None
    for line in lines:
        if "info" in line and _PROCESS_START.search(line):
            if current:
                last = _report(current, cache, limit)
            current, cache, limit = [], None, None
            continue
        if (buf := parse_buffer_line(line)) is not None:
            current.append(buf)
        elif "cache" not in line:  # a verbose log has millions of lines: the cheap test first
            continue
        elif (state := _CACHE_STATE.search(line)) is not None:
            cache = (int(state["n"]), float(state["size"]))
        elif (announced := _CACHE_LIMIT.search(line)) is not None:
            limit = float(announced["size"])
    if current:
        last = _report(current, cache, limit)
    return last


def _report(buffers: list[Buffer], cache: tuple[int, float] | None, limit: float | None) -> LlamaMemory:
    return LlamaMemory(
        buffers=tuple(buffers),
        prompt_cache_prompts=cache[0] if cache else None,
        prompt_cache_mib=cache[1] if cache else None,
        prompt_cache_limit_mib=limit,
    )


def read_log(path: Path) -> LlamaMemory | None:
    """:func:`parse_log` over a log file, read line by line; None when the file cannot be read.

    A verbose log may hold tens of MB (0.4 s to read 21 MB) and a run's end reads it several times (gates,
    table, result file): a file that has not changed since is not read again.
    """
    try:
        stat = path.stat()
    except OSError:
        return None
    return _read_log(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _read_log(path: str, size: int, mtime_ns: int) -> LlamaMemory | None:
    try:
        with Path(path).open(encoding="utf-8", errors="replace") as fh:
            return parse_log(fh)
    except OSError:
        return None


def llama_memory(log: str | Path | None) -> LlamaMemory | None:
    """The report in a server's log file, None without a log (an attached server) or without a report."""
    return read_log(Path(log)) if log else None


NO_REPORT = (
    "no llama.cpp buffer report in the server log: llama-server logs its buffers at verbosity 4 "
    "(-lv 4, LLAMA_ARG_LOG_VERBOSITY=4), which quantgate sets unless the preset chooses a verbosity; "
    "the memory figure is the measured peak"
)


def server_memory_fields(
    report: LlamaMemory | None, *, started: bool, notes: Iterable[str] = (), devices: Iterable[str] = ()
) -> dict[str, Any]:
    """The memory fields of a result's ``server`` record (results.ServerRecord): *report*'s, the measuring
    probe's *notes* and pinned *devices* (memory.read_probe_state).

    *started*: quantgate started the server (then a missing report deserves a note; an attached server has
    no log to read).
    """
    found = list(notes)
    if report is None:
        return {"memory_notes": ([NO_REPORT] if started else []) + found, "devices": list(devices)}
    if report.prompt_cache_mib:
        limit = report.prompt_cache_limit_mib
        found.append(
            f"the measured figures include llama-server's prompt cache, {report.prompt_cache_mib:.2f} MB in "
            f"{report.prompt_cache_prompts} prompts when last logged (limit {limit:g} MB, --cache-ram): it grows "
            "with the suite's length; --cache-ram 0 turns it off"
            if limit is not None
            else f"the measured figures include llama-server's prompt cache, {report.prompt_cache_mib:.2f} MB"
        )
    figure, scope = report.figure()
    return {
        "memory_notes": found,
        "devices": list(devices),
        "llama_memory_mb": figure,
        "llama_memory_scope": scope,
        "llama_buffers": [
            {"device": b.device, "buffer_type": b.buffer_type, "kind": b.kind, "mb": b.mib} for b in report.buffers
        ],
        "prompt_cache_mb": report.prompt_cache_mib,
        "prompt_cache_prompts": report.prompt_cache_prompts,
        "prompt_cache_limit_mb": report.prompt_cache_limit_mib,
    }


def summary_line(report: LlamaMemory) -> str:
    """``CPU 0.83 MiB (model 0.24, kv 0.12, compute 0.47)`` per device, for messages and notes."""
    parts = []
    for device, kinds in report.by_device().items():
        inner = ", ".join(f"{kind} {mib:.2f}" for kind, mib in kinds.items())
        parts.append(f"{device} {math.fsum(kinds.values()):.2f} MiB ({inner})")
    return "; ".join(parts)


__all__ = [
    "HOST",
    "NO_REPORT",
    "Buffer",
    "LlamaMemory",
    "device_of",
    "llama_memory",
    "parse_buffer_line",
    "parse_log",
    "read_log",
    "server_memory_fields",
    "summary_line",
]
