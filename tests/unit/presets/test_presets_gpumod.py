"""gpumod preset files (pytest_quantgate.presets.gpumod), loaded as they are."""

from __future__ import annotations

from pathlib import Path

import pytest
from preset_helpers import load_one, write

from pytest_quantgate.errors import PresetError
from pytest_quantgate.presets import load_file

GPUMOD_GEMMA = r"""
id: gemma4-26b-a4b-qat-q4
name: Gemma 4 26B-A4B IT QAT UD-Q4_K_XL (multimodal)
driver: llamacpp
port: 7110
vram_mb: 20500
context_size: 131072
kv_cache_per_1k: 16
model_id: unsloth/gemma-4-26B-A4B-it-qat-GGUF
model_path: $HOME/bin/gemma-4-26B-A4B-it-qat-UD-Q4_K_XL.gguf
health_endpoint: /health
startup_timeout: 240
supports_sleep: false
sleep_mode: none
preflight_required: true
unit_vars:
  model_path: $HOME/bin/gemma-4-26B-A4B-it-qat-UD-Q4_K_XL.gguf
  context_size: 131072
  n_gpu_layers: -1
  jinja: true
  flash_attn: true
  extra_args: "--parallel 1 --threads 16 --cache-type-k q8_0 --cache-type-v q8_0 --temp 1.0 --top-p 0.95 --top-k 64 --chat-template-kwargs '{\"enable_thinking\":true}'"
"""  # noqa: E501


GPUMOD_VLLM = """
id: qwen3-0.6b-vllm
name: Qwen3 0.6B (vLLM)
driver: vllm
port: 7120
vram_mb: 8000
model_id: Qwen/Qwen3-0.6B
health_endpoint: /health
startup_timeout: 300
supports_sleep: true
sleep_mode: l1
unit_vars:
  gpu_mem_util: 0.35
  max_model_len: 1024
  max_num_seqs: 4
  dtype: bfloat16
  enforce_eager: true
"""


def test_a_gpumod_llamacpp_file_loads_as_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/alice")
    p = load_one(write(tmp_path, "gemma.yaml", GPUMOD_GEMMA))
    assert p.origin == "gpumod"
    assert p.id == "gemma4-26b-a4b-qat-q4"
    assert p.name == "Gemma 4 26B-A4B IT QAT UD-Q4_K_XL (multimodal)"
    assert p.driver == "llamacpp"
    assert p.model == Path("/home/alice/bin/gemma-4-26B-A4B-it-qat-UD-Q4_K_XL.gguf")
    assert (p.port, p.context_size, p.parallel) == (7110, 131072, 1)
    assert p.memory_ceiling_mb == 20500
    assert (p.startup_timeout_s, p.health_endpoint) == (240.0, "/health")
    assert p.extra_args == (
        "--parallel", "1", "--threads", "16", "--cache-type-k", "q8_0", "--cache-type-v", "q8_0",
        "--temp", "1.0", "--top-p", "0.95", "--top-k", "64",
        "--chat-template-kwargs", '{"enable_thinking":true}',
        "-ngl", "-1", "--jinja", "--flash-attn", "on",
    )  # fmt: skip


def test_gpumod_parallel_comes_from_np_and_model_path_from_the_top_level(tmp_path: Path) -> None:
    text = "id: g\ndriver: llamacpp\nport: 1\nmodel_path: rel.gguf\nunit_vars:\n  extra_args: -np 3\n"
    p = load_one(write(tmp_path, "g.yaml", text))
    assert p.parallel == 3
    assert p.model == tmp_path / "rel.gguf"
    assert p.extra_args == ("-np", "3")


def test_gpumod_unit_vars_we_do_not_use_are_left_to_gpumod(tmp_path: Path) -> None:
    text = "id: g\ndriver: llamacpp\nport: 1\nunit_vars:\n  model_path: /m.gguf\n  cpu_affinity: 0-7\n"
    assert load_one(write(tmp_path, "g.yaml", text)).model == Path("/m.gguf")


def test_a_gpumod_file_without_a_model_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PresetError, match="gpumod preset 'g' has no model_path"):
        load_file(write(tmp_path, "g.yaml", "id: g\ndriver: llamacpp\nport: 1\nvram_mb: 10\n"))


def test_a_typo_at_the_top_of_a_gpumod_file_is_still_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "g.yaml", GPUMOD_GEMMA.replace("startup_timeout:", "startup_timout:"))
    with pytest.raises(PresetError, match=r"line 11: unknown key 'startup_timout'"):
        load_file(path)


def test_a_gpumod_vllm_file_becomes_a_command_preset(tmp_path: Path) -> None:
    p = load_one(write(tmp_path, "vllm.yaml", GPUMOD_VLLM))
    assert (p.driver, p.origin, p.port, p.memory_ceiling_mb) == ("command", "gpumod", 7120, 8000)
    assert p.command == (
        "vllm", "serve", "Qwen/Qwen3-0.6B", "--host", "{host}", "--port", "{port}",
        "--gpu-memory-utilization", "0.35", "--max-model-len", "1024", "--max-num-seqs", "4",
        "--dtype", "bfloat16", "--enforce-eager",
    )  # fmt: skip
    assert p.startup_timeout_s == 300


def test_a_gpumod_vllm_file_without_model_id_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PresetError, match="vllm preset 'v' has no model_id"):
        load_file(write(tmp_path, "v.yaml", "id: v\ndriver: vllm\nport: 1\nunit_vars: {dtype: auto}\n"))


def test_an_unsupported_gpumod_driver_is_refused_with_a_way_out(tmp_path: Path) -> None:
    text = "id: embedder\ndriver: fastapi\nport: 7200\nvram_mb: 900\nunit_vars: {app: embed:app}\n"
    path = write(tmp_path, "f.yaml", text)
    with pytest.raises(PresetError) as info:
        load_file(path)
    message = str(info.value)
    assert str(path) in message
    assert "gpumod driver 'fastapi'" in message
    assert "supported: llamacpp, vllm" in message
    assert "--base-url" in message
