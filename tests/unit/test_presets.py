"""Tests of pytest_quantgate.presets: our format, gpumod files, llama-swap configs and the search path."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_quantgate.errors import PresetError
from pytest_quantgate.presets import (
    PresetModel,
    PresetWarning,
    Sampler,
    builtin_dir,
    catalogue,
    expand,
    load_file,
    resolve,
    search_path,
)


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def load_one(path: Path):
    (preset,) = load_file(path)
    return preset


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUANTGATE_PRESET_PATH", raising=False)


# -- our own format ---------------------------------------------------------------------------------------


def test_every_key_of_our_format_reaches_the_preset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "sk-test")
    path = write(
        tmp_path,
        "full.yaml",
        """
        id: qwen3-4b-q8
        name: Qwen3 4B Q8_0
        description: the reference quant
        driver: llamacpp
        binary: /opt/llama/bin/llama-server
        model: models/qwen3-4b-q8_0.gguf
        mmproj: /models/mmproj.gguf
        host: 127.0.0.2
        port: 8081
        context_size: 8192
        parallel: 2
        extra_args: ["--threads", "4", "--no-warmup"]
        health_endpoint: /healthz
        env: {CUDA_VISIBLE_DEVICES: "1", B: two}
        startup_timeout: 45.5
        quiesce: 2
        memory_ceiling_mb: 6000
        api_key_env: MY_KEY
        sampler: {temperature: 0.6, top_p: 0.95, top_k: 20, min_p: 0.05, repeat_penalty: 1.1, seed: 7}
        chat_template_kwargs: {enable_thinking: false}
        request: {max_tokens: 64, timeout_s: 30, stream: false}
        gates: ["score_mean >= 90", "tps_mean > 10"]
        """,
    )
    p = load_one(path)
    assert p.id == "qwen3-4b-q8"
    assert p.name == "Qwen3 4B Q8_0"
    assert p.driver == "llamacpp"
    assert p.source == path
    assert p.binary == "/opt/llama/bin/llama-server"
    assert p.model == tmp_path / "models" / "qwen3-4b-q8_0.gguf"
    assert p.mmproj == Path("/models/mmproj.gguf")
    assert (p.host, p.port, p.context_size, p.parallel) == ("127.0.0.2", 8081, 8192, 2)
    assert p.extra_args == ("--threads", "4", "--no-warmup")
    assert p.health_endpoint == "/healthz"
    assert p.env == (("B", "two"), ("CUDA_VISIBLE_DEVICES", "1"))
    assert (p.startup_timeout_s, p.quiesce_s, p.memory_ceiling_mb) == (45.5, 2.0, 6000.0)
    assert p.api_key() == "sk-test"
    assert p.sampler == Sampler(temperature=0.6, top_p=0.95, top_k=20, min_p=0.05, repeat_penalty=1.1, seed=7)
    assert p.sampler.request_fields() == {
        "temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0.05, "repeat_penalty": 1.1, "seed": 7,
    }  # fmt: skip
    assert p.chat_template_kwargs == (("enable_thinking", False),)
    assert (p.max_tokens, p.timeout_s, p.stream) == (64, 30.0, False)
    assert p.gates == ("score_mean >= 90", "tps_mean > 10")
    assert p.origin == "quantgate"


def test_defaults_of_a_minimal_preset(tmp_path: Path) -> None:
    p = load_one(write(tmp_path, "m.yaml", "id: m\nmodel: /m.gguf\n"))
    assert p.name == "m"
    assert p.driver == "llamacpp"
    assert p.binary is None and p.mmproj is None and p.context_size is None
    assert (p.host, p.port, p.parallel) == ("127.0.0.1", 0, 1)
    assert p.extra_args == () and p.command == () and p.env == () and p.gates == ()
    assert p.health_endpoint == "/health"
    assert (p.startup_timeout_s, p.quiesce_s, p.memory_ceiling_mb) == (120.0, 0.0, None)
    assert p.sampler == Sampler() and p.sampler.request_fields() == {}
    assert (p.max_tokens, p.timeout_s, p.stream) == (512, 900.0, True)
    assert p.api_key() is None


def test_extra_args_as_one_shell_string_are_split(tmp_path: Path) -> None:
    text = """id: s\nmodel: /m.gguf\nextra_args: "--threads 4 --chat-template-kwargs '{\\"a\\": 1}'"\n"""
    p = load_one(write(tmp_path, "s.yaml", text))
    assert p.extra_args == ("--threads", "4", "--chat-template-kwargs", '{"a": 1}')


def test_home_tilde_and_braced_variables_expand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MODELS", "/srv/models")
    path = write(
        tmp_path,
        "e.yaml",
        """
        id: e
        model: $HOME/bin/a.gguf
        mmproj: ~/proj.gguf
        binary: ${MODELS}/../bin/llama-server
        extra_args: ["--lora", "${MODELS}/lora.gguf", "--slot-save-path", "~/slots"]
        env: {CACHE: "$HOME/cache"}
        """,
    )
    p = load_one(path)
    assert p.model == tmp_path / "home" / "bin" / "a.gguf"
    assert p.mmproj == tmp_path / "home" / "proj.gguf"
    assert p.binary == "/srv/models/../bin/llama-server"
    assert p.extra_args == ("--lora", "/srv/models/lora.gguf", "--slot-save-path", str(tmp_path / "home" / "slots"))
    assert p.env == (("CACHE", f"{tmp_path}/home/cache"),)


def test_an_unset_variable_is_an_error_naming_it_and_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QG_NOT_SET", raising=False)
    path = write(tmp_path, "u.yaml", "id: u\nmodel: ${QG_NOT_SET}/a.gguf\n")
    with pytest.raises(PresetError, match=r"\$QG_NOT_SET is not set") as info:
        load_file(path)
    assert str(path) in str(info.value)


def test_expand_never_substitutes_an_empty_string(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QG_NOT_SET", raising=False)
    monkeypatch.setenv("QG_SET", "x")
    assert expand("a/${QG_SET}/$QG_SET") == "a/x/x"
    with pytest.raises(PresetError, match="QG_NOT_SET"):
        expand("a/$QG_NOT_SET")


def test_relative_model_paths_resolve_against_the_preset_file_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "presets" / "sub", "r.yaml", "id: r\nmodel: ../models/r.gguf\nmmproj: p.gguf\n")
    monkeypatch.chdir(tmp_path)
    p = load_one(path)
    assert p.model == tmp_path / "presets" / "sub" / ".." / "models" / "r.gguf"
    assert p.mmproj == tmp_path / "presets" / "sub" / "p.gguf"


def test_api_key_env_that_is_unset_is_an_error_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("QG_KEY", raising=False)
    p = load_one(write(tmp_path, "k.yaml", "id: k\ndriver: external\nbase_url: http://h:1\napi_key_env: QG_KEY\n"))
    with pytest.raises(PresetError, match=r"\$QG_KEY, which is not set"):
        p.api_key()


# -- errors in our format ---------------------------------------------------------------------------------


def test_a_mistyped_key_names_the_file_the_line_and_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "typo.yaml", "id: t\nmodel: /m.gguf\n\ncontex_size: 8192\n")
    with pytest.raises(PresetError) as info:
        load_file(path)
    message = str(info.value)
    assert str(path) in message
    assert "line 4: unknown key 'contex_size'" in message


def test_a_nested_unknown_key_is_named_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "n.yaml", "id: n\nmodel: /m.gguf\nsampler:\n  temperature: 0\n  temprature: 1\n")
    with pytest.raises(PresetError, match=r"line 5: unknown key 'sampler\.temprature'") as info:
        load_file(path)
    assert str(path) in str(info.value)


def test_a_value_of_the_wrong_type_names_the_line_the_key_and_the_value(tmp_path: Path) -> None:
    path = write(tmp_path, "v.yaml", "id: v\nmodel: /m.gguf\nport: eighty\nrequest:\n  max_tokens: 0\n")
    with pytest.raises(PresetError) as info:
        load_file(path)
    message = str(info.value)
    assert "2 problem(s)" in message
    assert re.search(r"line 3: port: .*integer.*\(got 'eighty'\)", message)
    assert re.search(r"line 5: request\.max_tokens: .*greater than 0.*\(got 0\)", message)


def test_a_bad_id_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(PresetError, match="line 1: id"):
        load_file(write(tmp_path, "b.yaml", "id: has space\nmodel: /m.gguf\n"))


def test_malformed_yaml_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", "id: x\nmodel: /m.gguf\nextra_args: [--a, --b\nport: 1\n")
    with pytest.raises(PresetError, match=r"not valid YAML") as info:
        load_file(path)
    assert re.search(rf"{re.escape(str(path))}, line \d+: not valid YAML", str(info.value))


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "list"), ("just text\n", "str"), ("", "NoneType")])
def test_a_file_that_is_not_a_mapping_is_rejected(tmp_path: Path, text: str, kind: str) -> None:
    path = write(tmp_path, "x.yaml", text)
    with pytest.raises(PresetError, match=rf"must be a YAML mapping, got {kind}") as info:
        load_file(path)
    assert str(path) in str(info.value)


def test_an_unreadable_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(PresetError, match=r"cannot read preset file .*missing\.yaml"):
        load_file(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("text", "needs"),
    [
        ("id: a\n", "driver llamacpp but sets no 'model'"),
        ("id: a\ndriver: command\n", "driver command but sets no 'command'"),
        ("id: a\ndriver: external\n", "driver external but sets no 'base_url'"),
    ],
)
def test_each_driver_requires_its_own_key(tmp_path: Path, text: str, needs: str) -> None:
    path = write(tmp_path, "d.yaml", text)
    with pytest.raises(PresetError, match=needs) as info:
        load_file(path)
    assert str(path) in str(info.value)


def test_an_unknown_driver_is_rejected_with_the_allowed_ones(tmp_path: Path) -> None:
    with pytest.raises(PresetError, match=r"line 2: driver: .*'llamacpp', 'command' or 'external'"):
        load_file(write(tmp_path, "d.yaml", "id: a\ndriver: ollama\n"))


def test_command_and_external_drivers(tmp_path: Path) -> None:
    cmd = load_one(write(tmp_path, "c.yaml", "id: c\ndriver: command\ncommand: my-server --port {port} -m '{model}'\n"))
    assert cmd.driver == "command"
    assert cmd.command == ("my-server", "--port", "{port}", "-m", "{model}")
    ext = load_one(write(tmp_path, "x.yaml", "id: x\ndriver: external\nbase_url: http://10.0.0.2:8080\n"))
    assert (ext.driver, ext.base_url) == ("external", "http://10.0.0.2:8080")


# -- gpumod -----------------------------------------------------------------------------------------------

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


# -- llama-swap -------------------------------------------------------------------------------------------

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


# -- the search path --------------------------------------------------------------------------------------


def test_search_path_order_dirs_then_env_then_builtins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANTGATE_PRESET_PATH", f"{tmp_path / 'e1'}:{tmp_path / 'e2'}")
    got = search_path([tmp_path / "d1", tmp_path / "d2"])
    assert got == [tmp_path / "d1", tmp_path / "d2", tmp_path / "e1", tmp_path / "e2", builtin_dir()]


def test_the_builtin_presets_are_found_without_any_directory() -> None:
    assert resolve("tiny-f16").model == builtin_dir() / ".." / "models" / "tiny-f16.gguf"
    ids = {p.id for p in catalogue().presets}
    assert {"tiny-f16", "tiny-q8_0", "tiny-q4_0"} <= ids
    assert catalogue().problems == ()


def test_first_match_wins_along_the_search_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "first", "dup.yaml", "id: dup\nmodel: /first.gguf\n")
    write(tmp_path / "env", "dup.yaml", "id: dup\nmodel: /env.gguf\n")
    write(tmp_path / "env", "only-env.yaml", "id: only-env\nmodel: /env.gguf\n")
    write(tmp_path / "env", "tiny-f16.yaml", "id: tiny-f16\nmodel: /shadow.gguf\n")
    monkeypatch.setenv("QUANTGATE_PRESET_PATH", str(tmp_path / "env"))
    dirs = [tmp_path / "first"]
    assert resolve("dup", dirs).model == Path("/first.gguf")
    assert resolve("only-env", dirs).model == Path("/env.gguf")
    assert resolve("tiny-f16", dirs).model == Path("/shadow.gguf")  # the env path comes before built-ins
    assert catalogue(dirs).get("dup").model == Path("/first.gguf")


def test_a_preset_is_found_in_any_file_of_a_directory_tree(tmp_path: Path) -> None:
    write(tmp_path / "d" / "deep" / "er", "several.yml", "id: hidden\nmodel: /h.gguf\n")
    write(tmp_path / "d", "config.yaml", "models:\n  swapped:\n    cmd: srv --port ${PORT}\n")
    assert resolve("hidden", [tmp_path / "d"]).model == Path("/h.gguf")
    assert resolve("swapped", [tmp_path / "d"]).origin == "llama-swap"


def test_an_unknown_name_lists_the_known_ones_and_the_unreadable_files(tmp_path: Path) -> None:
    write(tmp_path / "d", "a.yaml", "id: alpha\nmodel: /a.gguf\n")
    broken = write(tmp_path / "d", "broken.yaml", "id: b\nmodel: /b.gguf\nporrt: 1\n")
    with pytest.raises(PresetError) as info:
        resolve("nope", [tmp_path / "d", tmp_path / "missing"])
    message = str(info.value)
    assert "no preset named 'nope'" in message
    assert re.search(r"Known presets: alpha, tiny-f16, tiny-f32, tiny-q4_0, tiny-q5_0, tiny-q8_0\b", message)
    assert "--preset-dir" in message
    assert f"{broken}: 1 problem(s)" in message
    assert "unknown key 'porrt'" in message
    assert f"{tmp_path / 'missing'}: not a directory" in message


def test_a_broken_file_does_not_hide_the_good_ones(tmp_path: Path) -> None:
    write(tmp_path / "d", "a.yaml", "id: alpha\nmodel: /a.gguf\n")
    write(tmp_path / "d", "b.yaml", "id: [unclosed\n")
    cat = catalogue([tmp_path / "d"])
    assert cat.get("alpha").id == "alpha"
    assert len(cat.problems) == 1 and "b.yaml" in cat.problems[0]


# -- properties -------------------------------------------------------------------------------------------

_SAFE_TEXT = st.text(
    alphabet=st.characters(categories=("L", "N", "P", "S", "Zs"), exclude_characters="$~"), min_size=1, max_size=12
)
_ID = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,15}", fullmatch=True)
_FLOAT = st.floats(min_value=0.001, max_value=1e6, allow_nan=False, allow_infinity=False)

_PRESET_DICTS = st.fixed_dictionaries(
    {"id": _ID, "model": st.from_regex(r"[a-z0-9_/]{1,20}\.gguf", fullmatch=True)},
    optional={
        "name": _SAFE_TEXT,
        "description": _SAFE_TEXT,
        "host": st.sampled_from(["127.0.0.1", "::1", "localhost"]),
        "port": st.integers(0, 65535),
        "context_size": st.integers(1, 1 << 20),
        "parallel": st.integers(1, 64),
        "extra_args": st.lists(_SAFE_TEXT, max_size=4),
        "health_endpoint": st.from_regex(r"/[a-z]{0,8}", fullmatch=True),
        "env": st.dictionaries(st.from_regex(r"[A-Z][A-Z0-9_]{0,8}", fullmatch=True), _SAFE_TEXT, max_size=3),
        "startup_timeout": _FLOAT,
        "quiesce": st.floats(0, 100),
        "memory_ceiling_mb": _FLOAT,
        "sampler": st.fixed_dictionaries(
            {},
            optional={
                "temperature": st.floats(0, 2),
                "top_p": st.floats(0, 1),
                "top_k": st.integers(0, 200),
                "min_p": st.floats(0, 1),
                "repeat_penalty": st.floats(0.5, 2),
                "seed": st.integers(-1, 2**31),
            },
        ),
        "request": st.fixed_dictionaries(
            {},
            optional={"max_tokens": st.integers(1, 100_000), "timeout_s": _FLOAT, "stream": st.booleans()},
        ),
        "gates": st.lists(st.sampled_from(["score_mean >= 90", "tps_mean > 5", "errors == 0"]), max_size=3),
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=_PRESET_DICTS)
def test_valid_preset_dicts_round_trip_through_yaml(tmp_path: Path, data: dict) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    p = load_one(path)
    assert p.id == data["id"]
    assert p.name == data.get("name", data["id"])
    assert p.model == tmp_path / data["model"]
    assert p.host == data.get("host", "127.0.0.1")
    assert p.port == data.get("port", 0)
    assert p.context_size == data.get("context_size")
    assert p.parallel == data.get("parallel", 1)
    assert p.extra_args == tuple(data.get("extra_args", ()))
    assert p.health_endpoint == data.get("health_endpoint", "/health")
    assert p.env == tuple(sorted(data.get("env", {}).items()))
    assert p.startup_timeout_s == data.get("startup_timeout", 120.0)
    assert p.quiesce_s == data.get("quiesce", 0.0)
    assert p.memory_ceiling_mb == data.get("memory_ceiling_mb")
    assert p.sampler == Sampler(**data.get("sampler", {}))
    request = data.get("request", {})
    assert p.max_tokens == request.get("max_tokens", 512)
    assert p.timeout_s == request.get("timeout_s", 900.0)
    assert p.stream == request.get("stream", True)
    assert p.gates == tuple(data.get("gates", ()))


_FORMAT_MARKERS = {"models", "unit_vars", "vram_mb", "model_id"}  # keys that select another file format


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    key=st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True).filter(
        lambda k: k not in PresetModel.model_fields and k not in _FORMAT_MARKERS
    ),
    blank_lines=st.integers(0, 3),
)
def test_unknown_keys_are_always_rejected_by_name_and_line(tmp_path: Path, key: str, blank_lines: int) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("id: p\nmodel: /m.gguf\n" + "\n" * blank_lines + f"{key}: 1\n")
    with pytest.raises(PresetError) as info:
        load_file(path)
    assert f"line {3 + blank_lines}: unknown key {key!r}" in str(info.value)
    assert str(path) in str(info.value)


# -- files that cannot be used: a PresetError naming the file, never another exception ------------------


def test_a_file_that_is_not_utf8_names_the_line_and_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("id: p\nname: Caf\xe9\nmodel: /m.gguf\n".encode("latin-1"))
    with pytest.raises(PresetError, match=r"line 2: not UTF-8 text \(byte 0xe9 at offset 15\)") as info:
        load_file(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("id: p\nmodel: /m.gguf\nextra_args: \"--alias 'unclosed\"\n", "extra_args"),
        ("id: p\ndriver: command\ncommand: \"srv --port {port} 'unclosed\"\n", "command"),
        ("id: g\ndriver: llamacpp\nport: 1\nunit_vars:\n  model_path: /m.gguf\n  extra_args: \"-ngl 'unclosed\"\n",
         "unit_vars.extra_args"),
        ("models:\n  m:\n    cmd: \"llama-server --port ${PORT} -m '/m.gguf\"\n", "models.m.cmd"),
    ],
)  # fmt: skip
def test_an_unbalanced_quote_names_the_file_and_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, "q.yaml", text)
    with pytest.raises(PresetError, match=rf"{re.escape(key)}: .* cannot be split like a shell line") as info:
        load_file(path)
    assert str(path) in str(info.value)
    assert "No closing quotation" in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id: g\ndriver: llamacpp\nport: 1\nunit_vars:\n  model_path: /m.gguf\n  extra_args: --parallel ²\n",
         "unit_vars.extra_args: --parallel '²' is not a whole number"),
        ("models:\n  m:\n    cmd: llama-server -np ٣x\n", "models.m.cmd: -np '٣x' is not a whole number"),
        ("id: p\nmodel: /m.gguf\nextra_args: [-c, 8k]\n", "extra_args: -c '8k' is not a whole number"),
        ("id: p\nmodel: /m.gguf\nextra_args: [--temp, hot]\n", "extra_args: --temp 'hot' is not a number"),
        ("id: p\nmodel: /m.gguf\nextra_args: [--chat-template-kwargs, '{x']\n",
         "extra_args: --chat-template-kwargs '{x' is not a JSON object"),
    ],
)  # fmt: skip
def test_a_flag_value_llama_server_could_not_read_is_an_error(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "f.yaml", text)
    with pytest.raises(PresetError, match=re.escape(message)) as info:
        load_file(path)
    assert str(path) in str(info.value)


def test_another_programs_arguments_are_not_read_as_llama_servers(tmp_path: Path) -> None:
    swap = load_one(write(tmp_path, "config.yaml", "models:\n  m:\n    cmd: python -c 'print(1)' -np x\n"))
    assert (swap.command, swap.parallel) == (("python", "-c", "print(1)", "-np", "x"), 1)
    own = load_one(
        write(tmp_path, "own.yaml", "id: o\ndriver: command\ncommand: [vllm, serve, m]\nextra_args: [-c, x]\n")
    )
    assert own.extra_args == ("-c", "x")


def test_a_path_under_an_unknown_users_home_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "u.yaml", "id: u\nmodel: ~nosuchuser-qg/m.gguf\n")
    with pytest.raises(PresetError, match=r"cannot expand '~nosuchuser-qg' in '~nosuchuser-qg/m.gguf'") as info:
        load_file(path)
    assert str(path) in str(info.value)


def test_a_variable_holding_a_dollar_is_expanded_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QG_DOLLAR", "a$QG_NOT_SET")
    monkeypatch.delenv("QG_NOT_SET", raising=False)
    p = load_one(write(tmp_path, "d.yaml", 'id: d\nmodel: /m.gguf\nextra_args: "--alias $QG_DOLLAR"\n'))
    assert p.extra_args == ("--alias", "a$QG_NOT_SET")


def test_a_bad_file_warns_and_leaves_the_other_presets_usable(tmp_path: Path) -> None:
    write(tmp_path / "d", "a.yaml", "id: alpha\nmodel: /a.gguf\n")
    (tmp_path / "d" / "latin1.yaml").write_bytes(b"id: latin\nname: Caf\xe9\n")
    write(tmp_path / "d", "quote.yaml", 'id: quote\nmodel: /q.gguf\nextra_args: "\'"\n')
    with pytest.warns(PresetWarning) as record:
        assert resolve("alpha", [tmp_path / "d"]).model == Path("/a.gguf")
    messages = sorted(str(w.message) for w in record)
    assert len(messages) == 2
    assert f"{tmp_path / 'd' / 'latin1.yaml'}, line 2: not UTF-8" in messages[0]
    assert f"{tmp_path / 'd' / 'quote.yaml'}: extra_args: " in messages[1]
    assert "No closing quotation" in messages[1]


@pytest.mark.parametrize(
    ("name", "content", "wanted"),
    [
        ("x.yaml", b'id: wanted\nmodel: /w.gguf\nextra_args: "\'"\n', "wanted"),  # by its id
        ("config.yaml", b'models:\n  wanted:\n    cmd: "srv \'"\n', "wanted"),  # by its llama-swap name
        ("wanted.yaml", b"id: wanted\nname: \xff\n", "wanted"),  # unreadable: by its file name
    ],
)
def test_asking_for_the_preset_of_a_bad_file_is_that_files_error(
    tmp_path: Path, name: str, content: bytes, wanted: str
) -> None:
    (tmp_path / "first").mkdir()
    (tmp_path / "first" / name).write_bytes(content)
    write(tmp_path / "later", "w.yaml", f"id: {wanted}\nmodel: /later.gguf\n")  # not a fallback
    with pytest.raises(PresetError, match=rf"preset 'wanted' is in a file that cannot be used:\n  .*{name}"):
        resolve(wanted, [tmp_path / "first", tmp_path / "later"])


def test_a_bad_file_after_the_good_definition_does_not_hide_it(tmp_path: Path) -> None:
    write(tmp_path / "first", "w.yaml", "id: wanted\nmodel: /first.gguf\n")
    write(tmp_path / "later", "w.yaml", 'id: wanted\nmodel: /later.gguf\nextra_args: "\'"\n')
    with pytest.warns(PresetWarning, match="later"):
        assert resolve("wanted", [tmp_path / "first", tmp_path / "later"]).model == Path("/first.gguf")


def test_quantgate_presets_lists_the_good_presets_and_each_bad_file_with_its_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_quantgate import cli

    directory = tmp_path / "d"
    write(directory, "a.yaml", "id: alpha\nmodel: /a.gguf\n")
    write(directory, "swap.yaml", "models:\n  swapped:\n    cmd: srv --port ${PORT} --api-key sk-listed-secret\n")
    (directory / "latin1.yaml").write_bytes(b"id: latin\nname: Caf\xe9\n")
    write(directory, "gpumod.yaml", "id: g\ndriver: llamacpp\nport: 1\nunit_vars:\n  extra_args: --parallel ²\n")
    assert cli.main(["presets", "--preset-dir", str(directory)]) == 2
    out, err = capsys.readouterr()
    assert re.search(r"alpha +llamacpp +quantgate +/a\.gguf", out)
    assert re.search(r"swapped +command +llama-swap +srv --port \{port\}", out)
    assert "tiny-f16" in out
    assert f"{directory / 'latin1.yaml'}, line 2: not UTF-8 text" in err
    assert f"{directory / 'gpumod.yaml'}: unit_vars.extra_args: --parallel '²' is not a whole number" in err
    assert "sk-listed-secret" not in out + err


def test_quantgate_presets_never_shows_a_credential(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_quantgate import cli

    write(tmp_path / "d", "k.yaml", "id: k\ndriver: command\ncommand: [srv, --api-key, sk-listed-secret]\n")
    assert cli.main(["presets", "--preset-dir", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"k +command +quantgate +srv --api-key \*\*\*", out)
    assert "sk-listed-secret" not in out


# A fuzz of the loader: random mappings shaped like each of the three formats (mostly of the right types,
# with strings that hold stray quotes, odd digits, ~user paths, unset variables, credentials) and raw bytes.
# Whatever the file holds, load_file raises PresetError or nothing, and a bad file hides no other preset.

_WORDS = ["'", '"', "\\", "$", "${HOME}", "$QG_FUZZ_UNSET", "~", "~nosuchuser-qg/x", "²", "٣", "#", "=", "{port}",
          "{", "}", "${PORT}", "-", "x", "1", " ", "\n", "\\\n", "\x00", "\t"]  # fmt: skip
_FLAGS = ["-m", "-c", "-np", "--parallel", "--temp", "--seed", "--chat-template-kwargs", "--api-key", "--port",
          "-ngl"]  # fmt: skip
_VALUES = ["1", "0.5", "²", "٣", "abc", '{"a": 1}', "'", '"', "~nosuchuser-qg/m.gguf", "$QG_FUZZ_KEY", "{port}"]
_TEXT = st.lists(st.sampled_from(_WORDS) | st.text(max_size=3), max_size=4).map("".join)
_ARGS = st.lists(st.tuples(st.sampled_from(_FLAGS), st.sampled_from(_VALUES) | _TEXT), max_size=4).map(
    lambda pairs: [arg for pair in pairs for arg in pair]
)
_LINE = _ARGS.map(" ".join)
_PATH = st.sampled_from(["/m.gguf", "m.gguf", "~/m.gguf", "~nosuchuser-qg/m.gguf", "$HOME/m", "${QG_FUZZ_UNSET}/m"])
_INT = st.integers(1, 70_000)
_WRONG = (
    st.none() | st.booleans() | st.integers(-2, 2) | st.floats() | st.sampled_from(["²", "8k", ""]) | _TEXT
    | st.lists(_TEXT, max_size=2) | st.dictionaries(_TEXT, _TEXT, max_size=2)
)  # fmt: skip


def _mostly(strategy: st.SearchStrategy, wrong: st.SearchStrategy = _WRONG) -> st.SearchStrategy:
    """*strategy*, and one time in eight a value of another type."""
    return st.integers(0, 7).flatmap(lambda k: strategy if k else wrong)


def _some(**fields: st.SearchStrategy) -> st.SearchStrategy:
    return st.fixed_dictionaries({}, optional=fields)


_FUZZ_ID = _mostly(st.sampled_from(["fz", "tiny-f16", "a.b:c"]), wrong=st.none() | st.integers() | _TEXT)
_OWN_FILE = st.fixed_dictionaries(
    {"id": _FUZZ_ID},
    optional={
        "driver": _mostly(st.sampled_from(["llamacpp", "command", "external"])),
        "model": _mostly(_PATH), "binary": _mostly(_PATH), "mmproj": _mostly(_PATH),
        "extra_args": _mostly(_LINE | _ARGS), "command": _mostly(_LINE | _ARGS),
        "base_url": _mostly(st.just("http://127.0.0.1:1") | _TEXT),
        "port": _mostly(_INT), "context_size": _mostly(_INT), "parallel": _mostly(_INT),
        "env": _mostly(st.dictionaries(st.sampled_from(["A", "HF_TOKEN"]), _PATH | _TEXT, max_size=2)),
        "api_key_env": st.sampled_from(["QG_FUZZ_KEY", "QG_FUZZ_UNSET"]),
        "sampler": _mostly(_some(temperature=_mostly(st.floats(0, 2)), top_k=_mostly(_INT), seed=_mostly(_INT))),
        "chat_template_kwargs": _mostly(st.dictionaries(_TEXT, _WRONG, max_size=2)),
        "gates": _mostly(st.lists(_TEXT, max_size=2)),
    },
)  # fmt: skip
_GPUMOD_FILE = st.fixed_dictionaries(
    {
        "id": _FUZZ_ID,
        "driver": _mostly(st.sampled_from(["llamacpp", "vllm", "fastapi"])),
        "port": _mostly(_INT),
        "unit_vars": _mostly(_some(
            model_path=_mostly(_PATH), extra_args=_mostly(_LINE), context_size=_mostly(_INT),
            n_gpu_layers=_mostly(st.integers(-1, 99)), jinja=_mostly(st.booleans()), flash_attn=_mostly(st.booleans()),
            gpu_mem_util=_mostly(st.floats(0, 1)), max_model_len=_mostly(_INT), dtype=_mostly(_TEXT),
            enforce_eager=_mostly(st.booleans()), cpu_affinity=_WRONG,
        )),
    },
    optional={"model_path": _mostly(_PATH), "model_id": _mostly(_TEXT), "vram_mb": _mostly(_INT),
              "context_size": _mostly(_INT), "startup_timeout": _mostly(st.floats(1, 100))},
)  # fmt: skip
_SWAP_ENTRY = st.fixed_dictionaries(
    {"cmd": _mostly(_LINE)},
    optional={
        "env": _mostly(st.lists(st.sampled_from(["A=1", "K=$QG_FUZZ_UNSET", "T=~nosuchuser-qg", "N"]), max_size=2)),
        "proxy": _mostly(st.sampled_from(["http://127.0.0.1:8999", "http://[::1", "http://h:99999", "${PORT}"])),
        "checkEndpoint": _mostly(_TEXT), "name": _mostly(_TEXT), "ttl": _WRONG,
    },
)  # fmt: skip
_SWAP_FILE = st.fixed_dictionaries(
    {"models": _mostly(st.dictionaries(_FUZZ_ID, _SWAP_ENTRY, min_size=1, max_size=3))},
    optional={"macros": st.dictionaries(_TEXT, _TEXT, max_size=2)},
)
_YAML_BYTES = (_OWN_FILE | _GPUMOD_FILE | _SWAP_FILE).map(lambda d: yaml.safe_dump(d, allow_unicode=True).encode())
_BROKEN_BYTES = st.tuples(_YAML_BYTES, st.binary(min_size=1, max_size=3), st.integers(0, 300)).map(
    lambda t: t[0][: t[2]] + t[1] + t[0][t[2] :]
)
_FILE_CONTENT = st.one_of(*[_YAML_BYTES] * 4, _BROKEN_BYTES, st.binary(max_size=64))
_BUILTIN_IDS = {"tiny-f16", "tiny-f32", "tiny-q4_0", "tiny-q5_0", "tiny-q8_0"}


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(content=_FILE_CONTENT)
def test_whatever_a_preset_file_holds_only_a_preset_error_escapes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes
) -> None:
    monkeypatch.setenv("QG_FUZZ_KEY", "sk-fuzz")
    monkeypatch.delenv("QG_FUZZ_UNSET", raising=False)
    directory = tmp_path / "fuzz"
    directory.mkdir(exist_ok=True)
    path = directory / "fuzzed.yaml"
    path.write_bytes(content)
    try:
        loaded = load_file(path)
    except PresetError as exc:
        assert str(path) in str(exc)
        loaded = None
    found = catalogue([directory])
    assert len(found.problems) == (loaded is None)
    claimed = {preset.id for preset in loaded or ()} | {name for name, _problem in found.broken}
    assert _BUILTIN_IDS - claimed <= {preset.id for preset in found.presets}


@pytest.mark.parametrize("key", ["on", "off", "yes", "null", "12"])
def test_a_key_yaml_reads_as_another_type_is_an_unknown_key_on_its_line(tmp_path: Path, key: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(f"id: p\nmodel: /m.gguf\n{key}: 1\n")
    with pytest.raises(PresetError, match=rf"line 3: unknown key '{key}' \(YAML reads it as .*quote a key"):
        load_file(path)
