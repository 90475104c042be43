"""Tests of pytest_quantgate.validators._process: a plain command under the supervisor, no tests to judge.

Each plan this machine offers is tried where the behaviour depends on it; a plan whose set-up the machine
refuses (no user namespaces, say) is skipped, since the sandbox would fall back from it too.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import textwrap
import time
import uuid
from typing import TYPE_CHECKING, Any

import psutil
import pytest

from pytest_quantgate.errors import ValidationError
from pytest_quantgate.validators import _process
from pytest_quantgate.validators._process import Limits

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

IS_ROOT = os.geteuid() == 0
PLANS = _process.plans(IS_ROOT)
PLAN_IDS = [
    "+".join(name for name, on in (("pidns", p.pid_namespace), ("mountns", p.mount_namespace)) if on) or "no-namespaces"
    for p in PLANS
]
MiB = 2**20
# The child's end of the supervisor protocol: its settings, read from the pipe the environment names.
READ_SETTINGS = f"import json, os\nSETTINGS = json.load(os.fdopen(int(os.environ[{_process.SETTINGS_FD_ENV!r}])))\n"
SIGNAL_STARTED = "os.write(SETTINGS['started_fd'], b'S')\nos.close(SETTINGS['started_fd'])\n"


def _run(
    code: str,
    tmp_path: Path,
    *,
    plan: _process.Plan | None = None,
    args: tuple[str, ...] = (),
    timeout_s: float = 60.0,
    limits: Limits | None = None,
    env: dict[str, str] | None = None,
    settings: dict[str, Any] | None = None,
) -> tuple[_process.ChildRun, Path]:
    """Run ``python -c code`` under the supervisor; the run and the work directory it had."""
    rundir = tmp_path / "run"
    rundir.mkdir()
    workdir = rundir / "work"
    workdir.mkdir()
    uid = _process.private_uid(IS_ROOT)
    rundir.chmod(0o711)
    if uid is not None:
        os.chown(workdir, uid, uid)
    workdir.chmod(0o700)
    keep_read_search = uid is not None and not _process.reachable_by_others([*_process.interpreter_paths(), rundir])
    plan = plan or PLANS[0]
    run = _process.run_supervised(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        plan=plan,
        rundir=rundir,
        workdir=workdir,
        env=_process.scrubbed_env(home=workdir, python_path=[workdir], extra=env),
        uid=uid,
        is_root=IS_ROOT,
        keep_read_search=keep_read_search,
        timeout_s=timeout_s,
        limits=limits or Limits(),
        child_settings=settings or {},
        index=0,
    )
    if run.setup_failed and plan.prefix:
        pytest.skip(f"this machine refuses {' '.join(plan.prefix[1:])}: {run.output.strip()[-300:]}")
    return run, workdir


def _alive(marker: str) -> list[str]:
    """Live (not zombie) processes whose command line holds ``marker``."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        if proc.info["status"] != psutil.STATUS_ZOMBIE and marker in " ".join(proc.info["cmdline"] or []):
            found.append(f"{proc.info['pid']} {' '.join(proc.info['cmdline'])[:120]}")
    return found


@pytest.fixture
def marker() -> Iterator[str]:
    """A tag for the sleepers a test starts; whatever of them a failed test leaves behind is killed after it."""
    tag = f"quantgate-sleeper-{uuid.uuid4().hex}"
    yield tag
    for line in _alive(tag):
        with contextlib.suppress(psutil.Error):
            psutil.Process(int(line.split()[0])).kill()


SPAWN_SLEEPERS = """
import subprocess, sys, time
marker, count = sys.argv[1], int(sys.argv[2])
for _ in range(count):
    # Each in a session of its own: out of the process group's reach, so only the tree sweep finds them.
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", marker], start_new_session=True)
open("ready", "w").close()
time.sleep(600)
"""


@pytest.mark.slow
@pytest.mark.parametrize("plan", PLANS, ids=PLAN_IDS)
def test_a_timeout_kills_the_whole_tree(tmp_path: Path, plan: _process.Plan, marker: str) -> None:
    timeout_s = 6.0
    run, workdir = _run(SPAWN_SLEEPERS, tmp_path, plan=plan, args=(marker, "3"), timeout_s=timeout_s)
    assert run.killed_for == "timeout"
    assert (workdir / "ready").exists(), f"the child never got going in {timeout_s} s: {run.output}"
    assert run.elapsed_s >= timeout_s
    assert run.processes_killed >= 4  # the child and its three sleepers, at least
    assert _alive(marker) == []
    assert not run.setup_failed and not run.child_never_started  # killed, not failed: no fallback


def test_the_watchdog_stops_a_growing_tree_and_kill_tree_reaps_it(tmp_path: Path, marker: str) -> None:
    # Where RLIMIT_NPROC cannot count the run alone, a watchdog counts its processes instead.
    proc = subprocess.Popen([sys.executable, "-c", SPAWN_SLEEPERS, marker, "6"], cwd=tmp_path, start_new_session=True)
    try:
        assert _process.wait_for_exit(proc, time.monotonic() + 120, max_processes=2) == "processes"
    finally:
        killed = _process.kill_tree(proc, None)
        proc.wait()
    assert killed >= 5
    assert _alive(marker) == []


def test_wait_for_exit_returns_when_the_process_ends_by_itself() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    assert _process.wait_for_exit(proc, time.monotonic() + 120, max_processes=None) is None
    assert proc.wait() == 0


def test_output_is_collected_head_and_tail(tmp_path: Path) -> None:
    code = """
    import os
    os.write(2, b"ERR-START\\n")
    os.write(1, b"x" * 100_000)
    os.write(1, b"\\nOUT-END\\n")
    """
    run, _ = _run(code, tmp_path, limits=Limits(output_chars=1000))
    assert run.returncode == 0
    assert run.output.startswith("ERR-START\n")  # stderr and stdout share the one file
    assert run.output.endswith("\nOUT-END\n")
    head, tail = run.output.split(f"\n[... {100_019 - 1000} bytes of output left out ...]\n")
    assert (len(head), len(tail)) == (250, 750)  # a quarter of output_chars from the start, the rest from the end


def test_short_output_is_kept_whole(tmp_path: Path) -> None:
    run, _ = _run("print('hello')\nprint('world')", tmp_path)
    assert run.output == "hello\nworld\n"


PRINT_LIMITS = """
import json, os, resource
names = ("RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_CORE", "RLIMIT_NPROC")
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
print(json.dumps({
    "limits": {name: resource.getrlimit(getattr(resource, name)) for name in names},
    "uid": os.getuid(),
    "no_new_privs": status["NoNewPrivs"].strip(),
}))
"""


@pytest.mark.parametrize("plan", PLANS, ids=PLAN_IDS)
def test_limits_are_applied_to_the_child(tmp_path: Path, plan: _process.Plan) -> None:
    limits = Limits(cpu_s=7, memory_bytes=900 * MiB, processes=33, file_size_bytes=5 * MiB, open_files=77)
    run, _ = _run(PRINT_LIMITS, tmp_path, plan=plan, limits=limits)
    assert run.returncode == 0, run.output
    seen = json.loads(run.output)
    got = {name: tuple(value) for name, value in seen["limits"].items()}
    assert got["RLIMIT_CPU"] == (7, 8)
    assert got["RLIMIT_AS"] == (900 * MiB, 900 * MiB)
    assert got["RLIMIT_FSIZE"] == (5 * MiB, 5 * MiB)
    assert got["RLIMIT_NOFILE"] == (77, 77)
    assert got["RLIMIT_CORE"] == (0, 0)
    if IS_ROOT or plan.prefix:
        assert got["RLIMIT_NPROC"] == (33, 33)  # counts this run alone: no allowance for what already runs
    else:
        assert got["RLIMIT_NPROC"][0] >= 33
    if IS_ROOT:
        assert seen["uid"] >= 1_000_000_000, "as root the child runs as a user id of its own"
    if IS_ROOT or plan.prefix:
        assert seen["no_new_privs"] == "1"
    assert resource.getrlimit(resource.RLIMIT_AS) != (900 * MiB, 900 * MiB)  # the parent is untouched


def test_the_child_sees_only_the_scrubbed_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cr3t-" + uuid.uuid4().hex
    monkeypatch.setenv("QUANTGATE_TEST_SECRET", secret)
    run, workdir = _run("import json, os\nprint(json.dumps(dict(os.environ)))", tmp_path, env={"LEVEL_SEED": "42"})
    env = json.loads(run.output)
    assert secret not in run.output
    assert env["HOME"] == env["TMPDIR"] == str(workdir)
    assert env["PYTHONPATH"] == str(workdir)
    assert env["LEVEL_SEED"] == "42"
    assert env["OMP_NUM_THREADS"] == "1"
    expected = {
        "PATH",
        "HOME",
        "TMPDIR",
        "LANG",
        "PYTHONPATH",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONNOUSERSITE",
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "LEVEL_SEED",
        _process.SETTINGS_FD_ENV,
    }
    # Python's locale coercion may add LC_CTYPE on its own; nothing else may appear.
    assert expected <= set(env) <= expected | {"LC_CTYPE"}


@pytest.mark.parametrize("key", ["", "A=B", "NUL\0"])
def test_env_variables_that_cannot_be_passed_are_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValidationError, match="cannot be passed to the sandbox"):
        _process.scrubbed_env(home=tmp_path, python_path=[tmp_path], extra={key: "1"})
    with pytest.raises(ValidationError, match="cannot be passed to the sandbox"):
        _process.scrubbed_env(home=tmp_path, python_path=[tmp_path], extra={"OK": "nul\0"})


def test_the_report_channel_keeps_only_the_runs_own_lines(tmp_path: Path) -> None:
    code = (
        READ_SETTINGS
        + SIGNAL_STARTED
        + textwrap.dedent(
            """
            def line(seq, kind, nonce=SETTINGS["nonce"], **fields):
                record = {"nonce": nonce, "src": "pytest", "seq": seq, "kind": kind, **fields}
                os.write(SETTINGS["report_fd"], (json.dumps(record) + "\\n").encode())

            line(0, "hello", value=SETTINGS["greeting"])
            line(1, "forged", nonce="0" * 32)  # wrong nonce
            line(0, "replayed")  # a sequence number used before
            os.write(SETTINGS["report_fd"], b"not json\\n")
            line(1, "bye")
            raise SystemExit(3)
            """
        )
    )
    run, _ = _run(code, tmp_path, settings={"greeting": "hi"})
    assert run.returncode == 3
    assert [(r["src"], r["kind"]) for r in run.records] == [
        ("boot", "boot"),
        ("pytest", "hello"),
        ("pytest", "bye"),
        ("boot", "exit"),
    ]
    assert run.records[1]["value"] == "hi"  # the caller's settings reach the child
    assert run.foreign_lines == 3
    assert run.exit_record is not None and run.exit_record["returncode"] == 3
    assert not run.setup_failed and not run.child_never_started
    guards = _process.guards_in_force(run, PLANS[0], uid=_process.private_uid(IS_ROOT), keep_read_search=False)
    assert {"rlimits", "scrubbed-env"} <= set(guards)
    assert set(run.boot.get("guards", [])) <= set(guards)


def test_a_child_that_never_signals_its_start_is_told_apart(tmp_path: Path) -> None:
    run, _ = _run("pass", tmp_path)
    assert run.returncode == 0
    assert not run.setup_failed  # the supervisor got going...
    assert run.child_never_started  # ...but the child ended before it said it was under way


def test_a_killing_signal_is_recorded_by_the_supervisor(tmp_path: Path) -> None:
    run, _ = _run(READ_SETTINGS + SIGNAL_STARTED + "import signal\nos.kill(os.getpid(), signal.SIGABRT)\n", tmp_path)
    assert run.exit_record is not None
    assert (run.exit_record["returncode"], run.exit_record["signal"]) == (-6, "SIGABRT")
    assert run.returncode == 128 + 6


@pytest.mark.parametrize("launcher", ["/bin/false", "/nonexistent/quantgate-launcher"])
def test_a_launcher_that_fails_is_a_setup_failure(tmp_path: Path, launcher: str) -> None:
    plan = _process.Plan((launcher,), "netns", mount_namespace=True, pid_namespace=True)
    rundir = tmp_path / "run"
    workdir = rundir / "work"
    workdir.mkdir(parents=True)
    run = _process.run_supervised(
        [sys.executable, "-c", "pass"],
        plan=plan,
        rundir=rundir,
        workdir=workdir,
        env=_process.scrubbed_env(home=workdir, python_path=[], extra=None),
        uid=None,
        is_root=IS_ROOT,
        keep_read_search=False,
        timeout_s=60,
        limits=Limits(),
        child_settings={},
        index=0,
    )
    assert run.setup_failed
    assert run.killed_for is None and run.records == []
    if launcher.startswith("/nonexistent"):
        assert run.returncode is None
        assert run.output.startswith(f"cannot start ('{launcher}',)")
