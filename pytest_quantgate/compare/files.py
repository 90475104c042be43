"""Result files on disk: one named by path or by preset id, and the comparison of two of them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_quantgate.compare.verdict import compare

if TYPE_CHECKING:
    from pathlib import Path

    from pytest_quantgate.compare.options import CompareOptions
    from pytest_quantgate.compare.verdict import Comparison


def resolve_result(spec: str, results_dir: Path | None = None, *, suite: str | None = None) -> Path:
    """A result file named by path, or by preset id: its latest stored result, ``<dir>/results/<id>/``
    (one per suite; *suite* picks one when there are several). See :func:`~pytest_quantgate.results.find_result`."""
    from pytest_quantgate.results import find_result

    return find_result(spec, results_dir or default_results_dir(), suite)


def default_results_dir() -> Path:
    """The store ``quantgate`` reads preset ids from: ``$QUANTGATE_DIR/results``, else ``.quantgate/results``."""
    import os
    from pathlib import Path

    return Path(os.environ.get("QUANTGATE_DIR") or ".quantgate") / "results"


def compare_files(baseline: Path, candidate: Path, options: CompareOptions | None = None) -> Comparison:
    """:func:`compare` on two result files (``.json`` or an interrupted run's ``.jsonl``)."""
    from pytest_quantgate.results import load_result

    return compare(load_result(baseline), load_result(candidate), options)


__all__ = ["compare_files", "default_results_dir", "resolve_result"]
