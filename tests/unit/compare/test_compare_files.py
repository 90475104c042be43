"""Tests of pytest_quantgate.compare.files and the `quantgate compare` command: result files by path or
preset id, interrupted streams, exit codes."""

from __future__ import annotations

import dataclasses
import json

import pytest
from result_builders import base, cand, with_samples

from pytest_quantgate import cli
from pytest_quantgate.compare import CompareOptions, compare_files


def test_interrupted_stream_file_is_read_and_flagged(tmp_path) -> None:
    b = base()
    lines = [json.dumps({"header": json.loads(b.model_dump_json(include=set(type(b).model_fields) - {
        "complete", "finished_at", "server", "samples", "gates", "summary"}))})]  # fmt: skip
    lines += [json.dumps({"sample": s.to_dict()}) for s in b.samples[:33]]
    stream = tmp_path / "result.jsonl"
    stream.write_text("\n".join(lines) + "\n" + '{"sample": {"pres', encoding="utf-8")
    c = tmp_path / "cand.json"
    c.write_text(cand().model_dump_json(), encoding="utf-8")
    result = compare_files(stream, c, CompareOptions())
    assert any(x.startswith("baseline incomplete") for x in result.caveats)
    assert result.quality.n_baseline == 6  # 33 samples: six full iterations and three levels of the 7th


@pytest.fixture
def files(tmp_path):
    def write(name: str, result) -> str:
        path = tmp_path / name
        path.write_text(result.model_dump_json(), encoding="utf-8")
        return str(path)

    return write


def test_cli_compare_exit_codes(files, capsys) -> None:
    b = files("base.json", base(100))
    assert cli.main(["compare", b, files("same.json", cand(100))]) == 0
    assert "verdict swap" in capsys.readouterr().out
    assert cli.main(["compare", b, files("worse.json", cand(100, misses={"test_add3": 60}))]) == 1
    assert "verdict keep" in capsys.readouterr().out
    short = files("short.json", base(5))
    assert cli.main(["compare", short, files("short2.json", cand(5))]) == 3
    assert "more iterations needed" in capsys.readouterr().out
    assert cli.main(["compare", b, b + ".missing"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("quantgate: error: ") and "base.json.missing" in err


def test_cli_compare_options(files, capsys) -> None:
    b, c = files("b.json", base()), files("c.json", cand(tps=70.0))
    assert cli.main(["compare", b, c, "--margin", "10"]) == 0
    assert cli.main(["compare", b, c, "--margin", "10", "--require-faster"]) == 1
    assert cli.main(["compare", b, c, "--margin", "-3"]) == 2
    assert "margin=-3.0" in capsys.readouterr().err


def test_cli_compare_reads_a_preset_id_from_the_results_directory(tmp_path, files, capsys, monkeypatch) -> None:
    results = tmp_path / "qg" / "results"
    results.mkdir(parents=True)
    (results / "tiny-f16.json").write_text(base(100).model_dump_json(), encoding="utf-8")
    monkeypatch.setenv("QUANTGATE_DIR", str(tmp_path / "qg"))
    assert cli.main(["compare", "tiny-f16", files("c.json", cand(100))]) == 0
    assert cli.main(["compare", "tiny-q9", files("c.json", cand(100))]) == 2
    assert "tiny-q9.json does not exist" in capsys.readouterr().err


def test_cli_compare_rejects_a_file_that_is_not_a_result(tmp_path, capsys) -> None:
    bogus = tmp_path / "x.json"
    bogus.write_text("{}", encoding="utf-8")
    assert cli.main(["compare", str(bogus), str(bogus)]) == 2
    assert "is not a pytest-quantgate result file" in capsys.readouterr().err


NOT_RESULTS = {
    "not-utf8": (b'{"kind": "pytest-quantgate-result", "x": "caf\xe9"}', "is not UTF-8 text (byte 0xe9 at offset"),
    "truncated": (b'{"kind": "pytest-quantgate-result", "sch', "is not valid JSON"),
    "not-json": (b"swap\n", "is not valid JSON"),
    "wrong-shape": (b'{"kind": "pytest-quantgate-result", "schema_version": 1, "samples": 3}', "does not match"),
    "other-version": (b'{"kind": "pytest-quantgate-result", "schema_version": 2}', "has schema version 2"),
    "empty": (b"", "is not valid JSON"),
}


@pytest.mark.parametrize("case", NOT_RESULTS)
@pytest.mark.parametrize("command", ["compare", "report"])
def test_cli_a_file_that_is_not_a_result_exits_2_never_a_verdict(tmp_path, files, capsys, case, command) -> None:
    content, why = NOT_RESULTS[case]
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    good = files("good.json", base())
    argv = ["compare", good, str(bad)] if command == "compare" else ["report", str(bad), "--baseline", good]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"quantgate: error: {bad} {why}"), err
    assert "Traceback" not in err


BAD_ARGUMENTS = [
    [],
    ["frobnicate"],
    ["compare"],
    ["compare", "a.json"],
    ["compare", "a.json", "b.json", "--margin", "two"],
    ["report"],
    ["install-server", "--jobs", "many"],
]


@pytest.mark.parametrize("argv", BAD_ARGUMENTS)
def test_cli_bad_arguments_exit_2(argv, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_cli_an_unexpected_failure_exits_2_with_its_traceback(files, capsys, monkeypatch) -> None:
    import pytest_quantgate.compare

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(pytest_quantgate.compare, "compare", broken)
    assert cli.main(["compare", files("b.json", base()), files("c.json", cand())]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError: a bug" in err
    assert err.rstrip().splitlines()[-1].startswith("quantgate: error: an unexpected failure")


def test_cli_exit_status_of_the_installed_command(tmp_path) -> None:
    """What automation sees: the process's exit status, for an unreadable file and for bad arguments."""
    import subprocess
    import sys

    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\xff\xfe\x00")
    for argv in (["compare", str(bad), str(bad)], ["compare", str(bad)], ["report", str(tmp_path / "none.json")]):
        proc = subprocess.run([sys.executable, "-m", "pytest_quantgate.cli", *argv], capture_output=True, text=True,
                              timeout=120, check=False)  # fmt: skip
        assert proc.returncode == 2, (argv, proc.stderr)
        assert "Traceback" not in proc.stderr


def stored(tmp_path, result, module: str):
    """Store *result* as if run on a suite of the single module *module* (in QUANTGATE_DIR=tmp_path/qg)."""
    from pytest_quantgate.results import store_latest

    moved = with_samples(result, [dataclasses.replace(s, level=f"{module}::{s.name}") for s in result.samples])
    return store_latest(moved, tmp_path / "qg" / "results")


def test_cli_a_preset_id_takes_the_stored_result_of_the_other_sides_suite(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("QUANTGATE_DIR", str(tmp_path / "qg"))
    b_a = stored(tmp_path, base(100), "a/test_a.py")
    stored(tmp_path, base(100, run_id="base-on-b"), "b/test_b.py")
    c_a = stored(tmp_path, cand(100), "a/test_a.py")
    assert cli.main(["compare", "tiny-f16", str(c_a)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"baseline:  {b_a} (run 20261120-100000-tiny-f16, started 2026-11-20T10:00:00+00:00)\n")
    assert f"\ncandidate: {c_a} (run 20261120-100000-tiny-q4_0, started " in out
    assert cli.main(["compare", "tiny-f16", "tiny-q4_0"]) == 0  # the candidate has one suite: a
    assert capsys.readouterr().out.startswith(f"baseline:  {b_a} ")
    stored(tmp_path, cand(100), "c/test_c.py")
    assert cli.main(["compare", "tiny-f16", "tiny-q4_0"]) == 0  # both have several; a is the one in common
    assert capsys.readouterr().out.startswith(f"baseline:  {b_a} ")
    stored(tmp_path, cand(100), "b/test_b.py")
    assert cli.main(["compare", "tiny-f16", "tiny-q4_0"]) == 2  # a and b in common: say which
    assert "'tiny-f16' has stored results of 2 suites" in capsys.readouterr().err
