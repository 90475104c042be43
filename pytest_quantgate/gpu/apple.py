"""Apple silicon: the GPU's memory is the system's, and macOS reports it only system-wide.

``ioreg -r -d 1 -w 0 -c IOAccelerator`` lists the GPU's ``PerformanceStatistics``, among them
``"In use system memory"`` (bytes the GPU has allocated, all processes together). That is the figure read
here, labelled ``apple-system``: an upper bound on the server's share, like NVML's device-wide fallback.
"""

from __future__ import annotations

import re
import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

MB = 1024 * 1024
_IN_USE = re.compile(r'"In use system memory"\s*=\s*(\d+)')
NOTE = (
    "Apple GPU memory is read system-wide (ioreg 'In use system memory'): every process's GPU allocations, "
    "not the server's alone"
)


def _ioreg() -> str:
    done = subprocess.run(
        ["ioreg", "-r", "-d", "1", "-w", "0", "-c", "IOAccelerator"], capture_output=True, text=True, timeout=5
    )
    return done.stdout


def in_use_mb(text: str) -> float | None:
    """The GPU's in-use system memory in an ``ioreg`` listing, summed over accelerators; None if absent."""
    found = [int(m) for m in _IN_USE.findall(text)]
    return sum(found) / MB if found else None


class AppleProbe:
    """System-level GPU allocation on Apple silicon (``apple-system``)."""

    source: str = "apple-system"
    note: str | None = NOTE

    def __init__(self, run: Callable[[], str] = _ioreg) -> None:
        self._run = run

    def read_mb(self) -> float | None:
        try:
            return in_use_mb(self._run())
        except (OSError, subprocess.SubprocessError):
            return None


def apple_gpu_available(run: Callable[[], str] = _ioreg) -> bool:
    """Whether this is a Mac whose ioreg reports GPU memory."""
    import sys

    if sys.platform != "darwin":
        return False
    try:
        return in_use_mb(run()) is not None
    except (OSError, subprocess.SubprocessError):
        return False


__all__ = ["NOTE", "AppleProbe", "apple_gpu_available", "in_use_mb"]
