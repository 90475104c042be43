"""Results of several hosts: `quantgate compare` and `report` over any number of files, one row per
(preset, host), each candidate against the baseline on its own host, caveats between hosts."""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

import pytest
from result_builders import HOST, base, cand

from pytest_quantgate import cli
from pytest_quantgate.errors import ResultsError
from pytest_quantgate.fleet import load_entries, pairings

if TYPE_CHECKING:
    from pathlib import Path

    from pytest_quantgate.results import ResultFile

HOST_A = {**HOST, "hostname": "gpu-a", "gpu": "NVIDIA GeForce RTX 4090"}
HOST_B = {**HOST, "hostname": "gpu-b", "gpu": "AMD Radeon RX 7900 XTX", "cpu": "AMD Ryzen 7 7700"}


def write(directory: Path, result: ResultFile, reported_mb: float | None = None) -> Path:
    """*result* as a CI artifact leaves it: ``<dir>/<host>/<preset>/result.json``."""
    if reported_mb is not None:
        result.server.llama_memory_mb, result.server.llama_memory_scope = reported_mb, "CUDA0"
    path = directory / str(result.host["hostname"]) / result.preset.id / "result.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(result.model_dump_json(), encoding="utf-8")
    return path


@pytest.fixture
def matrix(tmp_path: Path) -> dict[str, Path]:
    """Two hosts ran both presets: the candidate is as good on A and clearly worse on B."""
    return {
        "f16@a": write(tmp_path, base(host=HOST_A, run_id="run-a"), 900.0),
        "q4@a": write(tmp_path, cand(host=HOST_A, run_id="run-a"), 400.0),
        "f16@b": write(tmp_path, base(host=HOST_B, run_id="run-b", memory_source="amdsmi"), 900.0),
        "q4@b": write(tmp_path, cand(misses={"test_add3": 12}, host=HOST_B, run_id="run-b"), 400.0),
    }


def test_one_row_per_preset_and_host_and_each_candidate_against_its_own_host(
    matrix: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["compare", *(str(p) for p in matrix.values()), "--margin", "10"])
    out = capsys.readouterr().out
    assert code == 1  # keep on host B outweighs swap on host A
    rows = [line for line in out.splitlines() if " @ gpu-" in line.split("  ")[0]]
    assert [r.split("  ")[0] for r in rows] == ["tiny-f16 @ gpu-a", "tiny-q4_0 @ gpu-a", "tiny-f16 @ gpu-b",
                                                "tiny-q4_0 @ gpu-b"]  # fmt: skip
    assert "swap vs tiny-f16 @ gpu-a" in rows[1] and "keep vs tiny-f16 @ gpu-b" in rows[3]
    assert "400 llama.cpp (CUDA0)" in rows[1]  # the memory figure with its source
    assert "tiny-q4_0 @ gpu-a vs tiny-f16 @ gpu-a: verdict swap" in out
    assert "tiny-q4_0 @ gpu-b vs tiny-f16 @ gpu-b: verdict keep" in out
    # per-host provenance, and what differs between the hosts
    assert "gpu-a  AMD Ryzen 9 7950X  NVIDIA GeForce RTX 4090" in out
    assert "host GPU: gpu-a NVIDIA GeForce RTX 4090 vs gpu-b AMD Radeon RX 7900 XTX" in out
    assert "2 hosts: tokens/s, TTFT, load time and measured memory are properties of each machine" in out
    assert "tiny-f16: measured memory from different sources (amdsmi, nvml-process)" in out


def test_directories_stand_for_their_result_files(matrix: dict[str, Path], tmp_path: Path, capsys) -> None:
    assert cli.main(["compare", str(matrix["f16@a"]), str(tmp_path / "gpu-a"), "--margin", "10"]) == 0
    assert "verdict swap" in capsys.readouterr().out


def test_a_host_without_the_baseline_is_compared_across_hosts_with_caveats(tmp_path: Path) -> None:
    only_a = write(tmp_path, base(host=HOST_A))
    on_b = write(tmp_path, cand(host=HOST_B))
    entries = load_entries([only_a, on_b])
    ((b, c),) = pairings(entries)
    assert (b.label, c.label) == ("tiny-f16 @ gpu-a", "tiny-q4_0 @ gpu-b")


def test_a_different_llama_cpp_report_for_one_preset_is_a_caveat(tmp_path: Path, capsys) -> None:
    files = [write(tmp_path, base(host=HOST_A), 900.0), write(tmp_path, base(host=HOST_B), 700.0),
             write(tmp_path, cand(host=HOST_A))]  # fmt: skip
    cli.main(["compare", *(str(f) for f in files)])
    assert "tiny-f16: llama.cpp reports different allocations (gpu-a: 900 MB, gpu-b: 700 MB)" in capsys.readouterr().out


def test_a_result_file_of_another_schema_is_named(tmp_path: Path, matrix: dict[str, Path], capsys) -> None:
    data: dict[str, Any] = json.loads(matrix["q4@b"].read_text())
    data["schema_version"] = 2
    matrix["q4@b"].write_text(json.dumps(data))
    assert cli.main(["compare", *(str(p) for p in matrix.values())]) == 2
    err = capsys.readouterr().err
    assert f"{matrix['q4@b']} has schema version 2; this pytest-quantgate reads version 1" in err
    assert "install the same version on all runners" in err
    with pytest.raises(ResultsError, match="same run"):
        load_entries([matrix["f16@a"], matrix["f16@a"]])


def test_only_baselines_is_an_error_not_a_verdict(tmp_path: Path, capsys) -> None:
    files = [write(tmp_path, base(host=HOST_A)), write(tmp_path, base(host=HOST_B)),
             write(tmp_path, base(host={**HOST_B, "hostname": "gpu-c"}))]  # fmt: skip
    assert cli.main(["compare", *(str(f) for f in files)]) == 2
    assert "nothing to decide" in capsys.readouterr().err
    assert cli.main(["compare", *(str(f) for f in files), "--baseline-preset", "tiny-q9"]) == 2
    assert "no result of the baseline preset 'tiny-q9'" in capsys.readouterr().err


def test_report_over_several_hosts(matrix: dict[str, Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "fleet.md"
    assert cli.main(["report", str(tmp_path / "gpu-a"), str(tmp_path / "gpu-b"), "-o", str(out)]) == 0
    text = out.read_text()
    assert "| tiny-q4_0 @ gpu-b |" in text and "## Hosts" in text and "## Caveats between hosts" in text
    assert "## Verdicts" not in text  # no baseline asked for: a table, not a decision
    assert cli.main(["report", *(str(p) for p in matrix.values()), "--baseline", str(matrix["f16@a"]),
                     "-o", str(out)]) == 0  # fmt: skip
    assert "- **tiny-q4_0 @ gpu-b** vs tiny-f16 @ gpu-b: verdict keep" in out.read_text()
    assert cli.main(["report", str(tmp_path / "nowhere"), str(matrix["f16@a"])]) == 2
    assert "no such result file" in capsys.readouterr().err


def test_a_file_named_twice_in_two_spellings_is_read_once(
    matrix: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)  # relative directories, the baseline by its absolute path: the same file
    out = tmp_path / "fleet.md"
    assert cli.main(["report", "gpu-a", "gpu-b", "--baseline", str(matrix["f16@a"]), "-o", str(out)]) == 0
    assert out.read_text().count("| tiny-f16 @ gpu-a |") == 1
    assert cli.main(["report", str(tmp_path / "nowhere"), str(matrix["f16@a"])]) == 2
    assert "no such result file" in capsys.readouterr().err


def on_suite(result: ResultFile, module: str) -> ResultFile:
    """*result* as the part of a run over several modules that holds *module*'s levels."""
    moved = [dataclasses.replace(s, level=s.level.replace("test_tiny.py", module)) for s in result.samples]
    return result.model_copy(update={"samples": moved})


def test_results_of_one_run_over_two_suites_are_rows_of_their_own_compared_suite_by_suite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run over two test modules writes one file per suite, with the same run id: both are read, named by
    suite, and each candidate file is compared with the baseline's file of its suite."""
    files = []
    for module in ("test_tiny.py", "more/test_more.py"):
        directory = tmp_path / module.replace("/", "_")
        files.append(write(directory, on_suite(base(host=HOST_A, run_id="run-a"), module)))
        misses = {"test_add3": 12} if module.startswith("more") else None
        files.append(write(directory, on_suite(cand(misses=misses, host=HOST_A, run_id="run-a"), module)))
    entries = load_entries(files)
    assert [(b.suite, c.suite) for b, c in pairings(entries)] == [
        ("test_tiny.py", "test_tiny.py"),
        ("more/test_more.py", "more/test_more.py"),
    ]
    code = cli.main(["compare", *(str(p) for p in files), "--margin", "10"])
    out = capsys.readouterr().out
    assert code == 1  # kept on the second suite
    assert "tiny-q4_0 @ gpu-a · test_tiny.py vs tiny-f16 @ gpu-a · test_tiny.py: verdict swap" in out
    assert "tiny-q4_0 @ gpu-a · more/test_more.py vs tiny-f16 @ gpu-a · more/test_more.py: verdict keep" in out
