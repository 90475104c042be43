"""Numbers as people read them, in one convention for the whole package.

* a value: *digits* decimals, thousands separated, its unit after it — ``1,234.5 MB``;
* a difference: always signed — ``+1.5``, ``−1.5``; a percentage change likewise — ``−30.0%``;
* the minus sign is U+2212 ``−``, never the hyphen ``-``, and a zero is never negative: a value that
  rounds to zero prints as ``0.0`` or ``+0.0``, never ``−0.0``;
* a missing value (None or NaN) is ``—``; infinities are ``∞`` and ``−∞`` (``+∞`` as a difference).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

MINUS = "\N{MINUS SIGN}"
MISSING = "—"


def number(value: float | None, digits: int = 1, unit: str = "") -> str:
    """*value* with *digits* decimals and thousands separators, then *unit*: ``number(1234.5, 1, " MB")``
    is ``1,234.5 MB``."""
    if value is None or math.isnan(value):
        return MISSING
    if math.isinf(value):
        return "∞" if value > 0 else f"{MINUS}∞"
    # "z" turns a negative zero after rounding (-0.04 → "-0.0") into a plain zero.
    return f"{value:z,.{digits}f}".replace("-", MINUS) + unit


def signed(value: float | None, digits: int = 1) -> str:
    """A difference, always with its sign: ``+1.5``, ``−1.5``, ``+0.0``."""
    if value is None or math.isnan(value):
        return MISSING
    if math.isinf(value):
        return "+∞" if value > 0 else f"{MINUS}∞"
    return f"{value:+z.{digits}f}".replace("-", MINUS)


def percent(fraction: float | None, digits: int = 1) -> str:
    """A relative change given as a fraction, signed, in per cent: ``percent(-0.3)`` is ``−30.0%``."""
    if fraction is None or math.isnan(fraction):
        return MISSING
    return signed(100 * fraction, digits) + "%"


def p_value(value: float) -> str:
    """``p = 0.042``, or ``p < 0.001`` below that."""
    return "p < 0.001" if value < 0.001 else f"p = {value:.3f}"


def count_range(low: int, high: int) -> str:
    """``5`` when both ends agree, else ``5–15``."""
    return str(low) if low == high else f"{low}–{high}"


def listing(keys: Iterable[str], limit: int = 6) -> str:
    """The first *limit* names, comma-separated, with how many more there are: ``a, b (+3 more)``."""
    items = list(keys)
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def megabytes(value: float | None) -> str:
    """A memory figure in MB with as many decimals as its size needs: ``0.83``, ``45.2``, ``17,567``."""
    if value is None or math.isnan(value) or math.isinf(value):
        return number(value)
    return number(value, 2 if abs(value) < 10 else 1 if abs(value) < 100 else 0)


def memory_cell(value: float | None, source: str | None) -> str:
    """A memory figure with the source it comes from: ``0.83 llama.cpp (CPU)``, ``812 rss``, ``—``."""
    if value is None:
        return MISSING
    return f"{megabytes(value)} {source}" if source else megabytes(value)


__all__ = [
    "MINUS",
    "MISSING",
    "count_range",
    "listing",
    "megabytes",
    "memory_cell",
    "number",
    "p_value",
    "percent",
    "signed",
]
