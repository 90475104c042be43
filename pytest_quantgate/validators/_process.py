"""Process control for the sandbox (internal): start a command under the supervisor, bounded and watched.

This module knows how to isolate and stop a child process, not what the child does: it takes an argv and
leaves it to :mod:`pytest_quantgate.validators.sandbox` to decide what the child's records mean.

The supervisor protocol, shared with ``_boot.py``:

* the supervisor (``python -I -S _boot.py <fd>``) reads its configuration (JSON) from a pipe; it forks the
  child with the :class:`Limits`, a scrubbed environment and no privileges, and execs ``argv``;
* the child gets its own settings (the run's ``nonce``, ``report_fd``, ``started_fd`` and whatever the
  caller adds) as JSON on a pipe whose descriptor number is in the :data:`SETTINGS_FD_ENV` variable;
* records are JSON lines on ``report_fd``, each with the nonce, a source (``boot`` for the supervisor, the
  child's own otherwise) and a per-source sequence number; lines that break this are counted, not kept;
* the start-up pipe carries ``B`` plus the supervisor's guards as JSON (its set-up worked), then ``S``
  from the child when it is under way; no code the child loads later ever holds it;
* on timeout (or too many processes, where no per-run process limit applies) the whole tree — process
  group, descendants, every process of the run's own uid — is killed with SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import psutil

from pytest_quantgate.errors import ValidationError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

NetworkGuard = Literal["netns", "socket-patch"]

SETTINGS_FD_ENV = "QUANTGATE_SANDBOX_CONFIG_FD"
# The record sources the report channel knows: the supervisor's, and the one the child's reporter uses.
_SOURCES = ("boot", "pytest")

_MiB = 1024 * 1024
# Reading more than this of the report means the child flooded it; the rest is not looked at.
_REPORT_READ_LIMIT = 8 * _MiB
_KILL_WAIT_S = 5.0
_WATCHDOG_PERIOD_S = 0.1
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
_BOOT = Path(__file__).with_name("_boot.py")


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits for one sandboxed run (``setrlimit`` values; they apply per process).

    ``processes`` counts every process and thread of the run (as root the run gets a user id of its own
    so that the count is this run's alone). ``output_chars`` is how much of the run's output is kept
    (head and tail).
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
class Plan:
    """One way to start the supervisor: the unshare prefix (if any) and what it gives."""

    prefix: tuple[str, ...]
    network_guard: NetworkGuard
    mount_namespace: bool
    pid_namespace: bool


def plans(is_root: bool) -> list[Plan]:
    """Ways to start a run, strongest first; a way whose set-up fails hands over to the next."""
    unshare = shutil.which("unshare")
    found: list[Plan] = []
    if unshare is not None:
        user = () if is_root else ("--user", "--map-root-user")
        full = (unshare, *user, "--mount", "--net", "--pid", "--fork", "--kill-child", "--mount-proc")
        found.append(Plan(full, "netns", mount_namespace=True, pid_namespace=True))
        found.append(Plan((unshare, *user, "--mount", "--net"), "netns", mount_namespace=True, pid_namespace=False))
    found.append(Plan((), "socket-patch", mount_namespace=False, pid_namespace=False))
    return found


def private_uid(is_root: bool) -> int | None:
    """A user id for the run alone (as root): ``RLIMIT_NPROC`` then counts this run only, and root's
    files are out of its reach. None when not root, where no uid can be switched to."""
    return 1_000_000_000 + secrets.randbelow(900_000_000) if is_root else None


def reachable_by_others(paths: Iterable[Path]) -> bool:
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


def interpreter_paths() -> list[Path]:
    """What a child running this Python must read: the interpreter, the standard library, site-packages."""
    paths = sysconfig.get_paths()
    return [Path(os.path.realpath(sys.executable)), Path(paths["stdlib"]), Path(paths["purelib"])]


def scrubbed_env(*, home: Path, python_path: Sequence[Path], extra: Mapping[str, str] | None) -> dict[str, str]:
    """A fresh environment: nothing of the parent's but the locale, so no secret leaks into the run."""
    python_bin = str(Path(sys.executable).parent)
    env = {
        "PATH": f"{python_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "TMPDIR": str(home),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "PYTHONPATH": ":".join(str(path) for path in python_path),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        **dict.fromkeys(_THREAD_VARS, "1"),
    }
    for key, value in (extra or {}).items():
        if not key or "=" in key or "\0" in key or "\0" in value:
            raise ValidationError(f"env variable {key!r} cannot be passed to the sandbox: bad name or NUL")
        env[key] = value
    return env


@dataclass(frozen=True, slots=True)
class ChildRun:
    """How one supervised run went: its exit, why it was killed (if it was), output, records, timing."""

    returncode: int | None
    killed_for: str | None  # "timeout", "processes" or None when it ended by itself
    output: str
    records: list[dict[str, Any]]  # the report lines that carried the nonce, in order
    foreign_lines: int  # report lines that did not: someone inside the run wrote them
    elapsed_s: float
    processes_killed: int
    started: bytes  # what came on the start-up pipe

    @property
    def setup_failed(self) -> bool:
        """Whether the supervisor never got going (unshare refused, say): then a weaker plan may be tried."""
        return self.killed_for is None and not self.started.startswith(b"B")

    @property
    def child_never_started(self) -> bool:
        """Whether the child ended by itself before it signalled (``S``) that it was under way."""
        return self.killed_for is None and not self.started.endswith(b"S")

    @property
    def boot(self) -> dict[str, Any]:
        """The supervisor's message on the start-up pipe: guards set up and set-up errors."""
        if not self.started.startswith(b"B"):
            return {}
        try:
            message = json.loads(self.started[1:].split(b"\n", 1)[0])
        except ValueError:
            return {}
        return message if isinstance(message, dict) else {}

    @property
    def exit_record(self) -> dict[str, Any] | None:
        """How the child ended as the supervisor, out of the child's reach, recorded it (None: not at all)."""
        return next((r for r in reversed(self.records) if r.get("kind") == "exit" and r.get("src") == "boot"), None)


def guards_in_force(run: ChildRun, plan: Plan, *, uid: int | None, keep_read_search: bool) -> list[str]:
    """The protections a run had: what the supervisor set up, and what the plan and the uid give."""
    guards = list(run.boot.get("guards", []))
    if plan.network_guard == "netns":
        guards.insert(0, "netns")
    if uid is not None:
        guards.append("own-uid+read-all" if keep_read_search else "own-uid")
    elif plan.prefix:
        guards.append("userns")
    guards.append("nproc-per-run" if uid is not None or plan.prefix else "nproc-watchdog")
    guards += ["rlimits", "scrubbed-env", plan.network_guard if plan.network_guard != "netns" else ""]
    return [guard for guard in guards if guard]


def read_output(path: Path, keep: int) -> str:
    """Head and tail of the output file, never more than ``keep`` characters in memory."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        if size <= keep:
            return handle.read().decode("utf-8", "replace")
        head = handle.read(keep // 4).decode("utf-8", "replace")
        handle.seek(size - (keep - keep // 4))
        tail = handle.read().decode("utf-8", "replace")
    return f"{head}\n[... {size - keep} bytes of output left out ...]\n{tail}"


def read_report(path: Path, nonce: str) -> tuple[list[dict[str, Any]], int]:
    """Records that carry the nonce, in order, and the count of lines that did not (forgeries)."""
    with path.open("rb") as handle:
        data = handle.read(_REPORT_READ_LIMIT + 1)
    foreign = 1 if len(data) > _REPORT_READ_LIMIT else 0
    records: list[dict[str, Any]] = []
    expected_seq = dict.fromkeys(_SOURCES, 0)
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


def kill_tree(proc: subprocess.Popen[bytes], uid: int | None) -> int:
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


def wait_for_exit(proc: subprocess.Popen[bytes], deadline: float, max_processes: int | None) -> str | None:
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
                # poll, not select: a busy child may hold descriptors above FD_SETSIZE.
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


def run_supervised(
    argv: Sequence[str],
    *,
    plan: Plan,
    rundir: Path,
    workdir: Path,
    env: Mapping[str, str],
    uid: int | None,
    is_root: bool,
    keep_read_search: bool,
    timeout_s: float,
    limits: Limits,
    child_settings: Mapping[str, Any],
    index: int,
) -> ChildRun:
    """Run ``argv`` under the supervisor started by ``plan``; wait for it, up to ``timeout_s``, and clean up.

    The child runs in ``workdir`` (the only place ``plan``'s read-only file system leaves writable) with
    ``env``, ``limits`` and, when given, the user id ``uid``. Its report and output go to files named for
    ``index`` in ``rundir``, which the child must not be able to write. ``child_settings`` reach the child
    with the report channel's (see the module's docstring).
    """
    # Without a uid of its own or a user namespace, RLIMIT_NPROC counts all of the user's processes: it is
    # raised by what already runs, and a polling watchdog stands in for the per-run cap.
    per_run_nproc = uid is not None or (bool(plan.prefix) and not is_root)
    nonce = secrets.token_hex(16)
    report_path = rundir / f"report-{index}.jsonl"
    output_path = rundir / f"output-{index}.log"
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
    report_fd = os.open(report_path, flags, 0o600)
    output_fd = os.open(output_path, flags, 0o600)
    started_read, started_write = os.pipe()
    os.set_blocking(started_read, False)
    config = {
        "nonce": nonce,
        "report_fd": report_fd,
        "workdir": str(workdir),
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
        "argv": list(argv),
        "config_fd_env": SETTINGS_FD_ENV,
        "started_fd": started_write,
        "plugin": {"nonce": nonce, "report_fd": report_fd, "started_fd": started_write, **child_settings},
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
    boot = [sys.executable, "-I", "-S", str(_BOOT), str(read_end)]
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            [*plan.prefix, *boot],
            stdin=subprocess.DEVNULL,
            stdout=output_fd,
            stderr=output_fd,
            pass_fds=(read_end, report_fd, started_write),
            cwd=workdir,
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        # The plan's launcher cannot even be executed: a set-up failure, so the next plan is tried.
        os.close(started_read)
        return ChildRun(None, None, f"cannot start {plan.prefix[:1] or boot[:1]}: {exc}", [], 0, 0.0, 0, b"")
    finally:
        for fd in (read_end, report_fd, output_fd, started_write):
            os.close(fd)
    try:
        killed_for = wait_for_exit(proc, start + timeout_s, None if per_run_nproc else limits.processes)
    except BaseException:
        kill_tree(proc, uid)
        proc.wait()
        os.close(started_read)
        raise
    processes_killed = 0
    if killed_for is not None:
        processes_killed = kill_tree(proc, uid)
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
    records, foreign = read_report(report_path, nonce)
    output = read_output(output_path, limits.output_chars)
    return ChildRun(returncode, killed_for, output, records, foreign, elapsed, processes_killed, started)
