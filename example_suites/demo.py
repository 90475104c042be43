"""`make demo`: the decision pytest-quantgate exists for, on the project's own tiny model, in one run.

Runs ``pytest example_suites/tiny --preset tiny-f16 --preset tiny-q8_0 --preset tiny-q4_0 --baseline tiny-f16``
and then says in plain words what was decided. The run is designed to end in **swap** for tiny-q8_0 (it may
replace tiny-f16) and **keep** for tiny-q4_0 (it may not). pytest itself exits 1 then, as it must for a CI
gate (a kept candidate fails its verdict outcome); this script exits 0 when the run decided exactly that, and
with pytest's own status (or 1) when it did not, saying what differed.

    python example_suites/demo.py [extra pytest arguments]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
BASELINE = "tiny-f16"
# What the demo is designed to show: candidate -> expected verdict.
EXPECTED = {"tiny-q8_0": "swap", "tiny-q4_0": "keep"}
MEANING = {
    "swap": "may replace {baseline}",
    "keep": "may not replace {baseline}: keep {baseline}",
    "inconclusive": "cannot be decided against {baseline} with this much evidence",
}


class Verdicts:
    """Collects the verdict outcomes (``quantgate::verdict[CANDIDATE vs BASELINE]``) as pytest reports them."""

    def __init__(self) -> None:
        self.found: dict[str, str] = {}  # candidate -> the verdict's one-line message
        self.failed: list[str] = []  # node ids of every failed or erred report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            self.failed.append(report.nodeid)
        if report.when != "call" or "::verdict[" not in report.nodeid:
            return
        candidate = report.nodeid.partition("::verdict[")[2].partition(" vs ")[0]
        messages = [value for name, value in report.user_properties if name == "quantgate_gate"]
        self.found[candidate] = str(messages[0]) if messages else report.outcome


def verdict_word(message: str) -> str:
    """``swap``, ``keep`` or ``inconclusive`` from a verdict message (``verdict keep: score ...``)."""
    found = re.match(r"verdict (swap|keep|inconclusive)\b", message)
    return found[1] if found else "unknown"


def why(message: str) -> str:
    """The verdict's reason without its verdict word and preset names (``score Δ −7.7 pts, ...``)."""
    reason = re.sub(r"^verdict (swap|keep|inconclusive)\W*", "", message)
    return reason.rpartition("; preset")[0] or reason


def main(extra: list[str]) -> int:
    args = [str(HERE / "tiny"), "--preset", BASELINE, *(f"--preset={p}" for p in EXPECTED), "--baseline", BASELINE]
    print("$ pytest " + " ".join(a.replace(str(HERE.parent) + "/", "") for a in [*args, *extra]), flush=True)
    verdicts = Verdicts()
    status = int(pytest.main([*args, *extra], plugins=[verdicts]))
    decided = {candidate: verdict_word(verdicts.found.get(candidate, "")) for candidate in EXPECTED}
    print()
    print(" what was decided ".center(79, "="))
    for candidate, word in decided.items():
        print(f"{candidate} {MEANING.get(word, 'got no verdict').format(baseline=BASELINE)} ({word})")
        if reason := why(verdicts.found.get(candidate, "")):
            print(f"    {reason}")
    # Only what the kept candidate is expected to fail may fail: its verdict and its own gates.
    kept = [c for c, v in EXPECTED.items() if v == "keep"]
    unexpected = [n for n in verdicts.failed if not any(f"::{c}::gate[" in n or f"verdict[{c} " in n for c in kept)]
    if decided == EXPECTED and status == pytest.ExitCode.TESTS_FAILED and not unexpected:
        print(
            f"pytest exited {status} because a candidate was kept: that is the status a CI gate reads, and it\n"
            "is what this demo is designed to end in. The demo did its job."
        )
        return 0
    wanted = ", ".join(f"{c} {v}" for c, v in EXPECTED.items())
    print(f"The demo did NOT behave as designed (expected {wanted} and pytest exit status 1; got {status}).")
    if unexpected:
        print("Failed beyond the design: " + ", ".join(dict.fromkeys(unexpected)))
    return status or 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
