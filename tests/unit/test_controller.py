"""Tests of pytest_quantgate.controller: the controller's side of a run, fed fabricated reports the way the
plugin feeds it pytest's (and xdist's replayed) reports. No pytest session and no server: the presets are
external ones nobody attaches to, the samples are made up, so every figure below is known."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from result_builders import TINY_POINTS, make_result, tiny_levels

from pytest_quantgate.config import RunConfig
from pytest_quantgate.controller import GATE_PREFIX, Arrival, Controller, Emitted, Line
from pytest_quantgate.errors import ResultsError, SpecError
from pytest_quantgate.gates import parse_gate
from pytest_quantgate.keys import iteration_id
from pytest_quantgate.levels import RequestRecord, Sample
from pytest_quantgate.measures import Measurement
from pytest_quantgate.presets import Preset
from pytest_quantgate.recorder import Part
from pytest_quantgate.results import load_result, store_latest, stored_path

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path

RUN_ID = "20261120-100000-abcd"
LEVELS = [f"test_tiny.py::{name}" for name in TINY_POINTS]  # five levels, 25/25/25/15/10 points


@dataclass
class Report:
    """What the controller reads of a pytest TestReport (the sample rides on it as quantgate_sample)."""

    nodeid: str
    when: str = "call"
    outcome: str = "passed"
    quantgate_sample: Sample | None = None


def preset(preset_id: str, **fields: object) -> Preset:
    return Preset(id=preset_id, name=preset_id, driver="external", source=None, base_url="http://127.0.0.1:9", **fields)  # type: ignore[arg-type]


def controller(tmp_path: Path, *presets: Preset | str, progress: bool = True, **fields: object) -> Controller:
    chosen = tuple(p if isinstance(p, Preset) else preset(p) for p in presets)
    config = RunConfig(presets=chosen, run_id=RUN_ID, out_dir=tmp_path / "qg", **fields)  # type: ignore[arg-type]
    return Controller(config, progress=progress)


def nodeid(level: str, preset_id: str | None, iteration: int) -> str:
    return f"{level}[{f'{preset_id}-' if preset_id else ''}{iteration_id(iteration)}]"


def collect(ctl: Controller, iterations: int, levels: Sequence[str] = LEVELS) -> None:
    """What collection tells the controller: every (node id, level key) of the run."""
    several = len(ctl.config.presets) > 1
    ctl.collected(
        (nodeid(level, p.id if several else None, k), level)
        for p in ctl.config.presets
        for k in range(1, iterations + 1)
        for level in levels
    )


def sample(preset_id: str, level: str, iteration: int, outcome: str = "passed", **fields: object) -> Sample:
    return Sample(
        preset=preset_id,
        level=level,
        name=level.rpartition("::")[2],
        iteration=iteration,
        points=TINY_POINTS[level.rpartition("::")[2]],
        outcome=outcome,  # type: ignore[arg-type]
        duration_s=0.2,
        requests=(RequestRecord(endpoint="/v1/completions", wall_s=0.2, predicted_n=20, predicted_ms=200.0),),
        **fields,  # type: ignore[arg-type]
    )


def feed(
    ctl: Controller, preset_id: str, iteration: int, failing: Iterable[str] = (), **fields: object
) -> list[Arrival | None]:
    """One iteration of the five levels on *preset_id*: every report the controller sees for it."""
    several = len(ctl.config.presets) > 1
    failing = set(failing)
    arrivals = []
    for level in LEVELS:
        node = nodeid(level, preset_id if several else None, iteration)
        arrivals.append(ctl.add(Report(node, when="setup")))  # set-up and teardown carry no sample
        outcome = "failed" if level.rpartition("::")[2] in failing else "passed"
        arrivals.append(ctl.add(Report(node, quantgate_sample=sample(preset_id, level, iteration, outcome, **fields))))
        arrivals.append(ctl.add(Report(node, when="teardown")))
    return arrivals


def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "qg" / "runs" / RUN_ID


# -- progress, iteration by iteration -----------------------------------------------------------------


def test_a_progress_line_when_the_last_level_of_an_iteration_arrives(tmp_path: Path) -> None:
    ctl = controller(tmp_path, "p")
    collect(ctl, iterations=3)
    first = feed(ctl, "p", 1, failing=["test_mul"])
    assert first[:-2] == [None] * 13  # nothing until the iteration is complete
    assert first[-2] == Arrival(progress="quantgate p iteration 1/3: 90.0 % (running mean 90.0 %), 100 tok/s")
    second = feed(ctl, "p", 2, failing=["test_copy", "test_mul"])
    assert second[-2] == Arrival(progress="quantgate p iteration 2/3: 65.0 % (running mean 77.5 %), 100 tok/s")


def test_no_progress_line_when_the_terminal_shows_none(tmp_path: Path) -> None:
    ctl = controller(tmp_path, "p", progress=False)
    collect(ctl, iterations=1)
    assert feed(ctl, "p", 1)[-2] == Arrival(progress=None, stop=None)


def test_progress_is_counted_per_preset_when_presets_start_alike(tmp_path: Path) -> None:
    ctl = controller(tmp_path, "tiny", "tiny-f16")
    collect(ctl, iterations=2)
    assert ctl.expected == {("tiny", 1): 5, ("tiny", 2): 5, ("tiny-f16", 1): 5, ("tiny-f16", 2): 5}
    feed(ctl, "tiny", 1)
    arrival = feed(ctl, "tiny-f16", 1)[-2]
    assert arrival is not None and arrival.progress is not None
    assert arrival.progress.startswith("quantgate tiny-f16 iteration 1/2: 100.0 %")


def test_xdist_collection_counts_the_first_workers_ids_only(tmp_path: Path) -> None:
    ctl = controller(tmp_path, "a", "b")
    ids = [nodeid(level, p, k) for p in ("a", "b") for k in (1, 2) for level in LEVELS] + ["test_other.py::test_x"]
    ctl.collected_ids(ids)
    ctl.collected_ids(ids)  # the second worker's collection: the same items
    assert ctl.expected == {("a", 1): 5, ("a", 2): 5, ("b", 1): 5, ("b", 2): 5}


# -- the results stream and the final files -------------------------------------------------------------


def test_results_stream_as_samples_arrive_and_a_result_per_preset_at_the_end(tmp_path: Path) -> None:
    ctl = controller(tmp_path, "a", "b")
    collect(ctl, iterations=2)
    ctl.prepare()
    streams = {pid: run_dir(tmp_path) / pid / "result.jsonl" for pid in ("a", "b")}
    assert [len(path.read_text().splitlines()) for path in streams.values()] == [1, 1]  # the headers
    feed(ctl, "a", 1)
    assert [len(path.read_text().splitlines()) for path in streams.values()] == [6, 1]
    header, *samples = (json.loads(line) for line in streams["a"].read_text().splitlines())
    assert header["header"]["preset"]["id"] == "a"
    assert [s["sample"]["level"] for s in samples] == LEVELS
    for pid, k in (("a", 2), ("b", 1), ("b", 2)):
        feed(ctl, pid, k)
    assert not list(run_dir(tmp_path).glob("*/result.json"))  # only at the end
    written = ctl.finish(interrupted=False)
    assert written == [run_dir(tmp_path) / pid / "result.json" for pid in ("a", "b")]
    final = load_result(written[0])
    assert (final.complete, len(final.samples), final.suite) == (True, 10, "test_tiny.py")


def test_a_clean_run_becomes_the_stored_latest_result_of_its_suite(tmp_path: Path) -> None:
    ctl = controller(tmp_path, "p")
    collect(ctl, iterations=1)
    feed(ctl, "p", 1, failing=["test_mul"])  # a wrong answer is a result like any other
    ctl.finish(interrupted=False)
    stored = stored_path(tmp_path / "qg" / "results", "p", "test_tiny.py")
    assert load_result(stored).run_id == RUN_ID
    assert f"results: {run_dir(tmp_path) / 'p' / 'result.json'}" in [line.text for line in ctl.summary()]
    assert ctl.recorder.store_notes == [f"p: stored as the latest result of suite test_tiny.py: {stored}"]


def test_an_interrupted_run_writes_its_result_but_never_becomes_the_stored_one(tmp_path: Path) -> None:
    ctl = controller(tmp_path, "p")
    collect(ctl, iterations=3)
    feed(ctl, "p", 1)
    written = ctl.finish(interrupted=True)
    assert load_result(written[0]).complete is False
    assert not (tmp_path / "qg" / "results").exists()
    assert ctl.summary()[-1] == Line(
        "p: not stored as a baseline (the run was interrupted): only a complete run without errors replaces one"
    )


def test_a_run_with_an_errored_level_is_not_stored(tmp_path: Path) -> None:
    ctl = controller(tmp_path, "p")
    collect(ctl, iterations=1)
    feed(ctl, "p", 1)
    ctl.add(Report("test_tiny.py::test_late[iter-01]", quantgate_sample=sample("p", LEVELS[0], 1, "error")))
    ctl.finish(interrupted=False)
    assert not (tmp_path / "qg" / "results").exists()
    assert "1 level run(s) errored" in ctl.recorder.store_notes[0]


def test_a_preset_that_never_reported_leaves_no_result(tmp_path: Path) -> None:
    ctl = controller(tmp_path, "a", "b")
    collect(ctl, iterations=1)
    ctl.prepare()
    feed(ctl, "a", 1)
    assert ctl.finish(interrupted=True) == [run_dir(tmp_path) / "a" / "result.json"]


def test_nothing_to_report_without_samples(tmp_path: Path) -> None:
    ctl = controller(tmp_path, "p", gates=(parse_gate("score_mean>=90"),), baseline="p")
    collect(ctl, iterations=1)
    assert (ctl.gates(), ctl.verdicts(), ctl.summary()) == ([], [], [])
    assert ctl.finish(interrupted=False) == []


# -- gates ----------------------------------------------------------------------------------------------


def test_option_gates_pass_and_fail_with_the_figures_in_the_message(tmp_path: Path) -> None:
    gates = (parse_gate("score_mean>=90"), parse_gate("errors<=0"))
    ctl = controller(tmp_path, "p", gates=gates)
    collect(ctl, iterations=2)
    feed(ctl, "p", 1, failing=["test_add2"])
    feed(ctl, "p", 2, failing=["test_add2"])
    score, errors = ctl.gates()
    assert (score.nodeid, score.passed) == (f"{GATE_PREFIX}gate[score_mean>=90]", False)
    assert (
        score.message
        == "gate[score_mean>=90] failed: score mean 75.0 < 90.0 (n=2, σ=0.0, no CI: every iteration gave the same "
        "value, preset p)"
    )
    assert (errors.nodeid, errors.passed) == (f"{GATE_PREFIX}gate[errors<=0]", True)


def test_a_gate_on_a_recorded_measurement(tmp_path: Path) -> None:
    ctl = controller(tmp_path, "fast", "slow", gates=(parse_gate("chars_per_s_mean >= 50"),))
    collect(ctl, iterations=2)
    for k in (1, 2):
        feed(ctl, "fast", k, measures=(Measurement("chars_per_s", 60.0 + k, unit="chars/s"),))
        feed(ctl, "slow", k, measures=(Measurement("chars_per_s", 40.0 + k, unit="chars/s"),))
    fast, slow = ctl.gates()
    assert fast == Emitted(f"{GATE_PREFIX}fast::gate[chars_per_s_mean>=50]", True, fast.message)
    assert fast.message == "chars_per_s mean 61.5 >= 50.0 (n=2, σ=0.707, 95% CI [55.1, 67.9], preset fast)"
    assert (slow.nodeid, slow.passed) == (f"{GATE_PREFIX}slow::gate[chars_per_s_mean>=50]", False)
    assert slow.message.startswith("gate[chars_per_s_mean>=50] failed: chars_per_s mean 41.5 < 50.0 (n=2")


def test_mark_gates_ride_on_samples_and_pass_rate_applies_to_its_level(tmp_path: Path) -> None:
    ctl = controller(tmp_path, "p")
    collect(ctl, iterations=2)
    for k in (1, 2):
        feed(ctl, "p", k, failing=["test_mul"], gates=("pass_rate >= 50",))
    outcomes = {e.nodeid.removeprefix(GATE_PREFIX): e.passed for e in ctl.gates()}
    assert outcomes == {f"gate[pass_rate[{name}]>=50]": name != "test_mul" for name in TINY_POINTS}


def test_a_preset_gate_and_its_memory_ceiling(tmp_path: Path) -> None:
    capped = preset("p", gates=("score_mean >= 50",), memory_ceiling_mb=500.0)
    ctl = controller(tmp_path, capped)
    collect(ctl, iterations=1)
    feed(ctl, "p", 1, memory_mb=900.0, memory_peak_mb=900.0, memory_source="rss")
    score, memory = ctl.gates()
    assert score.passed and not memory.passed
    assert memory.nodeid == f"{GATE_PREFIX}gate[memory_mb<=500]"


def test_a_gate_that_cannot_be_evaluated_is_an_error(tmp_path: Path) -> None:
    ctl = controller(tmp_path, "p")
    collect(ctl, iterations=1)
    feed(ctl, "p", 1, gates=("score_mean >= nope",))
    with pytest.raises(SpecError):
        ctl.gates()


# -- the verdict against a baseline ---------------------------------------------------------------------


def store(tmp_path: Path, preset_id: str, n: int, misses: dict[str, int] | None = None) -> Path:
    return store_latest(make_result(preset_id, tiny_levels(n, misses)), tmp_path / "qg" / "results")


def run_candidate(ctl: Controller, preset_id: str, n: int, misses: dict[str, int] | None = None) -> None:
    misses = misses or {}
    for k in range(1, n + 1):
        feed(ctl, preset_id, k, failing=[name for name, m in misses.items() if k > n - m])


def test_an_equal_candidate_swaps_against_the_stored_baseline(tmp_path: Path) -> None:
    path = store(tmp_path, "old", 15)
    ctl = controller(tmp_path, "new", baseline="old", margin=10.0)
    collect(ctl, iterations=15)
    assert ctl.recorder.stored_baselines["test_tiny.py"].path == path
    run_candidate(ctl, "new", 15)
    [verdict] = ctl.verdicts()
    assert (verdict.nodeid, verdict.passed) == (f"{GATE_PREFIX}verdict[new vs old]", True)
    assert verdict.message.startswith("verdict swap: score Δ +0.0 pts")
    lines = ctl.summary()
    assert Line("new against the baseline old", "-") in lines
    assert Line(f"baseline: {ctl.recorder.stored_baselines['test_tiny.py'].describe()}") in lines


def test_a_candidate_worse_on_one_level_is_kept(tmp_path: Path) -> None:
    store(tmp_path, "old", 15)
    ctl = controller(tmp_path, "new", baseline="old")
    collect(ctl, iterations=15)
    run_candidate(ctl, "new", 15, misses={"test_add3": 10})
    [verdict] = ctl.verdicts()
    assert not verdict.passed
    assert verdict.message.startswith("verdict keep:") and "test_add3" in verdict.message


def test_the_baseline_can_be_a_preset_of_the_same_run(tmp_path: Path) -> None:
    ctl = controller(tmp_path, "old", "new", baseline="old", margin=10.0)
    collect(ctl, iterations=15)
    run_candidate(ctl, "old", 15)
    run_candidate(ctl, "new", 15)
    [verdict] = ctl.verdicts()
    assert (verdict.nodeid, verdict.passed) == (f"{GATE_PREFIX}verdict[new vs old]", True)


def test_a_baseline_from_another_suite_is_refused_at_collection(tmp_path: Path) -> None:
    store(tmp_path, "old", 5)
    ctl = controller(tmp_path, "new", baseline="old")
    with pytest.raises(ResultsError, match="--baseline"):
        collect(ctl, iterations=1, levels=["test_other.py::test_a"])


def test_the_sequential_test_stops_a_clearly_worse_candidate_early(tmp_path: Path) -> None:
    store(tmp_path, "old", 15)
    ctl = controller(tmp_path, "new", baseline="old", sequential=True, margin=10.0, iterations=15)
    collect(ctl, iterations=15)
    stops = []
    for k in range(1, 16):
        arrival = feed(ctl, "new", k, failing=["test_copy", "test_reverse"])[-2]
        assert arrival is not None
        if arrival.stop:
            stops.append((k, arrival.stop))
            break
    [(k, reason)] = stops
    assert k < 15
    assert reason.startswith(f"quantgate --sequential: verdict keep for new settled after {k} iterations (")
    [verdict] = ctl.verdicts()
    assert not verdict.passed
    assert any(line.text.startswith(f"new: stopped early after {k} iterations") for line in ctl.summary())


def test_no_stop_without_sequential(tmp_path: Path) -> None:
    store(tmp_path, "old", 15)
    ctl = controller(tmp_path, "new", baseline="old", iterations=5)
    collect(ctl, iterations=5)
    for k in range(1, 6):
        arrival = feed(ctl, "new", k, failing=["test_copy", "test_reverse"])[-2]
        assert arrival is not None and arrival.stop is None


def items_of(iteration: int, wrong: bool = False) -> tuple:
    """Twenty fresh items per level and iteration (as the tiny suite draws them), all right or all wrong."""
    from pytest_quantgate.measures import ItemOutcome

    return tuple(ItemOutcome(f"{iteration}-{i}", 0.0 if wrong else 1.0) for i in range(20))


@pytest.mark.parametrize(("wrong", "verdict"), [((), "swap"), (("test_add3",), "keep")])
def test_the_sequential_test_decides_on_items_when_the_suite_has_them(tmp_path: Path, wrong, verdict) -> None:
    import dataclasses

    old = make_result("old", tiny_levels(15))
    old = old.model_copy(update={"samples": [dataclasses.replace(s, items=items_of(s.iteration)) for s in old.samples]})
    store_latest(old, tmp_path / "qg" / "results")
    ctl = controller(tmp_path, "new", baseline="old", sequential=True, margin=5.0, iterations=15)
    collect(ctl, iterations=15)
    stop = None
    for k in range(1, 16):
        for level in LEVELS:
            items = items_of(k, wrong=level.rpartition("::")[2] in wrong)
            arrival = ctl.add(Report(nodeid(level, None, k), quantgate_sample=sample("new", level, k, items=items)))
        assert arrival is not None
        if arrival.stop:
            stop = (k, arrival.stop)
            break
    assert stop is not None, "the item test never stopped"
    k, reason = stop
    assert k < 15
    assert reason.startswith(f"quantgate --sequential: verdict {verdict} for new settled after {k} iterations")
    decision = ctl.recorder.stopped_early[Part("new", "test_tiny.py")]
    assert type(decision).__name__ == "ItemSequentialDecision"


def test_with_two_candidates_the_run_stops_only_when_both_are_settled(tmp_path: Path) -> None:
    store(tmp_path, "old", 15)
    ctl = controller(tmp_path, "bad", "worse", baseline="old", sequential=True, margin=10.0, iterations=15)
    collect(ctl, iterations=15)
    settled_at = {}
    for k in range(1, 16):
        bad = feed(ctl, "bad", k, failing=["test_copy", "test_reverse"])[-2]
        assert bad is not None
        if Part("bad", "test_tiny.py") in ctl.recorder.stopped_early and "bad" not in settled_at:
            settled_at["bad"] = k
            assert bad.stop is None  # "worse" is still open: the run goes on
            assert ctl.settled("bad", LEVELS[0]).startswith("--sequential: bad settled (keep) after")
        worse = feed(ctl, "worse", k, failing=["test_copy", "test_reverse", "test_add2"])[-2]
        assert worse is not None
        if worse.stop:
            assert worse.stop.startswith("quantgate --sequential: verdict keep for worse settled")
            break
    assert settled_at and ctl.settled("worse", LEVELS[0]) is not None and ctl.stopped is not None
    assert ctl.settled("old", LEVELS[0]) is None


def test_greedy_decoding_takes_the_item_sequential_test_as_the_comparison_does(tmp_path: Path) -> None:
    from pytest_quantgate.presets import Sampler

    old = make_result("old", tiny_levels(15), sampler={"temperature": 0.0})
    store_latest(old, tmp_path / "qg" / "results")
    greedy = preset("new", sampler=Sampler(temperature=0.0))
    ctl = controller(tmp_path, greedy, baseline="old", sequential=True, margin=5.0, iterations=15)
    collect(ctl, iterations=15)
    for k in range(1, 4):
        feed(ctl, "new", k)
    decision = ctl.recorder.sequential[Part("new", "test_tiny.py")]
    assert type(decision).__name__ == "ItemSequentialDecision"  # each level one item


# -- several suites in one run ------------------------------------------------------------------------

OTHER = [level.replace("test_tiny.py", "more/test_more.py") for level in LEVELS]  # a second module


def store_suite(tmp_path: Path, preset_id: str, levels: Sequence[str], n: int) -> Path:
    result = make_result(preset_id, tiny_levels(n))
    moved = [dataclasses.replace(s, level=levels[LEVELS.index(s.level)]) for s in result.samples]
    return store_latest(result.model_copy(update={"samples": moved}), tmp_path / "qg" / "results")


def feed_suite(ctl: Controller, levels: Sequence[str], k: int, failing: Iterable[str]) -> Arrival | None:
    arrival = None
    for level in levels:
        outcome = "failed" if level.rpartition("::")[2] in failing else "passed"
        arrival = ctl.add(Report(nodeid(level, None, k), quantgate_sample=sample("new", level, k, outcome)))
    return arrival


def test_each_suite_is_settled_apart_and_the_run_stops_when_every_one_is(tmp_path: Path) -> None:
    stored = {store_suite(tmp_path, "old", levels, 15) for levels in (LEVELS, OTHER)}
    ctl = controller(tmp_path, "new", baseline="old", sequential=True, margin=10.0, iterations=15)
    collect(ctl, iterations=15, levels=[*LEVELS, *OTHER])
    assert {b.path for b in ctl.recorder.stored_baselines.values()} == stored  # one stored result per suite
    settled_at = None
    for k in range(1, 16):
        feed_suite(ctl, LEVELS, k, failing=["test_copy", "test_reverse", "test_add2"])
        arrival = feed_suite(ctl, OTHER, k, failing=["test_copy", "test_reverse"])
        assert arrival is not None
        other = Part("new", "more/test_more.py")
        if other in ctl.recorder.stopped_early and settled_at is None:
            settled_at = k
            if Part("new", "test_tiny.py") not in ctl.recorder.stopped_early:
                assert arrival.stop is None  # the first suite is still open: the run goes on
                assert ctl.settled("new", LEVELS[0]) is None
            assert (ctl.settled("new", OTHER[0]) or "").startswith("--sequential: new · more/test_more.py settled")
        if arrival.stop:
            break
    assert settled_at is not None and ctl.stopped is not None
    verdicts = {v.nodeid: v.passed for v in ctl.verdicts()}
    assert verdicts == {
        f"{GATE_PREFIX}verdict[new · test_tiny.py vs old]": False,
        f"{GATE_PREFIX}verdict[new · more/test_more.py vs old]": False,
    }


def test_progress_lines_read_what_the_scores_of_every_sample_say_in_any_arrival_order(tmp_path: Path) -> None:
    """Two presets, two suites, reports arriving out of order as xdist workers send them: each progress line
    shows what the iteration scores recomputed from every sample so far say."""
    import random

    ctl = controller(tmp_path, "a", "b")
    levels = [*LEVELS, *OTHER]
    collect(ctl, iterations=4, levels=levels)
    rng = random.Random(7)
    samples = [
        sample(p, level, k, "failed" if rng.random() < 0.3 else rng.choice(["passed", "passed", "error", "skipped"]))
        for p in ("a", "b")
        for k in range(1, 5)
        for level in levels
    ]
    rng.shuffle(samples)
    lines = 0
    for s in samples:
        arrival = ctl.add(Report(nodeid(s.level, s.preset, s.iteration), quantgate_sample=s))
        if arrival is None or arrival.progress is None:
            continue
        shown = []
        for part in (p for p in ctl.recorder.parts() if p.preset == s.preset):
            scores = ctl.recorder.iteration_scores(part)
            this = next((it for it in scores if it.iteration == s.iteration), None)
            if this is not None:
                mean = sum(it.percent for it in scores) / len(scores)
                shown.append(f"{part.suite} {this.percent:.1f} % (running mean {mean:.1f} %)")
        assert arrival.progress.startswith(f"quantgate {s.preset} iteration {s.iteration}/4: {'; '.join(shown)}")
        lines += 1
    assert lines == 8  # every (preset, iteration) completes once
