"""pytest glue: options, marks, fixtures and hooks. Everything it calls works without pytest.

Data flow: options → presets → one server per preset (session fixture) → ``llm`` fixture → level test →
sample carried on the test report (so it survives xdist) → controller: results stream, aggregates, gates
(reported as test outcomes) → decision table and result files.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator

    from pytest_quantgate.artifacts import ArtifactWriter  # noqa: F401 - used in StashKey[...]
    from pytest_quantgate.levels import LevelSpec, Outcome
    from pytest_quantgate.llm import Llm
    from pytest_quantgate.presets import Preset
    from pytest_quantgate.run import Recorder, RunConfig, Servers  # noqa: F401 - used in StashKey[...]
    from pytest_quantgate.sharing import Lease

OPT_PRESET = "--preset"
OPT_PRESET_DIR = "--preset-dir"
OPT_BASE_URL = "--base-url"
OPT_ITERATIONS = "--iterations"
OPT_GATE = "--gate"
OPT_DIR = "--quantgate-dir"
OPT_BASELINE = "--baseline"
OPT_MARGIN = "--margin"
OPT_REQUIRE_FASTER = "--require-faster"
OPT_SEQUENTIAL = "--sequential"
INI_PRESET_DIRS = "quantgate_preset_dirs"
INI_ITERATIONS = "quantgate_iterations"
INI_GATES = "quantgate_gates"
INI_DIR = "quantgate_dir"
INI_MARGIN = "quantgate_margin"
SAMPLE_ATTR = "quantgate_sample"
GATE_PREFIX = "quantgate::"

CONFIG_KEY = pytest.StashKey["RunConfig"]()
SERVERS_KEY = pytest.StashKey["Servers"]()
RECORDER_KEY = pytest.StashKey["Recorder"]()
LEVEL_KEY = pytest.StashKey["LevelInfo"]()
LLM_KEY = pytest.StashKey["Llm"]()
STARTED_KEY = pytest.StashKey[float]()
ARTIFACTS_KEY = pytest.StashKey["ArtifactWriter"]()


class LevelInfo:
    """What collection learned about one level item."""

    __slots__ = ("gates", "key", "name", "spec")

    def __init__(self, spec: LevelSpec, key: str, name: str, gates: tuple[str, ...]) -> None:
        self.spec, self.key, self.name, self.gates = spec, key, name, gates


# -- options and configuration ------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("quantgate", "pytest-quantgate: benchmark and gate LLM presets")
    group.addoption(OPT_PRESET, action="append", default=[], metavar="NAME",
                    help="Preset to boot and test (id or preset file); repeat for a side-by-side run")  # fmt: skip
    group.addoption(OPT_PRESET_DIR, action="append", default=[], metavar="DIR",
                    help="Directory searched for preset files (repeatable; before the built-in presets)")  # fmt: skip
    group.addoption(OPT_BASE_URL, metavar="URL",
                    help="Attach to an already running OpenAI-compatible server instead of booting one")  # fmt: skip
    group.addoption(OPT_ITERATIONS, type=int, metavar="N",
                    help="Iterations per level (overrides level marks and the ini option)")  # fmt: skip
    group.addoption(OPT_GATE, action="append", default=[], metavar="EXPR",
                    help="Gate on an aggregate, e.g. 'score_mean>=95' (repeatable)")  # fmt: skip
    group.addoption(OPT_DIR, metavar="DIR", help="Where results and artifacts go (default: .quantgate)")
    group.addoption(OPT_BASELINE, metavar="RESULT",
                    help="Compare against this result file, or a preset id (its latest stored result, or the same "
                         "preset in this run) and gate on the verdict")  # fmt: skip
    group.addoption(OPT_MARGIN, type=float, default=None, metavar="POINTS",
                    help="Non-inferiority margin in score points for --baseline (default 2)")  # fmt: skip
    group.addoption(OPT_REQUIRE_FASTER, action="store_true", help="With --baseline, a swap also needs more tokens/s")
    group.addoption(OPT_SEQUENTIAL, action="store_true",
                    help="With --baseline, stop as soon as the verdict is settled (group-sequential test)")  # fmt: skip
    parser.addini(INI_PRESET_DIRS, "Directories searched for preset files", type="paths", default=[])
    parser.addini(INI_ITERATIONS, "Default iterations per level (default 5)", default="")
    parser.addini(INI_GATES, "Gates applied to every preset, one per line", type="linelist", default=[])
    parser.addini(INI_DIR, "Where results and artifacts go (default: .quantgate)", default="")
    parser.addini(INI_MARGIN, "Non-inferiority margin in score points (default 2)", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "level(points=1, name=None, iterations=None, max_tokens=None, timeout_s=None): a quantgate level "
        "worth `points`, run once per iteration",
    )
    config.addinivalue_line(
        "markers",
        "gate(*exprs): quantgate gates on the suite (e.g. 'score_mean>=90') or, for pass_rate, on the level",
    )
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(), "quantgate-xdist")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    # Resolved here rather than in pytest_configure so that `pytest --help` never imports pydantic, httpx
    # and friends (B5). tryfirst: xdist's own sessionstart creates the workers and needs the run id.
    from pytest_quantgate.artifacts import ArtifactWriter
    from pytest_quantgate.errors import QuantgateError
    from pytest_quantgate.run import Recorder, Servers, load_baseline

    config = session.config
    try:
        run_config = _run_config(config)
        baseline = None if _is_worker(config) else load_baseline(run_config)
    except QuantgateError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[CONFIG_KEY] = run_config
    config.stash[SERVERS_KEY] = Servers(run_config)
    config.stash[ARTIFACTS_KEY] = ArtifactWriter()
    if not _is_worker(config):
        recorder = Recorder(run_config, baseline)
        config.stash[RECORDER_KEY] = recorder
        config.pluginmanager.register(_Controller(config, recorder), "quantgate-controller")


def _run_config(config: pytest.Config) -> RunConfig:
    from pytest_quantgate.errors import SpecError
    from pytest_quantgate.gates import parse_gate
    from pytest_quantgate.presets import resolve
    from pytest_quantgate.run import (
        DEFAULT_ITERATIONS,
        RunConfig,
        default_out_dir,
        external_preset,
        new_run_id,
    )

    dirs = [Path(d) for d in config.getoption(OPT_PRESET_DIR)] + list(config.getini(INI_PRESET_DIRS))
    presets = [resolve(name, dirs) for name in config.getoption(OPT_PRESET)]
    if len({p.id for p in presets}) != len(presets):
        raise SpecError(f"the same preset is named twice in {OPT_PRESET}")
    if base_url := config.getoption(OPT_BASE_URL):
        if len(presets) > 1:
            raise SpecError(f"{OPT_BASE_URL} attaches to one server; give at most one {OPT_PRESET} with it")
        presets = [external_preset(base_url, presets[0] if presets else None)]
    ini_iterations = str(config.getini(INI_ITERATIONS)).strip()
    try:
        default_iterations = int(ini_iterations) if ini_iterations else DEFAULT_ITERATIONS
    except ValueError:
        raise SpecError(f"ini option {INI_ITERATIONS} = {ini_iterations!r} is not an integer") from None
    iterations = config.getoption(OPT_ITERATIONS)
    for value, name in ((iterations, OPT_ITERATIONS), (default_iterations, INI_ITERATIONS)):
        if value is not None and value < 1:
            raise SpecError(f"{name} must be at least 1, got {value}")
    baseline = config.getoption(OPT_BASELINE)
    for flag in (OPT_REQUIRE_FASTER, OPT_SEQUENTIAL):
        if config.getoption(flag) and not baseline:
            raise SpecError(f"{flag} compares against a baseline: give {OPT_BASELINE} RESULT_OR_PRESET too")
    margin_text = config.getoption(OPT_MARGIN)
    if margin_text is None:
        margin_text = str(config.getini(INI_MARGIN)).strip() or "2"
    try:
        margin = float(margin_text)
    except ValueError:
        raise SpecError(f"{INI_MARGIN} = {margin_text!r} is not a number") from None
    if not 0 < margin < 100:
        raise SpecError(f"the margin is in score points and must lie in (0, 100), got {margin:g}")
    gates = [parse_gate(g, "option", OPT_GATE) for g in config.getoption(OPT_GATE)]
    gates += [parse_gate(g, "ini", INI_GATES) for g in config.getini(INI_GATES)]
    worker = getattr(config, "workerinput", None)
    run_id = worker["quantgate_run_id"] if worker and "quantgate_run_id" in worker else new_run_id()
    if worker and "quantgate_dir" in worker:
        out_dir = Path(worker["quantgate_dir"])
    elif option_dir := config.getoption(OPT_DIR):
        out_dir = Path(option_dir).expanduser().resolve()  # relative to where the command was typed
    else:  # relative to the rootdir, where the ini file that names it lives
        out_dir = default_out_dir(config.rootpath, str(config.getini(INI_DIR)) or None)
    return RunConfig(
        presets=tuple(presets),
        run_id=run_id,
        out_dir=out_dir,
        iterations=iterations,
        default_iterations=default_iterations,
        gates=tuple(gates),
        shared=worker is not None or _xdist_requested(config),
        baseline=baseline,
        margin=margin,
        require_faster=config.getoption(OPT_REQUIRE_FASTER),
        sequential=config.getoption(OPT_SEQUENTIAL),
    )


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _xdist_requested(config: pytest.Config) -> bool:
    numprocesses = getattr(config.option, "numprocesses", None)
    return bool(numprocesses)


class _XdistHooks:
    """Registered only when pytest-xdist is installed: hands the run id to every worker."""

    @pytest.hookimpl
    def pytest_configure_node(self, node: Any) -> None:
        run_config = node.config.stash[CONFIG_KEY]
        node.workerinput["quantgate_run_id"] = run_config.run_id
        node.workerinput["quantgate_dir"] = str(run_config.out_dir)


# -- collection ---------------------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # tryfirst: our parameters come first in the test id ("iter-03-<user params>"), so the level key can
    # drop exactly them (see _level_key) and keep a suite's own parametrization as distinct levels.
    if "quantgate_iteration" not in metafunc.fixturenames:
        return
    from pytest_quantgate.errors import QuantgateError

    run_config = metafunc.config.stash[CONFIG_KEY]
    try:
        spec, gates = _marks(metafunc.definition)
    except QuantgateError as exc:
        failure = str(exc)
    else:
        failure = ""
    if failure:
        pytest.fail(failure, pytrace=False)
    del gates  # validated here, read again per item
    presets = run_config.presets
    if len(presets) > 1:
        metafunc.parametrize(
            "quantgate_preset",
            [p.id for p in presets],
            indirect=True,
            scope="session",
            ids=[p.id for p in presets],
        )
    n = run_config.iterations_for(spec.iterations) if presets else 1
    metafunc.parametrize("quantgate_iteration", range(1, n + 1), indirect=True, ids=lambda i: f"iter-{i:02d}")


def _marks(node: pytest.Item | Any) -> tuple[LevelSpec, tuple[str, ...]]:
    from pytest_quantgate.errors import SpecError
    from pytest_quantgate.gates import parse_gate
    from pytest_quantgate.levels import LevelSpec

    where = node.nodeid
    mark = node.get_closest_marker("level")
    spec = LevelSpec.from_mark(mark.args, mark.kwargs, where) if mark else LevelSpec()
    gates: list[str] = []
    for gate_mark in node.iter_markers("gate"):
        if gate_mark.kwargs:
            raise SpecError(f"{where}: @pytest.mark.gate takes gate expressions as positional arguments")
        for expr in gate_mark.args:
            gates.append(parse_gate(str(expr), "mark", where).expr)
    return spec, tuple(dict.fromkeys(gates))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Remember which items are levels, and run them iteration by iteration (as the field does: all levels
    of iteration 1, then iteration 2, ...) within each preset's group."""
    order: dict[str, int] = {p.id: i for i, p in enumerate(config.stash[CONFIG_KEY].presets)}
    keyed = []
    for position, item in enumerate(items):
        params = getattr(item, "callspec", None)
        iteration = params.params.get("quantgate_iteration") if params else None
        if iteration is None:
            keyed.append(((-1, 0, position), item))
            continue
        spec, gates = _marks(item)
        preset = params.params.get("quantgate_preset") if params else None
        key, user_id = _level_key(item.nodeid, preset, iteration)
        name = spec.name or str(getattr(item, "originalname", None) or item.name)
        if user_id:
            name = f"{name}[{user_id}]"
        item.stash[LEVEL_KEY] = LevelInfo(spec, key, name, gates)
        keyed.append(((order.get(preset, 0) if preset else 0, iteration, position), item))
    items[:] = [item for _, item in sorted(keyed, key=lambda pair: pair[0])]


def _level_key(nodeid: str, preset: str | None, iteration: int) -> tuple[str, str]:
    """(level key, the suite's own parameter id) for a level item's node id."""
    base, _, params = nodeid.partition("[")
    params = params[:-1] if params.endswith("]") else params
    prefix = (f"{preset}-" if preset else "") + f"iter-{iteration:02d}"
    user = params[len(prefix) :].lstrip("-") if params.startswith(prefix) else params
    return (f"{base}[{user}]" if user else base), user


# -- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def quantgate_preset(request: pytest.FixtureRequest) -> Preset:
    """The preset under test (parametrized when several are given)."""
    run_config = request.config.stash[CONFIG_KEY]
    if not run_config.presets:
        pytest.fail(
            f"this is a quantgate level, and no model was given: run with {OPT_PRESET} NAME "
            f"(e.g. {OPT_PRESET} tiny-f16; `quantgate presets` lists them) or {OPT_BASE_URL} URL",
            pytrace=False,
        )
    preset_id = getattr(request, "param", run_config.presets[0].id)
    return run_config.preset(preset_id)


@pytest.fixture(scope="session")
def quantgate_server(request: pytest.FixtureRequest, quantgate_preset: Preset) -> Iterator[Lease]:
    """The preset's running server: booted on first use, shared by xdist workers, stopped at the end."""
    from pytest_quantgate.errors import QuantgateError

    servers = request.config.stash[SERVERS_KEY]
    try:
        lease = servers.lease(quantgate_preset)
    except QuantgateError as exc:
        failure = str(exc)
    else:
        failure = ""
    if failure:  # outside the except block: no "During handling..." repetition of the message
        pytest.fail(failure, pytrace=False)
    try:
        yield lease
    finally:
        servers.release(quantgate_preset.id)


@pytest.fixture
def quantgate_iteration(request: pytest.FixtureRequest) -> int:
    """The iteration this level run belongs to (1-based)."""
    return int(getattr(request, "param", 1))


@pytest.fixture
def llm(
    request: pytest.FixtureRequest,
    quantgate_server: Lease,
    quantgate_preset: Preset,
    quantgate_iteration: int,
) -> Llm:
    """Ask the preset's model: ``llm.chat(prompt)`` / ``llm.complete(prompt)`` → Completion."""
    from pytest_quantgate.errors import QuantgateError
    from pytest_quantgate.llm import Llm

    try:
        quantgate_server.check_alive()
    except QuantgateError as exc:
        failure = str(exc)
    else:
        failure = ""
    if failure:
        pytest.fail(failure, pytrace=False)
    servers = request.config.stash[SERVERS_KEY]
    info = request.node.stash.get(LEVEL_KEY, None)
    handle = Llm(
        servers.client(quantgate_preset),
        quantgate_preset,
        iteration=quantgate_iteration,
        max_tokens=info.spec.max_tokens if info else None,
        timeout_s=info.spec.timeout_s if info else None,
        before_request=quantgate_server.check_alive,
        after_timeout=quantgate_server.check_answering,
    )
    request.node.stash[LLM_KEY] = handle
    return handle


# -- running: samples ride on reports ----------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    item.stash[STARTED_KEY] = time.perf_counter()
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    info = item.stash.get(LEVEL_KEY, None)
    if info is None:
        return report
    judged = report.when == "call" or (report.when == "setup" and not report.passed)
    if not judged:
        return report
    from pytest_quantgate.errors import QuantgateError
    from pytest_quantgate.levels import RequestRecord, Sample

    run_config = item.config.stash[CONFIG_KEY]
    params = getattr(item, "callspec", None)
    preset_id = params.params.get("quantgate_preset") if params else None
    if preset_id is None:
        preset_id = run_config.presets[0].id if run_config.presets else "none"
    handle = item.stash.get(LLM_KEY, None)
    exchanges = handle.exchanges if handle else []
    excinfo = call.excinfo
    outcome: Outcome
    if report.skipped:
        outcome = "skipped"
    elif report.passed:
        outcome = "passed"
    elif report.when == "call" and excinfo is not None and excinfo.errisinstance(AssertionError):
        outcome = "failed"
    else:
        outcome = "error"
    error = None
    if not report.passed and not report.skipped:
        error = _one_line(excinfo.exconly() if excinfo else report.longreprtext)
        if excinfo is not None and excinfo.errisinstance(QuantgateError):
            error = str(excinfo.value)
    now, peak, source = item.config.stash[SERVERS_KEY].memory(preset_id)
    sample = Sample(
        preset=preset_id,
        level=info.key,
        name=info.name,
        iteration=int(params.params.get("quantgate_iteration", 1)) if params else 1,
        points=info.spec.points,
        outcome=outcome,
        duration_s=time.perf_counter() - item.stash.get(STARTED_KEY, time.perf_counter()),
        error=error,
        requests=tuple(RequestRecord.of(ex.completion) for ex in exchanges),
        memory_mb=now,
        memory_peak_mb=peak,
        memory_source=source,
        gates=info.gates,
    )
    # The Sample itself: turned into a dict only when the report leaves the process (xdist, report logs).
    setattr(report, SAMPLE_ATTR, sample)
    validator = report.longreprtext if outcome in ("failed", "error") else None
    if run_config.presets:
        item.config.stash[ARTIFACTS_KEY].write(run_config.preset_dir(preset_id), sample, exchanges, validator)
    if outcome == "failed" and _gated(run_config, preset_id, info):
        # A wrong answer is a measurement, not a broken test: with gates in force they decide the exit
        # status. The report keeps the validator's message and gets its own status (see teststatus).
        report.outcome = "passed"
        report.user_properties.append((MISS_PROPERTY, error or ""))
    return report


MISS_PROPERTY = "quantgate_miss"


@pytest.hookimpl(wrapper=True)
def pytest_report_to_serializable(report: pytest.TestReport) -> Generator[None, Any, Any]:
    data = yield
    if isinstance(data, dict) and hasattr(data.get(SAMPLE_ATTR), "to_dict"):
        data[SAMPLE_ATTR] = data[SAMPLE_ATTR].to_dict()
    return data


@pytest.hookimpl(wrapper=True)
def pytest_report_from_serializable(data: dict[str, Any]) -> Generator[None, Any, Any]:
    report = yield
    sample = getattr(report, SAMPLE_ATTR, None)
    if isinstance(sample, dict):
        from pytest_quantgate.levels import Sample

        setattr(report, SAMPLE_ATTR, Sample.from_dict(sample))
    return report


def _gated(run_config: RunConfig, preset_id: str, info: LevelInfo) -> bool:
    if info.gates or run_config.gates:
        return True
    preset = next((p for p in run_config.presets if p.id == preset_id), None)
    return preset is not None and bool(preset.gates or preset.memory_ceiling_mb is not None)


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> tuple[str, str, Any] | None:
    if report.when == "call" and any(name == MISS_PROPERTY for name, _ in report.user_properties):
        return "missed", "m", ("MISSED", {"yellow": True})
    return None


def _one_line(text: str, limit: int = 300) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first[:limit]


class _Controller:
    """Controller-only hooks (the only process without ``workerinput``), registered per config so that
    hooks which receive no config still reach this run's recorder."""

    def __init__(self, config: pytest.Config, recorder: Recorder) -> None:
        self.config = config
        self.recorder = recorder
        self.expected: dict[tuple[str, int], int] = {}
        self.seen: dict[tuple[str, int], int] = {}
        self.written: list[Path] = []
        self.session: pytest.Session | None = None

    # Expected level runs per (preset, iteration), for the progress line.
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.session = session
        for item in session.items:
            if LEVEL_KEY in item.stash:
                key = _preset_iteration(item.nodeid, self.config)
                self.expected[key] = self.expected.get(key, 0) + 1
        # Provenance (binary version, model digest, host) is read now, before the first level, not on
        # that level's report.
        if not self.config.option.collectonly:
            self.recorder.prepare(dict.fromkeys(preset for preset, _ in self.expected))

    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        if self.expected:
            return  # every worker collects the same items
        for nodeid in ids:
            if "iter-" in nodeid:
                key = _preset_iteration(nodeid, self.config)
                self.expected[key] = self.expected.get(key, 0) + 1

    @pytest.hookimpl(trylast=True)  # after the terminal has written the test's status
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        sample = getattr(report, SAMPLE_ATTR, None)
        if sample is None:
            return
        self.recorder.add(sample)
        key = (sample.preset, sample.iteration)
        self.seen[key] = self.seen.get(key, 0) + 1
        if self.seen[key] == self.expected.get(key):
            if self.config.get_verbosity() >= 0:
                self._progress(sample.preset, sample.iteration)
            decision = self.recorder.sequential_check(sample.preset)
            if decision is not None and self.session is not None:
                self.session.shouldstop = (
                    f"quantgate --sequential: verdict {decision.decision} for {sample.preset} settled after "
                    f"{decision.iterations} iterations ({decision.reason})"
                )

    def _progress(self, preset_id: str, iteration: int) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        # Iteration scores only: the full aggregate (an interval per level) would be recomputed over the
        # whole run after every iteration.
        scores = self.recorder.iteration_scores(preset_id)
        this = next((it for it in scores if it.iteration == iteration), None)
        if this is None:
            return
        total = max(k[1] for k in self.expected if k[0] == preset_id)
        tps = f", {this.tokens_per_s:,.0f} tok/s" if this.tokens_per_s else ""
        mean = sum(it.percent for it in scores) / len(scores)
        reporter.ensure_newline()
        reporter.write_line(
            f"quantgate {preset_id} iteration {iteration}/{total}: {this.percent:.1f} % "
            f"(running mean {mean:.1f} %){tps}"
        )

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        result = yield
        if self.recorder.samples:
            _report_gates(session, self.recorder)
            _report_verdicts(session, self.recorder)
        return result

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
        self.written = self.recorder.finish(interrupted=interrupted)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        recorder = self.recorder
        if not recorder.samples:
            return
        from pytest_quantgate.report import render

        aggs = [recorder.aggregate(pid) for pid in recorder.preset_ids() if recorder.samples.get(pid)]
        terminalreporter.write_sep("=", "quantgate decision table")
        terminalreporter.write_line(render(aggs, recorder.outcomes))
        if recorder.comparisons:
            from pytest_quantgate.compare import render as render_comparison

            for preset_id, comparison in recorder.comparisons.items():
                terminalreporter.write_sep("-", f"{preset_id} against the baseline {recorder.baseline_id}")
                terminalreporter.write_line(render_comparison(comparison))
        for preset_id, decision in recorder.stopped_early.items():
            terminalreporter.write_line(
                f"{preset_id}: stopped early after {decision.iterations} iterations by the sequential test "
                f"({decision.decision}: {decision.reason})"
            )
        for path in self.written:
            terminalreporter.write_line(f"results: {path}")


def _preset_iteration(nodeid: str, config: pytest.Config) -> tuple[str, int]:
    presets = config.stash[CONFIG_KEY].presets
    params = nodeid.partition("[")[2]
    preset = next((p.id for p in presets if params.startswith(p.id + "-")), presets[0].id if presets else "none")
    match = _ITERATION_RE.match(params.removeprefix(preset + "-"))
    return preset, int(match.group(1)) if match else 1


_ITERATION_RE = re.compile(r"iter-(\d+)")


def _report_verdicts(session: pytest.Session, recorder: Recorder) -> None:
    """The verdict against --baseline, as one more gate outcome per candidate."""
    from pytest_quantgate.errors import QuantgateError

    try:
        comparisons = recorder.compare()
    except QuantgateError as exc:
        raise pytest.UsageError(str(exc)) from None
    session.testscollected += len(comparisons)
    for preset_id, comparison in comparisons.items():
        nodeid = f"{GATE_PREFIX}verdict[{preset_id} vs {recorder.baseline_id}]"
        _emit(session, nodeid, comparison.passed, comparison.message)


def _emit(session: pytest.Session, nodeid: str, passed: bool, message: str) -> None:
    """Report a session-level outcome (gate, verdict) as a test: terminal, JUnit XML, exit status."""
    hook = session.config.hook
    location = ("quantgate", None, nodeid)
    hook.pytest_runtest_logstart(nodeid=nodeid, location=location)
    for when in ("setup", "call", "teardown"):
        failed = when == "call" and not passed
        report = pytest.TestReport(
            nodeid=nodeid,
            location=location,
            keywords={"quantgate_gate": 1},
            outcome="failed" if failed else "passed",
            longrepr=message if failed else None,
            when=when,
            user_properties=[("quantgate_gate", message)] if when == "call" else [],
        )
        hook.pytest_runtest_logreport(report=report)


def _report_gates(session: pytest.Session, recorder: Recorder) -> None:
    from pytest_quantgate.errors import QuantgateError

    try:
        outcomes = recorder.evaluate_gates()
    except QuantgateError as exc:
        raise pytest.UsageError(str(exc)) from None
    several = len(outcomes) > 1
    # Gates are outcomes of the session, not collected items: count them so progress ends at 100 %.
    session.testscollected += sum(len(results) for results in outcomes.values())
    for preset_id, results in outcomes.items():
        for outcome in results:
            scope = f"{preset_id}::" if several else ""
            message = f"gate[{outcome.id}] failed: {outcome.message}" if not outcome.passed else outcome.message
            _emit(session, f"{GATE_PREFIX}{scope}gate[{outcome.id}]", outcome.passed, message)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    servers = session.config.stash.get(SERVERS_KEY, None)
    if servers is not None:
        servers.release_all()  # normally done by fixture teardown; this covers aborted sessions
    writer = session.config.stash.get(ARTIFACTS_KEY, None)
    if writer is not None and (errors := writer.close()):
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"quantgate: {len(errors)} artifact(s) could not be written (the results files are complete); "
                f"first: {errors[0]}",
                red=True,
            )
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    run_config = config.stash.get(CONFIG_KEY, None)
    if run_config is None or not run_config.presets:
        return None
    names = ", ".join(f"{p.id} ({p.driver})" for p in run_config.presets)
    return [f"quantgate: presets {names}; run {run_config.run_id} → {run_config.run_dir}"]
