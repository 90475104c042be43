"""Hostile candidates against the sandbox: one test per case.

Each test proves three things: the test process survives, the level is reported as failed with a reason
that says why, and no process of the run is left behind. Short timeouts and small limits keep the suite
fast and the machine (2 cores) usable while a fork bomb runs.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import textwrap
import time
from typing import TYPE_CHECKING

import psutil
import pytest

from pytest_quantgate.validators import HiddenTestResult, Limits, run_hidden_tests

if TYPE_CHECKING:
    from pathlib import Path

TIMEOUT_S = 4.0
ADD_TESTS = """
from solution import add

def test_add():
    assert add(2, 3) == 5

def test_add_negative():
    assert add(-2, -3) == -5
"""
FLAG_TESTS = """
import solution

def test_flag():
    assert solution.FLAG is True, solution.DETAIL
"""


def _leftovers(runs: Path) -> list[str]:
    """Processes of the run still alive: our descendants, or anything whose cwd or argv is in ``runs``."""
    found = []
    mine = {proc.pid for proc in psutil.Process().children(recursive=True)}
    for proc in psutil.process_iter(["pid", "cmdline", "cwd", "status"]):
        info = proc.info
        if info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cmdline = " ".join(info["cmdline"] or [])
        if info["pid"] in mine or str(runs) in cmdline or str(runs) in (info["cwd"] or ""):
            found.append(f"{info['pid']} {cmdline[:120]}")
    return found


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    path = tmp_path / "runs"
    path.mkdir()
    return path


def _run(code: str, tests: str, runs: Path, *, limits: Limits | None = None) -> HiddenTestResult:
    start = time.monotonic()
    result = run_hidden_tests(textwrap.dedent(code), tests, timeout_s=TIMEOUT_S, limits=limits, tmp_root=runs)
    elapsed = time.monotonic() - start
    assert not result.passed, "a hostile candidate must never pass"
    assert result.reason, "a failed run must say why"
    assert elapsed < TIMEOUT_S + 10, f"the harness took {elapsed:.1f} s to give up"
    assert _leftovers(runs) == [], "processes of the run are still alive"
    assert os.getpid() == psutil.Process().pid  # and we are still here
    return result


@pytest.mark.slow
def test_infinite_loop_is_killed_at_the_timeout(runs: Path) -> None:
    result = _run("while True:\n    pass\n", ADD_TESTS, runs)
    assert "timed out after 4 s" in result.reason
    assert set(result.outcomes.values()) == {"not run"}


@pytest.mark.slow
def test_fork_bomb_is_capped_and_killed(runs: Path) -> None:
    code = """
    import os
    while True:
        try:
            os.fork()
        except OSError:
            pass
    """
    limits = Limits(processes=24)
    result = _run(code, ADD_TESTS, runs, limits=limits)
    assert "timed out" in result.reason or "fork bomb" in result.reason
    if "nproc-per-run" in result.guards or any(g.startswith("own-uid") for g in result.guards):
        # RLIMIT_NPROC held the bomb to the limit (plus the supervisor and unshare outside it).
        match = re.search(r"(\d+) processes were running", result.reason)
        assert match is not None, result.reason
        assert int(match.group(1)) <= limits.processes + 3, result.reason


def test_memory_bomb_hits_the_address_space_limit(runs: Path) -> None:
    code = """
    def add(a, b):
        blocks = []
        while True:
            blocks.append(bytearray(32 * 2**20))
    """
    result = _run(code, ADD_TESTS, runs, limits=Limits(memory_bytes=384 * 2**20))
    assert "MemoryError" in result.reason, result.reason
    assert result.outcomes == {"test_add": "failed", "test_add_negative": "failed"}


def test_a_gigabyte_of_output_is_cut_off(runs: Path) -> None:
    code = """
    import sys
    chunk = "x" * 2**20
    for _ in range(1024):
        sys.stdout.write(chunk)
    sys.stdout.flush()
    """
    limits = Limits(file_size_bytes=8 * 2**20, output_chars=4000)
    result = _run(code, ADD_TESTS, runs, limits=limits)
    # Python ignores SIGXFSZ, so the write fails with EFBIG instead of the process dying; either is fine.
    assert "SIGXFSZ" in result.reason or "Limits.file_size_bytes" in result.reason, result.reason
    assert len(result.output) < 4500


def test_write_outside_the_work_directory_is_blocked(runs: Path, tmp_path: Path) -> None:
    target_dir = tmp_path / "outside"
    target_dir.mkdir()
    target_dir.chmod(0o777)  # so that only the sandbox, not file permissions, can stop the write
    target = target_dir / "pwned.txt"
    code = f"""
    try:
        with open({str(target)!r}, "w") as handle:
            handle.write("pwned")
        FLAG, DETAIL = True, "wrote it"
    except OSError as exc:
        FLAG, DETAIL = False, repr(exc)
    """
    result = run_hidden_tests(textwrap.dedent(code), FLAG_TESTS, timeout_s=TIMEOUT_S, tmp_root=runs)
    if "readonly-fs" not in result.guards and not any(g.startswith("own-uid") for g in result.guards):
        pytest.skip(f"no file-system guard on this machine ({result.guards}); writes are not prevented")
    assert not target.exists()
    assert not result.passed
    assert "Read-only file system" in result.failures["test_flag"] or "Permission" in result.failures["test_flag"]
    assert _leftovers(runs) == []


def test_connect_to_localhost_is_blocked(runs: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)
        port = listener.getsockname()[1]
        code = f"""
        import socket
        try:
            socket.create_connection(("127.0.0.1", {port}), timeout=2).close()
            FLAG, DETAIL = True, "connected"
        except OSError as exc:
            FLAG, DETAIL = False, repr(exc)
        """
        result = _run(code, FLAG_TESTS, runs)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing ever connected
    assert result.outcomes == {"test_flag": "failed"}


def test_connect_to_an_outside_address_is_blocked(runs: Path) -> None:
    code = """
    import socket
    errors = []
    for host in ("192.0.2.1", "1.1.1.1"):
        try:
            socket.create_connection((host, 80), timeout=2).close()
            errors.append(f"connected to {host}")
        except OSError as exc:
            errors.append(repr(exc))
    try:
        socket.getaddrinfo("example.com", 80)
        errors.append("resolved example.com")
    except OSError as exc:
        errors.append(repr(exc))
    FLAG, DETAIL = not any(e.startswith(("connected", "resolved")) for e in errors), errors
    FLAG = not FLAG  # the hidden test wants a connection
    """
    result = _run(code, FLAG_TESTS, runs)
    text = result.failures["test_flag"]
    assert "connected to" not in text and "resolved" not in text
    assert "unreachable" in text.lower() or "disabled" in text.lower()


def test_parent_environment_secret_is_not_visible(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cr3t-" + os.urandom(8).hex()
    monkeypatch.setenv("QUANTGATE_TEST_SECRET", secret)
    code = """
    import glob, os
    seen = [f"{k}={v}" for k, v in os.environ.items() if "SECRET" in k]
    for path in glob.glob("/proc/*/environ"):
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError:
            continue
        if b"QUANTGATE_TEST_SECRET" in data:
            seen.append(data.decode(errors="replace"))
    print("SEEN:", seen)
    FLAG, DETAIL = bool(seen), seen
    """
    result = _run(code, FLAG_TESTS, runs)
    assert result.outcomes == {"test_flag": "failed"}
    assert secret not in result.output
    assert all(secret not in text for text in result.failures.values())


def test_killing_the_parent_does_not_kill_the_runner(runs: Path) -> None:
    # The candidate signals its parent (then the supervisor's parent, if it can see it) and defines
    # nothing: it hopes a dead harness reads as "no failures".
    code = """
    import os, signal
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in (os.getppid(), os.getpgid(0)):
            try:
                os.kill(pid, sig)
            except OSError:
                pass
    """
    result = _run(code, ADD_TESTS, runs)
    assert set(result.outcomes.values()) <= {"not run", "failed", "error"}


def test_kill_all_processes_reaches_only_the_run(runs: Path) -> None:
    probe = run_hidden_tests("def add(a, b):\n    return a + b\n", ADD_TESTS, timeout_s=30, tmp_root=runs)
    if "pidns" not in probe.guards and not any(g.startswith("own-uid") for g in probe.guards):
        pytest.skip("without a PID namespace or an own uid, kill(-1) would reach this test run too")
    # kill(-1) spares the caller; with nothing else of its own to reach it may even fail with ESRCH.
    result = _run("import os, signal\nos.kill(-1, signal.SIGKILL)\n", ADD_TESTS, runs)
    assert set(result.outcomes.values()) == {"not run"}


def test_sys_exit_zero_at_import_is_not_a_pass(runs: Path) -> None:
    result = _run("import sys\nsys.exit(0)\n", ADD_TESTS, runs)
    assert "SystemExit" in result.reason
    assert set(result.outcomes.values()) == {"not run"}


def test_os_exit_zero_at_import_is_not_a_pass(runs: Path) -> None:
    result = _run("import os\nos._exit(0)\n", ADD_TESTS, runs)
    assert "ended before pytest finished" in result.reason


def test_overwriting_the_test_file_is_not_a_pass(runs: Path) -> None:
    code = """
    import inspect, sys
    targets = {arg for arg in sys.argv if arg.endswith(".py")}
    targets |= {frame.filename for frame in inspect.stack() if "test_" in frame.filename}
    for path in targets:
        try:
            with open(path, "w") as handle:
                handle.write("def test_add():\\n    pass\\n")
        except OSError:
            pass

    def add(a, b):
        return a - b
    """
    result = _run(code, ADD_TESTS, runs)
    assert "failed" in result.reason or "modified" in result.reason


def test_patching_pytest_internals_is_caught(runs: Path) -> None:
    code = """
    import _pytest.python
    _pytest.python.Function.runtest = lambda self: None

    def add(a, b):
        return a - b
    """
    result = _run(code, ADD_TESTS, runs)
    assert "patched pytest internals" in result.reason


def test_forged_report_lines_are_caught(runs: Path) -> None:
    code = """
    import json, os
    line = json.dumps({"nonce": "guess", "src": "pytest", "seq": 0, "kind": "finish", "exitstatus": 0})
    for name in os.listdir("/proc/self/fd"):
        try:
            os.write(int(name), (line + "\\n").encode())
        except OSError:
            pass

    def add(a, b):
        return a + b
    """
    result = _run(code, ADD_TESTS, runs)
    assert "tampered" in result.reason


def test_truncating_the_report_does_not_downgrade_the_guards(runs: Path) -> None:
    # Wiping the report must not pass for "the sandbox could not start", which would re-run the
    # candidate under a weaker plan.
    code = """
    import os
    for name in os.listdir("/proc/self/fd"):
        try:
            os.ftruncate(int(name), 0)
        except OSError:
            pass

    def add(a, b):
        return a + b
    """
    probe = run_hidden_tests("def add(a, b):\n    return a + b\n", ADD_TESTS, tmp_root=runs)
    result = _run(code, ADD_TESTS, runs)
    assert (result.network_guard, result.guards) == (probe.network_guard, probe.guards)
    assert "tampered" in result.reason or "ended before pytest finished" in result.reason


def test_signals_sent_to_the_runner_group_do_not_escape(runs: Path) -> None:
    # A candidate that kills its whole process group must not take the test process with it.
    before = signal.getsignal(signal.SIGTERM)
    result = _run("import os, signal\nos.killpg(0, signal.SIGKILL)\n", ADD_TESTS, runs)
    assert signal.getsignal(signal.SIGTERM) is before
    assert result.outcomes["test_add"] == "not run"


# -- tricks with pytest itself: only a test that ran and passed counts ----------------------------------

PARAM_TESTS = """
import pytest
from solution import add

def test_add():
    assert add(2, 3) == 5

@pytest.mark.parametrize("n", [1, 2])
def test_double(n):
    assert add(n, n) == 2 * n
"""
WRONG_ADD = "\ndef add(a, b):\n    return a - b\n"
# Candidate code that finds pytest's Config the way code aimed at the harness would.
FIND_CONFIG = """
import gc, sys
import _pytest.config
CONFIG = next(o for o in gc.get_objects() if isinstance(o, _pytest.config.Config))
"""


def test_xfail_called_by_the_candidate_is_not_a_pass(runs: Path) -> None:
    result = _run("import pytest\n\ndef add(a, b):\n    pytest.xfail('not today')\n", PARAM_TESTS, runs)
    assert result.outcomes == {"test_add": "xfailed", "test_double[1]": "xfailed", "test_double[2]": "xfailed"}
    assert result.score == 0.0
    assert "3 of 3 hidden tests did not pass: test_add (xfailed)" in result.reason


@pytest.mark.parametrize(
    ("trick", "outcome"),
    [
        ("sys.modules['test_hidden'].pytestmark = [pytest.mark.xfail(reason='x')]", "xfailed"),
        ("sys.modules['test_hidden'].pytestmark = [pytest.mark.xfail(run=False)]", "xfailed"),
        ("sys.modules['test_hidden'].pytestmark = [pytest.mark.skip]", "skipped"),
        (
            "@pytest.fixture(autouse=True)\ndef _fixture():\n    pytest.xfail('x')\n"
            "sys.modules['test_hidden']._fixture = _fixture",
            "xfailed",
        ),
    ],
    ids=["xfail-mark", "xfail-run-false", "skip-mark", "autouse-xfail-fixture"],
)
def test_marking_the_hidden_tests_is_not_a_pass(runs: Path, trick: str, outcome: str) -> None:
    # The test module is half-imported while it imports the candidate: marks and fixtures can be slipped in.
    result = _run(f"import sys\nimport pytest\n{trick}\n{WRONG_ADD}", PARAM_TESTS, runs)
    assert set(result.outcomes.values()) == {outcome}
    assert result.score == 0.0


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("import pytest\n\ndef add(a, b):\n    pytest.skip('no')\n", "test_add (skipped)"),
        ("import pytest\npytest.skip('no', allow_module_level=True)\n", "test_add (not run)"),
        ("import pytest\npytest.exit('bye', returncode=0)\n", "could not be collected: _pytest.outcomes.Exit"),
        ("import pytest\n\ndef add(a, b):\n    pytest.exit('bye', returncode=0)\n", "test_add (not run)"),
        ("raise KeyboardInterrupt\n", "test_add (not run)"),
        ("def add(a, b):\n    raise KeyboardInterrupt\n", "test_add (not run)"),
        ("import os\n\ndef add(a, b):\n    os._exit(0)\n", "ended before pytest finished"),
        ("import sys\n\ndef add(a, b):\n    sys.exit(0)\n", "3 of 3 hidden tests failed"),
    ],
    ids=[
        "skip",
        "skip-module",
        "exit-at-import",
        "exit-in-test",
        "interrupt-at-import",
        "interrupt-in-test",
        "os-exit-in-test",
        "sys-exit-in-test",
    ],
)
def test_skipping_exiting_and_interrupting_are_not_a_pass(runs: Path, code: str, reason: str) -> None:
    result = _run(code, PARAM_TESTS, runs)
    assert reason in result.reason
    assert "passed" not in result.outcomes.values()


def test_hooks_in_the_candidate_module_or_a_conftest_it_writes_do_nothing(runs: Path) -> None:
    hook = (
        "import pytest\n\n@pytest.hookimpl(wrapper=True)\ndef pytest_runtest_makereport(item, call):\n"
        "    report = yield\n    report.outcome = 'passed'\n    return report\n"
    )
    code = f"{hook}\nwith open('conftest.py', 'w') as handle:\n    handle.write({hook!r})\n{WRONG_ADD}"
    result = _run(code, PARAM_TESTS, runs)
    assert result.reason == "3 of 3 hidden tests failed: test_add, test_double[1], test_double[2]"


@pytest.mark.parametrize("target", ["P()", "sys.modules[__name__]"], ids=["object", "module"])
def test_a_plugin_registered_by_the_candidate_is_caught(runs: Path, target: str) -> None:
    code = f"""{FIND_CONFIG}
import pytest

@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    report.outcome, report.longrepr = "passed", None
    return report

class P:
    pytest_runtest_makereport = staticmethod(pytest_runtest_makereport)

CONFIG.pluginmanager.register({target})
{WRONG_ADD}"""
    result = _run(code, PARAM_TESTS, runs)
    assert "hook pytest_runtest_makereport" in result.reason, result.reason
    assert result.tampered
    assert result.score == 0.0


def test_deselecting_a_test_is_not_a_pass(runs: Path) -> None:
    # Right for everything but test_double[2], which it deselects.
    code = f"""{FIND_CONFIG}
CONFIG.option.deselect = ["test_hidden.py::test_double[2]"]

def add(a, b):
    return a + b if (a, b) != (2, 2) else 0
"""
    result = _run(code, PARAM_TESTS, runs)
    assert result.outcomes == {"test_add": "passed", "test_double[1]": "passed", "test_double[2]": "deselected"}
    assert result.reason == "1 of 3 hidden tests did not pass: test_double[2] (deselected)"


def test_swapping_the_code_of_a_pytest_function_is_caught(runs: Path) -> None:
    # The function object stays the same; only its code changes.
    code = "import _pytest.python\n"
    code += "_pytest.python.pytest_pyfunc_call.__code__ = (lambda pyfuncitem: True).__code__\n" + WRONG_ADD
    result = _run(code, PARAM_TESTS, runs)
    assert "_pytest.python.pytest_pyfunc_call" in result.reason
    assert result.tampered


def test_patching_the_reporter_is_caught(runs: Path) -> None:
    # (A patch that also cleared the record's "tampered" field would get past this check, and be caught
    # by the exit status instead: see the next test.)
    code = """
    import sys
    Reporter = sys.modules["_quantgate_sandbox_reporter"].SandboxReporter
    real_emit = Reporter._emit

    def _emit(self, kind, **fields):
        fields.update(outcome="passed", text="", exitstatus=0)
        return real_emit(self, kind, **fields)

    Reporter._emit = _emit

    def add(a, b):
        return a - b
    """
    result = _run(code, PARAM_TESTS, runs)
    assert "SandboxReporter._emit" in result.reason, result.reason


def test_a_forged_report_must_agree_with_the_exit_status(runs: Path) -> None:
    # Code aimed at the harness can read the nonce and write a consistent report of its own. The
    # supervisor, out of its reach, still sees pytest exit with status 1, which no passing run has.
    code = """
    import atexit, gc, json, os
    R = next(o for o in gc.get_objects() if type(o).__name__ == "SandboxReporter")
    fd, nonce, seq = R._fd, R._nonce, R._seq
    R._fd = -1

    def forge():
        records = [
            {"kind": "phase", "nodeid": f"test_hidden.py::{name}", "when": when, "outcome": "passed"}
            for name in ("test_add", "test_double[1]", "test_double[2]")
            for when in ("setup", "call", "teardown")
        ]
        records.append({"kind": "finish", "exitstatus": 0, "duration_s": 0.1, "tampered": []})
        for number, record in enumerate(records, start=seq):
            line = {"nonce": nonce, "src": "pytest", "seq": number, **record}
            os.write(fd, (json.dumps(line) + "\\n").encode())

    atexit.register(forge)

    def add(a, b):
        return a - b
    """
    result = _run(code, PARAM_TESTS, runs)
    assert result.reason == "pytest reported success but its process exited with status 1"
