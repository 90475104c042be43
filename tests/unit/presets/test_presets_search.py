"""The preset search path (pytest_quantgate.presets.search): first match wins, a bad file hides nothing
else, ``quantgate presets`` lists both."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from preset_helpers import write

from pytest_quantgate.errors import PresetError
from pytest_quantgate.presets import PresetWarning, builtin_dir, catalogue, resolve, search_path


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
    known = "alpha, smollm2-q4_0, smollm2-q4_1, smollm2-q4_1-2slots, smollm2-q8_0, tiny-f16, tiny-f16-ngram"
    assert re.search(rf"Known presets: {known}, tiny-f16-spec, tiny-f32, tiny-q4_0, tiny-q5_0, tiny-q8_0\b", message)
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
