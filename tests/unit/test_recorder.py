"""Tests of pytest_quantgate.recorder without pytest's reports or a server: samples from plain values and the
results stream."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from pytest_quantgate.completion import Completion, Timings
from pytest_quantgate.config import RunConfig
from pytest_quantgate.errors import ServerDiedError
from pytest_quantgate.keys import LevelInfo
from pytest_quantgate.levels import LevelSpec
from pytest_quantgate.measures import Measurement
from pytest_quantgate.presets import Preset
from pytest_quantgate.recorder import (
    Part,
    Recorder,
    level_error,
    level_outcome,
    level_sample,
    one_line,
)
from pytest_quantgate.results import load_result

if TYPE_CHECKING:
    from pathlib import Path

LEVEL = LevelInfo(LevelSpec(points=25.0), "test_tiny.py::test_copy", "test_copy", ("pass_rate >= 0.5",))


def never() -> str:
    raise AssertionError("the report's text was rendered for a level that did not need it")


def config(tmp_path: Path, *preset_ids: str, **fields: object) -> RunConfig:
    presets = tuple(
        Preset(id=p, name=p, driver="external", source=None, base_url="http://127.0.0.1:9") for p in preset_ids
    )
    return RunConfig(presets=presets, run_id="20261120-100000-abcd", out_dir=tmp_path / "qg", **fields)  # type: ignore[arg-type]


# -- a sample from what the report says ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "passed", "skipped", "exception", "outcome"),
    [
        ("call", True, False, None, "passed"),
        ("call", False, True, None, "skipped"),
        ("setup", False, True, None, "skipped"),
        ("call", False, False, AssertionError("got 'x'"), "failed"),
        ("call", False, False, ServerDiedError("gone"), "error"),
        ("call", False, False, KeyError("k"), "error"),
        ("call", False, False, None, "error"),  # a strict xpass: failed, with no exception
        ("setup", False, False, AssertionError("a fixture asserted"), "error"),
    ],
)
def test_outcome_a_wrong_answer_is_a_failed_assert_in_the_test_and_anything_else_an_error(
    when: str, passed: bool, skipped: bool, exception: BaseException | None, outcome: str
) -> None:
    assert level_outcome(when=when, passed=passed, skipped=skipped, exception=exception) == outcome


def test_error_text_a_quantgate_error_keeps_its_whole_message() -> None:
    message = "llama-server (pid 7) exited with status -9\nlast lines of its log:\n  killed"
    assert level_error(ServerDiedError(message), never) == message


def test_error_text_is_the_first_line_of_the_exception_or_else_of_the_report() -> None:
    assert level_error(AssertionError("got 'x'\nassert 'x' == 'abc'"), never) == "AssertionError: got 'x'"
    assert level_error(None, lambda: "\n  [XPASS(strict)] flaky\nmore") == "[XPASS(strict)] flaky"
    assert one_line("x" * 500) == "x" * 300


def raised(exception: BaseException) -> BaseException:
    try:
        raise exception
    except BaseException as caught:  # whatever it is, it is the value under test
        return caught


def noted() -> BaseException:
    exception = ValueError("bad value")
    exception.add_note("a note on the next line")
    return exception


@pytest.mark.parametrize(
    "exception",
    [AssertionError("got 'x'\nassert 'x' == 'y'"), KeyError("k"), ValueError(""), noted(), SystemExit(3)],
    ids=["assert", "keyerror", "empty", "note", "systemexit"],
)
def test_error_text_is_the_first_line_of_what_pytest_shows(exception: BaseException) -> None:
    caught = raised(exception)
    assert level_error(caught, never) == one_line(pytest.ExceptionInfo.from_exception(caught).exconly())


def test_a_sample_carries_the_level_the_requests_the_memory_and_the_measures() -> None:
    completion = Completion(
        "abc", "", "stop", wall_s=0.5, ttft_s=0.1, completion_tokens=3, endpoint="/v1/completions",
        timings=Timings(predicted_per_second=40.0),
    )  # fmt: skip
    measured = Measurement("chars_per_s", 41.5, unit="chars/s")
    sample = level_sample(
        LEVEL, preset="tiny-q4", iteration=3, when="call", passed=True, skipped=False, exception=None,
        report_text=never, duration_s=0.7, completions=[completion], memory=(900.0, 950.0, "rss"),
        measures=[measured],
    )  # fmt: skip
    assert (sample.preset, sample.level, sample.name, sample.iteration) == ("tiny-q4", LEVEL.key, "test_copy", 3)
    assert (sample.points, sample.outcome, sample.error, sample.duration_s) == (25.0, "passed", None, 0.7)
    assert [(r.endpoint, r.wall_s, r.predicted_per_second) for r in sample.requests] == [("/v1/completions", 0.5, 40.0)]
    assert (sample.memory_mb, sample.memory_peak_mb, sample.memory_source) == (900.0, 950.0, "rss")
    assert sample.gates == ("pass_rate >= 0.5",)
    assert sample.measures == (measured,)


def test_a_failed_sample_says_why_without_rendering_the_report() -> None:
    sample = level_sample(
        LEVEL, preset="p", iteration=1, when="call", passed=False, skipped=False,
        exception=AssertionError("got 'cba'"), report_text=never, duration_s=0.1,
    )  # fmt: skip
    assert (sample.outcome, sample.error) == ("failed", "AssertionError: got 'cba'")
    assert (sample.requests, sample.memory_mb, sample.measures) == ((), None, ())


# -- the results stream ------------------------------------------------------------------------------


def test_every_sample_is_on_disk_when_add_returns(tmp_path: Path) -> None:
    recorder = Recorder(config(tmp_path, "p"))
    recorder.prepare([Part("p", "test_tiny.py")])
    stream = tmp_path / "qg" / "runs" / "20261120-100000-abcd" / "p" / "result.jsonl"
    assert [next(iter(json.loads(line))) for line in stream.read_text().splitlines()] == ["header"]
    for k in (1, 2):
        recorder.add(level_sample(LEVEL, preset="p", iteration=k, when="call", passed=True, skipped=False,
                                  exception=None, report_text=never, duration_s=0.1))  # fmt: skip
        lines = stream.read_text().splitlines()
        assert len(lines) == 1 + k
        assert json.loads(lines[-1])["sample"]["iteration"] == k
    partial = load_result(stream)  # what a crash would leave: readable, incomplete
    assert (len(partial.samples), partial.complete) == (2, False)
