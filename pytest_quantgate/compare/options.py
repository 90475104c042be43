"""How strict a comparison is: the margin, the speed floor, the level of the bounds, the age limit."""

from __future__ import annotations

import math
from dataclasses import dataclass

from pytest_quantgate.config import check_margin
from pytest_quantgate.errors import SpecError


@dataclass(frozen=True, slots=True)
class CompareOptions:
    """How strict the comparison is. Margins and bounds are in points of the maximum score (0-100)."""

    margin: float = 2.0  # non-inferiority margin, percentage points of the max score
    speed_floor: float = 0.05  # a TPS/TTFT/memory change counts only beyond this AND significant
    require_faster: bool = False  # a swap also needs the candidate to be faster (tokens/s)
    alpha: float = 0.05  # one-sided level of every bound, two-sided level of the speed tests
    max_age_days: float = 14.0  # runs further apart than this get a caveat

    def __post_init__(self) -> None:
        check_margin(self.margin)
        if not (math.isfinite(self.speed_floor) and self.speed_floor >= 0.0):
            raise SpecError(f"speed_floor={self.speed_floor!r} must be a fraction ≥ 0, e.g. 0.05 for 5 %")
        if not 0.0 < self.alpha < 0.5:
            raise SpecError(f"alpha={self.alpha!r} must lie strictly between 0 and 0.5 (one-sided), e.g. 0.05")
        if not (self.max_age_days > 0.0):
            raise SpecError(f"max_age_days={self.max_age_days!r} must be a positive number of days, e.g. 14")


__all__ = ["CompareOptions"]
