"""Our own preset format (pytest_quantgate.presets.own): every key reaches the Preset, defaults, drivers."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from preset_helpers import load_one, write

from pytest_quantgate.errors import PresetError
from pytest_quantgate.presets import Sampler, load_file


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


def test_api_key_env_that_is_unset_is_an_error_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("QG_KEY", raising=False)
    p = load_one(write(tmp_path, "k.yaml", "id: k\ndriver: external\nbase_url: http://h:1\napi_key_env: QG_KEY\n"))
    with pytest.raises(PresetError, match=r"\$QG_KEY, which is not set"):
        p.api_key()


def test_a_bad_id_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(PresetError, match="line 1: id"):
        load_file(write(tmp_path, "b.yaml", "id: has space\nmodel: /m.gguf\n"))


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


@pytest.mark.parametrize(
    ("text", "sent"),
    [
        ("id: a\nmodel: /m.gguf\n", False),  # a llama-server: the cache is off unless asked for
        ("id: a\nmodel: /m.gguf\nrequest: {cache_prompt: true}\n", True),
        ("id: a\ndriver: command\ncommand: [llama-server, -m, /m.gguf, --port, '{port}']\n", False),
        ("id: a\ndriver: command\ncommand: [vllm, serve, m, --port, '{port}']\n", None),  # may not know the field
        ("id: a\ndriver: external\nbase_url: http://127.0.0.1:9/\n", None),
        ("id: a\ndriver: external\nbase_url: http://127.0.0.1:9/\nrequest: {cache_prompt: false}\n", False),
    ],
)
def test_the_prompt_cache_is_off_for_a_llama_server_unless_the_preset_says(tmp_path: Path, text: str, sent) -> None:
    preset = load_one(write(tmp_path, "p.yaml", text))
    assert preset.prompt_cache() is sent
    defaults = preset.request_defaults()
    assert defaults.get("cache_prompt", "not sent") == ("not sent" if sent is None else sent)


def test_request_defaults_carry_the_sampler_and_the_chat_template_kwargs(tmp_path: Path) -> None:
    text = "id: a\nmodel: /m.gguf\nsampler: {temperature: 0}\nchat_template_kwargs: {enable_thinking: false}\n"
    preset = load_one(write(tmp_path, "p.yaml", text))
    assert preset.request_defaults() == {
        "temperature": 0.0,
        "chat_template_kwargs": {"enable_thinking": False},
        "cache_prompt": False,
    }
