"""What the two runs have in common: levels matched by key, or by file and test name."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable


def _loose_key(key: str) -> str:
    """``suites/a/test_x.py::test_y[p]`` → ``test_x.py::test_y[p]``: the same test run from another rootdir."""
    path, sep, rest = key.partition("::")
    return path.rsplit("/", 1)[-1] + sep + rest


def match_levels(
    base: Iterable[str], cand: Iterable[str]
) -> tuple[dict[str, str], dict[str, str], list[tuple[str, str]]]:
    """(baseline key → common key, candidate key → common key, loosely matched pairs)."""
    base_keys, cand_keys = list(base), list(cand)
    common = [k for k in base_keys if k in set(cand_keys)]
    b_map = {k: k for k in common}
    c_map = {k: k for k in common}
    rest_b = [k for k in base_keys if k not in b_map]
    rest_c = [k for k in cand_keys if k not in c_map]

    def unique(keys: list[str]) -> dict[str, str]:
        counts: dict[str, list[str]] = defaultdict(list)
        for k in keys:
            counts[_loose_key(k)].append(k)
        return {loose: ks[0] for loose, ks in counts.items() if len(ks) == 1}

    loose_b, loose_c = unique(rest_b), unique(rest_c)
    loose_pairs = [(loose_b[x], loose_c[x]) for x in loose_b if x in loose_c]
    for bk, ck in loose_pairs:
        b_map[bk] = bk
        c_map[ck] = bk
    return b_map, c_map, loose_pairs


__all__ = ["match_levels"]
