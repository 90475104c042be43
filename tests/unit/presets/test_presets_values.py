"""A preset file's strings made values (pytest_quantgate.presets.values): variables, ``~``, shell lines, paths."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from preset_helpers import load_one, write

from pytest_quantgate.errors import PresetError
from pytest_quantgate.presets import expand, load_file

if TYPE_CHECKING:
    from pathlib import Path


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


@pytest.mark.parametrize("value", ["~\0", "~us\0er/model.gguf"])
def test_a_home_directory_with_a_nul_byte_is_a_preset_error(value: str) -> None:
    """Found by hypothesis: ``~`` followed by a NUL byte made the user lookup raise a bare ValueError."""
    with pytest.raises(PresetError, match=r"cannot expand"):
        expand(value)
