"""Argument checks shared by the two-run decisions: one-sided alpha and the non-inferiority margin."""

from __future__ import annotations

import math

from pytest_quantgate.errors import SpecError


def check_alpha(alpha: float, name: str = "alpha") -> None:
    # alpha is one-sided here; above 0.5 a "lower bound" would lie above the estimate.
    if not 0.0 < alpha < 0.5:
        raise SpecError(f"{name}={alpha!r} must lie strictly between 0 and 0.5 (one-sided), e.g. 0.05")


def check_margin(margin: float) -> None:
    if not (math.isfinite(margin) and margin >= 0.0):
        raise SpecError(
            f"margin={margin!r} must be a finite number ≥ 0 in percentage points of the maximum score, "
            "e.g. 2 (0 asks for 'not worse at all')"
        )
