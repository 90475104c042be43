"""A preset's draft (speculative decoding): our draft: block, and the flags gpumod and llama-swap carry."""

from __future__ import annotations

from pathlib import Path

import pytest
from preset_helpers import load_one, write

from pytest_quantgate.errors import PresetError, ServerStartError
from pytest_quantgate.presets import load_file, resolve
from pytest_quantgate.presets.draft import Draft, draft_from_args
from pytest_quantgate.server import spec_for


def test_a_draft_model_becomes_its_flags_and_defaults_to_the_draft_model_type(tmp_path: Path) -> None:
    path = write(tmp_path, "lane.yaml", """
        id: lane
        model: main.gguf
        extra_args: ["--threads", "2"]
        draft:
          model: small.gguf
          n_max: 4
          args: ["--spec-draft-ngl", "99"]
        """)  # fmt: skip
    preset = load_one(path)
    assert preset.draft == Draft(tmp_path / "small.gguf", "draft-simple", 4, ("--spec-draft-ngl", "99"))
    assert preset.extra_args == (
        "--threads", "2", "-md", str(tmp_path / "small.gguf"), "--spec-type", "draft-simple",
        "--spec-draft-n-max", "4", "--spec-draft-ngl", "99",
    )  # fmt: skip
    assert preset.draft.describe() == "draft-simple with small.gguf (n_max 4)"


def test_an_ngram_draft_needs_no_model(tmp_path: Path) -> None:
    preset = load_one(write(tmp_path, "ngram.yaml", "id: ngram\nmodel: m.gguf\ndraft: {spec_type: ngram-simple}\n"))
    assert preset.draft == Draft(None, "ngram-simple")
    assert preset.extra_args[-2:] == ("--spec-type", "ngram-simple")


@pytest.mark.parametrize(
    ("draft", "message"),
    [
        ("{n_max: 3}", "draft needs a model .* or a spec_type"),
        ("{model: d.gguf, layers: 3}", "layers"),
        ("{spec_type: ''}", "spec_type"),
    ],
)
def test_a_draft_that_says_nothing_or_too_much_is_an_error(tmp_path: Path, draft: str, message: str) -> None:
    with pytest.raises(PresetError, match=message):
        load_file(write(tmp_path, "bad.yaml", f"id: bad\nmodel: m.gguf\ndraft: {draft}\n"))


def test_draft_flags_in_extra_args_and_a_draft_block_is_an_error(tmp_path: Path) -> None:
    text = "id: twice\nmodel: m.gguf\nextra_args: ['-md', 'x.gguf']\ndraft: {model: d.gguf}\n"
    with pytest.raises(PresetError, match="-md in extra_args and a draft: block"):
        load_file(write(tmp_path, "twice.yaml", text))


def test_a_gpumod_file_with_draft_flags_loads_its_draft(tmp_path: Path) -> None:
    path = write(tmp_path, "g.yaml", """
        id: g
        driver: llamacpp
        port: 7000
        unit_vars:
          model_path: /models/big.gguf
          extra_args: "--model-draft /models/small.gguf --spec-draft-n-max 5 --spec_type draft-simple"
        """)  # fmt: skip
    preset = load_one(path)
    assert preset.draft == Draft(Path("/models/small.gguf"), "draft-simple", 5)


def test_a_llama_swap_entry_with_a_spec_type_loads_its_draft(tmp_path: Path) -> None:
    path = write(tmp_path, "config.yaml", """
        models:
          fast:
            cmd: |
              llama-server --port ${PORT} -m /m/q4.gguf
              --spec-type ngram-simple --spec-ngram-simple-size-n 4
          plain:
            cmd: llama-server --port ${PORT} -m /m/q4.gguf
        """)  # fmt: skip
    presets = {p.id: p for p in load_file(path)}
    assert presets["fast"].draft == Draft(None, "ngram-simple", None, ("--spec-ngram-simple-size-n", "4"))
    assert presets["plain"].draft is None


def test_spec_type_none_is_no_draft() -> None:
    assert draft_from_args(["--spec-type", "none"]) is None
    assert draft_from_args(["--threads", "2"]) is None


def test_the_shipped_draft_presets_point_at_shipped_models() -> None:
    spec = resolve("tiny-f16-spec")
    assert spec.draft is not None and spec.draft.model is not None and spec.draft.model.is_file()
    assert resolve("tiny-f16-ngram").draft == Draft(
        None, "ngram-simple", None, ("--spec-ngram-simple-size-n", "4", "--spec-ngram-simple-size-m", "8")
    )


def test_a_missing_draft_model_fails_the_start_naming_preset_and_key(tmp_path: Path) -> None:
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    preset = load_one(write(tmp_path, "p.yaml", "id: nodraft\nmodel: m.gguf\ndraft: {model: gone.gguf}\n"))
    with pytest.raises(ServerStartError, match=r"preset 'nodraft' .*draft model file .*gone.gguf.* fix 'draft.model'"):
        spec_for(preset)
