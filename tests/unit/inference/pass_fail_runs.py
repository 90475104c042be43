"""Pass/fail histories per level shared by the inference tests (the suite's usual five levels)."""

from __future__ import annotations

POINTS = {"L1": 25.0, "L2": 25.0, "L3": 25.0, "L4": 15.0, "L5": 10.0}


def runs(passed: int, n: int) -> list[bool]:
    return [True] * passed + [False] * (n - passed)


def levels(counts: dict[str, int], n: int = 15) -> dict[str, list[bool]]:
    return {lv: runs(k, n) for lv, k in counts.items()}


ALL_PASS = levels(dict.fromkeys(POINTS, 15))
