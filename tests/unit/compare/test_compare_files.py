"""Tests of pytest_quantgate.compare.files and the `quantgate compare` command: result files by path or
preset id, interrupted streams, exit codes."""

from __future__ import annotations

import json

import pytest
from result_builders import base, cand

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
