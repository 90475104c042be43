"""Device pinning: the environment a pinned server gets, and the errors for devices that cannot be had."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pytest_quantgate.errors import PresetError, SpecError
from pytest_quantgate.gpu.pinning import (
    Visible,
    check_devices,
    physical_devices,
    pinning_env,
    visible_devices,
)
from pytest_quantgate.presets import Preset
from pytest_quantgate.presets.files import load_file

if TYPE_CHECKING:
    from pathlib import Path


def preset(preset_id: str, devices: tuple[int, ...] = (), share: bool = False, driver: str = "command") -> Preset:
    return Preset(
        id=preset_id, name=preset_id, driver=driver, source=None, command=("srv",), devices=devices,  # type: ignore[arg-type]
        share_devices=share, base_url="http://127.0.0.1:9" if driver == "external" else None,
    )  # fmt: skip


TWO = Visible(("0", "1"), "$CUDA_VISIBLE_DEVICES='0,1'")


@pytest.mark.parametrize(
    ("environ", "devices", "expected"),
    [
        # nothing narrowed by the caller: the indices are the devices
        ({}, [1], {"CUDA_VISIBLE_DEVICES": "1", "HIP_VISIBLE_DEVICES": "1", "GGML_VK_VISIBLE_DEVICES": "1",
                   "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}),
        # the caller's list, indexed (UUIDs stay UUIDs); the caller's device order is left alone
        ({"CUDA_VISIBLE_DEVICES": "2,3", "CUDA_DEVICE_ORDER": "FASTEST_FIRST"}, [1],
         {"CUDA_VISIBLE_DEVICES": "3", "HIP_VISIBLE_DEVICES": "1", "GGML_VK_VISIBLE_DEVICES": "1"}),
        ({"CUDA_VISIBLE_DEVICES": "GPU-aa, GPU-bb"}, [1, 0],
         {"CUDA_VISIBLE_DEVICES": "GPU-bb,GPU-aa", "HIP_VISIBLE_DEVICES": "1,0", "GGML_VK_VISIBLE_DEVICES": "1,0",
          "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}),
        # ROCr narrowed and HIP not: narrow ROCr (HIP indexes into what ROCr shows, so it is left unset)
        ({"ROCR_VISIBLE_DEVICES": "4,5,6"}, [2],
         {"CUDA_VISIBLE_DEVICES": "2", "ROCR_VISIBLE_DEVICES": "6", "GGML_VK_VISIBLE_DEVICES": "2",
          "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}),
        ({"ROCR_VISIBLE_DEVICES": "4,5,6", "HIP_VISIBLE_DEVICES": "1,2"}, [1],
         {"CUDA_VISIBLE_DEVICES": "1", "HIP_VISIBLE_DEVICES": "2", "GGML_VK_VISIBLE_DEVICES": "1",
          "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}),
        ({"CUDA_VISIBLE_DEVICES": "0"}, [], {}),
    ],
)  # fmt: skip
def test_the_pinning_environment(environ: dict[str, str], devices: list[int], expected: dict[str, str]) -> None:
    assert pinning_env(devices, environ) == expected


def test_physical_devices_are_what_nvml_is_asked_about() -> None:
    assert physical_devices([1], {"CUDA_VISIBLE_DEVICES": "2,3"}) == ["3"]
    assert physical_devices([0], {"CUDA_VISIBLE_DEVICES": "GPU-aa"}) == ["GPU-aa"]
    assert physical_devices([1, 0], {}) == ["1", "0"]


def test_what_is_visible() -> None:
    assert visible_devices({"CUDA_VISIBLE_DEVICES": "2,3"}, lambda: 8) == Visible(
        ("2", "3"), "$CUDA_VISIBLE_DEVICES='2,3'"
    )
    assert visible_devices({"CUDA_VISIBLE_DEVICES": ""}, lambda: 8) == Visible((), "$CUDA_VISIBLE_DEVICES=''")
    assert visible_devices({}, lambda: 2) == Visible(("0", "1"), "2 GPU(s) found by NVML/amdsmi")
    assert visible_devices({}, lambda: None) is None


def test_presets_on_their_own_devices_pass() -> None:
    check_devices([preset("a", (0,)), preset("b", (1,)), preset("c")], lambda: TWO)
    check_devices([preset("a", (0,), share=True), preset("b", (0,), share=True)], lambda: TWO)


def test_nothing_is_asked_when_no_preset_is_pinned() -> None:
    def fail() -> Visible | None:
        raise AssertionError("looked for GPUs without a pinned preset")

    check_devices([preset("a"), preset("b")], fail)


@pytest.mark.parametrize(
    ("presets", "visible", "message"),
    [
        ([preset("a", (2,))], TWO,
         "preset 'a' (None): device index 2 is not visible: 2 device(s) visible (indices 0–1; "
         "$CUDA_VISIBLE_DEVICES='0,1')"),
        ([preset("a", (0,)), preset("b", (1, 0))], TWO, "presets 'a' and 'b' are both pinned to device 0"),
        ([preset("a", (0,), share=True), preset("b", (0,))], TWO, "set 'share_devices: true' in both presets"),
        ([preset("a", (0, 0))], TWO, "devices [0, 0] names a device twice"),
        ([preset("a", (0,))], None, "preset 'a' (None): devices [0] but no GPU is visible here"),
        ([preset("a", (0,), driver="external")], TWO, "an external server was started by someone else"),
    ],
)  # fmt: skip
def test_devices_that_cannot_be_had_are_errors_naming_preset_and_value(
    presets: list[Preset], visible: Visible | None, message: str
) -> None:
    with pytest.raises(SpecError) as info:
        check_devices(presets, lambda: visible)
    assert message in str(info.value)


def test_devices_in_a_preset_file(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    for written, expected in (("[0, 2]", (0, 2)), ('"1,3"', (1, 3)), ("1", (1,))):
        path.write_text(f"id: p\ndriver: command\ncommand: [srv]\ndevices: {written}\nshare_devices: true\n")
        (loaded,) = load_file(path)
        assert (loaded.devices, loaded.share_devices) == (expected, True)
    path.write_text("id: p\ndriver: command\ncommand: [srv]\ndevices: 'GPU-aa'\n")
    with pytest.raises(PresetError, match=r"devices 'GPU-aa': 'GPU-aa' is not a device index"):
        load_file(path)
    path.write_text("id: p\ndriver: command\ncommand: [srv]\ndevices: [-1]\n")
    with pytest.raises(PresetError, match=r"devices \[-1\]: -1 is not a device index"):
        load_file(path)
