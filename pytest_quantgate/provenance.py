"""Where a result came from: host, binary, model file, preset file — recorded so comparisons can say
what differed (a different binary, sampler or host is a caveat, not a finding)."""

from __future__ import annotations

import hashlib
import os
import platform
import socket
from pathlib import Path

import psutil

from pytest_quantgate.memory import gpu_description

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
    except OSError:
        return None


def file_sha256(path: Path) -> str | None:
    try:
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


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
