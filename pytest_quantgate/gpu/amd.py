"""AMD GPU memory through the ``amdsmi`` package (ROCm's Python bindings), per process: VRAM and GTT.

GTT is system memory the GPU maps; on an APU (Strix Halo) it is most of the usable pool, and
``rocm-smi --showmeminfo vram`` does not show it. A reading is the server's VRAM + GTT; where amdsmi lists
no process of the server (a container without the host PID namespace, a driver without process accounting),
the devices' used VRAM + GTT instead, labelled ``amdsmi-device``.

amdsmi's Python API changed shape between ROCm releases: ``amdsmi_get_gpu_process_list`` returns dicts
(ROCm 6.1 and later) or process handles to pass to ``amdsmi_get_gpu_process_info`` (earlier): both are read.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import ModuleType

MB = 1024 * 1024


def amdsmi_module() -> ModuleType | None:
    """amdsmi, initialised, if it imports and finds a GPU; else None (never raises)."""
    try:
        import amdsmi  # type: ignore[import-not-found,unused-ignore]
    except Exception:  # ImportError, or the shared library it loads is missing
        return None
    try:
        amdsmi.amdsmi_init()
        if not amdsmi.amdsmi_get_processor_handles():
            return None
    except Exception:  # AmdSmiException: no driver, no permission
        return None
    module: ModuleType = amdsmi
    return module


def amdsmi_handles(module: ModuleType | None = None) -> list[Any] | None:
    """The GPUs amdsmi sees, or None when amdsmi is not usable here."""
    amd = module if module is not None else amdsmi_module()
    if amd is None:
        return None
    try:
        return list(amd.amdsmi_get_processor_handles())
    except Exception:
        return None


def _usage(entry: Any) -> tuple[int, int, int | None]:
    """(pid, VRAM bytes, GTT bytes) of one process entry; GTT None where the entry has no breakdown."""
    pid = int(entry.get("pid", -1))
    usage = entry.get("memory_usage")
    if isinstance(usage, dict):
        return pid, int(usage.get("vram_mem") or 0), int(usage.get("gtt_mem") or 0)
    return pid, int(entry.get("mem") or 0), None


class AmdsmiProbe:
    """VRAM + GTT the server's processes hold on the given devices (all when none are named)."""

    source: str = "amdsmi"

    def __init__(self, amdsmi: ModuleType, pids: Any, *, devices: Sequence[int] | None = None) -> None:
        self._amd = amdsmi
        self._pids = pids  # () -> set[int]: the server and its children now
        handles = list(amdsmi.amdsmi_get_processor_handles())
        self._handles = [handles[i] for i in devices if i < len(handles)] if devices else handles
        self.note: str | None = None
        self.vram_mb: float | None = None  # the last reading's parts
        self.gtt_mb: float | None = None

    def _entries(self, handle: Any) -> list[Any]:
        listed = self._amd.amdsmi_get_gpu_process_list(handle)
        entries = []
        for item in listed:
            if isinstance(item, dict):
                entries.append(item)
            else:  # a process handle (amdsmi before ROCm 6.1)
                with contextlib.suppress(Exception):
                    entries.append(self._amd.amdsmi_get_gpu_process_info(handle, item))
        return entries

    def read_mb(self) -> float | None:
        pids = self._pids()
        vram = gtt = 0
        found = False
        for handle in self._handles:
            try:
                entries = self._entries(handle)
            except Exception:  # not supported here, or the device went away
                continue
            for entry in entries:
                pid, v, g = _usage(entry)
                if pid in pids:
                    found = True
                    vram += v
                    gtt += g or 0
        if found and vram + gtt > 0:
            self.source, self.note = "amdsmi", None
            self.vram_mb, self.gtt_mb = vram / MB, gtt / MB
            return (vram + gtt) / MB
        return self._device_wide()

    def _device_wide(self) -> float | None:
        self.source = "amdsmi-device"
        self.note = (
            "amdsmi listed no process of the server (a container without the host PID namespace, or no process "
            "accounting): the devices' used VRAM + GTT, other processes included"
        )
        vram = gtt = 0
        types = getattr(self._amd, "AmdSmiMemoryType", None)
        if types is None:
            return None
        for handle in self._handles:
            with contextlib.suppress(Exception):
                vram += int(self._amd.amdsmi_get_gpu_memory_usage(handle, types.VRAM))
            with contextlib.suppress(Exception):
                gtt += int(self._amd.amdsmi_get_gpu_memory_usage(handle, types.GTT))
        self.vram_mb, self.gtt_mb = vram / MB, gtt / MB
        return (vram + gtt) / MB if vram + gtt else None


def amd_description(module: ModuleType | None = None) -> str | None:
    """'AMD Radeon RX 7900 XTX, driver 6.8.5' for the GPUs amdsmi sees, or None."""
    amd = module if module is not None else amdsmi_module()
    if amd is None:
        return None
    names, driver = [], None
    try:
        for handle in amd.amdsmi_get_processor_handles():
            info = amd.amdsmi_get_gpu_asic_info(handle)
            names.append(str(info.get("market_name") or info.get("name") or "AMD GPU"))
            if driver is None:
                with contextlib.suppress(Exception):
                    driver = amd.amdsmi_get_gpu_driver_info(handle).get("driver_version")
    except Exception:
        return None
    if not names:
        return None
    return f"{', '.join(names)}, driver {driver}" if driver else ", ".join(names)


__all__ = ["AmdsmiProbe", "amd_description", "amdsmi_handles", "amdsmi_module"]
