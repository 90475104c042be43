"""The example suites, run as users run them, against a scripted peer that plays a model with known answers.

Good answers must pass every level (exit 0, gates pass); known-bad answers must be missed, each for the
reason its validator names, and fail the gates (exit 1). Malformed answers (no code, cut-off code, another
language, nothing at all, code only in the reasoning) must be misses that say so, never errors. The peer
(tests/peers/scripted_server.py) never produces figures; nothing here reads a speed or a score from it as
a measurement. The tiny suite runs against the real server in tests/integration.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from peers.example_answers import BAD, BAD_REASONS, FIFO, GOOD, KNOWLEDGE_ITEMS, MALFORMED
from peers.scripted_server import ScriptedPeer

from pytest_quantgate.artifacts import read_artifacts
from pytest_quantgate.client import Client
from pytest_quantgate.errors import ClientError
from pytest_quantgate.results import load_result

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pytest_quantgate.levels import Sample

SUITES_DIR = Path(__file__).resolve().parents[2] / "example_suites"
LEVELS = {
    "coding": [
        "test_fifo_queue",
        "test_retry_backoff",
        "test_priority_scheduling",
        "test_fix_the_race",
        "test_compose_queue_retry_worker",
    ],
    "constraints": [
        "test_voice_consistency",
        "test_multi_hop_reasoning",
        "test_nuanced_distinction",
        "test_strict_constraints",
        "test_edge_case_judgement",
        "test_continuation_in_voice",
    ],
    "knowledge": [f"test_question[{item['id']}]" for item in KNOWLEDGE_ITEMS],
}


@pytest.fixture(autouse=True)
def _server_for_pytester() -> None:
    """Overrides tests/plugin/conftest.py's fixture: these runs attach to the scripted peer with --base-url,
    so they need no llama-server (and must not skip where none is built)."""


@pytest.fixture(scope="module")
def peer() -> Iterator[ScriptedPeer]:
    scripts = {"good": GOOD, "bad": BAD}
    scripts.update({name: {FIFO: answer} for name, (answer, _) in MALFORMED.items()})
    server = ScriptedPeer(scripts).start()
    yield server
    server.stop()


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_the_peer_answers_chat_and_raw_completions_from_its_script(peer: ScriptedPeer, stream: bool):
    prompt = f"Write a {FIFO}, please."
    truncated, _ = MALFORMED["truncated"]
    thinking, _ = MALFORMED["reasoning-only"]
    with Client(peer.url("truncated"), stream=stream) as client:
        chat = client.chat(prompt)
        raw = client.complete(prompt)
    with Client(peer.url("reasoning-only"), stream=stream) as client:
        thought = client.chat(prompt)
    assert (chat.content, chat.reasoning, chat.finish_reason) == (truncated.content, "", "length")
    assert (raw.content, raw.finish_reason) == (truncated.content, "length")
    assert (thought.content, thought.reasoning) == ("", thinking.reasoning)
    assert chat.completion_tokens and chat.timings is not None  # placeholders, present so the plugin has a rate
    assert (chat.ttft_s is not None) is stream


def test_the_peer_refuses_a_prompt_its_script_does_not_know(peer: ScriptedPeer):
    # A level whose prompt lost its fingerprint must error, not pass for a miss (or a pass).
    with Client(peer.url("good")) as client, pytest.raises(ClientError, match="no fingerprint matches the prompt"):
        client.chat("a prompt no level asks")


def run_suite(pytester: pytest.Pytester, suite: str, url: str, *args: str) -> tuple[pytest.RunResult, list[Sample]]:
    """Copy the suite in (its pytest.ini puts results two levels up: inside pytester.path), run one iteration."""
    target = pytester.path / "example_suites" / suite
    shutil.copytree(SUITES_DIR / suite, target, ignore=shutil.ignore_patterns("__pycache__"))
    # No hypothesis plugin: the suites do not use it, and pytester would re-import hypothesis on every run.
    options = ["--base-url", url, "--iterations", "1", "-v", "-p", "no:cacheprovider", "-p", "no:hypothesispytest"]
    result = pytester.runpytest(str(target), *options, *args)
    results = sorted(pytester.path.glob(".quantgate/runs/*/*/result.json"))
    assert len(results) == 1, f"expected one result file, found {results}\n{result.stdout.str()}"
    return result, list(load_result(results[0]).samples)


def by_name(samples: list[Sample]) -> dict[str, Sample]:
    return {sample.name: sample for sample in samples}


@pytest.mark.parametrize("suite", sorted(LEVELS))
def test_good_answers_pass_every_level_and_the_gates(pytester: pytest.Pytester, peer: ScriptedPeer, suite: str):
    result, samples = run_suite(pytester, suite, peer.url("good"))
    outcomes = {name: sample.outcome for name, sample in by_name(samples).items()}
    errors = {sample.name: sample.error for sample in samples if sample.error}
    assert outcomes == dict.fromkeys(LEVELS[suite], "passed"), errors
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.stdout.no_fnmatch_line("*gate*failed*")
    if suite == "constraints":  # every answer's length and rate, recorded through the measure fixture
        for sample in samples:
            measured = {m.name: m for m in sample.measures}
            assert set(measured) == {"output_chars", "chars_per_s"}, sample.name
            assert measured["output_chars"].value > 0 and measured["chars_per_s"].unit == "chars/s"
        result.stdout.fnmatch_lines(["measurements (per iteration*", "*chars_per_s*chars/s*higher*"])


@pytest.mark.parametrize("suite", sorted(LEVELS))
def test_bad_answers_miss_every_level_with_its_reason_and_fail_the_gates(
    pytester: pytest.Pytester, peer: ScriptedPeer, suite: str
):
    result, samples = run_suite(pytester, suite, peer.url("bad"))
    (preset_dir,) = pytester.path.glob(".quantgate/runs/*/*/")
    levels = by_name(samples)
    assert sorted(levels) == sorted(LEVELS[suite])
    for name, reason in BAD_REASONS[suite].items():
        sample = levels[name]
        assert sample.outcome == "failed", f"{name}: {sample.outcome} ({sample.error})"
        assert reason in (sample.error or ""), f"{name}: expected {reason!r} in {sample.error!r}"
        artifact = read_artifacts(preset_dir, sample.iteration)[sample.name]
        assert reason in artifact["validator"], f"{name}: the artifact lacks {reason!r}"
    assert set(BAD_REASONS[suite]) == set(LEVELS[suite])  # every level has a bad answer with a named reason
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    outcomes = result.parseoutcomes()
    assert outcomes.get("missed") == len(LEVELS[suite]), result.stdout.str()
    assert "error" not in outcomes and "errors" not in outcomes
    result.stdout.fnmatch_lines(["*gate?score_mean>=85? failed: score mean 0.0 < 85.0*"])


def test_a_missed_level_keeps_the_validator_output_in_its_artifact(pytester: pytest.Pytester, peer: ScriptedPeer):
    run_suite(pytester, "coding", peer.url("bad"), "-k", "priority")
    (preset_dir,) = pytester.path.glob(".quantgate/runs/*/*/")
    record = read_artifacts(preset_dir, 1)["test_priority_scheduling"]
    assert record["outcome"] == "failed"
    assert "test_jobs_that_cannot_be_compared_are_fine" in record["validator"]
    assert "TypeError" in record["validator"]  # the hidden test's own failure text comes along


@pytest.mark.parametrize("script", sorted(MALFORMED))
def test_a_malformed_answer_is_a_miss_that_says_why(pytester: pytest.Pytester, peer: ScriptedPeer, script: str):
    """No code, cut-off code, code in another language, an empty answer, code only in the reasoning."""
    result, samples = run_suite(pytester, "coding", peer.url(script), "-k", "fifo")
    (sample,) = samples
    _, reason = MALFORMED[script]
    assert sample.outcome == "failed", f"{sample.outcome}: {sample.error}"
    assert reason in (sample.error or ""), sample.error
    if script == "truncated":
        assert "cut off at max_tokens" in (sample.error or "")
    outcomes = result.parseoutcomes()
    assert outcomes.get("missed") == 1, result.stdout.str()
    assert "error" not in outcomes and "errors" not in outcomes
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the score gates
