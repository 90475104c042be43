"""Pinned presets on real servers: a CPU llama-server started with the pinning environment, two presets
on two devices (a loopback peer that shows its environment), and the errors before any server starts."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from pytest_quantgate.config import RawOptions, RunConfig, run_config
from pytest_quantgate.errors import SpecError
from pytest_quantgate.memory import RssProbe, read_probe_state
from pytest_quantgate.presets import Preset, resolve
from pytest_quantgate.servers import Servers

pytestmark = pytest.mark.integration

ENV_PEER = Path(__file__).parents[1] / "peers" / "env_server.py"
NO_GPU_LIBRARY = "neither pynvml nor amdsmi"


@pytest.fixture
def caller_sees_two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """The caller made two devices visible (as a CI runner's label would): 5 and 7."""
    for name in ("HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "GGML_VK_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")


def _servers(tmp_path: Path, *presets: Preset) -> Servers:
    return Servers(RunConfig(presets=presets, run_id="pinned", out_dir=tmp_path / "qg"))


def test_a_pinned_llama_server_starts_with_its_device_and_answers(
    llama_server_bin: Path, tmp_path: Path, caller_sees_two_gpus: None
) -> None:
    preset = dataclasses.replace(resolve("tiny-f16"), devices=(1,))
    servers = _servers(tmp_path, preset)
    try:
        lease = servers.lease(preset)
        assert lease.info.pid is not None
        environ = psutil.Process(lease.info.pid).environ()
        assert environ["CUDA_VISIBLE_DEVICES"] == "7"  # index 1 of what the caller made visible
        assert environ["HIP_VISIBLE_DEVICES"] == "1"
        assert environ["GGML_VK_VISIBLE_DEVICES"] == "1"
        assert environ["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"  # CUDA numbers devices as NVML does
        assert servers.client(preset).complete("copy abc=").timings is not None  # a CPU build runs regardless
        _latest, peak, source = servers.memory(preset.id)
        assert source == "rss" and peak is not None and peak > 0
        probe = servers._samplers[preset.id].probe
        assert isinstance(probe, RssProbe) and probe.note is not None and NO_GPU_LIBRARY in probe.note
    finally:
        servers.release_all()
    notes, devices = read_probe_state(servers.config.preset_dir(preset.id))
    assert devices == ["7"]
    assert any(NO_GPU_LIBRARY in note for note in notes)  # RSS on a pinned preset: labelled, not silent


def test_two_presets_on_two_devices_each_see_their_own(tmp_path: Path, caller_sees_two_gpus: None) -> None:
    command = (sys.executable, str(ENV_PEER), "--host", "{host}", "--port", "{port}")

    def peer(preset_id: str, devices: tuple[int, ...]) -> Preset:
        return Preset(id=preset_id, name=preset_id, driver="command", source=None, command=command, devices=devices)

    first, second = peer("first", (0,)), peer("second", (1,))
    servers = _servers(tmp_path, first, second)
    try:
        seen = {}
        for preset in (first, second):
            lease = servers.lease(preset)
            seen[preset.id] = httpx.get(f"{lease.base_url}/env", timeout=30).json()
    finally:
        servers.release_all()
    assert seen["first"]["CUDA_VISIBLE_DEVICES"] == "5" and seen["second"]["CUDA_VISIBLE_DEVICES"] == "7"
    assert seen["first"]["HIP_VISIBLE_DEVICES"] == "0" and seen["second"]["HIP_VISIBLE_DEVICES"] == "1"


def _preset_file(directory: Path, preset_id: str, devices: str, share: bool = False) -> None:
    command = f"[{sys.executable!r}, {str(ENV_PEER)!r}, --port, '{{port}}']"
    (directory / f"{preset_id}.yaml").write_text(
        f"id: {preset_id}\ndriver: command\ncommand: {command}\n"
        f"devices: {devices}\nshare_devices: {str(share).lower()}\n"
    )


@pytest.mark.parametrize(
    ("devices", "share", "message"),
    [
        (("0", "0"), False, "presets 'a' and 'b' are both pinned to device 0"),
        (("0", "2"), False, "b.yaml): device index 2 is not visible: 2 device(s) visible"),
    ],
)
def test_a_run_refuses_devices_it_cannot_have_before_starting_anything(
    tmp_path: Path, caller_sees_two_gpus: None, devices: tuple[str, str], share: bool, message: str
) -> None:
    for preset_id, written in zip(("a", "b"), devices, strict=True):
        _preset_file(tmp_path, preset_id, written, share)
    raw = RawOptions(rootdir=tmp_path, presets=("a", "b"), preset_dirs=(str(tmp_path),))
    with pytest.raises(SpecError) as info:
        run_config(raw)
    assert message in str(info.value)
    assert not (tmp_path / ".quantgate").exists()


def test_a_run_that_asks_to_share_a_device_may(tmp_path: Path, caller_sees_two_gpus: None) -> None:
    for preset_id in ("a", "b"):
        _preset_file(tmp_path, preset_id, "[1]", share=True)
    config = run_config(RawOptions(rootdir=tmp_path, presets=("a", "b"), preset_dirs=(str(tmp_path),)))
    assert [p.devices for p in config.presets] == [(1,), (1,)]


def test_two_pinned_presets_side_by_side_under_xdist(llama_server_bin: Path, tmp_path: Path) -> None:
    """`-n 2` with two presets on two devices: each result records its own device and says, on this machine
    without a GPU library, that GPU memory was not measured; the llama.cpp figure is there all the same."""
    import json
    import os
    import subprocess

    models = Path(__file__).parents[2] / "pytest_quantgate" / "models"
    for preset_id, quant, device in (("pin-a", "f16", 0), ("pin-b", "q8_0", 1)):
        (tmp_path / f"{preset_id}.yaml").write_text(
            f"id: {preset_id}\nmodel: {models / f'tiny-{quant}.gguf'}\ncontext_size: 128\n"
            f"extra_args: [--threads, '1', --no-warmup, --cache-ram, '0']\ndevices: [{device}]\n"
            "sampler: {temperature: 0.0, top_k: 1, seed: 0}\nrequest: {max_tokens: 8, timeout_s: 60}\n"
        )
    env = {**os.environ, "QUANTGATE_LLAMA_SERVER": str(llama_server_bin), "CUDA_VISIBLE_DEVICES": "5,7"}
    for name in ("HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "GGML_VK_VISIBLE_DEVICES"):
        env.pop(name, None)
    argv = [sys.executable, "-m", "pytest", str(Path(__file__).parents[2] / "example_suites" / "tiny"),
            "-p", "no:cacheprovider", "--preset-dir", str(tmp_path), "--preset", "pin-a", "--preset", "pin-b",
            "-n", "2", "--iterations", "1", "--quantgate-dir", str(tmp_path / "qg"), "-q"]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-2000:]
    found = {}
    for path in (tmp_path / "qg" / "runs").glob("*/*/result.json"):
        server = json.loads(path.read_text())["server"]
        found[path.parent.name] = server
    assert set(found) == {"pin-a", "pin-b"}, proc.stdout[-3000:]
    assert (found["pin-a"]["devices"], found["pin-b"]["devices"]) == (["5"], ["7"])
    for server in found.values():
        assert server["llama_memory_scope"] == "CPU" and server["llama_memory_mb"] > 0
        assert any(NO_GPU_LIBRARY in note for note in server["memory_notes"])
