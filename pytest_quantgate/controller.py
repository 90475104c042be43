"""What the controller does with level reports, without pytest: the results stream (through the Recorder),
progress lines, the sequential stop, gate outcomes and verdicts, and the closing summary.

It reads duck-typed reports (anything carrying a Sample under :data:`~pytest_quantgate.recorder.SAMPLE_ATTR`,
as pytest's reports do, also when replayed from an xdist worker) and answers with plain data: the plugin
turns :class:`Emitted` into test reports, :class:`Arrival` into a terminal line and a stop, :class:`Line`
into the terminal summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_quantgate.baselines import load_baselines
from pytest_quantgate.keys import level_key, preset_iteration, suite_of
from pytest_quantgate.recorder import SAMPLE_ATTR, Part, Recorder

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from pytest_quantgate.config import RunConfig
    from pytest_quantgate.levels import Sample

# Node ids of the outcomes a run reports beside its levels: quantgate::gate[...], quantgate::verdict[...].
GATE_PREFIX = "quantgate::"


@dataclass(frozen=True, slots=True)
class Emitted:
    """A session-level outcome (a gate, a verdict) to report as one more test."""

    nodeid: str
    passed: bool
    message: str


@dataclass(frozen=True, slots=True)
class Arrival:
    """What a report that completes an iteration brings: the progress line (None when progress is not shown)
    and, with --sequential, why the run should stop (None: go on)."""

    progress: str | None = None
    stop: str | None = None


@dataclass(frozen=True, slots=True)
class Line:
    """One line of the closing summary: *text*, or a separator titled *text* when *sep* is set."""

    text: str
    sep: str | None = None


class Controller:
    """The controller's side of a run: fed the collected level runs, then their reports as they arrive."""

    def __init__(self, config: RunConfig, recorder: Recorder | None = None, *, progress: bool = True) -> None:
        self.config = config
        self.recorder = recorder if recorder is not None else Recorder(config)
        self.progress = progress  # whether progress lines are wanted (the terminal shows them)
        self.expected: dict[tuple[str, int], int] = {}  # level runs per (preset, iteration)
        self.parts: dict[Part, None] = {}  # (preset, suite) collected, in order
        self.seen: dict[tuple[str, int], int] = {}
        self.written: list[Path] = []
        self.stopped: str | None = None  # why --sequential stopped the run, once it has
        self._preset_ids = [p.id for p in config.presets]

    # -- collection -------------------------------------------------------------------------------------

    def collected(self, levels: Iterable[tuple[str, str]]) -> None:
        """The level runs collected, as (node id, level key). Resolves --baseline for their suite, before any
        server starts; a baseline that cannot be used raises QuantgateError."""
        keys = []
        for nodeid, key in levels:
            self._expect(preset_iteration(nodeid, self._preset_ids), key)
            keys.append(key)
        self._use_baseline(keys)

    def collected_ids(self, nodeids: Iterable[str]) -> None:
        """What an xdist worker collected, as node ids (the controller collects nothing itself). Every worker
        collects the same items: the first to report is the one counted."""
        if self.expected:
            return
        several = len(self._preset_ids) > 1
        keys = []
        for nodeid in nodeids:
            if "iter-" in nodeid:
                preset, iteration = preset_iteration(nodeid, self._preset_ids)
                key = level_key(nodeid, preset if several else None, iteration)[0]
                self._expect((preset, iteration), key)
                keys.append(key)
        self._use_baseline(keys)

    def _expect(self, run: tuple[str, int], key: str) -> None:
        self.expected[run] = self.expected.get(run, 0) + 1
        self.parts.setdefault(Part(run[0], suite_of(key)))

    def _use_baseline(self, level_keys: list[str]) -> None:
        self.recorder.use_baselines(load_baselines(self.config, level_keys))

    def prepare(self) -> None:
        """Open the result streams of the parts collected (provenance is read now, not on the first level)."""
        for preset, iteration in self.expected:
            self.recorder.planned[preset] = max(iteration, self.recorder.planned.get(preset, 0))
        self.recorder.prepare(self.parts)

    # -- the run ----------------------------------------------------------------------------------------

    def add(self, report: object) -> Arrival | None:
        """Record the Sample *report* carries, if any. Returns an Arrival when it completes an iteration."""
        sample: Sample | None = getattr(report, SAMPLE_ATTR, None)
        if sample is None:
            return None
        self.recorder.add(sample)
        key = (sample.preset, sample.iteration)
        seen = self.seen[key] = self.seen.get(key, 0) + 1
        if seen != self.expected.get(key):
            return None
        progress = self.progress_line(sample.preset, sample.iteration) if self.progress else None
        stop = None
        for part in self._parts_of(sample.preset):
            if part in self.recorder.stopped_early or not (decision := self.recorder.sequential_check(part)):
                continue
            settled = (
                f"quantgate --sequential: verdict {decision.decision} for {self.recorder.label(part)} settled "
                f"after {decision.iterations} iterations ({decision.reason})"
            )
            # The run stops once every candidate is settled; until then a settled one skips its levels.
            if all(c in self.recorder.stopped_early for c in self.candidates()):
                stop = self.stopped = settled
        return Arrival(progress, stop)

    def _parts_of(self, preset_id: str) -> list[Part]:
        return [part for part in self.parts if part.preset == preset_id]

    def candidates(self) -> list[Part]:
        """The parts compared against the baseline (all but an in-run baseline's own)."""
        return [part for part in self.parts if part.preset != self.config.baseline]

    def settled(self, preset_id: str, level: str) -> str | None:
        """Why the level *level* of *preset_id* need not run (the sequential verdict of its suite is
        settled), else None."""
        part = Part(preset_id, suite_of(level))
        decision = self.recorder.stopped_early.get(part)
        if decision is None:
            return None
        return (
            f"--sequential: {self.recorder.label(part)} settled ({decision.decision}) after "
            f"{decision.iterations} iterations"
        )

    def progress_line(self, preset_id: str, iteration: int) -> str | None:
        # Iteration scores only, from the recorder's tally of the samples so far: the full aggregate (an
        # interval per level), or even the scores recomputed from every sample, would cost a pass over the
        # whole run after every iteration.
        shown = []
        tokens_per_s = []
        several = self.recorder.several_suites
        for part in (p for p in self.recorder.parts() if p.preset == preset_id):
            if (progress := self.recorder.iteration_progress(part, iteration)) is None:
                continue
            this, mean = progress
            name = f"{part.suite} " if several else ""
            shown.append(f"{name}{this.percent:.1f} % (running mean {mean:.1f} %)")
            if this.tokens_per_s:
                tokens_per_s.append(this.tokens_per_s)
        if not shown:
            return None
        total = max(k[1] for k in self.expected if k[0] == preset_id)
        tps = f", {sum(tokens_per_s) / len(tokens_per_s):,.0f} tok/s" if tokens_per_s else ""
        return f"quantgate {preset_id} iteration {iteration}/{total}: {'; '.join(shown)}{tps}"

    # -- after the last level ---------------------------------------------------------------------------

    def gates(self) -> list[Emitted]:
        """Every preset's gate outcomes (none when no level reported); QuantgateError for a gate that
        cannot be evaluated."""
        if not self.recorder.samples:
            return []
        outcomes = self.recorder.evaluate_gates()
        several_presets = len({part.preset for part in outcomes}) > 1
        emitted = []
        for part, results in outcomes.items():
            # The module without ".py": pytest shows a dot before the "[" of a test id as "::".
            names = [part.preset] * several_presets + [part.suite.removesuffix(".py")] * self.recorder.several_suites
            scope = "".join(f"{name}::" for name in names)
            for outcome in results:
                message = outcome.message if outcome.passed else f"gate[{outcome.id}] failed: {outcome.message}"
                emitted.append(Emitted(f"{GATE_PREFIX}{scope}gate[{outcome.id}]", outcome.passed, message))
        return emitted

    def verdicts(self) -> list[Emitted]:
        """The verdict of every candidate against --baseline, as one more gate outcome each."""
        if not self.recorder.samples:
            return []
        comparisons = self.recorder.compare()
        baseline = self.recorder.baseline_id
        label = self.recorder.label
        return [
            Emitted(f"{GATE_PREFIX}verdict[{label(part)} vs {baseline}]", comparison.passed, comparison.message)
            for part, comparison in comparisons.items()
        ]

    def finish(self, *, interrupted: bool) -> list[Path]:
        """Write the final result files (an interrupted run never becomes a stored baseline)."""
        self.written = self.recorder.finish(interrupted=interrupted)
        return self.written

    def summary(self) -> list[Line]:
        """The decision table, the comparisons, early stops, the files written and what the store did."""
        recorder = self.recorder
        if not recorder.samples:
            return []
        from pytest_quantgate.render.terminal import render

        aggs = [recorder.aggregate(part) for part in recorder.reported()]
        gates = {recorder.label(part): outcomes for part, outcomes in recorder.outcomes.items()}
        lines = [Line("quantgate decision table", "="), Line(render(aggs, gates))]
        if recorder.comparisons:
            from pytest_quantgate.render.comparison import render as render_comparison

            for part, comparison in recorder.comparisons.items():
                lines.append(Line(f"{recorder.label(part)} against the baseline {recorder.baseline_id}", "-"))
                if (stored := recorder.stored_baselines.get(part.suite)) is not None:
                    lines.append(Line(f"baseline: {stored.describe()}"))
                lines.append(Line(render_comparison(comparison)))
        for part, decision in recorder.stopped_early.items():
            lines.append(
                Line(
                    f"{recorder.label(part)}: stopped early after {decision.iterations} iterations by the "
                    f"sequential test ({decision.decision}: {decision.reason})"
                )
            )
        lines += [Line(f"results: {path}") for path in self.written]
        lines += [Line(note) for note in recorder.store_notes]
        return lines
