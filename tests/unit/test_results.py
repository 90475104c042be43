"""Tests of pytest_quantgate.results: the streamed result.jsonl, the final result.json, and loading both."""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
    find_result,
    legacy_stored_path,
    load_result,
    named_results,
    store_latest,
    stored_path,
    suite_id,
    why_not_stored,
    write_final,
)
from pytest_quantgate.summary import LevelRecord, SummaryRecord

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
        summary=SummaryRecord(preset="tiny-q8_0", max_points=3.0, errors=1),
    )


def test_the_final_file_round_trips(tmp_path: Path) -> None:
    result = final()
    path = write_final(result, tmp_path)
    assert path == tmp_path / "result.json"
    assert load_result(path) == result
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temporary file left


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


# -- anything that is not a result ------------------------------------------------------------------------


def test_a_file_that_is_not_utf8_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    text = json.dumps({"kind": "pytest-quantgate-result", "note": "café"}, ensure_ascii=False)
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(ResultsError, match=r"latin1\.json is not UTF-8 text \(byte 0xe9 at offset \d+\)"):
        load_result(path)


def test_a_stream_whose_header_is_not_an_object_is_an_error_with_the_line_number(tmp_path: Path) -> None:
    path = tmp_path / "result.jsonl"
    path.write_text('{"header": 5}\n{"sample": {}}\n')
    with pytest.raises(ResultsError, match=r"result\.jsonl, line 1: the header is not a JSON object"):
        load_result(path)


def test_a_stream_whose_sample_is_not_an_object_is_an_error_with_the_line_number(tmp_path: Path) -> None:
    path = stream(tmp_path)
    lines = path.read_text().splitlines()
    lines.insert(2, '{"sample": [1, 2]}')
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ResultsError, match=r"result\.jsonl, line 3: the sample is not a JSON object"):
        load_result(path)


def test_json_nested_too_deep_is_an_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ResultsError, match=r"deep\.json is not valid JSON"):
        load_result(path)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=30,
)
# Near misses: a header whose fields are replaced by random values, so validation gets past the kind check.
near_results = st.fixed_dictionaries(
    {"kind": st.just("pytest-quantgate-result"), "schema_version": st.sampled_from([SCHEMA_VERSION, 0, "1"])},
    optional=dict.fromkeys(
        ["plugin_version", "run_id", "started_at", "preset", "samples", "summary", "complete", "gates", "server"],
        json_values,
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    content=st.binary(max_size=300)
    | json_values.map(lambda v: json.dumps(v).encode())
    | near_results.map(lambda v: json.dumps(v).encode())
    | near_results.map(lambda v: (json.dumps({"header": v}) + "\n" + json.dumps({"sample": v})).encode()),
    suffix=st.sampled_from([".json", ".jsonl"]),
)
def test_only_results_error_escapes_load_result(tmp_path: Path, content: bytes, suffix: str) -> None:
    """Whatever a result file holds, loading it either succeeds or raises ResultsError (which the plugin and
    the command turn into a usage error), never another exception (an INTERNALERROR, exit 1 = "keep")."""
    path = tmp_path / f"result{suffix}"
    path.write_bytes(content)
    try:
        load_result(path)
    except ResultsError as exc:
        assert str(path) in str(exc)


# -- suites and the store of latest results ---------------------------------------------------------------


def test_the_suite_id_is_the_sorted_test_modules_of_the_levels() -> None:
    keys = ["suites/b/test_b.py::test_x[p1]", "suites/a/test_a.py::Test::test_y", "suites/b/test_b.py::test_z"]
    assert suite_id(keys) == "suites/a/test_a.py, suites/b/test_b.py"
    assert suite_id(reversed(keys)) == suite_id(keys)
    assert suite_id([]) == ""


def test_a_result_knows_its_suite_from_its_samples_or_else_its_summary() -> None:
    result = final()
    assert result.level_keys() == ["suite.py::test_add3"]
    assert result.suite == "suite.py"
    levels = {"m.py::test_a": LevelRecord(name="test_a", points=1, passed=1, n=1)}
    summary_only = result.model_copy(update={"samples": [], "summary": SummaryRecord(levels=levels)})
    assert summary_only.suite == "m.py"


def in_suite(result: ResultFile, module: str, **update: object) -> ResultFile:
    samples = [dataclasses.replace(s, level=f"{module}::{s.name}") for s in result.samples]
    return result.model_copy(update={"samples": samples, **update})


def test_only_a_complete_run_without_errors_may_be_stored() -> None:
    clean = final()
    assert why_not_stored(clean) is None
    assert why_not_stored(clean.model_copy(update={"complete": False})) == "the run was interrupted"
    errored = [dataclasses.replace(s, outcome="error", error="server gone") for s in clean.samples[:2]]
    assert why_not_stored(clean.model_copy(update={"samples": errored + clean.samples[2:]})) == (
        "2 level run(s) errored"
    )
    assert why_not_stored(clean.model_copy(update={"samples": []})) == "it holds no level results"


def test_the_store_keeps_the_latest_result_per_preset_and_suite(tmp_path: Path) -> None:
    results = tmp_path / "results"
    on_a = store_latest(in_suite(final(), "a/test_a.py"), results)
    on_b = store_latest(in_suite(final(), "b/test_b.py"), results)
    newer_a = store_latest(in_suite(final(), "a/test_a.py", run_id="newer"), results)
    assert on_a == newer_a == stored_path(results, "tiny-q8_0", "a/test_a.py")
    assert on_a.parent == on_b.parent == results / "tiny-q8_0"
    assert on_a.name.startswith("test_a-") and on_b.name.startswith("test_b-")
    assert load_result(on_a).run_id == "newer"
    assert load_result(on_b).run_id == final().run_id
    assert sorted(p.name for p in on_a.parent.iterdir()) == sorted([on_a.name, on_b.name])  # no temporary file


def test_a_preset_id_finds_the_stored_result_of_the_suite(tmp_path: Path) -> None:
    results = tmp_path / "results"
    on_a = store_latest(in_suite(final(), "a/test_a.py"), results)
    assert find_result("tiny-q8_0", results, "a/test_a.py") == on_a
    assert find_result("tiny-q8_0", results) == on_a  # the only one
    on_b = store_latest(in_suite(final(), "b/test_b.py"), results)
    assert find_result("tiny-q8_0", results, "b/test_b.py") == on_b
    with pytest.raises(ResultsError, match=r"'tiny-q8_0' has stored results of 2 suites: .*test_a-.*; .*test_b-"):
        find_result("tiny-q8_0", results)
    with pytest.raises(ResultsError) as info:
        find_result("tiny-q8_0", results, "c/test_c.py")
    assert "'tiny-q8_0' has no stored result for the suite being run (c/test_c.py; it would be " in str(info.value)
    assert f"stored: {on_a}; {on_b}. Run `pytest --preset tiny-q8_0` on this suite first" in str(info.value)


def test_a_result_stored_by_an_earlier_version_is_the_fallback(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    legacy = legacy_stored_path(results, "tiny-q8_0")
    assert legacy == results / "tiny-q8_0.json"
    legacy.write_text(final().model_dump_json())
    assert find_result("tiny-q8_0", results) == legacy
    assert find_result("tiny-q8_0", results, "any/test_suite.py") == legacy  # the caller checks its levels
    on_a = store_latest(in_suite(final(), "a/test_a.py"), results)
    assert find_result("tiny-q8_0", results, "a/test_a.py") == on_a
    assert find_result("tiny-q8_0", results, "b/test_b.py") == legacy
    assert named_results("tiny-q8_0", results) == [on_a]


def test_a_path_names_a_file_or_a_preset_directory_of_a_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "store"
    on_a = store_latest(in_suite(final(), "a/test_a.py"), store)
    elsewhere = tmp_path / "elsewhere"
    assert find_result(str(on_a), elsewhere, "b/test_b.py") == on_a  # a file is taken as it is
    assert find_result(str(store / "tiny-q8_0"), elsewhere, "a/test_a.py") == on_a
    monkeypatch.chdir(store)
    with pytest.raises(ResultsError, match="'tiny-q8_0' is neither a result file nor a preset with a stored result"):
        find_result("tiny-q8_0", elsewhere)  # a bare name is a preset id, even where a directory has that name
    assert find_result("./tiny-q8_0", elsewhere) == on_a


def test_nothing_stored_is_an_error_naming_where_it_looked(tmp_path: Path) -> None:
    results = tmp_path / "results"
    with pytest.raises(ResultsError) as info:
        find_result("tiny-q9", results, "a/test_a.py")
    assert str(info.value) == (
        f"'tiny-q9' is neither a result file nor a preset with a stored result (no {results}/tiny-q9/*.json, and "
        f"{results}/tiny-q9.json does not exist); pass the path of a result.json or result.jsonl, or run "
        "`pytest --preset tiny-q9` on the suite first"
    )


def test_a_missing_path_is_an_error_naming_the_file(tmp_path: Path) -> None:
    for spec in (str(tmp_path / "runs" / "result.json"), "nope.jsonl", "runs/x"):
        with pytest.raises(ResultsError, match=r"/(result\.json|nope\.jsonl|runs/x): no such result file; pass the"):
            find_result(spec, tmp_path / "results", "a/test_a.py")


def test_a_result_of_an_earlier_version_reads_with_the_current_memory_fields() -> None:
    from pytest_quantgate.results import ServerRecord

    old = ServerRecord.model_validate({"memory_idle_mb": 900.0, "memory_source": "nvml", "log": "server.log"})
    assert old.memory_source == "nvml-process"  # the per-process figure, as it is labelled now
    assert (old.llama_memory_mb, old.llama_buffers, old.devices, old.memory_notes) == (None, [], [], [])
    assert ServerRecord(memory_source="rss").memory_source == "rss"
