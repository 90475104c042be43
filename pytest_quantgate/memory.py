"""Measured memory of a server: GPU memory through NVML or amdsmi where a GPU exists, Apple's system-level
GPU allocation on a Mac, resident memory (RSS) otherwise.

Readings are real or absent — never estimated. A sampler thread records the peak over a run. Each reading
says where it came from (:data:`SOURCES`); a fallback says why (:data:`NOTES`). What llama.cpp itself says
it allocated is another figure, read from the server's log: :mod:`pytest_quantgate.memory_report`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import psutil

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path
    from types import ModuleType

MB = 1024 * 1024
SOURCES: tuple[str, ...] = ("nvml-process", "nvml-device", "amdsmi", "amdsmi-device", "apple-system", "rss")
# Why a measured figure is what it is, for the result's notes and the report.
NOTES: dict[str, str] = {
    "nvml-device": "NVML listed no process of the server (MIG, WSL, or a container without the host PID "
    "namespace): the device-wide used memory, other processes included",
    "amdsmi-device": "amdsmi listed no process of the server (a container without the host PID namespace, "
    "or no process accounting): the devices' used VRAM + GTT, other processes included",
    "apple-system": "Apple GPU memory is system-wide (ioreg 'In use system memory'): every process's GPU "
    "allocations, not the server's alone",
}


@dataclass(frozen=True, slots=True)
class Reading:
    """One measurement of a server's memory."""

    mb: float
    source: str  # one of SOURCES
    at: float  # seconds since the sampler started


class Probe(Protocol):
    source: str

    def read_mb(self) -> float | None: ...


class RssProbe:
    """Resident memory of a process and all its children (a server may spawn helpers).

    Finding the children means reading every process's ``/proc`` entry (~0.8 ms with 64 processes, several
    ms on a desktop), which on two cores measurably slowed the run beside it (benchmark B1). A server's
    process tree changes at start-up if ever, so it is looked up again every ``rescan`` readings (2 s at the
    sampler's pace) and only the known processes' RSS is read in between.
    """

    source: str = "rss"

    def __init__(self, pid: int, *, rescan: int = 8) -> None:
        self._pid = pid
        self._rescan = rescan
        self._reads = 0
        self._procs: list[psutil.Process] = []
        self.note: str | None = None

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
    """GPU memory the server's processes hold on the given devices (every device NVML sees when none are
    named), labelled ``nvml-process``.

    Falls back to the devices' used memory when the driver reports no process of the server (MIG, WSL, a
    container's PID namespace), labelled ``nvml-device``: the honest upper bound, never a made-up 0 MB.
    """

    source: str = "nvml-process"

    def __init__(self, nvml: ModuleType, pid: int, *, devices: Sequence[str] | None = None) -> None:
        self.source = "nvml-process"
        self.note: str | None = None
        self._nvml = nvml
        self._pid = pid
        if devices:
            self._handles = [self._handle(name) for name in devices]
        else:
            self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]

    def _handle(self, name: str) -> object:
        """A device as the machine numbers it: an index, or a UUID as CUDA_VISIBLE_DEVICES may hold."""
        if name.isdigit():
            return self._nvml.nvmlDeviceGetHandleByIndex(int(name))
        return self._nvml.nvmlDeviceGetHandleByUUID(name)

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
            self.source, self.note = "nvml-process", None
            return per_process / MB
        self.source, self.note = "nvml-device", NOTES["nvml-device"]
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
    """'NVIDIA GeForce RTX 4090, driver 550.54' (or an AMD GPU through amdsmi) or None where no GPU is visible."""
    nvml = nvml_module()
    if nvml is None:
        from pytest_quantgate.gpu.amd import amd_description

        return amd_description()
    try:
        names = [nvml.nvmlDeviceGetName(nvml.nvmlDeviceGetHandleByIndex(i)) for i in range(nvml.nvmlDeviceGetCount())]
        driver = nvml.nvmlSystemGetDriverVersion()
    except Exception:
        return None
    decoded = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    return f"{', '.join(decoded)}, driver {driver.decode() if isinstance(driver, bytes) else driver}"


def probe_for(pid: int, *, prefer_gpu: bool = True, devices: Sequence[str] | None = None) -> Probe:
    """The best measurement here: NVML, else amdsmi, else Apple's system-level figure, else RSS.

    *devices* (the pinned devices as the machine numbers them) narrows a GPU probe to them. A probe that
    fell back says why in its ``note``; RSS on a pinned preset says that no GPU library was usable.
    """
    if prefer_gpu:
        if (nvml := nvml_module()) is not None:
            try:
                return NvmlProbe(nvml, pid, devices=devices)
            except nvml.NVMLError as exc:  # a pinned device NVML cannot find (a MIG UUID, a stale index)
                return _rss(pid, f"NVML cannot read device(s) {', '.join(devices or ())}: {exc}; measured RSS only")
        from pytest_quantgate.gpu.amd import AmdsmiProbe, amdsmi_module

        if (amd := amdsmi_module()) is not None:
            indices = [int(d) for d in devices or () if d.isdigit()] or None
            return AmdsmiProbe(amd, _tree(pid), devices=indices)
        from pytest_quantgate.gpu.apple import AppleProbe, apple_gpu_available

        if apple_gpu_available():
            return AppleProbe()
        if devices:
            return _rss(
                pid,
                f"the preset is pinned to GPU device(s) {', '.join(devices)} but neither pynvml nor amdsmi is "
                "usable here (not installed, or no driver): GPU memory is not measured, only RSS",
            )
    return RssProbe(pid)


def _rss(pid: int, note: str) -> RssProbe:
    probe = RssProbe(pid)
    probe.note = note
    return probe


def _tree(pid: int) -> Callable[[], set[int]]:
    def pids() -> set[int]:
        try:
            return {pid, *(p.pid for p in psutil.Process(pid).children(recursive=True))}
        except psutil.Error:
            return {pid}

    return pids


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


PROBE_FILE = "memory-probe.json"


def write_probe_state(state_dir: Path, probe: Probe, devices: Sequence[str] = ()) -> None:
    """Leave the probe's source, note and devices beside the server's state, for the result (the process
    that writes it may not be the one that measured)."""
    import json

    data = {"source": probe.source, "note": getattr(probe, "note", None), "devices": list(devices)}
    with contextlib.suppress(OSError):
        state_dir.mkdir(parents=True, exist_ok=True)
        (state_dir / PROBE_FILE).write_text(json.dumps(data), encoding="utf-8")


def read_probe_state(state_dir: Path) -> tuple[list[str], list[str]]:
    """(notes, devices) a probe left in *state_dir*; empty when none did (an attached server)."""
    import json

    try:
        data = json.loads((state_dir / PROBE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return [], []
    if not isinstance(data, dict):
        return [], []
    notes = [str(data["note"])] if data.get("note") else []
    source = data.get("source")
    if not notes and isinstance(source, str) and source in NOTES:
        notes = [NOTES[source]]
    devices = [str(d) for d in data.get("devices") or () if isinstance(d, (str, int))]
    return notes, devices
