"""Tests of pytest_quantgate.keys: level keys and (preset, iteration) read back from the test ids pytest makes."""

from __future__ import annotations

from pytest_quantgate.keys import ITERATION_RE, iteration_id, level_key, preset_iteration


def test_iteration_ids_are_zero_padded_and_read_back() -> None:
    assert iteration_id(7) == "iter-07"
    assert iteration_id(123) == "iter-123"
    match = ITERATION_RE.match(iteration_id(123))
    assert match is not None and int(match.group(1)) == 123


def test_the_level_key_drops_quantgate_parameters_and_keeps_the_suites() -> None:
    assert level_key("t.py::test_a[iter-03]", None, 3) == ("t.py::test_a", "")
    assert level_key("t.py::test_a[iter-03-big]", None, 3) == ("t.py::test_a[big]", "big")
    assert level_key("t.py::test_a[q4-iter-03-big]", "q4", 3) == ("t.py::test_a[big]", "big")


def test_without_presets_the_run_has_none() -> None:
    assert preset_iteration("t.py::t[iter-02]", []) == ("none", 2)
