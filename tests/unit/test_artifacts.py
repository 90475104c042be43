"""Tests of pytest_quantgate.artifacts: one JSON Lines file per preset and iteration, written in batches."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import pytest

from pytest_quantgate.artifacts import ArtifactWriter, artifact_path, read_artifacts
from pytest_quantgate.completion import Completion
from pytest_quantgate.levels import Sample
from pytest_quantgate.llm import Exchange

if TYPE_CHECKING:
    from pathlib import Path


def level(name: str, iteration: int, outcome: str = "passed") -> Sample:
    return Sample(preset="p", level=f"suite.py::{name}", name=name, iteration=iteration, points=1.0,
                  outcome=outcome, duration_s=0.1)  # type: ignore[arg-type]  # fmt: skip


def exchange(content: str) -> Exchange:
    completion = Completion(content=content, reasoning="", finish_reason="stop", wall_s=0.2, ttft_s=0.05)
    return Exchange("complete", "copy abc=", {"max_tokens": 8}, completion)


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def test_records_are_batched_and_close_writes_the_rest(tmp_path: Path) -> None:
    with ArtifactWriter(flush_after_s=3600) as writer:
        path = writer.write(tmp_path, level("test_a", 1), [exchange("abc")], None)
        writer.write(tmp_path, level("test_b", 1), [exchange("ba")], None)
        assert path == artifact_path(tmp_path, 1) == tmp_path / "iter-01.jsonl"
        assert lines(path) == []  # held: the tiny model's levels take milliseconds
    records = read_artifacts(tmp_path, 1)
    assert sorted(records) == ["test_a", "test_b"]
    assert records["test_a"]["requests"] == [
        {"kind": "complete", "prompt": "copy abc=", "params": {"max_tokens": 8}, "content": "abc", "reasoning": "",
         "finish_reason": "stop", "wall_s": 0.2, "ttft_s": 0.05, "completion_tokens": None, "tokens_per_s": None}
    ]  # fmt: skip


def test_a_new_iteration_writes_the_last_one(tmp_path: Path) -> None:
    writer = ArtifactWriter(flush_after_s=3600)
    writer.write(tmp_path, level("test_a", 1), [], None)
    writer.write(tmp_path, level("test_a", 2), [], None)
    assert [r["iteration"] for r in lines(artifact_path(tmp_path, 1))] == [1]
    assert lines(artifact_path(tmp_path, 2)) == []
    writer.close()
    assert [r["iteration"] for r in lines(artifact_path(tmp_path, 2))] == [2]


@pytest.mark.parametrize("outcome", ["failed", "error"])
def test_a_miss_or_an_error_is_written_at_once_with_the_validators_output(tmp_path: Path, outcome: str) -> None:
    writer = ArtifactWriter(flush_after_s=3600)
    writer.write(tmp_path, level("test_a", 1), [], None)
    writer.write(tmp_path, level("test_b", 1, outcome), [exchange("no")], "AssertionError: 2 != 3")
    assert [(r["name"], r["validator"]) for r in lines(artifact_path(tmp_path, 1))] == [
        ("test_a", None),
        ("test_b", "AssertionError: 2 != 3"),
    ]


def test_slow_levels_are_written_one_by_one(tmp_path: Path) -> None:
    writer = ArtifactWriter(flush_after_s=0.01)
    writer.write(tmp_path, level("test_a", 1), [], None)
    time.sleep(0.02)
    writer.write(tmp_path, level("test_b", 1), [], None)
    assert [r["name"] for r in lines(artifact_path(tmp_path, 1))] == ["test_a", "test_b"]


def test_text_stays_readable_and_every_record_is_one_line(tmp_path: Path) -> None:
    with ArtifactWriter() as writer:
        writer.write(tmp_path, level("test_a", 1), [exchange("grüße\nzweite Zeile ✓")], None)
    text = artifact_path(tmp_path, 1).read_text(encoding="utf-8")
    assert "grüße" in text and text.count("\n") == 1
    assert read_artifacts(tmp_path, 1)["test_a"]["requests"][0]["content"] == "grüße\nzweite Zeile ✓"


def test_appending_processes_share_a_file_line_by_line(tmp_path: Path) -> None:
    """Two writers (as two xdist workers) appending to the same iteration's file."""
    first, second = ArtifactWriter(flush_after_s=0), ArtifactWriter(flush_after_s=0)
    for i in range(20):
        (first if i % 2 else second).write(tmp_path, level(f"test_{i}", 1), [exchange("x" * 5000)], None)
    assert sorted(read_artifacts(tmp_path, 1)) == sorted(f"test_{i}" for i in range(20))


def test_a_failed_write_is_reported_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "preset"
    blocker.write_text("a file where the preset's directory should be")
    writer = ArtifactWriter()
    writer.write(blocker, level("test_a", 1, "failed"), [], "boom")
    assert len(writer.close()) == 1
    assert str(artifact_path(blocker, 1)) in writer.errors[0]


def test_a_request_records_the_parameters_sent_not_the_levels_unset_ones(tmp_path: Path) -> None:
    """A level without max_tokens sends the preset's: the record says so, not ``max_tokens: None``."""
    sent = {"temperature": 0.0, "top_k": 1, "max_tokens": 8, "prompt": "copy abc=", "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    completion = Completion(content="abc", reasoning="", finish_reason="stop", wall_s=0.2, request=sent)
    asked = {"max_tokens": None, "timeout_s": 12.5, "stop": ["\n"]}  # the level's values and the test's own
    with ArtifactWriter() as writer:
        writer.write(tmp_path, level("test_a", 1), [Exchange("complete", "copy abc=", asked, completion)], None)
    (request,) = read_artifacts(tmp_path, 1)["test_a"]["requests"]
    assert request["params"] == {key: value for key, value in sent.items() if key != "prompt"} | {
        "timeout_s": 12.5,
        "stop": ["\n"],
    }
    assert request["prompt"] == "copy abc="


def test_a_chat_requests_messages_stay_out_of_its_parameters(tmp_path: Path) -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "2+2?"}]
    sent = {"max_tokens": 64, "messages": messages}
    completion = Completion(content="4", reasoning="", finish_reason="stop", wall_s=0.2, request=sent)
    with ArtifactWriter() as writer:
        ex = Exchange("chat", "2+2?", {"max_tokens": None, "system": "be brief"}, completion)
        writer.write(tmp_path, level("test_a", 1), [ex], None)
    (request,) = read_artifacts(tmp_path, 1)["test_a"]["requests"]
    assert request["params"] == {"max_tokens": 64, "system": "be brief"}
    assert request["prompt"] == "2+2?"


@pytest.mark.parametrize("as_path", [str, lambda p: p], ids=["str", "Path"])
def test_read_artifacts_takes_a_string_or_a_path(tmp_path: Path, as_path) -> None:
    with ArtifactWriter() as writer:
        writer.write(tmp_path, level("test_a", 7), [exchange("abc")], None)
    assert list(read_artifacts(as_path(tmp_path), 7)) == ["test_a"]
