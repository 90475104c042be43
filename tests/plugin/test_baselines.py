"""--baseline as users drive it: which stored result a preset id reads, which runs may replace it, and the
errors that must come before any server starts.

The runs attach to the scripted peer (tests/peers/scripted_server.py) through `driver: external` presets:
what is tested is which file is stored and read, never a figure, and the peer's answers are fixed so a
clean run is clean. The one test that must show that no server booted uses the real llama-server.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import pytest
from peers.scripted_server import ScriptedPeer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

SUITE_A = """
import pytest

@pytest.mark.level(points=10)
def test_copy(llm):
    assert llm.complete("copy abc=").content == "abc"

@pytest.mark.level(points=10)
def test_reverse(llm):
    assert llm.complete("reverse abc=").content == "cba"
"""

SUITE_B = """
import pytest

@pytest.mark.level(points=10)
def test_count(llm):
    assert llm.complete("count abc=").content == "3"
"""

ANSWERS = {"copy abc=": "abc", "reverse abc=": "cba", "count abc=": "3"}


@pytest.fixture(autouse=True)
def _server_for_pytester() -> None:
    """Overrides tests/plugin/conftest.py's fixture: these runs attach to the scripted peer and need no
    llama-server, except the one test that asks for it by name."""


@pytest.fixture(scope="module")
def peer() -> Iterator[ScriptedPeer]:
    server = ScriptedPeer({"good": ANSWERS}).start()
    yield server
    server.stop()


@pytest.fixture
def project(pytester: pytest.Pytester, peer: ScriptedPeer) -> pytest.Pytester:
    """Two suites (directories a/ and b/, one module each) and two presets attached to the peer."""
    pytester.mkpydir("a").joinpath("test_a.py").write_text(SUITE_A)
    pytester.mkpydir("b").joinpath("test_b.py").write_text(SUITE_B)
    for name in ("peer-a", "peer-b"):
        preset(pytester, name, f"driver: external\nbase_url: {peer.url('good')}\n")
    return pytester


def preset(pytester: pytest.Pytester, name: str, body: str) -> None:
    directory = pytester.path / "presets"
    directory.mkdir(exist_ok=True)
    (directory / f"{name}.yaml").write_text(f"id: {name}\n{body}")


def run(pytester: pytest.Pytester, suite: str, *args: str) -> pytest.RunResult:
    return pytester.runpytest(suite, "--preset-dir", "presets", "--iterations", "2", "-p", "no:cacheprovider", *args)


def run_id(result: pytest.RunResult) -> str:
    """The run id in the run's `results: .quantgate/runs/<id>/<preset>/result.json` line."""
    match = re.search(r"^results: .*/runs/([^/]+)/", result.stdout.str(), re.MULTILINE)
    assert match, result.stdout.str()
    return match.group(1)


def stored(pytester: pytest.Pytester, preset_id: str) -> list[Path]:
    return sorted((pytester.path / ".quantgate" / "results" / preset_id).glob("*.json"))


def test_a_run_with_errors_does_not_replace_the_stored_baseline(project: pytest.Pytester) -> None:
    clean = run(project, "a", "--preset", "peer-a")
    assert clean.ret == pytest.ExitCode.OK, clean.stdout.str()
    first = run_id(clean)
    clean.stdout.fnmatch_lines(["peer-a: stored as the latest result of suite a/test_a.py: *"])
    # The same preset again, now with a server that never starts: four errored level runs.
    preset(project, "peer-a", "driver: command\ncommand: [/bin/false]\nstartup_timeout: 30\n")
    broken = run(project, "a", "--preset", "peer-a")
    assert broken.ret == pytest.ExitCode.TESTS_FAILED
    broken.assert_outcomes(errors=4)
    broken.stdout.fnmatch_lines(
        ["peer-a: not stored as a baseline (4 level run(s) errored): only a complete run without errors replaces one"]
    )
    [path] = stored(project, "peer-a")
    assert json.loads(path.read_text())["run_id"] == first

    compared = run(project, "a", "--preset", "peer-b", "--baseline", "peer-a")
    compared.stdout.fnmatch_lines([f"baseline: {path} (run {first}, started *)", "verdict *; preset peer-b vs peer-a"])
    assert "errored level run" not in compared.stdout.str()


def test_an_interrupted_run_does_not_replace_the_stored_baseline(project: pytest.Pytester) -> None:
    first = run_id(run(project, "a", "--preset", "peer-a"))
    project.makeconftest(
        """
        import pytest
        def pytest_runtest_logreport(report):
            if report.when == "call" and "iter-02" in report.nodeid:
                pytest.exit("stopped by hand", returncode=pytest.ExitCode.INTERRUPTED)
        """
    )
    interrupted = run(project, "a", "--preset", "peer-a")
    assert interrupted.ret == pytest.ExitCode.INTERRUPTED
    interrupted.stdout.fnmatch_lines(["peer-a: not stored as a baseline (the run was interrupted): *"])
    [path] = stored(project, "peer-a")
    assert json.loads(path.read_text())["run_id"] == first


def test_a_run_stopped_by_maxfail_does_not_replace_the_stored_baseline(project: pytest.Pytester) -> None:
    first = run_id(run(project, "a", "--preset", "peer-a"))
    (project.path / "a" / "test_a.py").write_text(
        SUITE_A + "\n@pytest.mark.level(points=1)\ndef test_once(llm, quantgate_iteration):\n"
        "    assert quantgate_iteration == 1\n"
    )
    stopped = run(project, "a", "--preset", "peer-a", "-x")  # iteration 2 of 2 is cut short
    assert stopped.ret == pytest.ExitCode.TESTS_FAILED
    stopped.stdout.fnmatch_lines(["peer-a: not stored as a baseline (the run was interrupted): *"])
    [path] = stored(project, "peer-a")
    assert json.loads(path.read_text())["run_id"] == first


def test_the_stored_baseline_is_the_one_of_the_suite_being_run(project: pytest.Pytester) -> None:
    on_a = run(project, "a", "--preset", "peer-a")
    on_b = run(project, "b", "--preset", "peer-a")  # the latest run of the preset, on another suite
    assert on_a.ret == on_b.ret == pytest.ExitCode.OK
    assert len(stored(project, "peer-a")) == 2

    for suite, earlier in (("a", on_a), ("b", on_b)):
        compared = run(project, suite, "--preset", "peer-b", "--baseline", "peer-a")
        compared.stdout.fnmatch_lines(
            [
                "*peer-b against the baseline peer-a*",
                f"baseline: */peer-a/test_{suite}-*.json (run {run_id(earlier)}, started *)",
                "verdict *; preset peer-b vs peer-a",
            ]
        )


def test_a_stored_result_of_an_earlier_version_is_still_read(project: pytest.Pytester) -> None:
    """Earlier versions kept one `results/<preset>.json`; with nothing stored per suite it is the baseline."""
    first = run_id(run(project, "a", "--preset", "peer-a"))
    [path] = stored(project, "peer-a")
    legacy = path.parents[1] / "peer-a.json"
    path.rename(legacy)
    path.parent.rmdir()
    compared = run(project, "a", "--preset", "peer-b", "--baseline", "peer-a")
    compared.stdout.fnmatch_lines([f"baseline: {legacy} (run {first}, *", "verdict *; preset peer-b vs peer-a"])


def test_a_preset_without_a_stored_result_for_this_suite_is_a_usage_error(project: pytest.Pytester) -> None:
    run(project, "b", "--preset", "peer-a")
    result = run(project, "a", "--preset", "peer-b", "--baseline", "peer-a")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--baseline 'peer-a' has no stored result for the suite being run (a/test_a.py; *stored: */test_b-*.json*"]
    )
    assert not list(project.path.glob(".quantgate/runs/*/peer-b/result.jsonl"))  # nothing ran


def test_a_baseline_of_another_suite_is_refused_before_any_server_starts(
    project: pytest.Pytester, llama_server_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUANTGATE_LLAMA_SERVER", str(llama_server_bin))
    run(project, "b", "--preset", "peer-a")
    [other_suite] = stored(project, "peer-a")
    result = run(project, "a", "--preset", "tiny-f16", "--baseline", str(other_suite))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"*the baseline {other_suite} (run *) comes from another suite: it holds the suite b/test_b.py "
            "(levels b/test_b.py::test_count), this run collected a/test_a.py (levels a/test_a.py::test_copy, "
            "a/test_a.py::test_reverse), and no level is in both*"
        ]
    )
    assert not list(project.path.glob(".quantgate/runs/*/tiny-f16/server.*"))  # no server was started


def test_under_xdist_a_baseline_of_another_suite_is_refused_before_any_level(
    project: pytest.Pytester, peer: ScriptedPeer
) -> None:
    run(project, "b", "--preset", "peer-a")
    [other_suite] = stored(project, "peer-a")
    asked = len(peer.requests)
    result = run(project, "a", "-n", "2", "--preset", "peer-b", "--baseline", str(other_suite))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*comes from another suite: it holds the suite b/test_b.py*a/test_a.py*"])
    assert len(peer.requests) == asked


NOT_UTF8 = b'{"kind": "pytest-quantgate-result", "note": "caf\xe9"}'
BAD_FILES = {
    "not-utf8": (NOT_UTF8, "is not UTF-8 text (byte 0xe9 at offset *)"),
    "truncated": (b'{"kind": "pytest-quantgate-result", "schema_', "is not valid JSON (*)"),
    "not-json": (b"baseline: tiny-f16\n", "is not valid JSON (*)"),
    "wrong-shape": (b"[1, 2, 3]", "is not a pytest-quantgate result file (no kind: 'pytest-quantgate-result')"),
    "other-version": (b'{"kind": "pytest-quantgate-result", "schema_version": 7}', "has schema version 7; *"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_a_baseline_file_that_cannot_be_read_is_a_usage_error_naming_it(project: pytest.Pytester, case: str) -> None:
    content, why = BAD_FILES[case]
    (project.path / "base.json").write_bytes(content)
    result = run(project, "a", "--preset", "peer-b", "--baseline", "base.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --baseline {project.path / 'base.json'} {why}*"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
