"""Tests of pytest_quantgate.compare.options: bad options are refused with the value named."""

from __future__ import annotations

import pytest

from pytest_quantgate.compare import CompareOptions
from pytest_quantgate.errors import SpecError


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"margin": -1.0}, "margin=-1.0"),
        ({"margin": float("nan")}, "margin=nan"),
        ({"speed_floor": -0.1}, "speed_floor=-0.1"),
        ({"alpha": 0.7}, "alpha=0.7"),
        ({"max_age_days": 0.0}, "max_age_days=0.0"),
    ],
)
def test_bad_options_name_the_value(kwargs, fragment) -> None:
    with pytest.raises(SpecError, match=fragment.replace(".", r"\.")):
        CompareOptions(**kwargs)
