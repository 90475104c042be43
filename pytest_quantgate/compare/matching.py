"""What the two runs have in common: levels matched by key (or by file and test name), items paired."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_quantgate.inference import McNemarResult, PairedNonInferiorityResult, mcnemar, paired_noninferiority

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from pytest_quantgate.compare.options import CompareOptions
    from pytest_quantgate.compare.sides import Side

# Below this many matched items the "paired" analysis is just the stratified one with extra steps.
PAIRED_MIN_ITEMS = 2


@dataclass(frozen=True, slots=True)
class PairedItems:
    """Matched items: the same parametrized level, same iteration number, on both presets.

    ``pairs`` = items x shared iterations. ``lost`` are the display names of items the candidate got wrong
    in some iteration where the baseline got them right (``gained`` the reverse), worst first.
    """

    items: int
    pairs: int
    mcnemar: McNemarResult
    noninferiority: PairedNonInferiorityResult
    lost: tuple[str, ...]
    gained: tuple[str, ...]


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


def paired_items(
    base: Side, cand: Side, b_map: Mapping[str, str], c_map: Mapping[str, str], options: CompareOptions
) -> PairedItems | None:
    """Pairs for parametrized item levels (key ``test[...]``) present on both sides, by iteration number.

    Applies only when both sides have samples and at least :data:`PAIRED_MIN_ITEMS` items match: then each
    (item, iteration) answered by both presets is one pair — the knowledge-suite case. Plain levels are
    left to the stratified analysis: repeating one prompt gives no item to match.
    """
    if not (base.from_samples and cand.from_samples):
        return None
    by_b: dict[tuple[str, int], bool] = {}
    by_c: dict[tuple[str, int], bool] = {}
    names: dict[str, str] = {}
    for s in base.samples:
        if s.level in b_map and "[" in b_map[s.level]:
            by_b[(b_map[s.level], s.iteration)] = s.passed
            names.setdefault(b_map[s.level], s.name)
    for s in cand.samples:
        if s.level in c_map and "[" in c_map[s.level]:
            by_c[(c_map[s.level], s.iteration)] = s.passed
    keys = sorted(set(by_b) & set(by_c))
    items = {k for k, _ in keys}
    if len(items) < PAIRED_MIN_ITEMS:
        return None
    pairs = [(by_b[k], by_c[k]) for k in keys]
    lost: dict[str, int] = defaultdict(int)
    gained: dict[str, int] = defaultdict(int)
    for (item, _it), (ok_b, ok_c) in zip(keys, pairs, strict=True):
        if ok_b and not ok_c:
            lost[names[item]] += 1
        elif ok_c and not ok_b:
            gained[names[item]] += 1
    return PairedItems(
        items=len(items),
        pairs=len(pairs),
        mcnemar=mcnemar(pairs),
        noninferiority=paired_noninferiority(pairs, options.margin, options.alpha),
        lost=tuple(sorted(lost, key=lambda n: (-lost[n], n))),
        gained=tuple(sorted(gained, key=lambda n: (-gained[n], n))),
    )


__all__ = ["PAIRED_MIN_ITEMS", "PairedItems", "match_levels", "paired_items"]
