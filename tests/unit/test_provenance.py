"""Tests of pytest_quantgate.provenance: what a result records about its preset, whatever format wrote it."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any

import pytest
from result_builders import make_result, tiny_levels

from pytest_quantgate.compare import compare_files
from pytest_quantgate.presets import Preset, load_file
from pytest_quantgate.provenance import preset_record

if TYPE_CHECKING:
    from pathlib import Path

    from pytest_quantgate.results import PresetRecord

# What says where a record came from rather than what ran: the rest must match across formats.
_WHERE = {"id", "name", "driver", "origin", "source", "source_sha256"}


@pytest.fixture
def server_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in llama-server that only answers --version (provenance runs nothing else)."""
    binary = tmp_path / "bin" / "llama-server"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\necho 'version: 4242 (fakebuild)' >&2\n")
    binary.chmod(0o755)
    monkeypatch.setenv("QUANTGATE_LLAMA_SERVER", str(binary))
    return binary


@pytest.fixture
def gguf(tmp_path: Path) -> Path:
    path = tmp_path / "models" / "m-q4_0.gguf"
    path.parent.mkdir()
    path.write_bytes(b"GGUF" + bytes(range(256)) * 40)
    return path


def one(tmp_path: Path, name: str, text: str) -> Preset:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    (preset,) = load_file(path)
    return preset


def what_ran(record: PresetRecord) -> dict[str, Any]:
    return record.model_dump(exclude=_WHERE)


def own_format(tmp_path: Path, binary: Path, model: Path, temperature: float = 0.6) -> Preset:
    return one(
        tmp_path,
        "own.yaml",
        f"""
        id: own
        binary: {binary}
        model: {model}
        context_size: 4096
        parallel: 2
        sampler: {{temperature: {temperature}, top_k: 20, seed: 7}}
        chat_template_kwargs: {{enable_thinking: false}}
        extra_args: ["-ngl", "99", "--jinja"]
        """,
    )


def llama_swap(tmp_path: Path, binary: Path, model: Path, temperature: float = 0.6) -> Preset:
    return one(
        tmp_path,
        f"config-{temperature}.yaml",
        f"""
        models:
          swapped:
            cmd: |
              {binary} --port ${{PORT}} -m {model} -c 4096 -np 2
                --temp {temperature} --top-k 20 --seed 7 -ngl 99 --jinja
                --chat-template-kwargs '{{"enable_thinking": false}}'
        """,
    )


def test_a_llama_swap_preset_records_what_its_cmd_says(tmp_path: Path, server_binary: Path, gguf: Path) -> None:
    record = preset_record(llama_swap(tmp_path, server_binary, gguf))
    assert record.model == str(gguf)
    assert record.model_size_bytes == gguf.stat().st_size
    assert record.model_digest is not None and record.model_digest.startswith("sha256:")
    assert record.binary == str(server_binary)
    assert record.binary_version == "version: 4242 (fakebuild)"
    assert record.binary_sha256 is not None
    assert (record.context_size, record.parallel) == (4096, 2)
    assert record.sampler == {"temperature": 0.6, "top_k": 20, "seed": 7}
    assert record.chat_template_kwargs == {"enable_thinking": False}
    assert record.extra_args == ["-ngl", "99", "--jinja"]  # what no field of its own records; no --port


def test_a_llama_swap_preset_records_what_the_same_preset_in_our_format_does(
    tmp_path: Path, server_binary: Path, gguf: Path
) -> None:
    own = preset_record(own_format(tmp_path, server_binary, gguf))
    swapped = preset_record(llama_swap(tmp_path, server_binary, gguf))
    assert what_ran(swapped) == what_ran(own)


def test_a_gpumod_preset_records_what_the_same_preset_in_our_format_does(
    tmp_path: Path, server_binary: Path, gguf: Path
) -> None:
    gpumod = one(
        tmp_path,
        "gpumod.yaml",
        f"""
        id: gp
        driver: llamacpp
        port: 7110
        unit_vars:
          model_path: {gguf}
          context_size: 4096
          n_gpu_layers: 99
          jinja: true
          extra_args: "-np 2 --temp 0.6 --top-k 20 --seed 7 --chat-template-kwargs '{{\\"enable_thinking\\": false}}'"
        """,
    )
    own = preset_record(own_format(tmp_path, server_binary, gguf))
    assert what_ran(preset_record(gpumod)) == what_ran(own)


def test_a_flag_in_our_format_is_recorded_where_the_key_would_be(tmp_path: Path, server_binary: Path) -> None:
    preset = one(
        tmp_path,
        "flags.yaml",
        """
        id: flags
        model: /a.gguf
        parallel: 1
        extra_args: ["-m", "/b.gguf", "-np", "4", "--ctx_size", "2048", "--temp", "1.0", "--top-p", "0.9", "-t", "8"]
        sampler: {temperature: 0.2}
        """,
    )
    record = preset_record(preset)
    assert record.model == "/b.gguf"  # the later flag is the one llama-server takes
    assert (record.parallel, record.context_size) == (4, 2048)
    assert record.sampler == {"temperature": 0.2, "top_p": 0.9}  # what each request sends wins over the default
    assert record.extra_args == ["-t", "8"]


def test_the_command_drivers_model_placeholder_is_the_presets_model(tmp_path: Path) -> None:
    preset = one(tmp_path, "c.yaml", "id: c\ndriver: command\nmodel: /m.gguf\ncommand: srv --port {port} -m {model}\n")
    record = preset_record(preset)
    assert (record.model, record.binary, record.binary_version) == ("/m.gguf", "srv", None)


def _result_file(tmp_path: Path, record: PresetRecord) -> Path:
    fields = record.model_dump(exclude=_WHERE)
    path = tmp_path / f"{record.id}-{len(list(tmp_path.glob('*.json')))}.json"
    path.write_text(make_result(record.id, tiny_levels(), **fields).model_dump_json())
    return path


def test_llama_swap_and_our_format_with_the_same_settings_compare_without_caveats(
    tmp_path: Path, server_binary: Path, gguf: Path
) -> None:
    own = _result_file(tmp_path, preset_record(own_format(tmp_path, server_binary, gguf)))
    swapped = _result_file(tmp_path, preset_record(llama_swap(tmp_path, server_binary, gguf)))
    assert compare_files(own, swapped).caveats == ()  # once "sampler: temperature 0.6 → unset, ..."


def test_two_llama_swap_results_with_different_sampling_say_so(tmp_path: Path, server_binary: Path, gguf: Path) -> None:
    warm = _result_file(tmp_path, preset_record(llama_swap(tmp_path, server_binary, gguf, temperature=0.6)))
    cold = _result_file(tmp_path, preset_record(llama_swap(tmp_path, server_binary, gguf, temperature=0.0)))
    caveats = compare_files(warm, cold).caveats
    assert caveats == ("sampler: temperature 0.6 → 0.0: scores may differ because of sampling, not the model",)
