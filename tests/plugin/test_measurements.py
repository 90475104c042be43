"""Measurements a level records with the ``measure`` fixture: gated, tabled, stored and compared."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.usefixtures("llama_server_bin")

MEASURED = """
import pytest
from pytest_quantgate.tinymodel import tasks

@pytest.mark.level(points=1)
def test_add(llm, measure, quantgate_iteration):
    answer = llm.complete(tasks.prompt("add2", "12+30"))
    measure("answer_chars", len(answer.content), unit="chars", better="neither")
    measure("chars_per_s", 1000.0 + quantgate_iteration, unit="chars/s")
"""


def test_a_recorded_measurement_is_gated_tabled_and_stored(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_measured=MEASURED)
    result = pytester.runpytest(
        "--preset", "tiny-f16", "--iterations", "3",
        "--gate", "chars_per_s_mean >= 1000", "--gate", "chars_per_s_max > 5000",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*failed: chars_per_s max 1003.0 <= 5000.0 (n=3, σ=1.0, 95% CI *",
            "*measurements (per iteration*",
            "*tiny-f16*chars_per_s*chars/s*higher*3*1,002.0*",
        ]
    )
    (path,) = sorted(pytester.path.glob(".quantgate/runs/*/tiny-f16/result.json"))
    stored = json.loads(path.read_text())
    gates = {g["id"]: g["passed"] for g in stored["gates"]}
    assert (gates["chars_per_s_mean>=1000"], gates["chars_per_s_max>5000"]) == (True, False)
    summary = stored["summary"]
    assert summary["measures"]["chars_per_s"]["per_iteration"] == [[1, 1001.0], [2, 1002.0], [3, 1003.0]]
    assert summary["measures"]["answer_chars"]["better"] == "neither"


def test_a_baseline_comparison_reports_a_measurements_change(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_measured=MEASURED)
    result = pytester.runpytest(
        "--preset", "tiny-f16", "--preset", "tiny-q8_0", "--baseline", "tiny-f16", "--iterations", "3",
    )  # fmt: skip
    result.stdout.fnmatch_lines(["*tiny-q8_0 against the baseline tiny-f16*", "*chars_per_s chars/s (median)*"])


def test_a_bad_measurement_fails_the_level_naming_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.level
        def test_x(llm, measure):
            measure("Chars Per S", 1.0)
        """
    )
    result = pytester.runpytest("--preset", "tiny-f16", "--iterations", "1")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*measurement name 'Chars Per S' must be lower-case letters*"])
