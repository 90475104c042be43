"""Where a result came from: host, binary, model file, preset file — recorded so comparisons can say
what differed (a different binary, sampler or host is a caveat, not a finding)."""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from pytest_quantgate.errors import InstallError
from pytest_quantgate.flags import server_args
from pytest_quantgate.install import binary_version, find_binary
from pytest_quantgate.memory import gpu_description
from pytest_quantgate.results import PresetRecord

if TYPE_CHECKING:
    from pytest_quantgate.presets import Preset

_CHUNK = 1024 * 1024


def sampled_digest(path: Path) -> str | None:
    """sha256 over the size and three 1 MiB chunks (start, middle, end): fast on 20 GB GGUFs, and any
    re-download, re-quantisation or truncation changes it. Whole-file for files under 4 MiB."""
    try:
        size = path.stat().st_size
        digest = hashlib.sha256(str(size).encode())
        with path.open("rb") as fh:
            if size <= 4 * _CHUNK:
                digest.update(fh.read())
                return "sha256:" + digest.hexdigest()
            for offset in (0, size // 2, size - _CHUNK):
                fh.seek(offset)
                digest.update(fh.read(_CHUNK))
        return "sampled-sha256:" + digest.hexdigest()
    except (OSError, ValueError):  # ValueError: a path with a NUL byte
        return None


def file_sha256(path: Path) -> str | None:
    try:
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    except (OSError, ValueError):
        return None


def preset_record(preset: Preset) -> PresetRecord:
    """What a result records about its preset, credentials redacted.

    Model, binary, context size, slots, sampler and chat-template kwargs are read from the server's argv as
    much as from the preset's keys, so the same settings are recorded alike whichever format wrote them: a
    llama-swap ``cmd: llama-server -m M -c 4096 --temp 0`` and our ``model: M``, ``context_size: 4096``,
    ``sampler: {temperature: 0}`` give the same record. A request field the preset sends overrides the
    server default a flag set. The flags not recorded in a field of their own are ``extra_args``.
    """
    where = f"preset {preset.id!r} ({preset.source})"
    if preset.driver == "command":
        args = server_args([*preset.command, *preset.extra_args], where=where, binary=True)
    else:  # llamacpp (or a server someone else started like it): quantgate writes the fields' own flags
        mmproj = ["--mmproj", str(preset.mmproj)] if preset.mmproj is not None else []
        args = server_args([*mmproj, *preset.extra_args], where=where)
    model = args.model if args.model not in (None, "{model}") else preset.model
    model_path = Path(model) if model is not None else None
    binary = _binary(preset, args.binary)
    is_llama_server = binary is not None and (preset.driver == "llamacpp" or binary.name.startswith("llama-server"))
    sampler: dict[str, Any] = {**args.sampler, **preset.sampler.request_fields()}
    kwargs = {**args.chat_template_kwargs, **dict(preset.chat_template_kwargs)}
    return PresetRecord(
        id=preset.id,
        name=preset.name,
        driver=preset.driver,
        origin=preset.origin,
        source=str(preset.source) if preset.source else None,
        source_sha256=file_sha256(preset.source) if preset.source else None,
        model=preset.redact([str(model)])[0] if model is not None else None,
        model_size_bytes=_size(model_path) if model_path is not None else None,
        model_digest=sampled_digest(model_path) if model_path is not None else None,
        binary=(str(binary) if binary is not None else args.binary),
        binary_version=binary_version(binary) if binary is not None and is_llama_server else None,
        binary_sha256=sampled_digest(binary) if binary is not None else None,
        base_url=preset.base_url,
        context_size=args.context_size if args.context_size is not None else preset.context_size,
        parallel=args.parallel if args.parallel is not None else preset.parallel,
        extra_args=preset.redact(args.rest),
        sampler=sampler,
        chat_template_kwargs=_redacted(kwargs, preset),
        memory_ceiling_mb=preset.memory_ceiling_mb,
        max_tokens=preset.max_tokens,
        cache_prompt=preset.prompt_cache(),
        draft=_draft_record(preset),
    )


def _draft_record(preset: Preset) -> dict[str, Any] | None:
    draft = preset.draft
    if draft is None:
        return None
    model = draft.model
    return {
        "model": preset.redact([str(model)])[0] if model is not None else None,
        "model_digest": sampled_digest(model) if model is not None else None,
        "spec_type": draft.spec_type,
        "n_max": draft.n_max,
        "args": preset.redact(draft.args),
    }


def _binary(preset: Preset, argv0: str | None) -> Path | None:
    """The server binary as a file: llama-server found as a run finds it, else the command's first word."""
    if preset.driver == "llamacpp":
        try:
            return find_binary("llama-server", preset.binary)
        except InstallError:  # the run itself reports a missing binary; provenance stays partial
            return None
    if argv0 is None:
        return None
    found = argv0 if "/" in argv0 else shutil.which(argv0)
    return Path(found) if found else None


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size if path.is_file() else None
    except (OSError, ValueError):
        return None


def _redacted(value: Any, preset: Preset) -> Any:
    """*value* (JSON-like) with the preset's credentials redacted in every string it holds."""
    if isinstance(value, str):
        return preset.redact([value])[0]
    if isinstance(value, dict):
        return {key: _redacted(item, preset) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item, preset) for item in value]
    return value


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_info() -> dict[str, object]:
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "ram_mb": round(psutil.virtual_memory().total / (1024 * 1024)),
        "gpu": gpu_description(),
        "python": platform.python_version(),
    }
