"""Tests of pytest_quantgate.memory: RSS of a process tree, the NVML probe (with a fake NVML), the sampler."""

from __future__ import annotations

import subprocess
import sys
import time
from types import SimpleNamespace

import psutil
import pytest

from pytest_quantgate import memory
from pytest_quantgate.memory import MB, NvmlProbe, PeakSampler, RssProbe, probe_for


@pytest.fixture
def child():
    """A real child process that holds ~64 MB of resident memory."""
    code = "import sys, time; b = bytearray(64 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); " \
           "print('ready', flush=True); time.sleep(30)"  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    yield proc
    proc.kill()
    proc.wait()


# -- RSS --------------------------------------------------------------------------------------------------


def test_rss_of_this_process_is_plausible() -> None:
    mb = RssProbe(psutil.Process().pid).read_mb()
    assert mb is not None
    assert 10 < mb < 16_000
    assert mb == pytest.approx(psutil.Process().memory_info().rss / MB, rel=0.5)


def test_rss_counts_the_children_of_the_process(child: subprocess.Popen[str]) -> None:
    alone = RssProbe(child.pid).read_mb()
    assert alone is not None and alone > 64
    # this test process plus its child: at least the child's 64 MB more than this process alone
    me = psutil.Process().memory_info().rss / MB
    family = RssProbe(psutil.Process().pid).read_mb()
    assert family is not None and family >= me + 60


def test_rss_of_a_dead_process_is_none() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert RssProbe(proc.pid).read_mb() is None


def test_probe_for_falls_back_to_rss_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "nvml_module", lambda: None)
    probe = probe_for(123)
    assert isinstance(probe, RssProbe) and probe.source == "rss"
    assert isinstance(probe_for(123, prefer_gpu=False), RssProbe)


def test_probe_for_on_this_machine() -> None:
    if memory.nvml_module() is not None:
        assert isinstance(probe_for(psutil.Process().pid), NvmlProbe)
        assert memory.gpu_description() is not None
    else:
        assert isinstance(probe_for(psutil.Process().pid), RssProbe)
        assert memory.gpu_description() is None


# -- NVML, faked ------------------------------------------------------------------------------------------


class FakeNvml:
    """Just the pynvml calls NvmlProbe makes: devices, their compute processes, their used memory."""

    class NVMLError(Exception):
        pass

    def __init__(self, processes: list[list[tuple[int, int | None]] | Exception], used: list[int]) -> None:
        self.processes = processes
        self.used = used

    def nvmlDeviceGetCount(self) -> int:
        return len(self.used)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[SimpleNamespace]:
        found = self.processes[handle]
        if isinstance(found, Exception):
            raise found
        return [SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in found]

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(used=self.used[handle], total=24_000 * MB)


def test_nvml_sums_the_server_and_its_children_over_every_device(child: subprocess.Popen[str]) -> None:
    me = psutil.Process().pid
    nvml = FakeNvml(
        processes=[
            [(me, 1000 * MB), (child.pid, 500 * MB), (999_999_999, 8000 * MB)],  # the last is someone else's
            [(me, 250 * MB), (child.pid, None)],  # None: the driver cannot say for this process
        ],
        used=[12_000 * MB, 3_000 * MB],
    )
    probe = NvmlProbe(nvml, me)  # type: ignore[arg-type]
    assert probe.source == "nvml-process"
    assert probe.read_mb() == 1750.0


def test_nvml_falls_back_to_device_memory_when_no_process_is_reported() -> None:
    nvml = FakeNvml(processes=[[], FakeNvml.NVMLError("not supported")], used=[2_000 * MB, 500 * MB])
    assert NvmlProbe(nvml, psutil.Process().pid).read_mb() == 2500.0  # type: ignore[arg-type]


def test_nvml_falls_back_to_device_use_when_no_listed_pid_is_the_servers() -> None:
    # Inside a container NVML lists host pids, which never match ours: the device-wide figure is the honest
    # upper bound, and the reading says where it came from instead of claiming 0 MB.
    nvml = FakeNvml(processes=[[(999_999_999, 8000 * MB)]], used=[8_000 * MB])
    probe = NvmlProbe(nvml, psutil.Process().pid)  # type: ignore[arg-type]
    assert probe.read_mb() == 8000.0
    assert probe.source == "nvml-device"


def test_nvml_with_nothing_to_report_is_none() -> None:
    nvml = FakeNvml(processes=[FakeNvml.NVMLError("gone")], used=[0])
    assert NvmlProbe(nvml, psutil.Process().pid).read_mb() is None  # type: ignore[arg-type]


def test_nvml_of_a_dead_server_still_reads_by_its_pid() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    nvml = FakeNvml(processes=[[(proc.pid, 300 * MB)]], used=[1_000 * MB])
    assert NvmlProbe(nvml, proc.pid).read_mb() == 300.0  # type: ignore[arg-type]


# -- the sampler ------------------------------------------------------------------------------------------


class ScriptedProbe:
    source = "rss"

    def __init__(self, values: list[float | None], then: float | None = 5.0) -> None:
        self.values = list(values)
        self.then = then  # the reading once the script has run out
        self.calls = 0

    def read_mb(self) -> float | None:
        self.calls += 1
        return self.values.pop(0) if self.values else self.then


def test_the_sampler_keeps_the_peak_and_skips_missing_readings() -> None:
    sampler = PeakSampler(ScriptedProbe([100.0, None, 900.0, 300.0]))  # type: ignore[arg-type]
    assert sampler.peak_mb is None
    for _ in range(4):
        sampler.sample()
    assert sampler.peak_mb == 900.0
    assert [r.mb for r in sampler.readings] == [100.0, 900.0, 300.0]
    assert all(r.source == "rss" for r in sampler.readings)
    assert [r.at for r in sampler.readings] == sorted(r.at for r in sampler.readings)
    sampler.mark_idle()
    assert sampler.idle_mb == 5.0


def test_the_sampler_thread_samples_until_stopped() -> None:
    probe = ScriptedProbe([10.0, 20.0, 700.0, 30.0])
    sampler = PeakSampler(probe, interval_s=0.01).start()  # type: ignore[arg-type]
    deadline = time.monotonic() + 5
    while probe.calls < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    sampler.stop()
    calls = probe.calls
    assert calls >= 6
    assert sampler.peak_mb == 700.0
    time.sleep(0.05)
    assert probe.calls == calls  # stopped means stopped
    assert not sampler._thread.is_alive()


def test_the_sampler_on_a_real_process_sees_it_grow(child: subprocess.Popen[str]) -> None:
    sampler = PeakSampler(RssProbe(child.pid), interval_s=0.02).start()
    time.sleep(0.1)
    sampler.stop()
    assert sampler.peak_mb is not None and sampler.peak_mb > 64
    child.kill()
    child.wait()
    assert sampler.sample() is None  # gone: no reading, never a made-up one


def test_rss_finds_children_again_every_few_readings(child: subprocess.Popen[str]) -> None:
    """The process tree is looked up every `rescan` readings; the known processes are read in between."""
    probe = RssProbe(psutil.Process().pid, rescan=3)
    probe.read_mb()
    family = {p.pid for p in probe._procs}
    assert child.pid in family
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        probe.read_mb()
        probe.read_mb()
        assert grandchild.pid not in {p.pid for p in probe._procs}  # not looked up yet
        probe.read_mb()
        assert grandchild.pid in {p.pid for p in probe._procs}
    finally:
        grandchild.kill()
        grandchild.wait()
