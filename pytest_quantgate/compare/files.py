"""Result files on disk: one named by path or by preset id, and the comparison of two of them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_quantgate.compare.verdict import compare
from pytest_quantgate.errors import ResultsError

if TYPE_CHECKING:
    from pathlib import Path

    from pytest_quantgate.compare.options import CompareOptions
    from pytest_quantgate.compare.verdict import Comparison


def resolve_result(spec: str, results_dir: Path | None = None) -> Path:
    """A result file named by path, or by preset id (its latest copy in ``<dir>/results/<id>.json``)."""
    import os
    from pathlib import Path

    path = Path(spec).expanduser()
    if path.is_file():
        return path
    directory = results_dir or Path(os.environ.get("QUANTGATE_DIR") or ".quantgate") / "results"
    stored = directory / f"{spec}.json"
    if stored.is_file():
        return stored
    raise ResultsError(
        f"{spec!r} is neither a result file nor a preset with a stored result ({stored} does not exist); pass "
        "the path of a result.json or result.jsonl, or run `pytest --preset ID` first"
    )


def compare_files(baseline: Path, candidate: Path, options: CompareOptions | None = None) -> Comparison:
    """:func:`compare` on two result files (``.json`` or an interrupted run's ``.jsonl``)."""
    from pytest_quantgate.results import load_result

    return compare(load_result(baseline), load_result(candidate), options)


__all__ = ["compare_files", "resolve_result"]
