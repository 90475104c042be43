"""The baseline a run is compared with: the stored result ``--baseline`` names, per suite of the run, read
and checked once collection is done (before any server starts), and restricted to the levels of its suite.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_quantgate.errors import ResultsError
from pytest_quantgate.keys import suite_of
from pytest_quantgate.results import find_result, load_result, suite_id

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path

    from pytest_quantgate.config import RunConfig
    from pytest_quantgate.results import ResultFile


@dataclass(frozen=True, slots=True)
class Baseline:
    """A stored result used as the baseline, and the file it came from."""

    result: ResultFile
    path: Path

    def describe(self) -> str:
        return self.result.origin(self.path)

    def only_levels(self, level_keys: Iterable[str]) -> Baseline:
        """This baseline restricted to *level_keys* (one suite of a result that holds several)."""
        return Baseline(self.result.only_levels(level_keys), self.path)


def load_baselines(config: RunConfig, level_keys: Iterable[str]) -> dict[str, Baseline]:
    """The stored baseline --baseline names, per suite of the levels collected (empty when it is a preset of
    this very run, or not given).

    Called once collection is done and before any server starts, so that a bad baseline — unreadable, or
    from another suite — is an error before a server boots or an iteration is spent. A preset id picks the
    stored result of that preset for each suite being run (:func:`~pytest_quantgate.results.suite_id`); a
    result file is the baseline of every suite it holds levels of, and each suite is compared with its own
    levels only.
    """
    spec = config.baseline
    if spec is None or spec in {p.id for p in config.presets}:
        return {}
    by_suite: dict[str, list[str]] = defaultdict(list)
    for key in dict.fromkeys(level_keys):
        by_suite[suite_of(key)].append(key)
    baselines = {}
    for suite, keys in by_suite.items():
        try:
            path = find_result(spec, config.out_dir / "results", suite_id(keys))
            baseline = Baseline(load_result(path), path)
        except ResultsError as exc:
            raise ResultsError(f"--baseline {exc}") from None
        baselines[suite] = baseline.only_levels(same_suite_levels(baseline, keys))
    return baselines


def same_suite_levels(baseline: Baseline, level_keys: Sequence[str]) -> list[str]:
    """The levels of *baseline* that are among *level_keys* (matched as the comparison matches them: by key,
    or by file and test name for a suite run from another rootdir); ResultsError naming both suites when
    there is none."""
    from pytest_quantgate.compare.matching import match_levels

    stored = baseline.result.level_keys()
    common, _, _ = match_levels(stored, level_keys)
    if common:
        return list(common)
    raise ResultsError(
        f"the baseline {baseline.describe()} comes from another suite: it holds the suite {_shown(stored)}, "
        f"this run collected {_shown(level_keys)}, and no level is in both. Run this suite on the baseline's "
        f"preset first (`pytest ... --preset {baseline.result.preset.id}`), or pass a result of this suite"
    )


def _shown(level_keys: Sequence[str], limit: int = 4) -> str:
    levels = ", ".join(level_keys[:limit]) + (f" and {len(level_keys) - limit} more" if len(level_keys) > limit else "")
    return f"{suite_id(level_keys) or '(no levels)'} (levels {levels or 'none'})"


__all__ = ["Baseline", "load_baselines", "same_suite_levels"]
