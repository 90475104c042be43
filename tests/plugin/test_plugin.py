"""The plugin as users drive it, through pytester, against the real llama-server and the tiny model."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from pytest_quantgate.results import stored_path

pytestmark = pytest.mark.usefixtures("llama_server_bin")

LEVELS = """
import pytest
from pytest_quantgate.tinymodel import tasks

def ask(llm, task, item):
    return llm.complete(tasks.prompt(task, item)).content

@pytest.mark.level(points=10)
def test_copy(llm):
    assert tasks.is_correct("copy", "abc", ask(llm, "copy", "abc"))

@pytest.mark.level(points=30)
def test_impossible(llm):
    answer = ask(llm, "copy", "abc")
    assert answer == "never", f"got {answer!r}"
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_demo_levels=LEVELS)
    return pytester


def outcomes(result: pytest.RunResult) -> dict[str, int]:
    return {k: v for k, v in result.parseoutcomes().items() if k not in ("seconds", "warnings")}


def result_files(root: Path) -> list[Path]:
    return sorted(root.glob(".quantgate/runs/*/*/result.json"))


def test_a_level_without_a_preset_errors_with_what_to_do(suite: pytest.Pytester) -> None:
    result = suite.runpytest("-k", "copy")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no model was given: run with --preset NAME*"])


def test_unknown_preset_is_a_usage_error_listing_known_ones(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--preset", "tiny-f17")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*no preset named 'tiny-f17'. Known presets:*tiny-f16*"])


def test_unknown_level_mark_argument_names_the_allowed_ones(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        @pytest.mark.level(pionts=5)
        def test_x(llm):
            pass
        """
    )
    result = pytester.runpytest("--preset", "tiny-f16")
    assert result.ret == pytest.ExitCode.INTERRUPTED  # a collection error stops the session
    result.stdout.fnmatch_lines(["*unknown argument(s) 'pionts' to @pytest.mark.level; allowed: points, name, iter*"])


def test_gate_on_unknown_metric_lists_the_known_metrics(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--preset", "tiny-f16", "--gate", "score_avg>=3")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown metric 'score_avg'; known metrics: score_mean, score_sigma*"])


def test_iterations_parametrize_levels_with_readable_ids(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--preset", "tiny-f16", "--iterations", "3", "-v", "--gate", "score_mean>=0")
    result.stdout.fnmatch_lines(
        [
            "*test_copy?iter-01? PASSED*",
            "*test_impossible?iter-01? MISSED*",
            "*quantgate tiny-f16 iteration 1/3: 25.0 % (running mean 25.0 %)*",
            "*test_copy?iter-03? PASSED*",
        ]
    )
    assert outcomes(result) == {"passed": 5, "missed": 3}  # 3 copies + 2 gates (score, memory ceiling)


def test_ini_and_mark_iterations(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nquantgate_iterations = 2\n")
    pytester.makepyfile(
        """
        import pytest
        @pytest.mark.level(points=1)
        def test_ini(llm):
            pass
        @pytest.mark.level(points=1, iterations=4)
        def test_mark(llm):
            pass
        """
    )
    result = pytester.runpytest("--preset", "tiny-f16", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*6 tests collected*"])
    assert not list(pytester.path.glob(".quantgate/runs/*/*/result.jsonl"))  # nothing ran, nothing written


def test_a_run_that_ends_before_its_first_level_keeps_the_stored_result(suite: pytest.Pytester) -> None:
    """-x stops at an ordinary test (they run before the levels): no empty result replaces the stored one."""
    stored = stored_path(suite.path / ".quantgate" / "results", "tiny-f16", "test_demo_levels.py")
    stored.parent.mkdir(parents=True)
    stored.write_text("{}")
    suite.makepyfile(test_plain="def test_plain():\n    assert False\n")
    result = suite.runpytest("-x", "--preset", "tiny-f16", "--iterations", "1")
    result.assert_outcomes(failed=1)
    assert stored.read_text() == "{}"
    assert result_files(suite.path) == []


def test_failed_gate_fails_the_run_with_a_house_style_message(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--preset", "tiny-f16", "--iterations", "2", "--gate", "score_mean>=95")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            # Greedy: both iterations give the same answers, and no zero-width interval is made of them.
            "*gate[[]score_mean>=95[]] failed: score mean 25.0 < 95.0 (n=2, σ=0.0, no CI: every iteration gave "
            "the same value, preset tiny-f16)*",
            "*FAIL (1 of 2 gates failed)*",
        ]
    )


def test_passing_gates_exit_zero_even_with_misses(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--preset", "tiny-f16", "--iterations", "2", "--gate", "score_mean>=25")
    assert result.ret == pytest.ExitCode.OK
    assert outcomes(result) == {"passed": 4, "missed": 2}  # 2 copies + 2 gates (score, memory ceiling)


def test_without_any_gate_a_miss_fails_like_a_test(suite: pytest.Pytester, tmp_path: Path) -> None:
    preset = tmp_path / "ungated.yaml"
    model = Path(__file__).parents[2] / "pytest_quantgate" / "models" / "tiny-f16.gguf"
    preset.write_text(f"id: ungated\nmodel: {model}\nsampler: {{temperature: 0}}\nrequest: {{max_tokens: 8}}\n")
    result = suite.runpytest("--preset", str(preset), "--iterations", "1")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=1)


def test_gates_are_junit_testcases(suite: pytest.Pytester) -> None:
    suite.runpytest("--preset", "tiny-f16", "--iterations", "2", "--gate", "score_mean>=95", "--junitxml=out.xml")
    xml = (suite.path / "out.xml").read_text()
    assert 'name="gate[score_mean&gt;=95]"' in xml
    assert "score mean 25.0 &lt; 95.0" in xml


def test_results_and_artifacts_are_written(suite: pytest.Pytester) -> None:
    suite.runpytest("--preset", "tiny-f16", "--iterations", "2", "--gate", "score_mean>=0")
    [final] = result_files(suite.path)
    data = json.loads(final.read_text())
    assert data["complete"] is True
    assert data["preset"]["id"] == "tiny-f16"
    assert data["preset"]["binary_version"].startswith("version:")
    assert data["preset"]["model_digest"].startswith("sha256:")
    assert len(data["samples"]) == 4
    assert {g["id"] for g in data["gates"]} == {"score_mean>=0", "memory_mb<=128"}
    assert data["server"]["load_s"] > 0
    assert (final.parent / "result.jsonl").read_text().count('"sample"') == 4
    lines = (final.parent / "iter-02.jsonl").read_text(encoding="utf-8").splitlines()
    artifact = next(json.loads(line) for line in lines if json.loads(line)["name"] == "test_impossible")
    assert artifact["outcome"] == "failed"
    assert "never" in artifact["validator"]
    assert artifact["requests"][0]["prompt"] == "copy abc="
    assert stored_path(suite.path / ".quantgate" / "results", "tiny-f16", "test_demo_levels.py").is_file()


def test_two_presets_side_by_side(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--preset", "tiny-f16", "--preset", "tiny-q4_0", "--iterations", "1", "-k", "copy")
    result.stdout.fnmatch_lines(["*tiny-f16 *", "*tiny-q4_0 *", "*Δ tiny-q4_0 − tiny-f16*"])
    assert len(result_files(suite.path)) == 2


def test_xdist_workers_share_one_server_and_gates_run_once(suite: pytest.Pytester) -> None:
    result = suite.runpytest("-n", "2", "--preset", "tiny-f16", "--iterations", "3", "--gate", "score_mean>=25",
                             "--junitxml=out.xml")  # fmt: skip
    assert result.ret == pytest.ExitCode.OK
    xml = (suite.path / "out.xml").read_text()
    assert xml.count('name="gate[score_mean&gt;=25]"') == 1
    [state] = suite.path.glob(".quantgate/runs/*/tiny-f16/server.json")
    server = json.loads(state.read_text())
    assert server["stopped"] is True
    assert server["refcount"] == 0
    assert (state.parent / "server.log").read_text().count("llama_server: initializing") == 1  # one start


def test_corrupt_gguf_fails_fast_quoting_the_server(suite: pytest.Pytester, tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    preset = tmp_path / "bad.yaml"
    preset.write_text(f"id: bad\nmodel: {bad}\nstartup_timeout: 20\n")
    result = suite.runpytest("--preset", str(preset), "--iterations", "2")
    assert result.ret != 0
    result.assert_outcomes(errors=4)
    text = result.stdout.str()
    assert "the server exited with code" in text
    assert "command: " in text and "bad.gguf" in text
    assert "gguf" in text.lower() and "--- last lines of the server log ---" in text


def test_server_death_mid_run_fails_the_rest_fast_and_keeps_what_was_measured(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        textwrap.dedent(
            """
            import os, signal
            import pytest

            @pytest.mark.level(points=1)
            def test_ask(llm, quantgate_server, quantgate_iteration):
                if quantgate_iteration == 2:
                    os.killpg(quantgate_server.info.pid, signal.SIGKILL)
                    import time; time.sleep(0.3)
                llm.complete("copy abc=")
            """
        )
    )
    result = pytester.runpytest("--preset", "tiny-f16", "--iterations", "4", "--gate", "score_mean>=0")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*is no longer running; the remaining levels of this preset fail at once*"])
    assert result.duration < 30
    [stream] = pytester.path.glob(".quantgate/runs/*/tiny-f16/result.jsonl")
    samples = [json.loads(line)["sample"] for line in stream.read_text().splitlines() if '"sample"' in line]
    assert [s["outcome"] for s in samples] == ["passed", "error", "error", "error"]
