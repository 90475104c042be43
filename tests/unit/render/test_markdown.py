"""Tests of pytest_quantgate.render.markdown and `quantgate report`: the Markdown report, with and without plots."""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest
from result_builders import make_result, tiny_levels

from pytest_quantgate import cli
from pytest_quantgate.errors import ResultsError
from pytest_quantgate.render.markdown import PLOTS_HINT, md_table, write_report
from pytest_quantgate.results import GateRecord, ResultFile

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


@pytest.fixture
def run_dir(tmp_path):
    """A run's preset directory with the candidate's result.json, and a stored baseline beside it."""
    directory = tmp_path / "runs" / "r2" / "tiny-q4_0"
    directory.mkdir(parents=True)
    candidate = make_result(
        "tiny-q4_0", tiny_levels(15, {"test_add3": 10}), context_size=8192, memory_ceiling_mb=5000.0
    )
    (directory / "result.json").write_text(candidate.model_dump_json(), encoding="utf-8")
    stored = tmp_path / "results"
    stored.mkdir()
    (stored / "tiny-f16.json").write_text(make_result("tiny-f16", tiny_levels(15)).model_dump_json(), "utf-8")
    return directory


@pytest.fixture
def no_matplotlib(monkeypatch):
    # None in sys.modules makes an import raise ImportError; submodules too, in case an earlier test loaded them.
    for name in [m for m in sys.modules if m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


def test_report_without_baseline(run_dir, no_matplotlib) -> None:
    path = write_report(run_dir / "result.json")
    assert path == run_dir / "report.md"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# tiny-q4_0 (`tiny-q4_0`): quantgate report")
    for heading in ("## TL;DR", "## Per-level pass rates", "## Per iteration", "## Plots", "## Provenance"):
        assert f"\n{heading}\n" in text
    assert "| test_add3 | 15 | 5/15 | 33.3 % |" in text
    assert "| 15 | 85.0 | 85 |" in text  # iteration 15: test_add3 missed
    assert "## Recommendation" not in text and "## Caveats" not in text


@pytest.mark.parametrize(
    ("passed", "shown"),
    [([False, False, True], "FAIL (2 of 3 gates failed)"), ([True, True], "PASS (2 gates)"), ([], "no gates")],
)
def test_the_tldr_says_how_many_gates_failed_as_the_terminal_does(run_dir, no_matplotlib, passed, shown) -> None:
    result = ResultFile.model_validate_json((run_dir / "result.json").read_text(encoding="utf-8"))
    gates = [GateRecord(id=f"score_mean>={i}", passed=p, observed=85.0, message="", source="option")
             for i, p in enumerate(passed)]  # fmt: skip
    (run_dir / "result.json").write_text(result.model_copy(update={"gates": gates}).model_dump_json(), "utf-8")
    text = write_report(run_dir / "result.json").read_text(encoding="utf-8")
    (tldr,) = [line for line in text.splitlines() if line.startswith("| tiny-q4_0 |")]
    assert tldr.endswith(f"| {shown} |")


def test_report_without_matplotlib_says_how_to_get_plots(run_dir, no_matplotlib) -> None:
    text = write_report(run_dir / "result.json").read_text(encoding="utf-8")
    assert "Plots skipped: matplotlib is not installed" in text
    assert PLOTS_HINT in text
    assert not list(run_dir.glob("*.png"))


def test_report_against_a_baseline(run_dir, no_matplotlib) -> None:
    baseline = run_dir.parents[2] / "results" / "tiny-f16.json"
    text = write_report(run_dir / "result.json", baseline=baseline).read_text(encoding="utf-8")
    assert "| tiny-f16 (baseline) |" in text and "| tiny-q4_0 (candidate) |" in text
    assert "**verdict keep: score Δ" in text
    assert "\n## Recommendation\n" in text
    assert "| memory ceiling | — | 5,000 MB | within |" in text
    assert "| test_add3 | 15 | 15/15 100.0% | 5/15  33.3% | −66.7 |" in text
    assert "\n## Caveats\n" in text and "- context size: 4096 → 8192" in text
    assert "| context size | `8192` | `4096` |" in text  # provenance, both columns
    assert text.rstrip().endswith("preset tiny-q4_0 vs tiny-f16")


def test_report_beside_a_stored_result_is_named_after_it(run_dir, no_matplotlib) -> None:
    stored = run_dir.parents[2] / "results" / "tiny-f16.json"
    assert write_report(stored) == stored.with_name("tiny-f16-report.md")


def test_report_to_an_unwritable_place_is_an_error_naming_it(run_dir, tmp_path, no_matplotlib) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(ResultsError, match=r"cannot write the report to .*file/out/r\.md.*-o PATH"):
        write_report(run_dir / "result.json", output=blocker / "out" / "r.md")


def test_report_with_matplotlib_writes_and_links_the_plots(run_dir, tmp_path) -> None:
    if not HAVE_MATPLOTLIB:
        if os.environ.get("QUANTGATE_REQUIRE_PLOTS") == "1":
            pytest.fail(f"QUANTGATE_REQUIRE_PLOTS=1 but matplotlib is not importable: {PLOTS_HINT}")
        pytest.skip(f"matplotlib is not installed ({PLOTS_HINT}); QUANTGATE_REQUIRE_PLOTS=1 makes this a failure")
    baseline = run_dir.parents[2] / "results" / "tiny-f16.json"
    out = tmp_path / "out" / "cmp.md"
    text = write_report(run_dir / "result.json", baseline=baseline, output=out).read_text(encoding="utf-8")
    for name, title in (("score", "score per iteration"), ("tps", "tokens/s per iteration"), ("memory", "memory")):
        png = out.with_name(f"cmp-{name}.png")
        assert png.read_bytes().startswith(PNG_MAGIC)
        assert f"![{title}" in text and f"](cmp-{name}.png)" in text
    assert "Plots skipped" not in text


def test_cli_report(run_dir, capsys, no_matplotlib) -> None:
    baseline = run_dir.parents[2] / "results" / "tiny-f16.json"
    out = run_dir / "r.md"
    assert cli.main(["report", str(run_dir / "result.json"), "--baseline", str(baseline), "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert "verdict keep" in out.read_text(encoding="utf-8")
    assert cli.main(["report", str(run_dir / "nothing.json")]) == 2
    assert "quantgate: error: " in capsys.readouterr().err


def test_md_table_escapes_pipes() -> None:
    assert md_table(["a", "b"], [["x|y", "1"]], right=frozenset({1})) == "| a | b |\n| --- | ---: |\n| x\\|y | 1 |"
