"""Reading one preset file (pytest_quantgate.presets.files): whatever it holds, a PresetError naming the
file, the line and the key, never another exception."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from preset_helpers import load_one, write

from pytest_quantgate.errors import PresetError
from pytest_quantgate.presets import PresetModel, catalogue, load_file

if TYPE_CHECKING:
    from pathlib import Path


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


def test_a_file_that_is_not_utf8_names_the_line_and_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("id: p\nname: Caf\xe9\nmodel: /m.gguf\n".encode("latin-1"))
    with pytest.raises(PresetError, match=r"line 2: not UTF-8 text \(byte 0xe9 at offset 15\)") as info:
        load_file(path)
    assert str(path) in str(info.value)


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


@pytest.mark.parametrize("key", ["on", "off", "yes", "null", "12"])
def test_a_key_yaml_reads_as_another_type_is_an_unknown_key_on_its_line(tmp_path: Path, key: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(f"id: p\nmodel: /m.gguf\n{key}: 1\n")
    with pytest.raises(PresetError, match=rf"line 3: unknown key '{key}' \(YAML reads it as .*quote a key"):
        load_file(path)


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
