"""One quantgate run, without pytest: its configuration, the servers a process holds, and the controller's
recorder that streams results, adds them up, evaluates gates and writes the final files.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import secrets
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_quantgate import __version__
from pytest_quantgate.errors import ResultsError
from pytest_quantgate.gates import GateOutcome, GateSpec, dedupe, evaluate, parse_gate
from pytest_quantgate.install import binary_version
from pytest_quantgate.levels import IterationScore, RunAggregate, Sample, aggregate, iteration_scores
from pytest_quantgate.memory import PeakSampler, probe_for
from pytest_quantgate.presets import Preset
from pytest_quantgate.provenance import file_sha256, host_info, sampled_digest
from pytest_quantgate.results import (
    GateRecord,
    Header,
    PresetRecord,
    ResultFile,
    ResultStream,
    ServerRecord,
    load_result,
    write_final,
)
from pytest_quantgate.sharing import Lease, acquire, attach, read_info, reap

if TYPE_CHECKING:
    from collections.abc import Iterable

    from pytest_quantgate.client import Client
    from pytest_quantgate.compare import Comparison
    from pytest_quantgate.inference import SequentialDecision, SequentialTest

DEFAULT_ITERATIONS = 5
DEFAULT_DIR = ".quantgate"


def new_run_id() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class RunConfig:
    """Everything the options and ini file say, resolved once."""

    presets: tuple[Preset, ...]
    run_id: str
    out_dir: Path
    iterations: int | None = None  # --iterations: overrides marks and ini
    default_iterations: int = DEFAULT_ITERATIONS  # ini quantgate_iterations
    gates: tuple[GateSpec, ...] = ()  # --gate and ini quantgate_gates
    shared: bool = False  # under pytest-xdist
    baseline: str | None = None  # --baseline: a result file or a preset id
    margin: float = 2.0
    require_faster: bool = False
    sequential: bool = False

    @property
    def run_dir(self) -> Path:
        return self.out_dir / "runs" / self.run_id

    def preset_dir(self, preset_id: str) -> Path:
        return self.run_dir / preset_id

    def preset(self, preset_id: str) -> Preset:
        return next(p for p in self.presets if p.id == preset_id)

    def iterations_for(self, mark_iterations: int | None) -> int:
        if self.iterations is not None:
            return self.iterations
        return mark_iterations or self.default_iterations

    def gates_for(self, preset: Preset) -> list[GateSpec]:
        """Option and ini gates, the preset's own, and its memory ceiling."""
        specs = list(self.gates)
        where = f"preset {preset.id} ({preset.source})"
        specs += [parse_gate(g, "preset", where) for g in preset.gates]
        if preset.memory_ceiling_mb is not None:
            specs.append(GateSpec("memory_peak_mb", "<=", preset.memory_ceiling_mb, source="ceiling"))
        return specs


def external_preset(base_url: str, like: Preset | None = None) -> Preset:
    """A preset that attaches to *base_url*; keeps *like*'s id, sampler and gates when given."""
    if like is not None:
        return dataclasses.replace(like, driver="external", base_url=base_url)
    return Preset(id="external", name=base_url, driver="external", source=None, base_url=base_url)


class Servers:
    """The leases and memory samplers this process holds, one per preset."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self._leases: dict[str, Lease] = {}
        self._samplers: dict[str, PeakSampler] = {}
        self._clients: dict[str, Client] = {}

    def lease(self, preset: Preset) -> Lease:
        if preset.id not in self._leases:
            if preset.driver == "external":
                assert preset.base_url is not None
                lease = attach(preset.base_url, preset)
            else:
                lease = acquire(preset, self.config.preset_dir(preset.id), shared=self.config.shared)
            self._leases[preset.id] = lease
            if lease.info.pid is not None:
                self._samplers[preset.id] = PeakSampler(probe_for(lease.info.pid)).start()
        return self._leases[preset.id]

    def client(self, preset: Preset) -> Client:
        from pytest_quantgate.client import Client

        if preset.id not in self._clients:
            lease = self.lease(preset)
            defaults = preset.sampler.request_fields()
            if preset.chat_template_kwargs:
                defaults["chat_template_kwargs"] = dict(preset.chat_template_kwargs)
            self._clients[preset.id] = Client(
                lease.base_url,
                api_key=preset.api_key(),
                defaults=defaults,
                max_tokens=preset.max_tokens,
                timeout_s=preset.timeout_s,
                stream=preset.stream,
                on_transport_error=lease.check_alive,
            )
        return self._clients[preset.id]

    def memory(self, preset_id: str) -> tuple[float | None, float | None, str | None]:
        """(latest reading, peak so far, source) for the preset's server, all None when not measurable.

        Called after every level: it reads what the sampler thread last measured (≤ 0.25 s old) rather
        than scanning the process tree on the level's path.
        """
        sampler = self._samplers.get(preset_id)
        if sampler is None:
            return None, None, None
        return sampler.latest_mb, sampler.peak_mb, sampler.probe.source

    def release(self, preset_id: str) -> None:
        if (client := self._clients.pop(preset_id, None)) is not None:
            client.close()
        if (sampler := self._samplers.pop(preset_id, None)) is not None:
            sampler.stop()
        if (lease := self._leases.pop(preset_id, None)) is not None:
            lease.release()

    def release_all(self) -> None:
        for preset_id in list(self._leases):
            self.release(preset_id)


def load_baseline(config: RunConfig) -> ResultFile | None:
    """The stored baseline --baseline names (None when it is a preset of this very run, or not given).

    Loaded at the start of the run so that a bad baseline is an error before any iteration is spent.
    """
    spec = config.baseline
    if spec is None or spec in {p.id for p in config.presets}:
        return None
    path = Path(spec).expanduser()
    if path.is_file():
        return load_result(path)
    stored = config.out_dir / "results" / f"{spec}.json"
    if stored.is_file():
        return load_result(stored)
    raise ResultsError(
        f"--baseline {spec!r} is neither a result file nor a preset with a stored result ({stored} does not "
        f"exist); run `pytest --preset {spec}` first, or pass the path of a result.json"
    )


class Recorder:
    """Controller side: receives samples in arrival order, streams them, and finishes the run."""

    def __init__(self, config: RunConfig, baseline: ResultFile | None = None) -> None:
        self.config = config
        self.samples: dict[str, list[Sample]] = defaultdict(list)
        self.outcomes: dict[str, list[GateOutcome]] = {}
        self.comparisons: dict[str, Comparison] = {}
        self.stopped_early: dict[str, SequentialDecision] = {}
        self.sequential: dict[str, SequentialDecision] = {}  # latest decision per candidate
        self.started_at = now_iso()
        self._baseline = baseline
        self._streams: dict[str, ResultStream] = {}
        self._host: dict[str, object] | None = None
        self._sequential: SequentialTest | None = None

    def add(self, sample: Sample) -> None:
        self.samples[sample.preset].append(sample)
        self._stream(sample.preset).add(sample)

    def prepare(self, preset_ids: Iterable[str]) -> None:
        """Open the presets' result streams (header and provenance) ahead of their first sample."""
        for preset_id in preset_ids:
            self._stream(preset_id)

    def _stream(self, preset_id: str) -> ResultStream:
        if preset_id not in self._streams:
            header = Header(
                plugin_version=__version__,
                run_id=self.config.run_id,
                started_at=self.started_at,
                preset=self._preset_record(preset_id),
                host=self.host,
                iterations_planned=self.config.iterations,
            )
            self._streams[preset_id] = ResultStream(self.config.preset_dir(preset_id), header)
        return self._streams[preset_id]

    @property
    def host(self) -> dict[str, object]:
        if self._host is None:
            self._host = host_info()
        return self._host

    def preset_ids(self) -> list[str]:
        known = [p.id for p in self.config.presets]
        return [*known, *(k for k in self.samples if k not in known)]

    def iteration_scores(self, preset_id: str) -> list[IterationScore]:
        return iteration_scores(preset_id, self.samples.get(preset_id, ()))

    def aggregate(self, preset_id: str) -> RunAggregate:
        info = read_info(self.config.preset_dir(preset_id))
        return aggregate(preset_id, self.samples.get(preset_id, ()), load_s=info.load_s if info else None)

    def evaluate_gates(self) -> dict[str, list[GateOutcome]]:
        """Gates of every preset that ran, once, after the last sample. Mark gates arrive on samples."""
        for preset_id, samples in self.samples.items():
            preset = self._preset(preset_id)
            specs = self.config.gates_for(preset) if preset else list(self.config.gates)
            level_gates: dict[str, tuple[GateSpec, ...]] = {}
            for sample in samples:
                for expr in sample.gates:
                    spec = parse_gate(expr, "mark", sample.level)
                    if spec.level is None and _per_level(spec):
                        level_gates[sample.level] = tuple(dedupe([*level_gates.get(sample.level, ()), spec]))
                    else:
                        specs.append(spec)
            self.outcomes[preset_id] = evaluate(dedupe(specs), self.aggregate(preset_id), level_gates=level_gates)
        return self.outcomes

    # -- against a baseline -------------------------------------------------------------------------

    @property
    def baseline_id(self) -> str | None:
        if self._baseline is not None:
            return self._baseline.preset.id
        return self.config.baseline

    def baseline_result(self) -> ResultFile | None:
        if self._baseline is not None:
            return self._baseline
        if self.config.baseline is not None and self.samples.get(self.config.baseline):
            return self.build_result(self.config.baseline)  # the same preset in this run: same host window
        return None

    def candidates(self) -> list[str]:
        return [pid for pid in self.preset_ids() if self.samples.get(pid) and pid != self.config.baseline]

    def compare(self) -> dict[str, Comparison]:
        """The verdict of every candidate against the baseline (after the last sample)."""
        baseline = self.baseline_result()
        if baseline is None:
            return {}
        from pytest_quantgate.compare import CompareOptions, compare

        options = CompareOptions(margin=self.config.margin, require_faster=self.config.require_faster)
        # With --sequential only the sequential test may declare a swap: the fixed bound, after a look at
        # every iteration, would inflate the false-swap rate.
        self.comparisons = {
            pid: compare(baseline, self.build_result(pid), options, sequential=self.sequential.get(pid))
            for pid in self.candidates()
        }
        return self.comparisons

    def sequential_check(self, preset_id: str) -> SequentialDecision | None:
        """With --sequential: the decision after the candidate's latest complete iteration, if final."""
        if not self.config.sequential:
            return None
        from pytest_quantgate.inference import SequentialTest

        baseline = self.baseline_result()
        if baseline is None or preset_id == self.config.baseline:
            return None
        if self._sequential is None:
            horizon = self.config.iterations or self.config.default_iterations
            self._sequential = SequentialTest.create(self.config.margin, max_iterations=max(horizon, 3))
        base = {lv.level: lv for lv in aggregate(baseline.preset.id, baseline.samples).levels}
        cand = {lv.level: lv for lv in self.aggregate(preset_id).levels}
        common = [level for level in base if level in cand]  # the comparison reports the others
        if not common:
            return None
        decision = self._sequential.decide(
            {level: base[level].outcomes for level in common},
            {level: cand[level].outcomes for level in common},
            {level: base[level].points for level in common},
        )
        self.sequential[preset_id] = decision
        if decision.decision != "continue":
            self.stopped_early[preset_id] = decision
            return decision
        return None

    def finish(self, *, interrupted: bool) -> list[Path]:
        """Write every preset's final result.json; stop servers a crashed worker left running."""
        reap(self.config.run_dir)
        written = []
        for preset_id, stream in self._streams.items():
            stream.close()
            if not self.samples.get(preset_id):
                continue  # opened ahead of a level that never reported: no result to replace the stored one
            result = self.build_result(preset_id, complete=not interrupted)
            written.append(write_final(result, stream.directory, self.config.out_dir / "results"))
        return written

    def build_result(self, preset_id: str, *, complete: bool = True) -> ResultFile:
        """The result file of one preset as it stands now (also before the run has ended)."""
        stream = self._stream(preset_id)
        agg = self.aggregate(preset_id)
        info = read_info(self.config.preset_dir(preset_id))
        record = stream.header.preset.model_copy()
        if info is not None:
            record.argv = list(info.argv)
            record.base_url = info.base_url
        return ResultFile(
            **stream.header.model_dump(exclude={"preset"}),
            preset=record,
            complete=complete,
            finished_at=now_iso(),
            server=ServerRecord(
                base_url=info.base_url if info else record.base_url,
                attached=info is None,
                load_s=agg.load_s,
                memory_idle_mb=agg.memory_idle_mb,
                memory_source=agg.memory_source,
                log=info.log if info else None,
            ),
            samples=self.samples[preset_id],
            gates=[
                GateRecord(id=o.id, passed=o.passed, observed=o.observed, message=o.message, source=o.spec.source)
                for o in self.outcomes.get(preset_id, ())
            ],
            summary=_summary_dict(agg),
        )

    def _preset(self, preset_id: str) -> Preset | None:
        return next((p for p in self.config.presets if p.id == preset_id), None)

    def _preset_record(self, preset_id: str) -> PresetRecord:
        preset = self._preset(preset_id)
        if preset is None:
            return PresetRecord(id=preset_id, name=preset_id, driver="unknown")
        binary = None
        if preset.driver == "llamacpp":
            from pytest_quantgate.install import find_binary

            try:
                binary = find_binary("llama-server", preset.binary)
            except Exception:  # the run itself reports a missing binary; provenance stays partial
                binary = None
        model_size = None
        if preset.model is not None and preset.model.is_file():
            model_size = preset.model.stat().st_size
        return PresetRecord(
            id=preset.id,
            name=preset.name,
            driver=preset.driver,
            origin=preset.origin,
            source=str(preset.source) if preset.source else None,
            source_sha256=file_sha256(preset.source) if preset.source else None,
            model=str(preset.model) if preset.model else None,
            model_size_bytes=model_size,
            model_digest=sampled_digest(preset.model) if preset.model else None,
            binary=str(binary) if binary else None,
            binary_version=binary_version(binary) if binary else None,
            binary_sha256=sampled_digest(binary) if binary else None,
            base_url=preset.base_url,
            context_size=preset.context_size,
            parallel=preset.parallel,
            extra_args=list(preset.extra_args),
            sampler=preset.sampler.request_fields(),
            chat_template_kwargs=dict(preset.chat_template_kwargs),
            memory_ceiling_mb=preset.memory_ceiling_mb,
            max_tokens=preset.max_tokens,
        )


def _per_level(spec: GateSpec) -> bool:
    from pytest_quantgate.gates import METRICS

    return METRICS[spec.metric].per_level


def _summary_dict(agg: RunAggregate) -> dict[str, object]:
    out = dataclasses.asdict(agg)
    out.pop("levels", None)
    out["levels"] = {
        lv.level: {"name": lv.name, "points": lv.points, "passed": lv.rate.passed, "n": lv.rate.n} for lv in agg.levels
    }
    return out


def default_out_dir(rootdir: Path, configured: str | None) -> Path:
    value = configured or os.environ.get("QUANTGATE_DIR") or DEFAULT_DIR
    path = Path(value).expanduser()
    return (path if path.is_absolute() else rootdir / path).resolve()
