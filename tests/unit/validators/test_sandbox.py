"""Tests of pytest_quantgate.validators.sandbox: verdicts, partial credit, concurrency, fallbacks."""

from __future__ import annotations

import textwrap
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pytest

from pytest_quantgate.errors import ValidationError
from pytest_quantgate.validators import (
    HiddenTestResult,
    Limits,
    _process,
    assert_hidden_tests_pass,
    hidden_test_names,
    run_hidden_tests,
)

if TYPE_CHECKING:
    from pathlib import Path

TESTS = textwrap.dedent(
    """
    import pytest
    from solution import Stack

    def test_push_pop():
        s = Stack()
        s.push(1)
        assert s.pop() == 1

    def test_len():
        s = Stack()
        s.push(1)
        s.push(2)
        assert len(s) == 2

    class TestEmpty:
        def test_pop_empty_raises(self):
            with pytest.raises(IndexError):
                Stack().pop()

    @pytest.mark.parametrize("n", [0, 3])
    def test_many(n):
        s = Stack()
        for i in range(n):
            s.push(i)
        assert len(s) == n
    """
)

GOOD = """
class Stack:
    def __init__(self):
        self._items = []
    def push(self, item):
        self._items.append(item)
    def pop(self):
        return self._items.pop()
    def __len__(self):
        return len(self._items)
"""

NO_LEN = """
class Stack:
    def __init__(self):
        self._items = []
    def push(self, item):
        self._items.append(item)
    def pop(self):
        return self._items.pop()
"""


def test_hidden_test_names_follow_pytest_rules() -> None:
    assert hidden_test_names(TESTS) == ["test_push_pop", "test_len", "TestEmpty::test_pop_empty_raises", "test_many"]
    source = "class TestX:\n    def __init__(self): pass\n    def test_a(self): pass\ndef helper(): pass\n"
    with pytest.raises(ValidationError, match="define no test"):
        hidden_test_names(source)
    with pytest.raises(ValidationError, match="do not parse"):
        hidden_test_names("def test_(:\n")


def test_a_correct_candidate_passes() -> None:
    result = run_hidden_tests(GOOD, TESTS)
    assert result.passed, result.failure_message()
    assert result.reason == ""
    assert result.outcomes == {
        "test_push_pop": "passed",
        "test_len": "passed",
        "TestEmpty::test_pop_empty_raises": "passed",
        "test_many[0]": "passed",
        "test_many[3]": "passed",
    }
    assert result.score == 1.0
    assert result.network_guard in ("netns", "socket-patch")
    assert result.tests_duration_s is not None and result.tests_duration_s < result.duration_s
    assert result.check() is result


def test_a_wrong_candidate_gets_partial_credit_and_a_clear_message() -> None:
    result = run_hidden_tests(NO_LEN, TESTS)
    assert not result.passed
    assert result.outcomes["test_push_pop"] == "passed"
    assert result.outcomes["test_len"] == "failed"
    assert result.outcomes["test_many[3]"] == "failed"
    assert result.score == pytest.approx(2 / 5)
    assert result.reason == "3 of 5 hidden tests failed: test_len, test_many[0], test_many[3]"
    with pytest.raises(AssertionError) as info:
        result.check()
    message = str(info.value)
    assert message.startswith("hidden tests did not pass: 3 of 5 hidden tests failed")
    assert "--- test_len" in message
    assert "TypeError" in message  # the trimmed failure text comes along


def test_assert_hidden_tests_pass_raises_assertion_error() -> None:
    assert assert_hidden_tests_pass(GOOD, TESTS).passed
    with pytest.raises(AssertionError, match="hidden tests failed"):
        assert_hidden_tests_pass(NO_LEN, TESTS)


def test_missing_names_and_syntax_errors_are_reported_as_collection_errors() -> None:
    result = run_hidden_tests("class Queue: pass\n", TESTS)
    assert not result.passed
    assert "could not be collected" in result.reason and "ImportError" in result.reason
    assert set(result.outcomes.values()) == {"not run"}
    broken = run_hidden_tests("class Stack(:\n", TESTS)
    assert "could not be collected" in broken.reason and "SyntaxError" in broken.reason


def test_custom_module_name_and_extra_env() -> None:
    tests = "import os\nfrom impl import value\n\ndef test_value():\n    assert value() == os.environ['LEVEL_SEED']\n"
    code = "import os\n\ndef value():\n    return os.environ['LEVEL_SEED']\n"
    assert run_hidden_tests(code, tests, module="impl", env={"LEVEL_SEED": "42"}).passed


@pytest.mark.parametrize("module", ["json", "not-an-identifier", "test_hidden", "pytest"])
def test_bad_module_names_are_refused(module: str) -> None:
    with pytest.raises(ValidationError, match="cannot hold the candidate"):
        run_hidden_tests(GOOD, TESTS, module=module)


def test_bad_limits_and_timeouts_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"Limits.processes must be a positive integer"):
        Limits(processes=0)
    with pytest.raises(ValidationError, match="timeout_s must be positive"):
        run_hidden_tests(GOOD, TESTS, timeout_s=0)


def test_concurrent_runs_do_not_interfere(tmp_path: Path) -> None:
    # Four at once, alternating right and wrong candidates that each write the same file name in their
    # own work directory: every verdict must match its own candidate.
    variants = []
    for i in range(4):
        body = GOOD if i % 2 == 0 else NO_LEN
        variants.append(f"with open('scratch.txt', 'w') as f:\n    f.write('{i}')\n{body}")
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda code: run_hidden_tests(code, TESTS, tmp_root=tmp_path), variants))
    assert [r.passed for r in results] == [True, False, True, False]
    assert [r.score for r in results] == [1.0, 0.4, 1.0, 0.4]
    assert list(tmp_path.iterdir()) == []  # every run cleaned up after itself


def test_socket_patch_fallback_still_judges_and_blocks_network(monkeypatch: pytest.MonkeyPatch) -> None:
    # Force the weakest plan, the one used where unshare is missing or refused.
    fallback = [plan for plan in _process.plans(is_root=False) if not plan.prefix]
    monkeypatch.setattr(_process, "plans", lambda is_root: fallback)
    assert run_hidden_tests(GOOD, TESTS).passed
    code = (
        "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 9), timeout=1)\n    FLAG = 'connected'\n"
        "except OSError as exc:\n    FLAG = repr(exc)\n"
    )
    tests = "import solution\n\ndef test_flag():\n    assert solution.FLAG == 'connected', solution.FLAG\n"
    result = run_hidden_tests(code, tests)
    assert result.network_guard == "socket-patch"
    assert "socket-patch" in result.guards
    assert "disabled in the quantgate sandbox" in result.failures["test_flag"]


def test_unusable_unshare_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = _process.Plan(("/bin/false",), "netns", mount_namespace=True, pid_namespace=True)
    fallback = [plan for plan in _process.plans(is_root=False) if not plan.prefix]
    monkeypatch.setattr(_process, "plans", lambda is_root: [broken, *fallback])
    result = run_hidden_tests(GOOD, TESTS)
    assert result.passed
    assert result.network_guard == "socket-patch"


def test_a_sandbox_that_cannot_start_is_a_validation_error(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = _process.Plan(("/bin/false",), "netns", mount_namespace=True, pid_namespace=True)
    monkeypatch.setattr(_process, "plans", lambda is_root: [broken])
    with pytest.raises(ValidationError, match="could not start pytest"):
        run_hidden_tests(GOOD, TESTS)


def test_result_message_is_trimmed() -> None:
    result = HiddenTestResult(
        passed=False,
        outcomes={f"test_{i}": "failed" for i in range(50)},
        duration_s=1.0,
        output="",
        reason="50 of 50 hidden tests failed",
        network_guard="netns",
        failures={f"test_{i}": "E   assert 1 == 2\n" * 40 for i in range(50)},
    )
    assert len(result.failure_message()) <= 4000
    assert result.score == 0.0


def test_ordinary_candidate_code_still_works() -> None:
    # The guards must not break what honest solutions do: processes, threads, temp files, tmp_path.
    code = textwrap.dedent(
        """
        import multiprocessing, subprocess, sys, tempfile, threading

        def square(x):
            return x * x

        def pool_squares(n):
            with multiprocessing.Pool(2) as pool:
                return pool.map(square, range(n))

        def run_child():
            done = subprocess.run([sys.executable, "-c", "print(6 * 7)"], capture_output=True, text=True, check=True)
            return done.stdout.strip()

        def threads():
            out = []
            workers = [threading.Thread(target=out.append, args=(i,)) for i in range(8)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            return sorted(out)

        def scratch():
            with tempfile.NamedTemporaryFile("w", delete=False) as handle:
                handle.write("x")
            with open("local.txt", "w") as handle:
                handle.write("y")
            return True
        """
    )
    tests = textwrap.dedent(
        """
        from solution import pool_squares, run_child, scratch, threads

        def test_pool():
            assert pool_squares(4) == [0, 1, 4, 9]

        def test_child():
            assert run_child() == "42"

        def test_threads():
            assert threads() == list(range(8))

        def test_files(tmp_path):
            (tmp_path / "a").write_text("x")
            assert scratch()
        """
    )
    result = run_hidden_tests(code, tests)
    assert result.passed, result.failure_message()


def test_score_counts_only_tests_that_ran_and_passed() -> None:
    outcomes = {"a": "passed", "b": "xfailed", "c": "xpassed", "d": "skipped", "e": "deselected", "f": "not run"}
    result = HiddenTestResult(
        passed=False, outcomes=outcomes, duration_s=1.0, output="", reason="x", network_guard="netns"
    )
    assert result.score == pytest.approx(1 / 6)
    assert "b xfailed" in result.failure_message() and "a passed" not in result.failure_message()
    tampered = HiddenTestResult(
        passed=False,
        outcomes={"a": "passed"},
        duration_s=1.0,
        output="",
        reason="x",
        network_guard="netns",
        tampered=True,
    )
    assert tampered.score == 0.0


def test_hidden_tests_may_monkeypatch_what_the_reporter_writes_with() -> None:
    tests = textwrap.dedent(
        """
        import json, os
        import solution

        def test_save(monkeypatch):
            seen = []
            monkeypatch.setattr(json, "dumps", lambda obj, **kwargs: seen.append(obj) or "saved")
            monkeypatch.setattr(os, "write", lambda fd, data: len(data))
            assert solution.save({"a": 1}) == "saved"
            assert seen == [{"a": 1}]
        """
    )
    result = run_hidden_tests("import json\n\ndef save(obj):\n    return json.dumps(obj)\n", tests)
    assert result.passed, result.failure_message()
