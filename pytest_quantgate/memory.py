"""Memory of a server: GPU memory through NVML where a GPU exists, resident memory (RSS) otherwise.

Readings are real or absent — never estimated. A sampler thread records the peak over a run.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

import psutil

if TYPE_CHECKING:
    from types import ModuleType

MB = 1024 * 1024
Source = Literal["nvml", "nvml-device", "rss"]


@dataclass(frozen=True, slots=True)
class Reading:
    """One measurement of a server's memory."""

    mb: float
    source: Source
    at: float  # seconds since the sampler started


class Probe(Protocol):
    source: Source

    def read_mb(self) -> float | None: ...


class RssProbe:
    """Resident memory of a process and all its children (a server may spawn helpers).

    Finding the children means reading every process's ``/proc`` entry (~0.8 ms with 64 processes, several
    ms on a desktop), which on two cores measurably slowed the run beside it (benchmark B1). A server's
    process tree changes at start-up if ever, so it is looked up again every ``rescan`` readings (2 s at the
    sampler's pace) and only the known processes' RSS is read in between.
    """

    source: Source = "rss"

    def __init__(self, pid: int, *, rescan: int = 8) -> None:
        self._pid = pid
        self._rescan = rescan
        self._reads = 0
        self._procs: list[psutil.Process] = []

    def read_mb(self) -> float | None:
        if self._reads % self._rescan == 0:  # the first reading, and every rescan-th after it
            try:
                root = psutil.Process(self._pid)
                self._procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                return None
        self._reads += 1
        try:
            total = self._procs[0].memory_info().rss  # the server itself: gone means no reading
        except psutil.Error:
            return None
        for proc in self._procs[1:]:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total / MB


class NvmlProbe:
    """GPU memory the server's processes hold, summed over every device NVML sees.

    Falls back to device-wide used memory when the driver does not report per-process figures (some
    consumer drivers and containers do not), which is then the honest upper bound.
    """

    source: Source = "nvml"

    def __init__(self, nvml: ModuleType, pid: int) -> None:
        self.source = "nvml"
        self._nvml = nvml
        self._pid = pid
        self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]

    def _pids(self) -> set[int]:
        try:
            root = psutil.Process(self._pid)
            return {self._pid, *(p.pid for p in root.children(recursive=True))}
        except psutil.Error:
            return {self._pid}

    def read_mb(self) -> float | None:
        pids = self._pids()
        per_process = 0
        for handle in self._handles:
            with contextlib.suppress(self._nvml.NVMLError):
                for info in self._nvml.nvmlDeviceGetComputeRunningProcesses(handle):
                    if info.pid in pids and info.usedGpuMemory is not None:
                        per_process += info.usedGpuMemory
        if per_process:
            self.source = "nvml"
            return per_process / MB
        # No process of ours on the list: either the driver reports none, or it reports host pids (inside
        # a container's pid namespace they never match). Device-wide use is then the honest upper bound,
        # labelled as such — never a made-up 0 MB.
        self.source = "nvml-device"
        used = 0
        for handle in self._handles:
            with contextlib.suppress(self._nvml.NVMLError):
                used += self._nvml.nvmlDeviceGetMemoryInfo(handle).used
        return used / MB if used else None


def nvml_module() -> ModuleType | None:
    """pynvml, initialised, if a GPU and its driver are there; else None."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        if pynvml.nvmlDeviceGetCount() == 0:
            return None
    except Exception:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...: no usable GPU here
        return None
    nvml: ModuleType = pynvml
    return nvml


def gpu_description() -> str | None:
    """'NVIDIA GeForce RTX 4090, driver 550.54' or None where no GPU is visible."""
    nvml = nvml_module()
    if nvml is None:
        return None
    try:
        names = [nvml.nvmlDeviceGetName(nvml.nvmlDeviceGetHandleByIndex(i)) for i in range(nvml.nvmlDeviceGetCount())]
        driver = nvml.nvmlSystemGetDriverVersion()
    except Exception:
        return None
    decoded = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    return f"{', '.join(decoded)}, driver {driver.decode() if isinstance(driver, bytes) else driver}"


def probe_for(pid: int, *, prefer_gpu: bool = True) -> Probe:
    """NVML when a GPU is present and wanted, else RSS of the process tree."""
    if prefer_gpu and (nvml := nvml_module()) is not None:
        return NvmlProbe(nvml, pid)
    return RssProbe(pid)


class PeakSampler:
    """Samples a probe on a background thread; keeps the peak, the first and the last reading.

    "Idle" in the field's tables is the steady state after the first iteration: the owner marks it
    with :meth:`mark_idle` at that moment.
    """

    def __init__(self, probe: Probe, interval_s: float = 0.25) -> None:
        self.probe = probe
        self.interval_s = interval_s
        self.readings: list[Reading] = []
        self.idle_mb: float | None = None
        self._peak: float | None = None  # kept as readings arrive: peak_mb is read after every level
        self._lock = threading.Lock()  # sample() runs on the thread and, for mark_idle, on the caller's
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="quantgate-memory", daemon=True)

    def start(self) -> PeakSampler:
        self.sample()
        self._thread.start()
        return self

    def sample(self) -> float | None:
        value = self.probe.read_mb()
        if value is not None:
            with self._lock:
                self.readings.append(Reading(value, self.probe.source, time.monotonic() - self._started))
                self._peak = value if self._peak is None else max(self._peak, value)
        return value

    def mark_idle(self) -> None:
        self.idle_mb = self.sample()

    @property
    def latest_mb(self) -> float | None:
        """The most recent reading (at most one interval old): no /proc scan on the caller's path."""
        return self.readings[-1].mb if self.readings else None

    @property
    def peak_mb(self) -> float | None:
        return self._peak

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        self.sample()
