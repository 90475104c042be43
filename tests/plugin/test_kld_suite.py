"""The KLD suite as users run it: --reference, gates on the recorded figures, the summary, kld.json, and the
reference read from the cache by a later run (real tiny llama-server; the cache under a temporary
QUANTGATE_CACHE_DIR)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

SUITE = Path(__file__).resolve().parents[2] / "example_suites" / "kld"


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.Pytester:
    monkeypatch.setenv("QUANTGATE_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("pytest.ini", "test_kld.py"):
        shutil.copy(SUITE / name, pytester.path / name)
    ini = pytester.path / "pytest.ini"
    ini.write_text(ini.read_text().replace("quantgate_dir = ../../.quantgate", "quantgate_dir = .quantgate"))
    return pytester


def test_kld_suite_gates_and_summarises_two_candidates(suite: pytest.Pytester, tmp_path: Path) -> None:
    args = ["--reference", "tiny-f16", "--preset", "tiny-q8_0", "--preset", "tiny-q4_0"]
    gates = ["--gate", "kld_mean <= 0.05", "--gate", "top1_mean >= 95"]
    result = suite.runpytest(*args, *gates)
    assert result.ret == 1  # the KLD gate of tiny-q4_0
    text = result.stdout.str()
    assert "quantgate: KL divergence against the reference" in text
    assert "reference tiny-f16; K = 40; corpus tiny; intervals clustered by document" in text
    result.stdout.fnmatch_lines(["*gate*kld_mean<=0.05*preset tiny-q4_0*", "paired by position: *: tiny-q8_0"])
    (q4,) = suite.path.glob(".quantgate/runs/*/tiny-q4_0/kld.json")
    data = json.loads(q4.read_text())
    assert data["cache"] == "hit"  # the reference ran once, for tiny-q8_0
    assert data["figures"][0]["kld_mean"] > 0.05 and len(data["documents"]) == 360
    assert len(list((tmp_path / "cache" / "kld").glob("ref-*.qgkld"))) == 1

    again = suite.runpytest("--reference", "tiny-f16", "--preset", "tiny-q8_0", "--baseline", "tiny-q8_0",
                            "--preset", "tiny-q4_0")  # fmt: skip
    again.stdout.fnmatch_lines(["tiny-q4_0 vs baseline tiny-q8_0 (margins 0.01 nats, 2 top-1 points): INFERIOR*"])

    # The baseline from an earlier run: its kld.json is found in the runs directory.
    stored = suite.runpytest("--reference", "tiny-f16", "--preset", "tiny-q4_0", "--baseline", "tiny-q8_0")
    stored.stdout.fnmatch_lines(["tiny-q4_0 vs baseline tiny-q8_0 (margins 0.01 nats, 2 top-1 points): INFERIOR*"])


def test_a_kld_level_without_a_reference_says_how_to_give_one(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--preset", "tiny-q4_0")
    result.stdout.fnmatch_lines(["*a KLD level needs a reference model: run with --reference PRESET*"])
    assert result.ret != 0


def test_an_unknown_kld_method_names_the_ini_option_and_the_choices(suite: pytest.Pytester) -> None:
    ini = suite.path / "pytest.ini"
    ini.write_text(ini.read_text() + "quantgate_kld_method = sideways\n")
    result = suite.runpytest("--reference", "tiny-f16", "--preset", "tiny-q4_0")
    result.stdout.fnmatch_lines(["*ini option quantgate_kld_method = 'sideways': use auto, forced or prefixes*"])
    assert result.ret != 0
