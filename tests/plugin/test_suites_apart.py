"""Several suites in one run are kept apart: a score, gates, a verdict and a result file per (preset, suite),
where a suite is a test module; `--baseline` compares suite with suite.

The runs attach to the scripted peer (tests/peers/scripted_server.py) through `driver: external` presets:
its answers are fixed, so suite a scores 100 % and suite b 50 % on every iteration, and a combined score
(75 %) would fail both modules' gates below.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from peers.scripted_server import ScriptedPeer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

SUITE_A = """
import pytest

pytestmark = pytest.mark.gate("score_mean >= 90")

@pytest.mark.level(points=10)
def test_copy(llm):
    assert llm.complete("copy abc=").content == "abc"

@pytest.mark.level(points=10)
def test_reverse(llm):
    assert llm.complete("reverse abc=").content == "cba"
"""

SUITE_B = """
import pytest

pytestmark = pytest.mark.gate("score_mean <= 60")

@pytest.mark.level(points=10)
def test_count(llm):
    assert llm.complete("count abc=").content == "3"

@pytest.mark.level(points=10)
def test_count_wrong(llm):
    assert llm.complete("count abcd=").content == "4"
"""

ANSWERS = {"copy abc=": "abc", "reverse abc=": "cba", "count abc=": "3", "count abcd=": "5"}


@pytest.fixture(autouse=True)
def _server_for_pytester() -> None:
    """Overrides tests/plugin/conftest.py's fixture: these runs attach to the scripted peer."""


@pytest.fixture(scope="module")
def peer() -> Iterator[ScriptedPeer]:
    server = ScriptedPeer({"good": ANSWERS}).start()
    yield server
    server.stop()


@pytest.fixture
def project(pytester: pytest.Pytester, peer: ScriptedPeer) -> pytest.Pytester:
    """Two suites, a/test_a.py and b/test_b.py, and two presets attached to the peer."""
    pytester.mkpydir("a").joinpath("test_a.py").write_text(SUITE_A)
    pytester.mkpydir("b").joinpath("test_b.py").write_text(SUITE_B)
    directory = pytester.path / "presets"
    directory.mkdir()
    for name in ("peer-a", "peer-b"):
        (directory / f"{name}.yaml").write_text(f"id: {name}\ndriver: external\nbase_url: {peer.url('good')}\n")
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(
        "a", "b", "--preset-dir", "presets", "--iterations", "2", "-p", "no:cacheprovider", "-v", *args
    )


def results(pytester: pytest.Pytester, preset_id: str) -> dict[str, dict[str, object]]:
    """The run's result.json files of *preset_id*, by suite."""
    found = {}
    for path in (pytester.path / ".quantgate" / "runs").glob(f"*/{preset_id}/*/result.json"):
        data = json.loads(path.read_text())
        suites = {s["level"].partition("::")[0] for s in data["samples"]}
        assert len(suites) == 1, path
        found[suites.pop()] = data
    return found


def test_each_suite_has_its_own_row_gates_and_result(project: pytest.Pytester) -> None:
    result = run(project, "--preset", "peer-a")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.OK, out  # each module's gate holds on its own suite's score
    result.stdout.re_match_lines(
        [r"peer-a · a/test_a\.py +2 +100\.0 .*PASS \(1 gates\)", r"peer-a · b/test_b\.py +2 +50\.0 .*PASS \(1 gates\)"]
    )
    result.stdout.fnmatch_lines(
        [
            "*quantgate::a/test_a::gate[[]score_mean>=90] PASSED*",
            "*quantgate::b/test_b::gate[[]score_mean<=60] PASSED*",
        ]
    )
    assert "Δ " not in out  # one preset on two suites is not a difference of two presets
    by_suite = results(project, "peer-a")
    assert sorted(by_suite) == ["a/test_a.py", "b/test_b.py"]
    assert [g["id"] for g in by_suite["a/test_a.py"]["gates"]] == ["score_mean>=90"]  # type: ignore[index]
    assert by_suite["b/test_b.py"]["summary"]["score"]["mean"] == 50.0  # type: ignore[index]
    stored = sorted(p.name for p in (project.path / ".quantgate" / "results" / "peer-a").glob("*.json"))
    assert [name.partition("-")[0] for name in stored] == ["test_a", "test_b"]


def test_a_gate_from_the_command_line_applies_to_each_suite(project: pytest.Pytester) -> None:
    result = run(project, "--preset", "peer-a", "--gate", "score_mean>=75")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*quantgate::a/test_a::gate[[]score_mean>=75] PASSED*",
            "*quantgate::b/test_b::gate[[]score_mean>=75] FAILED*",
        ]
    )


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_the_baseline_of_each_suite_is_its_own_stored_result(project: pytest.Pytester, xdist: list[str]) -> None:
    assert run(project, "--preset", "peer-a").ret == pytest.ExitCode.OK
    compared = run(project, "--preset", "peer-b", "--baseline", "peer-a", *xdist)
    out = compared.stdout.str()
    compared.stdout.fnmatch_lines_random(
        [
            "*quantgate::verdict[[]peer-b · a/test_a.py vs peer-a[]] *",
            "*quantgate::verdict[[]peer-b · b/test_b.py vs peer-a[]] *",
            "*baseline: */results/peer-a/test_a-*.json (run *",
            "*baseline: */results/peer-a/test_b-*.json (run *",
        ]
    )
    for suite in ("a/test_a.py", "b/test_b.py"):
        section = out.split(f"peer-b · {suite} against the baseline peer-a", 1)[1][:1500]
        assert "test_count" in section if suite.startswith("b") else "test_copy" in section, section
        assert ("test_copy" not in section) if suite.startswith("b") else ("test_count" not in section), section


def test_a_baseline_in_the_same_run_is_compared_suite_by_suite(project: pytest.Pytester) -> None:
    result = run(project, "--preset", "peer-a", "--preset", "peer-b", "--baseline", "peer-a")
    result.stdout.fnmatch_lines_random(
        [
            "*quantgate::peer-a::a/test_a::gate[[]score_mean>=90] PASSED*",
            "*quantgate::peer-b::b/test_b::gate[[]score_mean<=60] PASSED*",
            "*quantgate::verdict[[]peer-b · a/test_a.py vs peer-a[]] *",
            "*quantgate::verdict[[]peer-b · b/test_b.py vs peer-a[]] *",
        ]
    )
    assert len(results(project, "peer-a")) == len(results(project, "peer-b")) == 2


def test_a_result_file_over_both_suites_is_each_suite_s_baseline_for_its_own_levels(
    project: pytest.Pytester, tmp_path: Path
) -> None:
    """A result of an earlier version held every module of its run in one file: each suite is compared
    with its own levels of it, and its whole-run gates are not carried over."""
    assert run(project, "--preset", "peer-a").ret == pytest.ExitCode.OK
    by_suite = results(project, "peer-a")
    combined = dict(by_suite["a/test_a.py"])
    combined["samples"] = [*by_suite["a/test_a.py"]["samples"], *by_suite["b/test_b.py"]["samples"]]  # type: ignore[misc]
    path = project.path / "combined.json"
    path.write_text(json.dumps(combined))
    compared = run(project, "--preset", "peer-b", "--baseline", str(path))
    compared.stdout.fnmatch_lines_random(
        [
            "*quantgate::verdict[[]peer-b · a/test_a.py vs peer-a[]] *",
            "*quantgate::verdict[[]peer-b · b/test_b.py vs peer-a[]] *",
        ]
    )
    assert "only in" not in compared.stdout.str()  # no level of the other suite is reported missing
