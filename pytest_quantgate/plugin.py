"""pytest glue: options, marks and hooks (fixtures: fixtures.py; the controller's hooks: reporting.py). Data flow:
options → presets → a server per preset → ``llm`` → level → sample on the report (survives xdist) → controller."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from pytest_quantgate import interrupts
from pytest_quantgate.config import (
    INI_DIR,
    INI_GATES,
    INI_ITERATIONS,
    INI_MARGIN,
    INI_PRESET_DIRS,
    OPT_BASE_URL,
    OPT_BASELINE,
    OPT_DIR,
    OPT_GATE,
    OPT_ITERATIONS,
    OPT_MARGIN,
    OPT_PRESET,
    OPT_PRESET_DIR,
    OPT_REQUIRE_FASTER,
    OPT_SEQUENTIAL,
    WORKER_DIR,
    WORKER_RUN_ID,
)
from pytest_quantgate.fixtures import llm, measure, quantgate_iteration, quantgate_preset, quantgate_server  # noqa: F401
from pytest_quantgate.reporting import ControllerHooks, SampleTransport, usage
from pytest_quantgate.stash import (
    ARTIFACTS_KEY,
    CONFIG_KEY,
    CONTROLLER_KEY,
    LEVEL_KEY,
    LLM_KEY,
    MEASURE_KEY,
    RESTORE_SIGINT_KEY,
    SERVERS_KEY,
    STARTED_KEY,
)

if TYPE_CHECKING:
    from collections.abc import Generator

    from pytest_quantgate.levels import LevelSpec

MISS_PROPERTY = "quantgate_miss"
pytest_plugins = ["pytest_quantgate.kld.fixture"]  # --reference, the quantgate_kld fixture, its summary


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
                    help="Compare against this result file, or a preset id (its latest stored result for this suite, "
                         "or the same preset in this run) and gate on the verdict")  # fmt: skip
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
    config.pluginmanager.register(SampleTransport(), "quantgate-samples")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(), "quantgate-xdist")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    # Resolved here rather than in pytest_configure so that `pytest --help` never imports pydantic, httpx
    # and friends (B5). tryfirst: xdist's own sessionstart creates the workers and needs the run id.
    from pytest_quantgate.artifacts import ArtifactWriter
    from pytest_quantgate.config import raw_options, run_config
    from pytest_quantgate.controller import Controller
    from pytest_quantgate.servers import Servers

    config = session.config
    config.stash[RESTORE_SIGINT_KEY] = interrupts.watch()
    worker = getattr(config, "workerinput", None)
    xdist = bool(getattr(config.option, "numprocesses", None))
    raw = raw_options(config.getoption, config.getini, rootdir=config.rootpath, worker=worker, xdist=xdist)
    config.stash[CONFIG_KEY] = run = usage(run_config, raw)
    config.stash[SERVERS_KEY] = Servers(run)
    config.stash[ARTIFACTS_KEY] = ArtifactWriter()
    if worker is None:  # the controller: the only process without workerinput
        shown = config.get_verbosity() >= 0 and config.pluginmanager.get_plugin("terminalreporter") is not None
        config.stash[CONTROLLER_KEY] = controller = Controller(run, progress=shown)
        config.pluginmanager.register(ControllerHooks(config, controller), "quantgate-controller")


class _XdistHooks:
    """Registered only when pytest-xdist is installed: hands the run id to every worker."""

    @pytest.hookimpl
    def pytest_configure_node(self, node: Any) -> None:
        run_config = node.config.stash[CONFIG_KEY]
        node.workerinput[WORKER_RUN_ID] = run_config.run_id
        node.workerinput[WORKER_DIR] = str(run_config.out_dir)


# -- collection ---------------------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # tryfirst: our parameters come first in the test id ("iter-03-<user params>"), so the level key can
    # drop exactly them (see keys.level_key) and keep a suite's own parametrization as distinct levels.
    if "quantgate_iteration" not in metafunc.fixturenames:
        return
    from pytest_quantgate.errors import QuantgateError
    from pytest_quantgate.keys import iteration_id

    run_config = metafunc.config.stash[CONFIG_KEY]
    try:
        spec = _marks(metafunc.definition)[0]  # the gates are checked here too, and read again per item
    except QuantgateError as exc:
        failure = str(exc)
    else:
        failure = ""
    if failure:  # outside the except block: no "During handling..." repetition of the message
        pytest.fail(failure, pytrace=False)
    presets = run_config.presets
    if len(presets) > 1:
        ids = [p.id for p in presets]
        metafunc.parametrize("quantgate_preset", ids, indirect=True, scope="session", ids=ids)
    n = run_config.iterations_for(spec.iterations) if presets else 1
    metafunc.parametrize("quantgate_iteration", range(1, n + 1), indirect=True, ids=iteration_id)


def _marks(node: pytest.Item | Any) -> tuple[LevelSpec, tuple[str, ...]]:
    from pytest_quantgate.keys import level_marks

    return level_marks(node.get_closest_marker("level"), node.iter_markers("gate"), node.nodeid)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Remember which items are levels, and run them iteration by iteration (as the field does: all levels
    of iteration 1, then iteration 2, ...) within each preset's group; with --sequential, iteration k of
    every preset before iteration k + 1 of any."""
    from pytest_quantgate.keys import LevelInfo

    run_config = config.stash[CONFIG_KEY]
    order: dict[str, int] = {p.id: i for i, p in enumerate(run_config.presets)}
    keyed = []
    for position, item in enumerate(items):
        params = getattr(item, "callspec", None)
        iteration = params.params.get("quantgate_iteration") if params else None
        if iteration is None:
            keyed.append(((-1, 0, position), item))
            continue
        preset = params.params.get("quantgate_preset") if params else None
        name = str(getattr(item, "originalname", None) or item.name)
        item.stash[LEVEL_KEY] = LevelInfo.of(item.nodeid, name, preset, iteration, _marks(item))
        rank = order.get(preset, 0) if preset else 0
        # --sequential interleaves the presets iteration by iteration, so that every look compares both.
        keyed.append(((iteration, rank, position) if run_config.sequential else (rank, iteration, position), item))
    items[:] = [item for _, item in sorted(keyed, key=lambda pair: pair[0])]


# -- running: samples ride on reports ----------------------------------------------------------------


def _preset_of(item: pytest.Item) -> str:
    params = getattr(item, "callspec", None)
    preset_id: str | None = params.params.get("quantgate_preset") if params else None
    if preset_id is None:
        presets = item.config.stash[CONFIG_KEY].presets
        preset_id = presets[0].id if presets else "none"
    return preset_id


def pytest_runtest_setup(item: pytest.Item) -> None:
    # --sequential with several candidates: one whose verdict is settled skips its remaining levels.
    controller = item.config.stash.get(CONTROLLER_KEY, None)
    info = item.stash.get(LEVEL_KEY, None)
    if controller is not None and info is not None and (why := controller.settled(_preset_of(item), info.key)):
        pytest.skip(why)


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
    if info is None or not (report.when == "call" or (report.when == "setup" and not report.passed)):
        return report
    from pytest_quantgate.recorder import SAMPLE_ATTR, level_sample

    run_config = item.config.stash[CONFIG_KEY]
    params = getattr(item, "callspec", None)
    preset_id = _preset_of(item)
    handle = item.stash.get(LLM_KEY, None)
    exchanges = handle.exchanges if handle else []
    measured = item.stash.get(MEASURE_KEY, None)
    sample = level_sample(
        info,
        preset=preset_id,
        iteration=int(params.params.get("quantgate_iteration", 1)) if params else 1,
        when=report.when,
        passed=report.passed,
        skipped=report.skipped,
        exception=call.excinfo.value if call.excinfo is not None else None,
        report_text=lambda: report.longreprtext,
        duration_s=time.perf_counter() - item.stash.get(STARTED_KEY, time.perf_counter()),
        completions=[ex.completion for ex in exchanges],
        memory=item.config.stash[SERVERS_KEY].memory(preset_id),
        measures=measured.recorded if measured is not None else (),
        items=measured.items if measured is not None else (),
    )
    # The Sample itself: turned into a dict only when the report leaves the process (xdist, report logs).
    setattr(report, SAMPLE_ATTR, sample)
    if tail := getattr(call.excinfo.value if call.excinfo else None, "log_tail", None):
        report.sections.append(("quantgate: last lines of the server log", tail))
    validator = report.longreprtext if sample.outcome in ("failed", "error") else None
    if run_config.presets:
        item.config.stash[ARTIFACTS_KEY].write(run_config.preset_dir(preset_id), sample, exchanges, validator)
    if sample.outcome == "failed" and run_config.gated(preset_id, info.gates):
        # A wrong answer is a measurement, not a broken test: with gates in force they decide the exit
        # status. The report keeps the validator's message and gets its own status (see teststatus).
        report.outcome = "passed"
        report.user_properties.append((MISS_PROPERTY, sample.error or ""))
    return report


def pytest_keyboard_interrupt() -> None:
    interrupts.clear()  # raised and handled as usual: nothing left to raise again


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> tuple[str, str, Any] | None:
    if report.when == "call" and any(name == MISS_PROPERTY for name, _ in report.user_properties):
        return "missed", "m", ("MISSED", {"yellow": True})
    return None


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    if restore := session.config.stash.get(RESTORE_SIGINT_KEY, None):
        restore()
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
