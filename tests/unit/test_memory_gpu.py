"""GPU memory probes at their library's API boundary (no GPU here): NVML narrowed to pinned devices, amdsmi
per process (VRAM + GTT) in both shapes of its Python API, Apple's system-level figure, and the labelled
fallbacks when a library is missing or refuses."""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import psutil
import pytest

from pytest_quantgate import memory
from pytest_quantgate.gpu import amd, apple
from pytest_quantgate.gpu.amd import AmdsmiProbe
from pytest_quantgate.gpu.apple import AppleProbe, in_use_mb
from pytest_quantgate.memory import MB, NOTES, NvmlProbe, RssProbe, probe_for, read_probe_state, write_probe_state

if TYPE_CHECKING:
    from pathlib import Path

ME = psutil.Process().pid
OTHER = 999_999_999


class FakeNvml:
    """The pynvml calls NvmlProbe makes, devices addressable by index and by UUID."""

    class NVMLError(Exception):
        pass

    def __init__(self, processes: list[list[tuple[int, int | None]]], used: list[int]) -> None:
        self.processes, self.used = processes, used
        self.uuids = [f"GPU-{i:04d}" for i in range(len(used))]

    def nvmlDeviceGetCount(self) -> int:
        return len(self.used)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        if not 0 <= i < len(self.used):
            raise self.NVMLError(f"invalid index {i}")
        return i

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> int:
        if uuid not in self.uuids:
            raise self.NVMLError("not found")
        return self.uuids.index(uuid)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[SimpleNamespace]:
        return [SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in self.processes[handle]]

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(used=self.used[handle], total=24_000 * MB)


def test_nvml_reads_only_the_pinned_device() -> None:
    nvml = FakeNvml(processes=[[(ME, 1000 * MB)], [(ME, 300 * MB)], [(ME, 7 * MB)]], used=[9, 9, 9])
    assert NvmlProbe(nvml, ME).read_mb() == 1307.0  # type: ignore[arg-type]
    assert NvmlProbe(nvml, ME, devices=["1"]).read_mb() == 300.0  # type: ignore[arg-type]
    assert NvmlProbe(nvml, ME, devices=["GPU-0002", "0"]).read_mb() == 1007.0  # type: ignore[arg-type]


def test_nvml_without_per_process_figures_falls_back_to_the_device_labelled_with_why() -> None:
    # MIG and WSL report processes without memory (None); a container lists host pids that never match.
    for processes in ([[(ME, None)], [(ME, 5 * MB)]], [[(OTHER, 4000 * MB)], []]):
        probe = NvmlProbe(FakeNvml(processes, used=[6000 * MB, 2000 * MB]), ME, devices=["0"])  # type: ignore[arg-type]
        assert probe.read_mb() == 6000.0  # device 0's used memory: not device 1's, not a made-up 0
        assert probe.source == "nvml-device"
        assert probe.note == NOTES["nvml-device"] and "MIG, WSL" in probe.note


def test_a_pinned_device_nvml_cannot_find_falls_back_to_rss_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "nvml_module", lambda: FakeNvml([[]], used=[1]))
    probe = probe_for(ME, devices=["MIG-abcd"])
    assert isinstance(probe, RssProbe)
    assert probe.note is not None and "NVML cannot read device(s) MIG-abcd" in probe.note
    assert probe.read_mb() is not None


def test_pinned_without_any_gpu_library_measures_rss_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "nvml_module", lambda: None)
    monkeypatch.setattr(amd, "amdsmi_module", lambda: None)
    monkeypatch.setattr(apple, "apple_gpu_available", lambda: False)
    probe = probe_for(ME, devices=["1"])
    assert isinstance(probe, RssProbe) and probe.source == "rss"
    assert probe.note is not None and "neither pynvml nor amdsmi" in probe.note
    assert getattr(probe_for(ME), "note", None) is None  # not pinned: RSS is simply the CPU figure


# -- amdsmi ------------------------------------------------------------------------------------------------


class FakeAmdsmi:
    """The amdsmi calls AmdsmiProbe makes. *handles_api*: the process list holds handles (before ROCm 6.1)."""

    class AmdSmiMemoryType:
        VRAM, VIS_VRAM, GTT = 0, 1, 2

    def __init__(self, processes: list[list[dict[str, Any]]], usage: list[tuple[int, int]], handles_api: bool = False):
        self.processes, self.usage, self.handles_api = processes, usage, handles_api

    def amdsmi_get_processor_handles(self) -> list[int]:
        return list(range(len(self.usage)))

    def amdsmi_get_gpu_process_list(self, handle: int) -> list[Any]:
        if self.handles_api:
            return [("proc", handle, i) for i in range(len(self.processes[handle]))]
        return self.processes[handle]

    def amdsmi_get_gpu_process_info(self, handle: int, proc: tuple[str, int, int]) -> dict[str, Any]:
        return self.processes[handle][proc[2]]

    def amdsmi_get_gpu_memory_usage(self, handle: int, kind: int) -> int:
        vram, gtt = self.usage[handle]
        return vram if kind == self.AmdSmiMemoryType.VRAM else gtt


def _proc(pid: int, vram_mb: int, gtt_mb: int) -> dict[str, Any]:
    usage = {"vram_mem": vram_mb * MB, "gtt_mem": gtt_mb * MB, "cpu_mem": 0}
    return {"name": "llama-server", "pid": pid, "mem": (vram_mb + gtt_mb) * MB, "memory_usage": usage}


@pytest.mark.parametrize("handles_api", [False, True])
def test_amdsmi_reads_the_server_s_vram_and_gtt(handles_api: bool) -> None:
    fake = FakeAmdsmi(
        processes=[[_proc(ME, 512, 30_000), _proc(OTHER, 8000, 0)], [_proc(ME, 100, 0)]],
        usage=[(9000 * MB, 31_000 * MB), (100 * MB, 0)],
        handles_api=handles_api,
    )
    probe = AmdsmiProbe(fake, lambda: {ME})  # type: ignore[arg-type]
    assert probe.read_mb() == 30_612.0  # a Strix Halo's pool is mostly GTT: counted, not only VRAM
    assert (probe.source, probe.vram_mb, probe.gtt_mb) == ("amdsmi", 612.0, 30_000.0)
    pinned = AmdsmiProbe(fake, lambda: {ME}, devices=[1])  # type: ignore[arg-type]
    assert pinned.read_mb() == 100.0


def test_amdsmi_without_the_server_s_process_falls_back_to_the_device_labelled() -> None:
    fake = FakeAmdsmi(processes=[[_proc(OTHER, 8000, 0)]], usage=[(9000 * MB, 1000 * MB)])
    probe = AmdsmiProbe(fake, lambda: {ME})  # type: ignore[arg-type]
    assert probe.read_mb() == 10_000.0
    assert probe.source == "amdsmi-device"
    assert probe.note is not None and "PID namespace" in probe.note


def test_an_amd_host_describes_its_gpus() -> None:
    fake = SimpleNamespace(
        amdsmi_get_processor_handles=lambda: [0, 1],
        amdsmi_get_gpu_asic_info=lambda h: {"market_name": ["AMD Radeon RX 7900 XTX", "AMD Radeon 8060S"][h]},
        amdsmi_get_gpu_driver_info=lambda h: {"driver_version": "6.8.5"},
    )
    assert amd.amd_description(fake) == "AMD Radeon RX 7900 XTX, AMD Radeon 8060S, driver 6.8.5"  # type: ignore[arg-type]


def test_amdsmi_that_refuses_everything_gives_no_reading() -> None:
    class Refusing(FakeAmdsmi):
        def amdsmi_get_gpu_process_list(self, handle: int) -> list[Any]:
            raise RuntimeError("AMDSMI_STATUS_NOT_SUPPORTED")

        def amdsmi_get_gpu_memory_usage(self, handle: int, kind: int) -> int:
            raise RuntimeError("AMDSMI_STATUS_NO_PERM")

    probe = AmdsmiProbe(Refusing([[]], usage=[(0, 0)]), lambda: {ME})  # type: ignore[arg-type]
    assert probe.read_mb() is None  # none, not 0 MB


def test_amdsmi_missing_or_refusing_is_no_module(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "amdsmi", None)  # not installed: the import fails
    assert amd.amdsmi_module() is None and amd.amdsmi_handles() is None

    def refuse() -> None:
        raise RuntimeError("AMDSMI_STATUS_DRIVER_NOT_LOADED")

    monkeypatch.setitem(sys.modules, "amdsmi", SimpleNamespace(amdsmi_init=refuse))
    assert amd.amdsmi_module() is None
    found = SimpleNamespace(amdsmi_init=lambda: None, amdsmi_get_processor_handles=lambda: ["gpu0"])
    monkeypatch.setitem(sys.modules, "amdsmi", found)
    assert amd.amdsmi_module() is found and amd.amdsmi_handles() == ["gpu0"]


# -- Apple ------------------------------------------------------------------------------------------------

IOREG = """+-o AGXAcceleratorG14X  <class AGXAcceleratorG14X, id 0x1000003b4, registered, matched, active>
    {
      "PerformanceStatistics" = {"In use system memory (driver)"=0,"Alloc system memory"=27316862976,\
"Tiler Utilization %"=0,"In use system memory"=1451393024,"Device Utilization %"=3}
    }
"""


def test_apple_reads_the_gpu_s_system_level_allocation_labelled() -> None:
    assert in_use_mb(IOREG) == pytest.approx(1384.15, abs=0.01)
    probe = AppleProbe(run=lambda: IOREG)
    assert probe.read_mb() == pytest.approx(1384.15, abs=0.01)
    assert probe.source == "apple-system" and probe.note is not None and "system-wide" in probe.note
    assert AppleProbe(run=lambda: "no accelerator").read_mb() is None


def test_apple_is_not_tried_off_a_mac() -> None:
    import sys

    if sys.platform != "darwin":
        assert not apple.apple_gpu_available(run=lambda: IOREG)


# -- what the result learns -------------------------------------------------------------------------------


def test_a_probe_s_source_note_and_devices_reach_the_result(tmp_path: Path) -> None:
    probe = NvmlProbe(FakeNvml([[(OTHER, 5 * MB)]], used=[7 * MB]), ME, devices=["0"])  # type: ignore[arg-type]
    probe.read_mb()
    write_probe_state(tmp_path, probe, ["3"])
    notes, devices = read_probe_state(tmp_path)
    assert notes == [NOTES["nvml-device"]] and devices == ["3"]
    assert read_probe_state(tmp_path / "nothing") == ([], [])
    (tmp_path / memory.PROBE_FILE).write_text("[1, 2]")
    assert read_probe_state(tmp_path) == ([], [])
