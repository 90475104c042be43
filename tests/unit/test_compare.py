"""Tests of pytest_quantgate.compare: verdicts, caveats, problems, and the `quantgate compare` command."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from result_builders import (
    item_levels,
    make_result,
    renamed,
    summary_only,
    tiny_levels,
    with_samples,
)

from pytest_quantgate import cli
from pytest_quantgate.compare import CompareOptions, compare, compare_files, render
from pytest_quantgate.errors import ResultsError, SpecError
from pytest_quantgate.inference import SequentialDecision, SequentialTest
from pytest_quantgate.levels import aggregate


def base(n: int = 15, **kw):
    return make_result("tiny-f16", tiny_levels(n), **kw)


def cand(n: int = 15, misses=None, **kw):
    return make_result("tiny-q4_0", tiny_levels(n, misses), **kw)


# -- verdicts -------------------------------------------------------------------------------------------


def test_equal_presets_with_enough_iterations_swap() -> None:
    result = compare(base(100), cand(100))
    assert result.verdict == "swap"
    assert result.passed
    assert result.more_iterations is None
    assert result.quality.lower_bound > -2.0
    assert result.message.startswith("verdict swap: score Δ +0.0 pts, lower bound −")
    assert result.message.endswith("preset tiny-q4_0 vs tiny-f16")


def test_candidate_clearly_worse_on_one_level_is_kept_and_the_level_named() -> None:
    result = compare(base(), cand(misses={"test_add3": 10}))
    assert result.verdict == "keep"
    assert not result.passed
    assert result.more_iterations is None
    assert result.quality.upper_bound < -2.0
    assert "levels test_add3 −67 pts" in result.message
    assert "test_copy" not in result.message
    add3 = next(lv for lv in result.quality.levels if lv.level.endswith("test_add3"))
    assert add3.upper < 0


def test_small_n_is_inconclusive_and_says_how_many_more_iterations() -> None:
    result = compare(base(5), cand(5))
    assert result.verdict == "inconclusive"
    assert result.more_iterations is not None and result.more_iterations > 0
    assert f"about {result.more_iterations} more iterations needed" in result.message
    assert "vs margin −2.0 at n=5" in result.message
    assert result.planning is not None and result.planning.per_preset == 5 + result.more_iterations


def test_more_iterations_shrink_as_iterations_grow() -> None:
    few = compare(base(5), cand(5)).more_iterations
    more = compare(base(30), cand(30)).more_iterations
    assert few is not None and more is not None and more < few


def test_a_wide_margin_settles_what_a_narrow_one_cannot() -> None:
    assert compare(base(), cand(), CompareOptions(margin=10)).verdict == "swap"
    assert compare(base(), cand(), CompareOptions(margin=2)).verdict == "inconclusive"


def test_worse_but_not_beyond_the_margin_with_upper_bound_below_zero_is_kept() -> None:
    # Every level loses a little and consistently: shown worse (upper < 0) though not beyond a wide margin.
    b = make_result("a", tiny_levels(60))
    c = make_result("b", tiny_levels(60, {name: 12 for name in ("test_copy", "test_reverse", "test_add2")}))
    result = compare(b, c, CompareOptions(margin=16))
    assert result.quality.upper_bound < 0
    assert not result.quality.non_inferior
    assert result.verdict == "keep"
    assert "upper bound" in result.message and "< 0 (shown worse)" in result.message


def test_require_faster() -> None:
    wide = {"margin": 10.0, "require_faster": True}
    faster = compare(base(), cand(tps=130.0), CompareOptions(**wide))
    assert faster.verdict == "swap"
    assert faster.tps is not None and faster.tps.verdict == "faster"
    slower = compare(base(), cand(tps=70.0), CompareOptions(**wide))
    assert slower.verdict == "keep"
    assert "tok/s −30.0% slower (--require-faster)" in slower.message
    same = compare(base(), cand(), CompareOptions(**wide))
    assert same.verdict == "inconclusive"
    assert same.more_iterations is None
    assert "quality non-inferior" in same.message and "no change (noise)" in same.message
    # Without the option, speed informs but does not decide.
    assert compare(base(), cand(tps=70.0), CompareOptions(margin=10)).verdict == "swap"


def test_speed_below_the_floor_is_no_change() -> None:
    result = compare(base(), cand(tps=103.0), CompareOptions(margin=10, speed_floor=0.05))
    assert result.tps is not None and result.tps.verdict == "no change (below floor)"
    assert compare(base(), cand(tps=103.0), CompareOptions(margin=10, speed_floor=0.01)).tps.verdict == "faster"


def test_ttft_and_memory_lower_is_better() -> None:
    result = compare(base(), cand(ttft_s=0.02, memory_mb=600.0), CompareOptions(margin=10))
    assert result.ttft is not None and result.ttft.verdict == "faster"
    assert result.memory is not None and result.memory.verdict == "smaller"


def test_memory_ceiling_exceeded_is_kept_whatever_the_quality() -> None:
    result = compare(base(), cand(memory_mb=1000.0, memory_ceiling_mb=900.0), CompareOptions(margin=10))
    assert result.verdict == "keep"
    assert result.ceiling is not None and result.ceiling.within is False
    assert "memory peak 1,015 MB > ceiling 900 MB" in result.message


def test_memory_ceiling_kept_is_a_swap() -> None:
    result = compare(base(), cand(memory_mb=1000.0, memory_ceiling_mb=2000.0), CompareOptions(margin=10))
    assert result.verdict == "swap"
    assert result.ceiling is not None and result.ceiling.within is True


def test_memory_ceiling_without_a_reading_blocks_the_swap() -> None:
    result = compare(base(), cand(memory_mb=None, memory_ceiling_mb=2000.0), CompareOptions(margin=10))
    assert result.verdict == "inconclusive"
    assert result.ceiling is not None and result.ceiling.within is None
    assert any("cannot be checked" in p for p in result.problems)


# -- caveats ----------------------------------------------------------------------------------------------


def test_identical_provenance_has_no_caveats() -> None:
    assert compare(base(), cand()).caveats == ()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"binary_version": "version: 6100 (def456)", "binary_sha256": "sampled-sha256:cccc"},
         "server binary version: version: 6000 (abc123) → version: 6100 (def456)"),
        ({"binary_sha256": "sampled-sha256:cccc"}, "with the same --version (a rebuilt binary?)"),
        ({"binary": "/usr/local/bin/llama-server"}, "server binary path: /opt/llama.cpp/bin/llama-server →"),
        ({"sampler": {"temperature": 0.6, "top_p": 0.95}}, "sampler: temperature 1.0 → 0.6"),
        ({"sampler": {"temperature": 1.0}}, "sampler: top_p 0.95 → unset"),
        ({"extra_args": ["-ngl", "99", "--flash-attn", "on"]},
         "flags (extra_args): `-ngl 99` → `-ngl 99 --flash-attn on`"),
        ({"context_size": 8192}, "context size: 4096 → 8192"),
        ({"parallel": 4}, "parallel slots: 1 → 4"),
        ({"model": "/models/tiny-q4_0.gguf", "model_size_bytes": 1_000_000, "model_digest": "sha256:dddd"},
         "GGUF (expected): tiny-f16.gguf (3.8 MiB) → tiny-q4_0.gguf (976.6 KiB, −75% size)"),
        ({"model_digest": "sha256:eeee"}, "GGUF: same path tiny-f16.gguf but different content"),
        ({"host": {"gpu": "NVIDIA RTX 3090"}}, "host GPU: NVIDIA GeForce RTX 4090 (24564 MiB) → NVIDIA RTX 3090"),
        ({"host": {"cpu": "Intel Xeon"}}, "host CPU: AMD Ryzen 9 7950X → Intel Xeon"),
        ({"host": {"ram_mb": 64000}}, "host RAM (MB): 128000 → 64000"),
        ({"host": {"hostname": "other-box"}}, "host: gpu-box → other-box"),
        ({"plugin_version": "0.2.0"}, "pytest-quantgate version: 0.1.0 → 0.2.0"),
        ({"started_at": "2026-12-10T10:00:00+00:00"}, "runs 20.0 days apart"),
        ({"memory_source": "rss"}, "memory measured differently: nvml-process → rss"),
    ],
)  # fmt: skip
def test_each_provenance_difference_is_its_own_caveat(change, expected) -> None:
    change = dict(change)
    if "host" in change:
        from result_builders import HOST

        change["host"] = {**HOST, **change["host"]}
    result = compare(base(), cand(**change))
    matching = [c for c in result.caveats if expected in c]
    assert matching, result.caveats
    if len(change) == 1:
        assert len(result.caveats) == 1, result.caveats


def test_runs_within_max_age_have_no_age_caveat() -> None:
    later = cand(started_at="2026-11-30T10:00:00+00:00")
    assert not any("days apart" in c for c in compare(base(), later).caveats)
    assert any("days apart" in c for c in compare(base(), later, CompareOptions(max_age_days=7)).caveats)


def test_incomplete_baseline_is_a_caveat_and_still_compared() -> None:
    interrupted = make_result("tiny-f16", tiny_levels(9), complete=False)
    result = compare(interrupted, cand())
    assert any(c.startswith("baseline incomplete (interrupted run") and "9 iteration(s)" in c for c in result.caveats)
    assert any(c.startswith("different iteration counts: baseline 9, candidate 15") for c in result.caveats)
    assert result.quality.n_baseline == 9


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


def test_levels_with_changed_points_are_a_caveat() -> None:
    levels = tiny_levels()
    levels["test_tiny.py::test_mul"] = (20.0, levels["test_tiny.py::test_mul"][1])
    result = compare(base(), make_result("tiny-q4_0", levels))
    assert any("test_mul is worth 10 points in the baseline and 20 in the candidate" in c for c in result.caveats)
    assert next(lv for lv in result.quality.levels if lv.level.endswith("test_mul")).points == 20.0


def test_suite_run_from_another_directory_matches_by_file_and_test_name() -> None:
    result = compare(renamed(base(), "example_suites/tiny"), cand())
    assert len(result.quality.levels) == 5
    assert result.only_in_baseline == result.only_in_candidate == ()
    assert any("5 level(s) matched by file and test name" in c for c in result.caveats)


def test_same_preset_in_two_runs_is_labelled_by_run() -> None:
    result = compare(base(run_id="r1"), base(run_id="r2"))
    assert result.baseline_label == "tiny-f16@r1"
    assert result.candidate_label == "tiny-f16@r2"
    assert "preset tiny-f16@r2 vs tiny-f16@r1" in result.message


# -- problems ---------------------------------------------------------------------------------------------


def test_partial_overlap_compares_the_common_levels_and_names_the_missing_ones() -> None:
    b = tiny_levels()
    b["test_tiny.py::test_old"] = (5.0, [True] * 15)
    c = tiny_levels()
    del c["test_tiny.py::test_mul"]
    c["test_tiny.py::test_new"] = (5.0, [True] * 15)
    result = compare(make_result("a", b), make_result("b", c))
    assert {lv.level for lv in result.quality.levels} == {f"test_tiny.py::{n}" for n in list(TINY)[:4]}
    assert result.only_in_baseline == ("test_tiny.py::test_mul", "test_tiny.py::test_old")
    assert result.only_in_candidate == ("test_tiny.py::test_new",)
    problem = next(p for p in result.problems if p.startswith("different level sets"))
    assert "compared on the 4 common level(s) only" in problem
    assert "only in the baseline: test_tiny.py::test_mul, test_tiny.py::test_old" in problem
    assert "only in the candidate: test_tiny.py::test_new" in problem
    assert result.baseline_aggregate.max_points == 90.0


TINY = ["test_copy", "test_reverse", "test_add2", "test_add3", "test_mul"]


def test_no_level_in_common_is_refused_with_both_level_lists() -> None:
    other = make_result("b", item_levels(3, 5))
    with pytest.raises(ResultsError) as info:
        compare(base(), other)
    text = str(info.value)
    assert "share no level" in text and "different suites" in text
    assert "test_tiny.py::test_copy" in text and "test_knowledge.py::test_question[q01]" in text
    assert "Run the same suite on both presets" in text


def test_baseline_with_a_single_iteration() -> None:
    result = compare(base(1), cand())
    assert any(p.startswith("baseline has a single iteration") for p in result.problems)
    assert result.unpaired is None
    assert result.verdict == "inconclusive"
    assert "n=1–15" in result.message


def test_baseline_with_only_a_summary_uses_its_level_counts() -> None:
    full = base()
    worse = cand(misses={"test_add3": 10})
    expected = compare(full, worse)
    result = compare(summary_only(full), worse)
    assert any(p.startswith("baseline has no per-iteration samples") for p in result.problems)
    assert result.quality.lower_bound == pytest.approx(expected.quality.lower_bound)
    assert result.verdict == expected.verdict == "keep"
    assert result.unpaired is not None and result.unpaired.unpaired
    assert result.ttft is None and result.paired is None
    assert any(p.startswith("TTFT not compared: the baseline recorded none") for p in result.problems)
    assert "verdict keep" in render(result)


def test_baseline_with_no_level_data_at_all_is_refused() -> None:
    empty = with_samples(base(), [])
    with pytest.raises(ResultsError, match=r"holds no level results.*re-run the suite"):
        compare(empty, cand())


def test_errored_level_runs_are_a_problem() -> None:
    b = base()
    samples = list(b.samples)
    samples[0] = type(samples[0])(**{**samples[0].to_dict(), "outcome": "error", "requests": ()})
    result = compare(with_samples(b, samples), cand())
    assert any(p.startswith("baseline had 1 errored level run(s)") for p in result.problems)


def test_comparing_a_run_with_itself_is_a_problem() -> None:
    result = compare(base(), base())
    assert any("same run" in p for p in result.problems)
    assert result.verdict != "keep"


# -- matched items ----------------------------------------------------------------------------------------


def test_parametrized_items_are_paired_and_flipped_items_listed() -> None:
    b = make_result("a", item_levels(20, 3))
    c = make_result("b", item_levels(20, 3, wrong={"q03": [1, 2, 3], "q07": [2]}))
    result = compare(b, c)
    assert result.paired is not None
    assert result.paired.items == 20 and result.paired.pairs == 60
    assert (result.paired.mcnemar.b, result.paired.mcnemar.c) == (4, 0)
    assert result.paired.lost == ("test_question[q03]", "test_question[q07]")
    assert result.paired.gained == ()
    assert result.paired.noninferiority.margin == 2.0
    text = render(result)
    assert "matched items: 20 items, 60 pairs; lost 4, gained 0" in text
    assert "items lost: test_question[q03], test_question[q07]" in text


def test_plain_levels_are_not_paired() -> None:
    assert compare(base(), cand()).paired is None


# -- options ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"margin": -1.0}, "margin=-1.0"),
        ({"margin": float("nan")}, "margin=nan"),
        ({"speed_floor": -0.1}, "speed_floor=-0.1"),
        ({"alpha": 0.7}, "alpha=0.7"),
        ({"max_age_days": 0.0}, "max_age_days=0.0"),
    ],
)
def test_bad_options_name_the_value(kwargs, fragment) -> None:
    with pytest.raises(SpecError, match=fragment.replace(".", r"\.")):
        CompareOptions(**kwargs)


# -- render -----------------------------------------------------------------------------------------------


def test_render_has_both_rows_levels_recommendation_caveats_and_verdict() -> None:
    c = cand(misses={"test_add3": 10}, context_size=8192, memory_ceiling_mb=5000.0)
    text = render(compare(base(), c))
    assert "tiny-f16 (baseline)" in text and "tiny-q4_0 (candidate)" in text
    assert "Δ candidate − baseline" in text
    assert "per-level pass rates" in text and "test_add3" in text and "worse" in text
    for criterion in ("quality (score, margin 2)", "tokens/s", "TTFT", "memory peak MB", "memory ceiling", "load"):
        assert criterion in text
    assert "caveats (the runs differ in more than the model):\n  - context size: 4096 → 8192" in text
    assert text.rstrip().splitlines()[-1].startswith("verdict keep: ")


# -- the command ------------------------------------------------------------------------------------------


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


# -- properties -------------------------------------------------------------------------------------------


counts = st.lists(st.integers(min_value=0, max_value=8), min_size=5, max_size=5)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(counts, counts, st.sampled_from([0.0, 2.0, 10.0]))
def test_compare_both_ways_is_consistent(misses_a, misses_b, margin) -> None:
    """Swapping the roles mirrors the quality analysis exactly, and two presets can never each be shown
    to be the worse one: "keep" both ways would mean each is worse than the other."""
    a = make_result("a", tiny_levels(8, dict(zip(TINY, misses_a, strict=True))))
    b = make_result("b", tiny_levels(8, dict(zip(TINY, misses_b, strict=True))))
    options = CompareOptions(margin=margin)
    ab, ba = compare(a, b, options), compare(b, a, options)
    assert ab.quality.difference == pytest.approx(-ba.quality.difference, abs=1e-9)
    assert ab.quality.lower_bound == pytest.approx(-ba.quality.upper_bound, abs=1e-9)
    assert not (ab.verdict == "keep" and ba.verdict == "keep")
    if ab.verdict == "swap" and ba.verdict == "keep":
        assert ab.quality.difference > 0  # only a clearly better candidate wins one way and loses the other
    # A wider margin never turns a swap into something else.
    if ab.verdict == "swap":
        assert compare(a, b, CompareOptions(margin=margin + 5)).verdict == "swap"


# -- with the sequential test -----------------------------------------------------------------------------


def decision(kind: str, iterations: int = 9, reason: str = "because") -> SequentialDecision:
    return SequentialDecision(kind, iterations, -1.0, 1.0, 2.2, 1.9, False, reason)  # type: ignore[arg-type]


def test_sequential_decision_rules_the_swap() -> None:
    b, c, options = base(), cand(), CompareOptions(margin=10)
    assert compare(b, c, options).verdict == "swap"  # the fixed analysis alone would swap
    held = compare(b, c, options, sequential=decision("continue", reason="lower bound −8.1 pp <= −10 pp"))
    assert held.verdict == "inconclusive"  # a fixed bound after repeated looks would inflate false swaps
    assert "sequential test: lower bound −8.1 pp" in held.message
    kept = compare(b, c, options, sequential=decision("keep", reason="futility"))
    assert kept.verdict == "keep" and "sequential test after 9 iterations: futility" in kept.message


def test_a_real_sequential_decision_swaps_an_equal_candidate_at_a_wide_margin() -> None:
    b, c = base(), cand()
    agg_b, agg_c = (aggregate(r.preset.id, r.samples) for r in (b, c))
    test = SequentialTest.create(18.0)
    made = test.decide(
        {lv.level: lv.outcomes for lv in agg_b.levels},
        {lv.level: lv.outcomes for lv in agg_c.levels},
        {lv.level: lv.points for lv in agg_b.levels},
    )
    assert made.decision == "swap"
    result = compare(b, c, CompareOptions(margin=18), sequential=made)
    assert result.verdict == "swap" and result.sequential is made
    assert "sequential test: swap after 15 iterations" in render(result)
