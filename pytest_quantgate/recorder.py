"""The controller's record of a run, without pytest: each level run's Sample (built from plain values the
plugin reads off pytest's report), the results stream, aggregates, gates, the baseline and the final files.
"""

from __future__ import annotations

import datetime as dt
import traceback
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_quantgate import __version__
from pytest_quantgate.credentials import redact
from pytest_quantgate.effective import load as load_effective
from pytest_quantgate.errors import QuantgateError
from pytest_quantgate.gates import GateOutcome, GateSpec, dedupe, evaluate, parse_gate
from pytest_quantgate.keys import suite_of
from pytest_quantgate.levels import (
    IterationScore,
    IterationTally,
    RequestRecord,
    RunAggregate,
    Sample,
    aggregate,
    iteration_scores,
)
from pytest_quantgate.memory import read_probe_state
from pytest_quantgate.memory_report import llama_memory, server_memory_fields
from pytest_quantgate.provenance import host_info, preset_record
from pytest_quantgate.results import (
    GateRecord,
    Header,
    PresetRecord,
    ResultFile,
    ResultStream,
    ServerRecord,
    store_latest,
    suite_file_name,
    why_not_stored,
    write_final,
)
from pytest_quantgate.sharing import read_info, reap
from pytest_quantgate.summary import SummaryRecord

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from pathlib import Path

    from pytest_quantgate.baselines import Baseline
    from pytest_quantgate.compare import Comparison
    from pytest_quantgate.completion import Completion
    from pytest_quantgate.config import RunConfig
    from pytest_quantgate.inference import (
        ItemSequentialDecision,
        ItemSequentialTest,
        SequentialDecision,
        SequentialTest,
    )
    from pytest_quantgate.keys import LevelInfo
    from pytest_quantgate.levels import Outcome
    from pytest_quantgate.measures import ItemOutcome, Measurement
    from pytest_quantgate.presets import Preset


# The test report attribute a level run's Sample rides on to the controller (through xdist too).
SAMPLE_ATTR = "quantgate_sample"


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def level_outcome(*, when: str, passed: bool, skipped: bool, exception: BaseException | None) -> Outcome:
    """A level run's outcome from its report: a failed assert in the test is a wrong answer ("failed");
    anything else that goes wrong, in set-up or the test, is an "error"."""
    if skipped:
        return "skipped"
    if passed:
        return "passed"
    if when == "call" and isinstance(exception, AssertionError):
        return "failed"
    return "error"


def level_error(exception: BaseException | None, report_text: Callable[[], str]) -> str:
    """One line saying what went wrong: a QuantgateError's own message (it names what to do), else the
    exception's first line, else the report's (a strict xpass has no exception)."""
    if isinstance(exception, QuantgateError):
        return str(exception)
    if exception is not None:
        return one_line("".join(traceback.format_exception_only(exception)))
    return one_line(report_text())


def level_sample(
    level: LevelInfo,
    *,
    preset: str,
    iteration: int,
    when: str,
    passed: bool,
    skipped: bool,
    exception: BaseException | None,
    report_text: Callable[[], str],
    duration_s: float,
    completions: Iterable[Completion] = (),
    memory: tuple[float | None, float | None, str | None] = (None, None, None),
    measures: Iterable[Measurement] = (),
    items: Iterable[ItemOutcome] = (),
) -> Sample:
    """The Sample of one level run, from what its report says. *report_text* (pytest's longreprtext) is
    called only for a failure without an exception, so a passing level never renders one."""
    outcome = level_outcome(when=when, passed=passed, skipped=skipped, exception=exception)
    now, peak, source = memory
    return Sample(
        preset=preset,
        level=level.key,
        name=level.name,
        iteration=iteration,
        points=level.spec.points,
        outcome=outcome,
        duration_s=duration_s,
        error=level_error(exception, report_text) if outcome in ("failed", "error") else None,
        requests=tuple(RequestRecord.of(c) for c in completions),
        memory_mb=now,
        memory_peak_mb=peak,
        memory_source=source,
        gates=level.gates,
        measures=tuple(measures),
        items=tuple(items),
    )


def one_line(text: str, limit: int = 300) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first[:limit]


@dataclass(frozen=True, slots=True, order=True)
class Part:
    """One preset on one suite (a test module): what a run scores, gates, compares and stores apart."""

    preset: str
    suite: str


class Recorder:
    """Controller side: receives samples in arrival order, streams them, and finishes the run.

    Each :class:`Part` — a preset on one suite — is scored, gated, compared and written apart: a run over
    two test modules gives each its own row, gates, verdict and result file.
    """

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.stored_baselines: dict[str, Baseline] = {}  # per suite: where a stored baseline came from
        self.store_notes: list[str] = []  # what finish() did with the store of latest results
        self.samples: dict[str, list[Sample]] = defaultdict(list)  # per preset, every suite
        self.outcomes: dict[Part, list[GateOutcome]] = {}
        self.comparisons: dict[Part, Comparison] = {}
        self.stopped_early: dict[Part, SequentialDecision | ItemSequentialDecision] = {}
        self.sequential: dict[Part, SequentialDecision | ItemSequentialDecision] = {}  # latest per candidate
        self.started_at = now_iso()
        self._parts: dict[Part, None] = {}  # in the order collected (or first reported)
        self._streams: dict[Part, ResultStream] = {}
        # What the progress lines read, and how many of the preset's samples each has taken in: brought up to
        # date when a line is asked for, so that a run without progress lines (-q, xdist workers) pays nothing.
        self._tallies: dict[Part, tuple[IterationTally, int]] = {}
        self._host: dict[str, object] | None = None
        self._sequential: SequentialTest | None = None
        self._item_sequential: ItemSequentialTest | None = None
        self.planned: dict[str, int] = {}  # iterations collected per preset (set by the controller)

    def use_baselines(self, baselines: Mapping[str, Baseline]) -> None:
        """The stored results --baseline names, per suite, resolved once collected (see load_baselines)."""
        self.stored_baselines = dict(baselines)

    def add(self, sample: Sample) -> None:
        part = Part(sample.preset, suite_of(sample.level))
        self._parts.setdefault(part)
        self.samples[sample.preset].append(sample)
        self._stream(part).add(sample)

    def prepare(self, parts: Iterable[Part]) -> None:
        """Open the result streams (header and provenance) of the parts collected, ahead of their samples."""
        for part in parts:
            self._parts.setdefault(part)
        for part in self.parts():
            self._stream(part)

    # -- parts ------------------------------------------------------------------------------------------

    def parts(self) -> list[Part]:
        """Every part collected or reported: by preset (in the run's order), then suite (as collected)."""
        order = {pid: k for k, pid in enumerate(self.preset_ids())}
        suites = {suite: k for k, suite in enumerate(dict.fromkeys(p.suite for p in self._parts))}
        return sorted(self._parts, key=lambda p: (order.get(p.preset, len(order)), suites[p.suite]))

    @property
    def several_suites(self) -> bool:
        return len({p.suite for p in self._parts}) > 1

    def label(self, part: Part) -> str:
        """How tables name *part*: its preset, and its suite when the run kept several apart."""
        return f"{part.preset} · {part.suite}" if self.several_suites else part.preset

    def samples_of(self, part: Part) -> list[Sample]:
        return [s for s in self.samples.get(part.preset, ()) if suite_of(s.level) == part.suite]

    def reported(self) -> list[Part]:
        """The parts with at least one sample, in order."""
        return [part for part in self.parts() if self.samples_of(part)]

    def _stream(self, part: Part) -> ResultStream:
        if part not in self._streams:
            self._parts.setdefault(part)
            header = Header(
                plugin_version=__version__,
                run_id=self.config.run_id,
                started_at=self.started_at,
                preset=self._preset_record(part.preset),
                host=self.host,
                iterations_planned=self.planned.get(part.preset, self.config.iterations),
            )
            self._streams[part] = ResultStream(self.part_dir(part), header)
        return self._streams[part]

    def part_dir(self, part: Part) -> Path:
        """Where *part*'s result files go: the preset's directory of the run, and a directory per suite in
        it when the run has several."""
        directory = self.config.preset_dir(part.preset)
        return directory / suite_file_name(part.suite).removesuffix(".json") if self.several_suites else directory

    @property
    def host(self) -> dict[str, object]:
        if self._host is None:
            self._host = host_info()
        return self._host

    def preset_ids(self) -> list[str]:
        known = [p.id for p in self.config.presets]
        reported = dict.fromkeys([*self.samples, *(p.preset for p in self._parts)])
        return [*known, *(k for k in reported if k not in known)]

    def iteration_scores(self, part: Part) -> list[IterationScore]:
        return iteration_scores(part.preset, self.samples_of(part))

    def iteration_progress(self, part: Part, iteration: int) -> tuple[IterationScore, float] | None:
        """*iteration*'s score so far and the mean percentage of every iteration so far, as
        :meth:`iteration_scores` has them (None before a judged sample of *iteration*), from a tally that
        takes in only the samples that arrived since the last call."""
        tally, taken = self._tallies.get(part) or (IterationTally(), 0)
        samples = self.samples.get(part.preset, [])
        for sample in samples[taken:]:
            if suite_of(sample.level) == part.suite:
                tally.add(sample)
        self._tallies[part] = (tally, len(samples))
        this = tally.score(iteration)
        mean = tally.mean_percent()
        return None if this is None or mean is None else (this, mean)

    def aggregate(self, part: Part) -> RunAggregate:
        info = read_info(self.config.preset_dir(part.preset))
        report = llama_memory(info.log if info else None)
        return aggregate(
            part.preset,
            self.samples_of(part),
            load_s=info.load_s if info else None,
            memory_reported=report.figure() if report else None,
            suite=part.suite if self.several_suites else None,
        )

    def evaluate_gates(self) -> dict[Part, list[GateOutcome]]:
        """Gates of every part that ran, once, after the last sample: the ini's and command line's on each
        suite, a module's marks on its own. Mark gates arrive on samples."""
        for part in self.reported():
            preset = self._preset(part.preset)
            specs = self.config.gates_for(preset) if preset else list(self.config.gates)
            level_gates: dict[str, tuple[GateSpec, ...]] = {}
            for sample in self.samples_of(part):
                for expr in sample.gates:
                    spec = parse_gate(expr, "mark", sample.level)
                    if spec.level is None and _per_level(spec):
                        level_gates[sample.level] = tuple(dedupe([*level_gates.get(sample.level, ()), spec]))
                    else:
                        specs.append(spec)
            self.outcomes[part] = evaluate(dedupe(specs), self.aggregate(part), level_gates=level_gates)
        return self.outcomes

    # -- against a baseline -------------------------------------------------------------------------

    @property
    def baseline_id(self) -> str | None:
        if self.stored_baselines:
            return next(iter(self.stored_baselines.values())).result.preset.id
        return self.config.baseline

    def baseline_result(self, suite: str) -> ResultFile | None:
        """The baseline of *suite*: a stored result, or the baseline preset's part in this run."""
        if (stored := self.stored_baselines.get(suite)) is not None:
            return stored.result
        if self.config.baseline is not None and self.samples_of(part := Part(self.config.baseline, suite)):
            return self.build_result(part)  # the same preset in this run: same host window
        return None

    def candidates(self) -> list[Part]:
        return [part for part in self.reported() if part.preset != self.config.baseline]

    def compare(self) -> dict[Part, Comparison]:
        """The verdict of every candidate part against the baseline of its suite (after the last sample)."""
        from pytest_quantgate.compare import CompareOptions, compare

        options = CompareOptions(margin=self.config.margin, require_faster=self.config.require_faster)
        # With --sequential only the sequential test may declare a swap: the fixed bound, after a look at
        # every iteration, would inflate the false-swap rate.
        self.comparisons = {
            part: compare(baseline, self.build_result(part), options, sequential=self.sequential.get(part))
            for part in self.candidates()
            if (baseline := self.baseline_result(part.suite)) is not None
        }
        return self.comparisons

    def sequential_check(self, part: Part) -> SequentialDecision | ItemSequentialDecision | None:
        """With --sequential: the decision after the candidate part's latest complete iteration, if final.
        On items when the suite has them (as the comparison decides), else on levels."""
        if not self.config.sequential or part.preset == self.config.baseline:
            return None
        baseline = self.baseline_result(part.suite)
        candidate = self.samples_of(part)
        if baseline is None or not candidate:
            return None
        horizon = max(self.config.iterations or self.config.default_iterations, 3)
        decision: SequentialDecision | ItemSequentialDecision
        from pytest_quantgate.compare.items import decided_on_items

        samplers = (baseline.preset.sampler, self._stream(part).header.preset.sampler)
        if decided_on_items((*baseline.samples, *candidate), samplers):
            from pytest_quantgate.inference import ItemSequentialTest
            from pytest_quantgate.levels import item_scores

            if self._item_sequential is None:
                self._item_sequential = ItemSequentialTest.create(self.config.margin, max_iterations=horizon)
            b, c = item_scores(baseline.samples), item_scores(candidate)
            if not set(b.scores) & set(c.scores):
                return None  # the comparison reports it
            decision = self._item_sequential.decide(
                b.scores, c.scores, {**b.weights, **c.weights}, iterations=max(s.iteration for s in candidate)
            )
        else:
            from pytest_quantgate.inference import SequentialTest

            if self._sequential is None:
                self._sequential = SequentialTest.create(self.config.margin, max_iterations=horizon)
            base = {lv.level: lv for lv in aggregate(baseline.preset.id, baseline.samples).levels}
            cand = {lv.level: lv for lv in self.aggregate(part).levels}
            common = [level for level in base if level in cand]  # the comparison reports the others
            if not common:
                return None
            decision = self._sequential.decide(
                {level: base[level].outcomes for level in common},
                {level: cand[level].outcomes for level in common},
                {level: base[level].points for level in common},
            )
        self.sequential[part] = decision
        if decision.decision != "continue":
            self.stopped_early[part] = decision
            return decision
        return None

    def finish(self, *, interrupted: bool) -> list[Path]:
        """Write every part's final result.json; stop servers a crashed worker left running.

        A complete run without errors also becomes the stored latest result of its (preset, suite), which
        ``--baseline PRESET`` reads; any other keeps the stored one (``store_notes`` says which happened).
        """
        reap(self.config.run_dir)
        written = []
        for part, stream in self._streams.items():
            stream.close()
            if not self.samples_of(part):
                continue  # opened ahead of a level that never reported: no result to replace the stored one
            result = self.build_result(part, complete=not interrupted)
            written.append(write_final(result, stream.directory))
            if (why := why_not_stored(result)) is None:
                stored = store_latest(result, self.config.out_dir / "results")
                note = f"stored as the latest result of suite {result.suite}: {stored}"
            else:
                note = f"not stored as a baseline ({why}): only a complete run without errors replaces one"
            self.store_notes.append(f"{part.preset}: {note}")
        return written

    def build_result(self, part: Part, *, complete: bool = True) -> ResultFile:
        """The result file of one part as it stands now (also before the run has ended)."""
        stream = self._stream(part)
        samples = self.samples_of(part)
        agg = self.aggregate(part)
        info = read_info(self.config.preset_dir(part.preset))
        record = stream.header.preset.model_copy()
        record.effective = load_effective(self.config.preset_dir(part.preset))
        notes, devices = read_probe_state(self.config.preset_dir(part.preset))
        if info is not None:
            preset = self._preset(part.preset)
            record.argv = preset.redact(info.argv) if preset else redact(info.argv)
            record.base_url = info.base_url
        return ResultFile(
            **stream.header.model_dump(exclude={"preset"}),
            preset=record,
            complete=complete,
            iterations_run=max((s.iteration for s in samples if s.outcome != "skipped"), default=None),
            stopped_early=f"{early.decision}: {early.reason}" if (early := self.stopped_early.get(part)) else None,
            finished_at=now_iso(),
            server=ServerRecord(
                base_url=info.base_url if info else record.base_url,
                attached=info is None,
                load_s=agg.load_s,
                memory_idle_mb=agg.memory_idle_mb,
                memory_source=agg.memory_source,
                log=info.log if info else None,
                memory_peak_mb=agg.memory_peak_mb,
                **server_memory_fields(
                    llama_memory(info.log if info else None), started=info is not None, notes=notes, devices=devices
                ),
            ),
            samples=samples,
            gates=[
                GateRecord(id=o.id, passed=o.passed, observed=o.observed, message=o.message, source=o.spec.source)
                for o in self.outcomes.get(part, ())
            ],
            summary=SummaryRecord.of(agg),
        )

    def _preset(self, preset_id: str) -> Preset | None:
        return next((p for p in self.config.presets if p.id == preset_id), None)

    def _preset_record(self, preset_id: str) -> PresetRecord:
        preset = self._preset(preset_id)
        if preset is None:
            return PresetRecord(id=preset_id, name=preset_id, driver="unknown")
        return preset_record(preset)


def _per_level(spec: GateSpec) -> bool:
    from pytest_quantgate.measures import resolve_metric

    return resolve_metric(spec.metric).per_level
