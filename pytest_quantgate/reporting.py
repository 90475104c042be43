"""pytest's side of :class:`~pytest_quantgate.controller.Controller`: it hands the controller what pytest
collected and reported, writes progress lines and the decision table, stops the session when the sequential
test has decided, and reports gates and verdicts as test outcomes (terminal, JUnit XML, exit status)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from pytest_quantgate.stash import LEVEL_KEY

if TYPE_CHECKING:
    from collections.abc import Callable, Generator

    from pytest_quantgate.controller import Controller, Emitted

T = TypeVar("T")


def usage(call: Callable[..., T], *args: Any) -> T:
    """*call*, a QuantgateError becoming a usage error (exit status 4, the message and no traceback)."""
    from pytest_quantgate.errors import QuantgateError

    try:
        return call(*args)
    except QuantgateError as exc:
        raise pytest.UsageError(str(exc)) from None


class ControllerHooks:
    """Controller-only hooks, registered per config so that hooks which receive no config still reach this
    run's Controller. They hand it what pytest collected and reported, and act on its answers."""

    def __init__(self, config: pytest.Config, controller: Controller) -> None:
        self.config = config
        self.controller = controller
        self.session: pytest.Session | None = None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.session = session
        items = [item for item in session.items if LEVEL_KEY in item.stash]
        usage(self.controller.collected, [(item.nodeid, item.stash[LEVEL_KEY].key) for item in items])
        if not self.config.option.collectonly:
            self.controller.prepare()

    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        usage(self.controller.collected_ids, ids)

    @pytest.hookimpl(trylast=True)  # after the terminal has written the test's status
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        arrival = self.controller.add(report)
        if arrival is None:
            return
        if arrival.progress and (reporter := self.config.pluginmanager.get_plugin("terminalreporter")):
            reporter.ensure_newline()
            reporter.write_line(arrival.progress)
        if arrival.stop and self.session is not None:
            self.session.shouldstop = arrival.stop

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        try:
            result = yield
        except session.Interrupted:
            if self.controller.stopped is None:
                raise  # Ctrl-C, -x: not ours to finish
            # --sequential settled every verdict: the run ends here as a finished one, gates and verdicts
            # included, with the verdict's exit status (not "interrupted").
            session.shouldstop = False
            result = True
        for outcomes in (self.controller.gates, self.controller.verdicts):
            emitted = usage(outcomes)
            # Outcomes of the session, not collected items: counted so that progress ends at 100 %.
            session.testscollected += len(emitted)
            for outcome in emitted:
                _emit(session, outcome)
        return result

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        # Stopped early (Ctrl-C, -x/--maxfail, --sequential): incomplete, so it never becomes a stored baseline.
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED or bool(session.shouldfail)
        self.controller.finish(interrupted=interrupted)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        for line in self.controller.summary():
            if line.sep:
                terminalreporter.write_sep(line.sep, line.text)
            else:
                terminalreporter.write_line(line.text)


def _emit(session: pytest.Session, outcome: Emitted) -> None:
    """Report a session-level outcome (gate, verdict) as a test: terminal, JUnit XML, exit status."""
    hook, nodeid, message = session.config.hook, outcome.nodeid, outcome.message
    location = ("quantgate", None, nodeid)
    hook.pytest_runtest_logstart(nodeid=nodeid, location=location)
    for when in ("setup", "call", "teardown"):
        failed = when == "call" and not outcome.passed
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


class SampleTransport:
    """The Sample on a level's report becomes a dict only when the report leaves the process (xdist, report
    logs) and a Sample again on arrival."""

    @pytest.hookimpl(wrapper=True)
    def pytest_report_to_serializable(self, report: pytest.TestReport) -> Generator[None, Any, Any]:
        data = yield
        from pytest_quantgate.recorder import SAMPLE_ATTR

        if isinstance(data, dict) and hasattr(data.get(SAMPLE_ATTR), "to_dict"):
            data[SAMPLE_ATTR] = data[SAMPLE_ATTR].to_dict()
        return data

    @pytest.hookimpl(wrapper=True)
    def pytest_report_from_serializable(self, data: dict[str, Any]) -> Generator[None, Any, Any]:
        report = yield
        from pytest_quantgate.recorder import SAMPLE_ATTR

        if isinstance(sample := getattr(report, SAMPLE_ATTR, None), dict):
            from pytest_quantgate.levels import Sample

            setattr(report, SAMPLE_ATTR, Sample.from_dict(sample))
        return report
