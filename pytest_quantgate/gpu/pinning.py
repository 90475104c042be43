"""Which GPUs a preset's server may use: the pinning environment, checked before any server starts.

A preset names devices by index into what the caller made visible (``devices: [1]``): with
``CUDA_VISIBLE_DEVICES=2,3`` exported, index 1 is the caller's ``3``. The server is started with each
vendor's visibility variable narrowed to those devices:

* ``CUDA_VISIBLE_DEVICES`` (NVIDIA), with ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` unless the caller chose an
  order, so that CUDA numbers devices as NVML (which reads the memory) does;
* ``HIP_VISIBLE_DEVICES`` (AMD; ``ROCR_VISIBLE_DEVICES`` instead when the caller narrowed that one, since
  HIP indexes into what ROCr shows);
* ``GGML_VK_VISIBLE_DEVICES`` (llama.cpp's Vulkan backend).

Two presets of one run never get the same device unless both say ``share_devices: true``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_quantgate.errors import SpecError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from pytest_quantgate.presets import Preset

CUDA = "CUDA_VISIBLE_DEVICES"
HIP = "HIP_VISIBLE_DEVICES"
ROCR = "ROCR_VISIBLE_DEVICES"
VULKAN = "GGML_VK_VISIBLE_DEVICES"
CUDA_ORDER = "CUDA_DEVICE_ORDER"
VISIBILITY = (CUDA, HIP, ROCR, VULKAN)


@dataclass(frozen=True, slots=True)
class Visible:
    """The devices the caller made visible: their names as the caller wrote them (indices or UUIDs), and
    where that list came from (for messages)."""

    devices: tuple[str, ...]
    source: str


def _entries(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def visible_devices(
    environ: Mapping[str, str] | None = None, count_gpus: Callable[[], int | None] | None = None
) -> Visible | None:
    """What a device index in a preset indexes into; None when nothing says how many GPUs there are.

    The caller's visibility variables first (the narrowest: HIP's, which indexes into ROCr's), then the
    devices NVML or amdsmi count (*count_gpus*, by default :func:`count_gpus`).
    """
    env = os.environ if environ is None else environ
    for name in (CUDA, HIP, ROCR, VULKAN):
        if name in env:
            return Visible(_entries(env[name]), f"${name}={env[name]!r}")
    count = (count_gpus or globals()["count_gpus"])()
    if count is None:
        return None
    return Visible(tuple(str(i) for i in range(count)), f"{count} GPU(s) found by NVML/amdsmi")


def count_gpus() -> int | None:
    """How many GPUs NVML or amdsmi see here; None when neither library is usable."""
    from pytest_quantgate.gpu.amd import amdsmi_handles
    from pytest_quantgate.memory import nvml_module

    nvml = nvml_module()
    if nvml is not None:
        try:
            return int(nvml.nvmlDeviceGetCount())
        except Exception:  # the driver went away between init and count: no usable GPU
            return None
    handles = amdsmi_handles()
    return len(handles) if handles is not None else None


def pinning_env(devices: Sequence[int], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment variables that narrow a server to *devices* (indices into what *environ* shows)."""
    if not devices:
        return {}
    env = os.environ if environ is None else environ

    def narrowed(name: str) -> str:
        if name in env:  # index into the caller's own list, which may hold UUIDs
            entries = _entries(env[name])
            return ",".join(entries[i] for i in devices if i < len(entries))
        return ",".join(str(i) for i in devices)

    pinned = {CUDA: narrowed(CUDA), VULKAN: narrowed(VULKAN)}
    if HIP in env or ROCR not in env:
        pinned[HIP] = narrowed(HIP)
    else:
        pinned[ROCR] = narrowed(ROCR)
    if CUDA_ORDER not in env:
        pinned[CUDA_ORDER] = "PCI_BUS_ID"
    return pinned


def physical_devices(devices: Sequence[int], environ: Mapping[str, str] | None = None) -> list[str]:
    """The devices as the machine numbers them (an index, or a UUID the caller wrote): what NVML is asked
    about. An index into an unset variable is the device itself."""
    env = os.environ if environ is None else environ
    if CUDA in env:
        entries = _entries(env[CUDA])
        return [entries[i] for i in devices if i < len(entries)]
    return [str(i) for i in devices]


def check_devices(presets: Iterable[Preset], find: Callable[[], Visible | None] | None = None) -> None:
    """Raise SpecError when a preset names a device that is not visible, or when two presets would share a
    device without both asking for it (``share_devices: true``). The message names presets and values.

    *find* says what is visible (default :func:`visible_devices`); it is asked only when a preset is pinned.
    """
    pinned = [p for p in presets if p.devices]
    if not pinned:
        return
    shown = (find or visible_devices)()
    for preset in pinned:
        where = f"preset {preset.id!r} ({preset.source})"
        if preset.driver == "external":
            raise SpecError(
                f"{where}: devices {list(preset.devices)}, but an external server was started by someone else "
                "and cannot be pinned; drop 'devices' or start it from the preset"
            )
        if shown is None:
            raise SpecError(
                f"{where}: devices {list(preset.devices)} but no GPU is visible here: no {CUDA}, {HIP}, {ROCR} "
                f"or {VULKAN} is set, and neither NVML (pynvml) nor amdsmi found a device. Drop 'devices' on a "
                f"machine without GPUs, or export {CUDA}/{HIP} to say which devices exist"
            )
        bad = [i for i in preset.devices if not 0 <= i < len(shown.devices)]
        if bad:
            raise SpecError(
                f"{where}: device index {bad[0]} is not visible: {len(shown.devices)} device(s) visible "
                f"(indices 0–{len(shown.devices) - 1}; {shown.source}). Indices count the devices the caller "
                "made visible, from 0"
            )
        if len(set(preset.devices)) != len(preset.devices):
            raise SpecError(f"{where}: devices {list(preset.devices)} names a device twice")
    owners: dict[int, Preset] = {}
    for preset in pinned:
        for index in preset.devices:
            other = owners.get(index)
            if other is not None and not (other.share_devices and preset.share_devices):
                raise SpecError(
                    f"presets {other.id!r} and {preset.id!r} are both pinned to device {index}: two servers on "
                    "one GPU share its memory and its compute, so neither's figures are its own. Give them "
                    "different 'devices', or set 'share_devices: true' in both presets to allow it"
                )
            owners.setdefault(index, preset)


__all__ = [
    "CUDA",
    "HIP",
    "ROCR",
    "VISIBILITY",
    "VULKAN",
    "Visible",
    "check_devices",
    "count_gpus",
    "physical_devices",
    "pinning_env",
    "visible_devices",
]
