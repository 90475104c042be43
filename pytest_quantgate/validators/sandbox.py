"""Run a level's hidden pytest tests against a model's code, in a child process with guards around it.

This is a *guard*, not a hardened sandbox: it stops the accidents and the crude tricks that model-written
code gets up to (endless loops, fork and memory bombs, floods of output, writes outside its directory,
network use, reading the parent's secrets, killing its parent, ``sys.exit(0)``, rewriting the tests) and
makes sure none of them can pass for a success. Code written to attack this harness on purpose, from
inside the same interpreter as pytest, can still fool it; ``docs/validators.md`` lists what is and is not
covered.

How a run goes:

* a fresh temporary directory gets the candidate module (in ``work/``, the only writable place), the hidden
  tests (in ``tests/``) and a tiny reporter plugin (in ``harness/``);
* ``_boot.py`` is started, under ``unshare`` (new PID, mount and network namespaces; plus a user namespace
  when not root) where that works, else directly; it makes the file system read-only but for ``work/``,
  and forks pytest with resource limits, a scrubbed environment and no privileges (as root: as a user id of
  its own, so ``RLIMIT_NPROC`` counts this run's processes only);
* the reporter writes per-test outcomes, tagged with a random nonce that only travels through pipes, to a
  descriptor whose file lies outside the candidate's reach; the parent reads them after the run and insists
  that every test named in the hidden source (found with :mod:`ast`) and every test pytest collected ran
  and passed (xfail, xpass, skip and deselection all fail), that no hook or watched function was changed,
  and that pytest's process exited with status 0;
* on timeout the whole tree (process group, descendants, the run's uid) is killed with SIGKILL.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
import re
import secrets
import select
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import psutil

from pytest_quantgate.errors import ValidationError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = [
    "HiddenTestResult",
    "Limits",
    "NetworkGuard",
    "assert_hidden_tests_pass",
    "hidden_test_names",
    "run_hidden_tests",
]

NetworkGuard = Literal["netns", "socket-patch"]

_MiB = 1024 * 1024
_TEST_FILE = "test_hidden.py"
_REPORTER_MODULE = "_quantgate_sandbox_reporter"
_CONFIG_FD_ENV = "QUANTGATE_SANDBOX_CONFIG_FD"
# Only a test that ran and passed counts: xfailed, xpassed, skipped, deselected and "not run" all fail.
_OK_OUTCOMES = frozenset({"passed"})
# Reading more than this of the report means the candidate flooded it; the rest is not looked at.
_REPORT_READ_LIMIT = 8 * _MiB
_KILL_WAIT_S = 5.0
_WATCHDOG_PERIOD_S = 0.1
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
_SIGNAL_HINTS = {
    "SIGXFSZ": "it wrote a file past the size limit (Limits.file_size_bytes = {file_size_bytes} bytes)",
    "SIGXCPU": "it used up its CPU time (Limits.cpu_s = {cpu_s} s)",
    "SIGKILL": "killed with SIGKILL (CPU limit, out of memory, or the candidate itself)",
    "SIGSEGV": "it crashed (segmentation fault)",
    "SIGABRT": "it aborted",
}


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits for one sandboxed test run (``setrlimit`` values; they apply per process).

    ``processes`` counts every process and thread of the run (as root the run gets a user id of its own
    so that the count is this run's alone). ``output_chars`` is how much of pytest's output the result
    keeps (head and tail).
    """

    cpu_s: int = 60
    memory_bytes: int = 2048 * _MiB
    processes: int = 64
    file_size_bytes: int = 64 * _MiB
    open_files: int = 256
    output_chars: int = 8000

    def __post_init__(self) -> None:
        for name in ("cpu_s", "memory_bytes", "processes", "file_size_bytes", "open_files", "output_chars"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValidationError(f"Limits.{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True, slots=True)
class HiddenTestResult:
    """What a sandboxed run of the hidden tests found.

    ``outcomes`` maps each test (``test_name``, ``TestClass::test_name``, ``test_name[param]``) to
    ``passed``, ``failed``, ``error``, ``skipped``, ``xfailed``, ``xpassed``, ``deselected`` or ``not
    run``; every test the hidden source defines, and every test pytest collected, is listed, so
    :attr:`score` can give partial credit. Only ``passed`` counts. ``reason`` says in one
    line why the run did not pass ("" when it did). ``guards`` lists the protections that were in place.
    ``tampered`` is set when the candidate was caught changing the test run (report lines, the test file,
    pytest's or the harness's functions, hook implementations).
    """

    passed: bool
    outcomes: dict[str, str]
    duration_s: float
    output: str
    reason: str
    network_guard: NetworkGuard
    failures: dict[str, str] = field(default_factory=dict)
    guards: tuple[str, ...] = ()
    tests_duration_s: float | None = None
    tampered: bool = False

    @property
    def score(self) -> float:
        """Share of the hidden tests that ran and passed (0.0 to 1.0), for partial credit; 0.0 when the
        candidate tampered with the run, whose outcomes then cannot be trusted."""
        if not self.outcomes or self.tampered:
            return 0.0
        return sum(outcome in _OK_OUTCOMES for outcome in self.outcomes.values()) / len(self.outcomes)

    def failure_message(self, *, max_chars: int = 4000) -> str:
        """The assertion message :meth:`check` raises: the reason, each failed test's trimmed text, output."""
        lines = [f"hidden tests did not pass: {self.reason}"]
        bad = {name: outcome for name, outcome in self.outcomes.items() if outcome not in _OK_OUTCOMES}
        if bad:
            lines.append("outcomes: " + ", ".join(f"{name} {outcome}" for name, outcome in bad.items()))
        for name, text in self.failures.items():
            lines.append(f"--- {name}")
            lines.append(_tail_lines(text, 12, 800))
        if not self.failures and self.output.strip():
            lines.append("--- output (end)")
            lines.append(_tail_lines(self.output, 20, 1500))
        message = "\n".join(lines)
        return message if len(message) <= max_chars else message[: max_chars - 20] + "\n[... trimmed ...]"

    def check(self) -> HiddenTestResult:
        """Raise :class:`AssertionError` with :meth:`failure_message` unless the run passed; return self."""
        __tracebackhide__ = True
        if not self.passed:
            raise AssertionError(self.failure_message())
        return self


def _tail_lines(text: str, lines: int, chars: int) -> str:
    tail = "\n".join(text.rstrip().splitlines()[-lines:])
    return tail if len(tail) <= chars else "..." + tail[-chars:]


def hidden_test_names(tests: str) -> list[str]:
    """Names of the tests pytest would collect from ``tests`` by its default rules, in source order.

    Top-level ``test*`` functions, and ``test*`` methods of ``Test*`` classes without ``__init__``
    (nested classes too), as ``Class::method``. Raises :class:`ValidationError` when the source does not
    parse or defines no test.
    """
    try:
        tree = ast.parse(tests)
    except SyntaxError as exc:
        raise ValidationError(
            f"the hidden tests do not parse: {exc.msg} at line {exc.lineno}; fix the level's test source"
        ) from exc
    names: list[str] = []

    def visit(body: Iterable[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
                names.append(prefix + node.name)
            elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                has_init = any(isinstance(item, ast.FunctionDef) and item.name == "__init__" for item in node.body)
                if not has_init:
                    visit(node.body, f"{prefix}{node.name}::")

    visit(tree.body, "")
    if not names:
        raise ValidationError("the hidden tests define no test: name functions test_* (or methods of Test* classes)")
    return names


@dataclass(frozen=True, slots=True)
class _Plan:
    """One way to start the supervisor: the unshare prefix (if any) and what it gives."""

    prefix: tuple[str, ...]
    network_guard: NetworkGuard
    mount_namespace: bool
    pid_namespace: bool


def _plans(is_root: bool) -> list[_Plan]:
    """Ways to start a run, strongest first; a way whose set-up fails hands over to the next."""
    unshare = shutil.which("unshare")
    plans: list[_Plan] = []
    if unshare is not None:
        user = () if is_root else ("--user", "--map-root-user")
        full = (unshare, *user, "--mount", "--net", "--pid", "--fork", "--kill-child", "--mount-proc")
        plans.append(_Plan(full, "netns", mount_namespace=True, pid_namespace=True))
        plans.append(_Plan((unshare, *user, "--mount", "--net"), "netns", mount_namespace=True, pid_namespace=False))
    plans.append(_Plan((), "socket-patch", mount_namespace=False, pid_namespace=False))
    return plans


def _reachable_by_others(paths: Iterable[Path]) -> bool:
    """Whether a user of no group could reach every one of ``paths`` (each ancestor searchable)."""
    for path in paths:
        for directory in (path, *path.parents):
            try:
                mode = directory.stat().st_mode
            except OSError:
                return False
            if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
                return False
    return True


def _interpreter_paths() -> list[Path]:
    import pytest

    paths = sysconfig.get_paths()
    return [
        Path(os.path.realpath(sys.executable)),
        Path(paths["stdlib"]),
        Path(paths["purelib"]),
        Path(pytest.__file__).parent,
    ]


@dataclass(frozen=True, slots=True)
class _Layout:
    root: Path
    workdir: Path
    test_file: Path
    harness: Path
    ini: Path
    test_hash: str


def _prepare(root: Path, code: str, tests: str, module: str, uid: int | None) -> _Layout:
    workdir = root / "work"
    testdir = root / "tests"
    harness = root / "harness"
    for directory in (workdir, testdir, harness):
        directory.mkdir()
    # Model output may hold lone surrogates; they cannot be valid source anyway, so replace them.
    (workdir / f"{module}.py").write_bytes(code.encode("utf-8", "replace"))
    test_file = testdir / _TEST_FILE
    test_file.write_text(tests, encoding="utf-8")
    reporter = Path(__file__).with_name("_reporter.py").read_text(encoding="utf-8")
    (harness / f"{_REPORTER_MODULE}.py").write_text(reporter, encoding="utf-8")
    ini = harness / "pytest.ini"
    ini.write_text("[pytest]\n", encoding="utf-8")
    # The candidate may read everything here but write only to work/.
    root.chmod(0o711)
    testdir.chmod(0o755)
    harness.chmod(0o755)
    test_file.chmod(0o444)
    if uid is not None:
        for path in (workdir, workdir / f"{module}.py"):
            os.chown(path, uid, uid)
    workdir.chmod(0o700)
    return _Layout(root, workdir, test_file, harness, ini, hashlib.sha256(tests.encode()).hexdigest())


def _child_env(layout: _Layout, extra: Mapping[str, str] | None) -> dict[str, str]:
    """A fresh environment: nothing of the parent's but the locale, so no secret leaks into the run."""
    python_bin = str(Path(sys.executable).parent)
    env = {
        "PATH": f"{python_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(layout.workdir),
        "TMPDIR": str(layout.workdir),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "PYTHONPATH": f"{layout.harness}:{layout.workdir}",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        **dict.fromkeys(_THREAD_VARS, "1"),
    }
    for key, value in (extra or {}).items():
        if not key or "=" in key or "\0" in key or "\0" in value:
            raise ValidationError(f"env variable {key!r} cannot be passed to the sandbox: bad name or NUL")
        env[key] = value
    return env


@dataclass(frozen=True, slots=True)
class _Attempt:
    returncode: int | None
    killed_for: str | None
    output: str
    records: list[dict[str, Any]]
    foreign_lines: int
    elapsed_s: float
    processes_killed: int
    started: bytes


def _read_output(path: Path, keep: int) -> str:
    """Head and tail of the output file, never more than ``keep`` characters in memory."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        if size <= keep:
            return handle.read().decode("utf-8", "replace")
        head = handle.read(keep // 4).decode("utf-8", "replace")
        handle.seek(size - (keep - keep // 4))
        tail = handle.read().decode("utf-8", "replace")
    return f"{head}\n[... {size - keep} bytes of output left out ...]\n{tail}"


def _read_report(path: Path, nonce: str) -> tuple[list[dict[str, Any]], int]:
    """Records that carry the nonce, in order, and the count of lines that did not (forgeries)."""
    with path.open("rb") as handle:
        data = handle.read(_REPORT_READ_LIMIT + 1)
    foreign = 1 if len(data) > _REPORT_READ_LIMIT else 0
    records: list[dict[str, Any]] = []
    expected_seq = {"boot": 0, "pytest": 0}
    for line in data[:_REPORT_READ_LIMIT].splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            foreign += 1
            continue
        if not isinstance(record, dict) or not secrets.compare_digest(str(record.get("nonce")), nonce):
            foreign += 1
            continue
        src = record.get("src")
        if src not in expected_seq or record.get("seq") != expected_seq[src]:
            foreign += 1  # a replayed or reordered line: only someone inside the run could write it
            continue
        expected_seq[src] += 1
        records.append(record)
    return records, foreign


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _processes_of_uid(uid: int) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["uids"]):
        uids = proc.info.get("uids")
        if uids is not None and uid in (uids.real, uids.effective):
            found.append(proc)
    return found


def _tasks_of_uid(uid: int) -> int:
    """Processes and threads that ``uid`` runs now: what RLIMIT_NPROC would count against it."""
    total = 0
    for proc in psutil.process_iter(["uids", "num_threads"]):
        uids = proc.info.get("uids")
        if uids is not None and uids.real == uid:
            total += proc.info.get("num_threads") or 1
    return total


def _kill_all(procs: list[psutil.Process]) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(procs, timeout=_KILL_WAIT_S)


def _kill_tree(proc: subprocess.Popen[bytes], uid: int | None) -> int:
    """SIGKILL the run's process group, every descendant, and (as root) every process of the run's uid.

    Returns how many processes the first sweep found, which tells a fork bomb from a busy loop.
    """
    first_count = -1
    for _ in range(10):
        # Killing the namespace's PID 1 takes the namespace down; a fork bomb outside one needs rounds.
        procs = _descendants(proc.pid)
        if uid is not None:
            procs += [p for p in _processes_of_uid(uid) if p not in procs]
        if first_count < 0:
            first_count = len(procs)
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        if not procs:
            break
        _kill_all(procs)
    return max(first_count, 0)


def _wait_for_exit(proc: subprocess.Popen[bytes], deadline: float, max_processes: int | None) -> str | None:
    """Wait until the supervisor exits (not reaped yet), the deadline passes, or too many processes run.

    Returns why the run must be killed, or None when it ended by itself. ``max_processes`` turns on a
    polling watchdog for the runs where ``RLIMIT_NPROC`` does not apply.
    """
    try:
        pidfd: int | None = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        pidfd = None
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout"
            step = remaining if max_processes is None else min(remaining, _WATCHDOG_PERIOD_S)
            if pidfd is not None:
                # poll, not select: a busy test process may hold descriptors above FD_SETSIZE.
                poller = select.poll()
                poller.register(pidfd, select.POLLIN)
                if poller.poll(step * 1000):
                    return None
            else:
                # WNOWAIT leaves the zombie, so the process group id stays reserved for killpg below.
                info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
                if info is not None:
                    return None
                time.sleep(min(step, 0.01))
            if max_processes is not None and len(_descendants(proc.pid)) > max_processes + 2:
                return "processes"
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _attempt(
    plan: _Plan,
    layout: _Layout,
    *,
    uid: int | None,
    is_root: bool,
    keep_read_search: bool,
    timeout_s: float,
    limits: Limits,
    env: dict[str, str],
    index: int,
) -> _Attempt:
    # Without a uid of its own or a user namespace, RLIMIT_NPROC counts all of the user's processes: it is
    # raised by what already runs, and a polling watchdog stands in for the per-run cap.
    per_run_nproc = uid is not None or (bool(plan.prefix) and not is_root)
    nonce = secrets.token_hex(16)
    report_path = layout.root / f"report-{index}.jsonl"
    output_path = layout.root / f"output-{index}.log"
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
    report_fd = os.open(report_path, flags, 0o600)
    output_fd = os.open(output_path, flags, 0o600)
    started_read, started_write = os.pipe()
    os.set_blocking(started_read, False)
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-p",
        _REPORTER_MODULE,
        "-c",
        str(layout.ini),
        "--rootdir",
        str(layout.test_file.parent),
        "-q",
        "--tb=short",
        "--color=no",
        "--no-header",
        str(layout.test_file),
    ]
    config = {
        "nonce": nonce,
        "report_fd": report_fd,
        "workdir": str(layout.workdir),
        "readonly_root": plan.mount_namespace,
        # Outside a namespace a non-root runner has no privileges to drop; as root we always switch uid.
        "drop_privileges": is_root or bool(plan.prefix),
        "uid": uid,
        "keep_read_search": keep_read_search,
        "limits": {
            "cpu_s": limits.cpu_s,
            "memory_bytes": limits.memory_bytes,
            "processes": limits.processes,
            "file_size_bytes": limits.file_size_bytes,
            "open_files": limits.open_files,
            "core_bytes": 0,
            "nproc_base": 0 if per_run_nproc else _tasks_of_uid(os.getuid()),
        },
        "argv": argv,
        "config_fd_env": _CONFIG_FD_ENV,
        "started_fd": started_write,
        "plugin": {
            "nonce": nonce,
            "report_fd": report_fd,
            "started_fd": started_write,
            "block_network": plan.network_guard != "netns",
        },
    }
    payload = json.dumps(config).encode()
    if len(payload) > 60_000:  # more than a pipe holds before the supervisor reads it: we would block
        for fd in (report_fd, output_fd, started_read, started_write):
            os.close(fd)
        raise ValidationError(f"the sandbox configuration is too large ({len(payload)} bytes); use shorter paths")
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, payload)
    finally:
        os.close(write_end)
    boot = [sys.executable, "-I", "-S", str(Path(__file__).with_name("_boot.py")), str(read_end)]
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            [*plan.prefix, *boot],
            stdin=subprocess.DEVNULL,
            stdout=output_fd,
            stderr=output_fd,
            pass_fds=(read_end, report_fd, started_write),
            cwd=layout.workdir,
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        # The plan's launcher cannot even be executed: a set-up failure, so the next plan is tried.
        os.close(started_read)
        return _Attempt(None, None, f"cannot start {plan.prefix[:1] or boot[:1]}: {exc}", [], 0, 0.0, 0, b"")
    finally:
        for fd in (read_end, report_fd, output_fd, started_write):
            os.close(fd)
    try:
        killed_for = _wait_for_exit(proc, start + timeout_s, None if per_run_nproc else limits.processes)
    except BaseException:
        _kill_tree(proc, uid)
        proc.wait()
        os.close(started_read)
        raise
    processes_killed = 0
    if killed_for is not None:
        processes_killed = _kill_tree(proc, uid)
    else:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)  # stragglers in the group; the zombie keeps the id ours
    returncode = proc.wait()
    elapsed = time.monotonic() - start
    if killed_for is None and uid is not None and not plan.pid_namespace:
        # Outside a PID namespace the supervisor sweeps the uid itself; this catches a killed supervisor.
        _kill_all(_processes_of_uid(uid))
    started = b""
    try:
        while chunk := os.read(started_read, 65536):
            started += chunk
    except BlockingIOError:
        pass  # a straggler still holds the write end; what was written is all there is
    finally:
        os.close(started_read)
    records, foreign = _read_report(report_path, nonce)
    output = _read_output(output_path, limits.output_chars)
    return _Attempt(returncode, killed_for, output, records, foreign, elapsed, processes_killed, started)


def _name_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[1] if "::" in nodeid else nodeid


def _combine_phases(records: list[dict[str, Any]]) -> tuple[dict[str, str], dict[str, str]]:
    """Per-test outcome and failure text from the per-phase records."""
    outcomes: dict[str, str] = {}
    failures: dict[str, str] = {}
    for record in records:
        if record.get("kind") != "phase":
            continue
        name = _name_of(str(record.get("nodeid", "")))
        when, outcome, xfail = record.get("when"), record.get("outcome"), bool(record.get("xfail"))
        if outcome == "failed":
            outcomes[name] = "failed" if when == "call" else "error"
            failures[name] = str(record.get("text", ""))
        elif outcome == "skipped" and outcomes.get(name) not in ("failed", "error"):
            outcomes[name] = "xfailed" if xfail else "skipped"
        elif outcome == "passed" and when == "call":
            outcomes[name] = "xpassed" if xfail else "passed"
        elif outcome == "passed" and name not in outcomes:
            outcomes[name] = "not run"  # set-up passed; the call's record should follow
    return outcomes, failures


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning)\b")


def _first_error_line(text: str) -> str:
    """The most telling line of a pytest failure text: the exception's, else the first ``E`` line."""
    lines = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
    exception_lines = [line for line in lines if _EXCEPTION_LINE.match(line)]
    if exception_lines:
        return exception_lines[-1]
    if lines:
        return lines[0]
    stripped = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return stripped[-1] if stripped else "unknown error"


_LIMIT_HINTS = (
    ("MemoryError", "memory_bytes", "a MemoryError: the address-space limit is Limits.memory_bytes = {} bytes"),
    ("File too large", "file_size_bytes", "a file hit Limits.file_size_bytes = {} bytes"),
    ("Too many open files", "open_files", "open files hit Limits.open_files = {}"),
    ("Resource temporarily unavailable", "processes", "processes/threads may have hit Limits.processes = {}"),
)


def _limit_hint(texts: Iterable[str], limits: Limits) -> str:
    """Name the limit a failure text points to, so that the reader knows which knob to turn."""
    joined = "\n".join(texts)
    hints = [template.format(getattr(limits, name)) for needle, name, template in _LIMIT_HINTS if needle in joined]
    return f" ({'; '.join(hints)})" if hints else ""


def _judge(
    attempt: _Attempt,
    expected: list[str],
    layout: _Layout,
    plan: _Plan,
    timeout_s: float,
    limits: Limits,
    uid: int | None,
    keep_read_search: bool,
) -> HiddenTestResult:
    records = attempt.records
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_kind.setdefault(str(record.get("kind")), []).append(record)
    boot = _boot_message(attempt.started)
    finish = by_kind.get("finish", [None])[-1]
    # Only the supervisor, out of the candidate's reach, knows how pytest's process ended.
    exit_record = next((r for r in reversed(by_kind.get("exit", [])) if r.get("src") == "boot"), None)

    guards = list(boot.get("guards", []))
    if plan.network_guard == "netns":
        guards.insert(0, "netns")
    if uid is not None:
        guards.append("own-uid+read-all" if keep_read_search else "own-uid")
    elif plan.prefix:
        guards.append("userns")
    guards.append("nproc-per-run" if uid is not None or plan.prefix else "nproc-watchdog")
    guards += ["rlimits", "scrubbed-env", plan.network_guard if plan.network_guard != "netns" else ""]
    guards = [guard for guard in guards if guard]

    reported, failures = _combine_phases(records)
    # Every test pytest collected (before any deselection) must report; one deselected stays deselected.
    seen: dict[str, str] = {}
    for record in by_kind.get("items", []):
        for nodeid in record.get("nodeids", []):
            seen.setdefault(_name_of(str(nodeid)), "not run")
    for record in by_kind.get("deselected", []):
        for nodeid in record.get("nodeids", []):
            seen[_name_of(str(nodeid))] = "deselected"
    for name, outcome in reported.items():
        if seen.get(name) != "deselected":
            seen[name] = outcome
    outcomes: dict[str, str] = {}
    for base in expected:
        matching = {name: out for name, out in seen.items() if name.split("[", 1)[0] == base}
        outcomes.update(matching or {base: "not run"})
    for name, outcome in seen.items():
        outcomes.setdefault(name, outcome)  # tests the AST did not see (inherited, generated)

    for record in by_kind.get("collect-error", []):
        failures[f"collection of {_name_of(str(record.get('nodeid'))) or 'the tests'}"] = str(record["text"])
    for record in by_kind.get("internal-error", []):
        failures["pytest internal error"] = str(record.get("text", ""))

    test_file_changed = (
        not layout.test_file.exists() or hashlib.sha256(layout.test_file.read_bytes()).hexdigest() != layout.test_hash
    )
    bad = [name for name, outcome in outcomes.items() if outcome not in _OK_OUTCOMES]
    failed = [name for name in bad if outcomes[name] in ("failed", "error")]
    tampered = list(finish.get("tampered", [])) if finish else []
    signal_name = exit_record.get("signal") if exit_record else None

    reason = ""
    if attempt.killed_for == "timeout":
        reason = f"timed out after {timeout_s:g} s (timeout_s); the code may loop forever or block"
        if attempt.processes_killed > 3:
            reason += f"; {attempt.processes_killed} processes were running (a fork bomb?)"
    elif attempt.killed_for == "processes":
        reason = f"started more than {limits.processes} processes (Limits.processes); stopped as a fork bomb"
    elif attempt.foreign_lines:
        reason = (
            f"the report channel carried {attempt.foreign_lines} line(s) the harness did not write; "
            "the candidate tampered with the test run"
        )
    elif test_file_changed:
        reason = "the candidate modified or removed the hidden test file"
    elif tampered:
        reason = "the candidate patched pytest internals or the harness (" + ", ".join(tampered[:10]) + ")"
    elif signal_name is not None:
        hint = _SIGNAL_HINTS.get(str(signal_name), "killed by a signal")
        reason = f"the test run was killed by {signal_name}: " + hint.format(
            file_size_bytes=limits.file_size_bytes, cpu_s=limits.cpu_s
        )
    elif by_kind.get("internal-error"):
        text = str(by_kind["internal-error"][-1].get("text", ""))
        reason = f"pytest stopped with an internal error ({_first_error_line(text)}); likely raised at import"
    elif by_kind.get("collect-error"):
        text = str(by_kind["collect-error"][0].get("text", ""))
        reason = f"the hidden tests could not be collected: {_first_error_line(text)}"
    elif failed:
        reason = f"{len(failed)} of {len(outcomes)} hidden tests failed: " + ", ".join(failed[:10])
    elif finish is None:
        reason = (
            f"the test process ended before pytest finished (exit status {attempt.returncode}); "
            "the code may have called sys.exit/os._exit, or crashed the interpreter"
        )
    elif bad:
        reason = f"{len(bad)} of {len(outcomes)} hidden tests did not pass: " + ", ".join(
            f"{name} ({outcomes[name]})" for name in bad[:10]
        )
    elif int(finish.get("exitstatus", -1)) != 0:
        reason = f"pytest exited with status {finish.get('exitstatus')}"
    elif exit_record is None or exit_record.get("returncode") != 0:
        # The supervisor saw pytest's real exit status; a report claiming success must agree with it.
        status = exit_record.get("returncode") if exit_record else "unknown"
        reason = f"pytest reported success but its process exited with status {status}"

    if reason and not attempt.killed_for:
        reason += _limit_hint(failures.values(), limits)
    return HiddenTestResult(
        passed=not reason,
        outcomes=outcomes,
        duration_s=attempt.elapsed_s,
        output=attempt.output,
        reason=reason,
        network_guard=plan.network_guard,
        failures={name: text for name, text in failures.items() if text},
        guards=tuple(guards),
        tests_duration_s=float(finish["duration_s"]) if finish and "duration_s" in finish else None,
        tampered=bool(attempt.foreign_lines or test_file_changed or tampered),
    )


def _boot_message(started: bytes) -> dict[str, Any]:
    """The supervisor's message on the start-up pipe: guards set up and set-up errors."""
    if not started.startswith(b"B"):
        return {}
    try:
        message = json.loads(started[1:].split(b"\n", 1)[0])
    except ValueError:
        return {}
    return message if isinstance(message, dict) else {}


def _setup_failed(attempt: _Attempt) -> bool:
    """Whether the supervisor never got going (unshare refused, say): then a weaker plan is tried."""
    return attempt.killed_for is None and not attempt.started.startswith(b"B")


def _pytest_never_started(attempt: _Attempt) -> bool:
    """Whether pytest ended (by itself) before its session began: a broken set-up, not a wrong answer.

    No candidate code runs before the session starts, so this cannot be the candidate's doing.
    """
    return attempt.killed_for is None and not attempt.started.endswith(b"S")


def run_hidden_tests(
    code: str,
    tests: str,
    *,
    module: str = "solution",
    timeout_s: float = 30.0,
    limits: Limits | None = None,
    env: Mapping[str, str] | None = None,
    tmp_root: str | os.PathLike[str] | None = None,
) -> HiddenTestResult:
    """Run the pytest source ``tests`` against ``code`` saved as ``<module>.py``; judge the outcome.

    The tests import the candidate as ``module`` (``from solution import f``). The run happens in a child
    process with a wall-clock ``timeout_s`` (the whole process tree is killed after it), the resource
    ``limits``, an environment holding only ``PATH``, ``HOME``, ``LANG``, ``TMPDIR``, ``PYTHONPATH`` and
    ``env``, and no network. ``tmp_root`` is where the run's temporary directory goes (default: the
    system's). Safe to call from many threads at once.

    Returns a :class:`HiddenTestResult`; call :meth:`~HiddenTestResult.check` (or use
    :func:`assert_hidden_tests_pass`) to turn a failure into an assertion. Raises
    :class:`ValidationError` only when the run cannot judge: bad arguments, unparsable tests, or a sandbox
    that cannot start pytest at all.
    """
    if (
        not re.fullmatch(r"[A-Za-z_]\w*", module)
        or module in sys.stdlib_module_names
        or module in {_TEST_FILE.removesuffix(".py"), _REPORTER_MODULE, "pytest", "_pytest", "pluggy"}
    ):
        raise ValidationError(
            f"module {module!r} cannot hold the candidate: use an identifier that shadows no standard or "
            "harness module, like 'solution'"
        )
    if not timeout_s > 0:
        raise ValidationError(f"timeout_s must be positive, got {timeout_s!r}")
    limits = limits or Limits()
    expected = hidden_test_names(tests)
    is_root = os.geteuid() == 0
    # A user id of the run's own makes RLIMIT_NPROC count this run alone and keeps it off root's files.
    uid = 1_000_000_000 + secrets.randbelow(900_000_000) if is_root else None
    with tempfile.TemporaryDirectory(prefix="quantgate-sandbox-", dir=tmp_root, ignore_cleanup_errors=True) as tmp:
        root = Path(tmp)
        layout = _prepare(root, code, tests, module, uid)
        keep_read_search = uid is not None and not _reachable_by_others([*_interpreter_paths(), layout.root])
        env_vars = _child_env(layout, env)
        plans = _plans(is_root)
        for index, plan in enumerate(plans):
            attempt = _attempt(
                plan,
                layout,
                uid=uid,
                is_root=is_root,
                keep_read_search=keep_read_search,
                timeout_s=timeout_s,
                limits=limits,
                env=env_vars,
                index=index,
            )
            if not _setup_failed(attempt):
                if _pytest_never_started(attempt):
                    raise ValidationError(
                        "the sandbox could not start pytest (it ended before its session began); "
                        f"output:\n{_tail_lines(attempt.output, 20, 2000)}"
                    )
                return _judge(attempt, expected, layout, plan, timeout_s, limits, uid, keep_read_search)
        raise ValidationError(
            "the sandbox could not start pytest in any way (tried: "
            + ", ".join(" ".join(plan.prefix[1:]) or "no namespaces" for plan in plans)
            + f"); last output:\n{_tail_lines(attempt.output, 20, 2000)}"
        )


def assert_hidden_tests_pass(
    code: str,
    tests: str,
    *,
    module: str = "solution",
    timeout_s: float = 30.0,
    limits: Limits | None = None,
    env: Mapping[str, str] | None = None,
) -> HiddenTestResult:
    """:func:`run_hidden_tests`, then raise :class:`AssertionError` listing failed tests unless all passed."""
    __tracebackhide__ = True
    result = run_hidden_tests(code, tests, module=module, timeout_s=timeout_s, limits=limits, env=env)
    return result.check()
