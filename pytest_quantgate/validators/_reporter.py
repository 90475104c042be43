"""pytest plugin loaded with ``-p`` inside the sandbox's pytest child (internal).

The sandbox copies this file next to the hidden tests' harness and loads it with ``-p``; it is not meant
to be imported anywhere else. It reads the run's nonce and report descriptor from a pipe (whose number is
in :data:`CONFIG_FD_ENV`) before any candidate code is imported, then writes one nonce-tagged JSON line per
test phase, collection report (the tests collected, or the error), deselection and the session's end. The
parent trusts only lines that carry the nonce. On every test report and at the end it also checks that no
hook implementation changed since collection began and that no watched function was replaced or had its
code swapped; what changed is listed in the last record, which fails the run.

With ``block_network`` set (no network namespace could be made) it also replaces the socket functions that
open connections, so that candidate code fails fast instead of reaching the network. That is a guard
against accidents, not against code that means to get round it (``_socket`` and subprocesses bypass it).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Sequence

CONFIG_FD_ENV = "QUANTGATE_SANDBOX_CONFIG_FD"
# Bound before any test code runs, so that a hidden test may monkeypatch json.dumps or os.write.
_dumps = json.dumps
_write = os.write
_TEXT_LIMIT = 4000
_BLOCKED_FAMILIES = (socket.AF_INET, socket.AF_INET6)


def _trim(text: str) -> str:
    if len(text) <= _TEXT_LIMIT:
        return text
    half = _TEXT_LIMIT // 2
    return f"{text[:half]}\n[... {len(text) - _TEXT_LIMIT} characters left out ...]\n{text[-half:]}"


def _network_disabled(*_args: Any, **_kwargs: Any) -> Any:
    raise OSError(errno.ENETUNREACH, "network access is disabled in the quantgate sandbox")


def _block_network() -> None:
    """Make the usual ways to reach another host fail (Python-level only; see the module docstring)."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_sendto = socket.socket.sendto

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in _BLOCKED_FAMILIES:
            _network_disabled()
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if self.family in _BLOCKED_FAMILIES:
            return errno.ENETUNREACH
        return real_connect_ex(self, address)

    def sendto(self: socket.socket, *args: Any) -> int:
        if self.family in _BLOCKED_FAMILIES:
            _network_disabled()
        return real_sendto(self, *args)

    def getaddrinfo(*_args: Any, **_kwargs: Any) -> Any:
        raise socket.gaierror(
            socket.EAI_NONAME, "network access (name resolution) is disabled in the quantgate sandbox"
        )

    socket.socket.connect = connect  # type: ignore[method-assign, assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign, assignment]
    socket.socket.sendto = sendto  # type: ignore[method-assign, assignment]
    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = getaddrinfo
    socket.gethostbyname_ex = getaddrinfo


def _code_of(obj: object) -> object:
    """The code object behind a function or bound method; swapping it in place keeps the identity."""
    return getattr(getattr(obj, "__func__", obj), "__code__", None)


def _watched() -> dict[str, tuple[object, object]]:
    """Functions through which a candidate could make failing tests look passed: identity and code."""
    import _pytest.python
    import _pytest.reports
    import _pytest.runner

    functions: dict[str, object] = {
        "_pytest.python.Function.runtest": _pytest.python.Function.runtest,
        "_pytest.python.pytest_pyfunc_call": _pytest.python.pytest_pyfunc_call,
        "_pytest.runner.call_and_report": _pytest.runner.call_and_report,
        # Class attributes by their dict entry: a classmethod object is made afresh on each lookup.
        "_pytest.runner.CallInfo.from_call": vars(_pytest.runner.CallInfo)["from_call"],
        "_pytest.reports.TestReport.from_item_and_call": vars(_pytest.reports.TestReport)["from_item_and_call"],
        # What hidden tests assert with.
        "pytest.raises": pytest.raises,
        "pytest.raises().__exit__": type(pytest.raises(Exception)).__exit__,
        "pytest.approx": pytest.approx,
        "pytest.warns": pytest.warns,
        # What the reporter itself writes with.
        f"{__name__}._dumps": _dumps,
        f"{__name__}._write": _write,
    }
    for name, value in vars(SandboxReporter).items():
        if callable(value):
            functions[f"SandboxReporter.{name}"] = value
    return {name: (func, _code_of(func)) for name, func in functions.items()}


def _same(before: Sequence[tuple[object, object]], after: Sequence[tuple[object, object]]) -> bool:
    """Whether both hold the very same objects (by identity: ``==`` could be the candidate's own)."""
    return len(before) == len(after) and all(a is c and b is d for (a, b), (c, d) in zip(before, after, strict=True))


def _changed(before: dict[str, tuple[object, object]], after: dict[str, tuple[object, object]]) -> list[str]:
    return [name for name, entry in before.items() if name not in after or not _same([entry], [after[name]])]


def _hook_impls(config: pytest.Config) -> dict[str, tuple[tuple[object, object], ...]]:
    """Every hook's implementations (function and code), in call order: a plugin registered, removed or
    rewritten after collection began changes this, and only candidate code runs then to do it."""
    found: dict[str, tuple[tuple[object, object], ...]] = {}
    for name, caller in vars(config.hook).items():
        get_hookimpls = getattr(caller, "get_hookimpls", None)
        if get_hookimpls is not None:
            found[name] = tuple((impl.function, _code_of(impl.function)) for impl in get_hookimpls())
    return found


class SandboxReporter:
    """Writes per-phase test outcomes to the report descriptor, tagged with the run's nonce."""

    def __init__(self, config: pytest.Config, nonce: str, fd: int, started_fd: int) -> None:
        self._config = config
        self._nonce = nonce
        self._fd = fd
        self._started_fd = started_fd
        self._seq = 0
        self._start = time.perf_counter()
        self._watched = _watched()
        self._hooks: dict[str, tuple[tuple[object, object], ...]] | None = None
        self._tampered: dict[str, None] = {}

    def _emit(self, kind: str, **fields: Any) -> None:
        record = {"nonce": self._nonce, "src": "pytest", "seq": self._seq, "kind": kind, **fields}
        self._seq += 1
        # A lost record makes the parent fail the run, which is the safe outcome.
        with contextlib.suppress(OSError):
            _write(self._fd, (_dumps(record) + "\n").encode())

    def _check(self) -> None:
        """Note each watched function replaced or rewritten, and each hook whose implementations changed
        since collection began (a plugin registered, removed or rewritten: only candidate code does that)."""
        for name in _changed(self._watched, _watched()):
            self._tampered[name] = None
        if self._hooks is not None:
            now = _hook_impls(self._config)
            for name, impls in self._hooks.items():
                if not _same(impls, now.get(name, ())):
                    self._tampered[f"hook {name}"] = None

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self._start = time.perf_counter()
        self._emit("start")
        # Tell the parent pytest is up, then close the pipe before any candidate code is imported, so
        # that the candidate can neither fake nor withhold this signal.
        with contextlib.suppress(OSError):
            os.write(self._started_fd, b"S")
            os.close(self._started_fd)

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection(self, session: pytest.Session) -> None:
        # Every plugin is registered by now, and no candidate code has run: collection imports it.
        self._hooks = _hook_impls(self._config)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self._emit("collect-error", nodeid=report.nodeid, text=_trim(report.longreprtext))
            return
        # The tests as collected, before anything could deselect them or drop them from the session.
        items = [node.nodeid for node in report.result if isinstance(node, pytest.Item)]
        if items:
            self._emit("items", nodeids=items)

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self._emit("deselected", nodeids=[item.nodeid for item in items])

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._emit("collected", nodeids=[item.nodeid for item in session.items])

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # On every report, so that a plugin which rewrites reports is seen while it is still registered.
        self._check()
        self._emit(
            "phase",
            nodeid=report.nodeid,
            when=report.when,
            outcome=report.outcome,
            xfail=hasattr(report, "wasxfail"),
            text=_trim(report.longreprtext) if report.failed else "",
        )

    def pytest_internalerror(self, excrepr: object, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self._emit("internal-error", text=_trim(excinfo.exconly()))

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self._check()
        self._emit(
            "finish",
            exitstatus=int(exitstatus),
            duration_s=time.perf_counter() - self._start,
            tampered=list(self._tampered),
        )


def pytest_configure(config: pytest.Config) -> None:
    """Read the run's settings from the inherited pipe and register the reporter."""
    fd_text = os.environ.pop(CONFIG_FD_ENV, None)
    if fd_text is None:
        raise pytest.UsageError(f"{CONFIG_FD_ENV} is not set: this plugin only works inside pytest_quantgate's sandbox")
    with os.fdopen(int(fd_text), "rb") as handle:
        settings = json.loads(handle.read())
    if settings.get("block_network"):
        _block_network()
    config.pluginmanager.register(
        SandboxReporter(config, settings["nonce"], int(settings["report_fd"]), int(settings["started_fd"])),
        "quantgate-sandbox-reporter",
    )
