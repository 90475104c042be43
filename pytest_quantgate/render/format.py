"""Numbers as people read them, one convention for the whole package."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable


def signed(value: float, digits: int = 1) -> str:
    if math.isinf(value):
        return "+∞" if value > 0 else "−∞"
    text = f"{value:+.{digits}f}"
    if text.lstrip("+-").strip("0.") == "":
        text = f"{0.0:+.{digits}f}"  # no "−0.0"
    return text.replace("-", "−")


def percent(fraction: float) -> str:
    return signed(100 * fraction, 1) + "%"


def number(value: float | None, digits: int = 1, unit: str = "") -> str:
    if value is None or math.isnan(value):
        return "—"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    return f"{value:,.{digits}f}{unit}"


def count_range(low: int, high: int) -> str:
    return str(low) if low == high else f"{low}–{high}"


def listing(keys: Iterable[str], limit: int = 6) -> str:
    items = list(keys)
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def p_value(value: float) -> str:
    return "p < 0.001" if value < 0.001 else f"p = {value:.3f}"


__all__ = ["count_range", "listing", "number", "p_value", "percent", "signed"]
