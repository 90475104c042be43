"""Tests of pytest_quantgate.results: the streamed result.jsonl, the final result.json, and loading both."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from pytest_quantgate.errors import ResultsError
from pytest_quantgate.levels import RequestRecord, Sample
from pytest_quantgate.results import (
    SCHEMA_VERSION,
    GateRecord,
    Header,
    PresetRecord,
    ResultFile,
    ResultStream,
    ServerRecord,
    load_result,
    write_final,
)

if TYPE_CHECKING:
    from pathlib import Path


def header() -> Header:
    return Header(
        plugin_version="0.1.0",
        run_id="20250101-120000-abcd",
        started_at="2025-01-01T12:00:00+00:00",
        preset=PresetRecord(id="tiny-q8_0", name="tiny llama Q8_0", driver="llamacpp", argv=["llama-server", "-m"]),
        host={"cpu": "test"},
        iterations_planned=3,
    )


def samples(n: int = 3) -> list[Sample]:
    request = RequestRecord("/v1/chat/completions", 0.2, ttft_s=0.01, predicted_n=8, predicted_ms=40.0)
    return [
        Sample(
            preset="tiny-q8_0",
            level="suite.py::test_add3",
            name="test_add3",
            iteration=k,
            points=25.0,
            outcome="passed" if k % 2 else "failed",
            duration_s=0.25 * k,
            requests=(request,),
            memory_mb=100.0 + k,
            memory_source="rss",
            gates=("pass_rate>=80",),
        )
        for k in range(1, n + 1)
    ]


def stream(tmp_path: Path, n: int = 3) -> Path:
    s = ResultStream(tmp_path / "run", header())
    for sample in samples(n):
        s.add(sample)
    s.close()
    return s.path


# -- the stream -------------------------------------------------------------------------------------------


def test_the_stream_writes_a_header_then_one_flushed_line_per_sample(tmp_path: Path) -> None:
    s = ResultStream(tmp_path / "run", header())
    try:
        lines = s.path.read_text().splitlines()
        assert len(lines) == 1  # readable before close: a crash loses nothing already written
        assert json.loads(lines[0])["header"]["preset"]["id"] == "tiny-q8_0"
        for k, sample in enumerate(samples(), 2):
            s.add(sample)
            lines = s.path.read_text().splitlines()
            assert len(lines) == k
            assert json.loads(lines[-1]) == {"sample": json.loads(json.dumps(sample.to_dict()))}
    finally:
        s.close()
    s.close()  # twice is harmless
    assert s.path == tmp_path / "run" / "result.jsonl"


def test_an_interrupted_stream_loads_as_an_incomplete_result(tmp_path: Path) -> None:
    result = load_result(stream(tmp_path))
    assert not result.complete
    assert result.schema_version == SCHEMA_VERSION
    assert result.preset.id == "tiny-q8_0"
    assert result.iterations_planned == 3
    assert result.samples == samples()


def test_a_truncated_last_line_is_tolerated(tmp_path: Path) -> None:
    path = stream(tmp_path)
    text = path.read_text()
    path.write_text(text[: len(text) - 40])  # the crash cut the third sample short
    assert load_result(path).samples == samples(2)


def test_garbage_in_the_middle_is_an_error_with_the_line_number(tmp_path: Path) -> None:
    path = stream(tmp_path)
    lines = path.read_text().splitlines()
    lines[2] = lines[2][:30]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ResultsError, match=r"result\.jsonl, line 3: not valid JSON"):
        load_result(path)


@pytest.mark.parametrize("junk", ["123", "[1, 2]", '"text"', "null"])
def test_a_json_line_that_is_not_an_object_is_an_error_with_the_line_number(tmp_path: Path, junk: str) -> None:
    path = stream(tmp_path)
    lines = path.read_text().splitlines()
    lines.insert(2, junk)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ResultsError, match=r"result\.jsonl, line 3: "):
        load_result(path)


def test_a_stream_without_a_header_is_not_a_result(tmp_path: Path) -> None:
    path = tmp_path / "result.jsonl"
    path.write_text(json.dumps({"sample": samples(1)[0].to_dict()}) + "\n")
    with pytest.raises(ResultsError, match="has no header line; it is not a pytest-quantgate result stream"):
        load_result(path)


def test_a_stream_of_another_schema_version_names_both_versions(tmp_path: Path) -> None:
    path = stream(tmp_path)
    lines = path.read_text().splitlines()
    record = json.loads(lines[0])
    record["header"]["schema_version"] = 99
    path.write_text("\n".join([json.dumps(record), *lines[1:]]) + "\n")
    with pytest.raises(ResultsError, match=rf"schema version 99; this pytest-quantgate reads version {SCHEMA_VERSION}"):
        load_result(path)


# -- the final file ---------------------------------------------------------------------------------------


def final() -> ResultFile:
    return ResultFile(
        **header().model_dump(),
        complete=True,
        finished_at="2025-01-01T12:05:00+00:00",
        server=ServerRecord(base_url="http://127.0.0.1:5000", load_s=1.5, memory_idle_mb=101.0, memory_source="rss"),
        samples=samples(),
        gates=[GateRecord(id="score_mean>=95", passed=False, observed=33.3, message="score 33.3 < 95", source="ini")],
        summary={"score_mean": 33.3},
    )


def test_the_final_file_round_trips(tmp_path: Path) -> None:
    result = final()
    path = write_final(result, tmp_path, latest_dir=tmp_path / "results")
    assert path == tmp_path / "result.json"
    assert load_result(path) == result
    assert load_result(tmp_path / "results" / "tiny-q8_0.json") == result
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json", "results"]  # no temporary file left


def test_write_final_replaces_an_older_result(tmp_path: Path) -> None:
    write_final(final(), tmp_path)
    newer = final().model_copy(update={"run_id": "second"})
    write_final(newer, tmp_path)
    assert load_result(tmp_path / "result.json").run_id == "second"


def test_a_truncated_json_file_suggests_the_jsonl(tmp_path: Path) -> None:
    path = write_final(final(), tmp_path)
    path.write_text(path.read_text()[:200])
    hint = r"is not valid JSON .*; if the run was interrupted, use the result\.jsonl beside it"
    with pytest.raises(ResultsError, match=hint):
        load_result(path)


@pytest.mark.parametrize("content", ["[1, 2, 3]", '{"kind": "something-else", "schema_version": 1}', '{"a": 1}'])
def test_a_file_that_is_not_a_result_says_so(tmp_path: Path, content: str) -> None:
    path = tmp_path / "other.json"
    path.write_text(content)
    why = r"is not a pytest-quantgate result file \(no kind: 'pytest-quantgate-result'\)"
    with pytest.raises(ResultsError, match=why):
        load_result(path)


def test_a_final_file_of_another_schema_version_names_both_versions(tmp_path: Path) -> None:
    data = json.loads(final().model_dump_json())
    data["schema_version"] = 0
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ResultsError) as info:
        load_result(path)
    message = str(info.value)
    assert f"{path} has schema version 0; this pytest-quantgate reads version {SCHEMA_VERSION}" in message
    assert "Re-run the suite" in message


def test_a_result_with_unknown_fields_does_not_match_the_schema(tmp_path: Path) -> None:
    data = json.loads(final().model_dump_json())
    data["preset"]["temperature"] = 0.7
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ResultsError, match=r"does not match the result schema:\n") as info:
        load_result(path)
    assert "preset.temperature\n  Extra inputs are not permitted" in str(info.value)


def test_a_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match=r"cannot read results file .*nope\.json: No such file"):
        load_result(tmp_path / "nope.json")
