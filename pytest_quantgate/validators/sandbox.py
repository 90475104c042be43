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

Starting, limiting, watching and killing the child is :mod:`pytest_quantgate.validators._process`'s job;
this module lays the run out, says what to run, and judges what came back.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_quantgate.errors import ValidationError
from pytest_quantgate.validators import _layout, _process
from pytest_quantgate.validators._process import Limits, NetworkGuard

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

# Only a test that ran and passed counts: xfailed, xpassed, skipped, deselected and "not run" all fail.
_OK_OUTCOMES = frozenset({"passed"})
_SIGNAL_HINTS = {
    "SIGXFSZ": "it wrote a file past the size limit (Limits.file_size_bytes = {file_size_bytes} bytes)",
    "SIGXCPU": "it used up its CPU time (Limits.cpu_s = {cpu_s} s)",
    "SIGKILL": "killed with SIGKILL (CPU limit, out of memory, or the candidate itself)",
    "SIGSEGV": "it crashed (segmentation fault)",
    "SIGABRT": "it aborted",
}


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
    run: _process.ChildRun,
    expected: list[str],
    layout: _layout.Layout,
    plan: _process.Plan,
    timeout_s: float,
    limits: Limits,
    uid: int | None,
    keep_read_search: bool,
) -> HiddenTestResult:
    records = run.records
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_kind.setdefault(str(record.get("kind")), []).append(record)
    finish = by_kind.get("finish", [None])[-1]
    # Only the supervisor, out of the candidate's reach, knows how pytest's process ended.
    exit_record = run.exit_record
    guards = _process.guards_in_force(run, plan, uid=uid, keep_read_search=keep_read_search)

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
    if run.killed_for == "timeout":
        reason = f"timed out after {timeout_s:g} s (timeout_s); the code may loop forever or block"
        if run.processes_killed > 3:
            reason += f"; {run.processes_killed} processes were running (a fork bomb?)"
    elif run.killed_for == "processes":
        reason = f"started more than {limits.processes} processes (Limits.processes); stopped as a fork bomb"
    elif run.foreign_lines:
        reason = (
            f"the report channel carried {run.foreign_lines} line(s) the harness did not write; "
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
            f"the test process ended before pytest finished (exit status {run.returncode}); "
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

    if reason and not run.killed_for:
        reason += _limit_hint(failures.values(), limits)
    return HiddenTestResult(
        passed=not reason,
        outcomes=outcomes,
        duration_s=run.elapsed_s,
        output=run.output,
        reason=reason,
        network_guard=plan.network_guard,
        failures={name: text for name, text in failures.items() if text},
        guards=tuple(guards),
        tests_duration_s=float(finish["duration_s"]) if finish and "duration_s" in finish else None,
        tampered=bool(run.foreign_lines or test_file_changed or tampered),
    )


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
        or module in {_layout.TEST_FILE.removesuffix(".py"), _layout.REPORTER_MODULE, "pytest", "_pytest", "pluggy"}
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
    uid = _process.private_uid(is_root)
    with tempfile.TemporaryDirectory(prefix="quantgate-sandbox-", dir=tmp_root, ignore_cleanup_errors=True) as tmp:
        layout = _layout.prepare(Path(tmp), code, tests, module, uid)
        keep_read_search = uid is not None and not _process.reachable_by_others(layout.read_paths())
        argv = layout.pytest_argv()
        env_vars = layout.child_env(env)
        plans = _process.plans(is_root)
        for index, plan in enumerate(plans):
            run = _process.run_supervised(
                argv,
                plan=plan,
                rundir=layout.root,
                workdir=layout.workdir,
                env=env_vars,
                uid=uid,
                is_root=is_root,
                keep_read_search=keep_read_search,
                timeout_s=timeout_s,
                limits=limits,
                child_settings={"block_network": plan.network_guard != "netns"},
                index=index,
            )
            if not run.setup_failed:
                # The reporter signals when pytest's session starts, before any candidate code is imported:
                # a run that ended before that is a broken set-up, never the candidate's doing.
                if run.child_never_started:
                    raise ValidationError(
                        "the sandbox could not start pytest (it ended before its session began); "
                        f"output:\n{_tail_lines(run.output, 20, 2000)}"
                    )
                return _judge(run, expected, layout, plan, timeout_s, limits, uid, keep_read_search)
        raise ValidationError(
            "the sandbox could not start pytest in any way (tried: "
            + ", ".join(" ".join(plan.prefix[1:]) or "no namespaces" for plan in plans)
            + f"); last output:\n{_tail_lines(run.output, 20, 2000)}"
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
