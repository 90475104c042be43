"""llama-swap configs (pytest_quantgate.presets.llamaswap): one preset per model, ``FILE::ID`` for one."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from preset_helpers import write

from pytest_quantgate.errors import PresetError
from pytest_quantgate.presets import load_file, resolve

if TYPE_CHECKING:
    from pathlib import Path

LLAMA_SWAP = r"""
healthCheckTimeout: 500
logLevel: info
macros:
  server: /opt/llama/bin/llama-server
models:
  qwen-coder:
    name: Qwen Coder
    cmd: |
      /opt/llama/bin/llama-server
        --port ${PORT}
        -m /models/qwen-coder.gguf   # the 4-bit one
        -ngl 99 -np 2
        --chat-template-kwargs '{"enable_thinking": false}'
    env:
      - "CUDA_VISIBLE_DEVICES=0"
    checkEndpoint: /v1/models
    ttl: 300
  gemma:
    cmd: |
      /opt/llama/bin/llama-server \
        --port ${PORT} \
        -m /models/gemma.gguf
  fixed:
    proxy: http://127.0.0.1:8999
    cmd: /opt/llama/bin/llama-server --host 127.0.0.1 --port 8999 -m /models/fixed.gguf
"""


def test_a_llama_swap_config_is_a_set_of_presets(tmp_path: Path) -> None:
    presets = {p.id: p for p in load_file(write(tmp_path, "config.yaml", LLAMA_SWAP))}
    assert list(presets) == ["qwen-coder", "gemma", "fixed"]
    coder = presets["qwen-coder"]
    assert (coder.driver, coder.origin, coder.name) == ("command", "llama-swap", "Qwen Coder")
    assert coder.command == (
        "/opt/llama/bin/llama-server", "--port", "{port}", "-m", "/models/qwen-coder.gguf", "-ngl", "99",
        "-np", "2", "--chat-template-kwargs", '{"enable_thinking": false}',
    )  # fmt: skip
    assert coder.parallel == 2
    assert coder.env == (("CUDA_VISIBLE_DEVICES", "0"),)
    assert coder.health_endpoint == "/v1/models"
    gemma = presets["gemma"]
    assert gemma.command == ("/opt/llama/bin/llama-server", "--port", "{port}", "-m", "/models/gemma.gguf")
    assert gemma.health_endpoint == "/health"
    assert gemma.name == "gemma"


def test_a_llama_swap_model_with_a_fixed_proxy_port_is_reached_there(tmp_path: Path) -> None:
    (_, _, fixed) = load_file(write(tmp_path, "config.yaml", LLAMA_SWAP))
    assert (fixed.host, fixed.port) == ("127.0.0.1", 8999)
    assert "--port" in fixed.command and "8999" in fixed.command


def test_a_llama_swap_env_entry_must_be_key_value(tmp_path: Path) -> None:
    text = "models:\n  a:\n    cmd: srv --port ${PORT}\n    env: [JUSTANAME]\n"
    with pytest.raises(PresetError, match=r"models\.a\.env entry 'JUSTANAME' is not KEY=VALUE"):
        load_file(write(tmp_path, "config.yaml", text))


def test_a_llama_swap_model_without_cmd_names_the_model_and_line(tmp_path: Path) -> None:
    text = "models:\n  a:\n    cmd: srv\n  b:\n    proxy: http://127.0.0.1:1\n"
    with pytest.raises(PresetError, match=r"line 4: models\.b\.cmd: Field required"):
        load_file(write(tmp_path, "config.yaml", text))


def test_resolve_picks_one_model_of_a_llama_swap_config(tmp_path: Path) -> None:
    path = write(tmp_path, "config.yaml", LLAMA_SWAP)
    assert resolve(f"{path}::gemma").id == "gemma"
    with pytest.raises(PresetError, match=r"no preset named 'nope'. Known presets: fixed, gemma, qwen-coder"):
        resolve(f"{path}::nope")


def test_resolve_without_a_model_name_on_a_multi_preset_file_lists_the_ids(tmp_path: Path) -> None:
    path = write(tmp_path, "config.yaml", LLAMA_SWAP)
    with pytest.raises(PresetError) as info:
        resolve(str(path))
    message = str(info.value)
    assert "defines several presets (qwen-coder, gemma, fixed)" in message
    assert f"{path}::ID" in message


def test_resolve_a_single_preset_file_by_path(tmp_path: Path) -> None:
    path = write(tmp_path, "one.yaml", "id: one\nmodel: /m.gguf\n")
    assert resolve(str(path)).id == "one"
    assert resolve(f"{path}::one").id == "one"
