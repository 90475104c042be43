"""Items as the unit of quality: both sides' items paired by id, and the verdict's message when they decide."""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

from pytest_quantgate.errors import SpecError
from pytest_quantgate.inference import ItemComparison, item_noninferiority
from pytest_quantgate.levels import item_scores

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from pytest_quantgate.compare.options import CompareOptions
    from pytest_quantgate.compare.sides import Side
    from pytest_quantgate.compare.verdict import Verdict
    from pytest_quantgate.levels import Sample


def is_greedy(sampler: Mapping[str, object]) -> bool:
    """Whether a recorded sampler always takes the most likely token."""
    return sampler.get("temperature") == 0 or sampler.get("top_k") == 1


def decided_on_items(samples: Iterable[Sample], samplers: Iterable[Mapping[str, object]]) -> bool:
    """Whether quality is decided on items: a level recorded items or is parametrized (each parameter an
    item), or a side decodes greedily (its repeats are no draws: each level is then an item). The one rule
    for the fixed comparison and the sequential test alike."""
    return any(is_greedy(sampler) for sampler in samplers) or any(s.items or "[" in s.level for s in samples)


def paired_items_of(
    base: Side,
    cand: Side,
    b_map: Mapping[str, str],
    c_map: Mapping[str, str],
    options: CompareOptions,
    problems: list[str],
) -> tuple[ItemComparison | None, dict[str, str]]:
    """Both sides' items paired by id (level key + item id, a plain level being one item), or None when a
    side holds only its summary, or when the suite has no items — no level recorded any (``measure.item``),
    none is parametrized (each parameter an item) — and neither side decodes greedily. Such suites, a few
    fixed prompts sampled afresh each iteration, are still decided by the level analysis, iterations as
    repeated draws of each level; under greedy decoding repeats are no draws, and each level is an item."""
    if not (base.from_samples and cand.from_samples):
        return None, {}
    sides = (("baseline", base), ("candidate", cand))
    if not decided_on_items((*base.samples, *cand.samples), (side.result.preset.sampler for _, side in sides)):
        return None, {}
    if greedy := [role for role, side in sides if is_greedy(side.result.preset.sampler)]:
        problems.append(
            f"greedy decoding on the {' and the '.join(greedy)} (temperature 0 or top_k 1): its iterations repeat "
            "the same answers rather than draw new ones, so quality is decided on items, each level one item "
            "where the suite records none"
        )
    b = item_scores(dataclasses.replace(s, level=b_map[s.level]) for s in base.samples if s.level in b_map)
    c = item_scores(dataclasses.replace(s, level=c_map[s.level]) for s in cand.samples if s.level in c_map)
    weights = {**b.weights, **c.weights}  # the candidate's points, as for the levels
    try:
        items = item_noninferiority(b.scores, c.scores, options.margin, options.alpha, weights)
    except SpecError as exc:
        problems.append(f"items not compared: {exc}")
        return None, {}
    if items.baseline_only or items.candidate_only:
        problems.append(
            f"{len(items.baseline_only)} item(s) only in the baseline and {len(items.candidate_only)} only in the "
            f"candidate (another draw of items, or another suite version): compared on the {items.n_items} items "
            "both presets were asked"
        )
    return items, {**b.names, **c.names}


def item_message(
    verdict: Verdict,
    ok: bool,
    bad: bool,
    why: str,
    items: ItemComparison,
    reasons: list[str],
    names: Mapping[str, str],
    labels: tuple[str, str],
) -> str:
    tail = f"preset {labels[1]} vs {labels[0]}"
    if verdict == "swap":
        return f"verdict swap: {why}; {tail}"
    if verdict == "keep":
        parts = [why] if bad else []
        if bad and items.worse:
            shown = ", ".join(names.get(key, key) for key in items.worse[:3])
            others = f" (+{len(items.worse) - 3} more)" if len(items.worse) > 3 else ""
            parts.append(f"{len(items.worse)} item(s) worse, e.g. {shown}{others}")
        parts += reasons
        return f"verdict keep: {', '.join(parts)}; {tail}"
    if ok:
        why = "; ".join(reasons) or "not settled"
        return f"verdict inconclusive — quality non-inferior ({why}) but {why}; {tail}"
    extra = f"; also {'; '.join(reasons)}" if reasons else ""
    d, low, m = items.difference, items.lower_bound, items.margin
    if d > -m and d - low > 0:
        # The bound's half-width shrinks as 1/√(items): how many items would put it above -margin.
        needed = math.ceil(items.effective_items * ((d - low) / (d + m)) ** 2)
        more = max(1, needed - math.floor(items.effective_items))
        return (
            f"verdict inconclusive — about {more} more items needed ({why}): repeating the same items adds "
            f"no evidence; a suite with more items, fresh items per iteration, or a wider --margin would{extra}; {tail}"
        )
    return f"verdict inconclusive ({why}){extra}; {tail}"


__all__ = ["decided_on_items", "is_greedy", "item_message", "paired_items_of"]
