"""Tests of pytest_quantgate.keys: level keys and (preset, iteration) read back from the test ids pytest makes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from pytest_quantgate.errors import SpecError
from pytest_quantgate.keys import ITERATION_RE, LevelInfo, iteration_id, level_key, level_marks, preset_iteration
from pytest_quantgate.levels import LevelSpec

# What a preset id may be (presets.Preset.id), and what a suite's own parameter ids look like.
preset_ids = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.:-]{0,12}\Z")
user_ids = st.text(st.characters(codec="ascii", exclude_characters="\n\r"), max_size=12)
bases = st.sampled_from(["test_x.py::test_add", "suites/a/test_y.py::TestLanes::test_fifo", "t.py::t"])
iterations = st.integers(min_value=1, max_value=10_000)


def nodeid(base: str, preset: str | None, iteration: int, user: str) -> str:
    """The node id pytest gives a level run (quantgate's parameters first, see plugin.pytest_generate_tests)."""
    parts = [*([preset] if preset else []), iteration_id(iteration), *([user] if user else [])]
    return f"{base}[{'-'.join(parts)}]"


def test_iteration_ids_are_zero_padded_and_read_back() -> None:
    assert iteration_id(7) == "iter-07"
    assert iteration_id(123) == "iter-123"
    match = ITERATION_RE.match(iteration_id(123))
    assert match is not None and int(match.group(1)) == 123


def test_the_level_key_drops_quantgate_parameters_and_keeps_the_suites() -> None:
    assert level_key("t.py::test_a[iter-03]", None, 3) == ("t.py::test_a", "")
    assert level_key("t.py::test_a[iter-03-big]", None, 3) == ("t.py::test_a[big]", "big")
    assert level_key("t.py::test_a[q4-iter-03-big]", "q4", 3) == ("t.py::test_a[big]", "big")


@given(bases, st.lists(preset_ids, min_size=1, max_size=4, unique=True), st.data(), iterations, user_ids)
def test_level_key_and_preset_iteration_read_back_what_pytest_wrote(
    base: str, presets: list[str], data: st.DataObject, iteration: int, user: str
) -> None:
    preset = data.draw(st.sampled_from(presets))
    # Presets "a" and "a-iter-01" make "a-iter-01-iter-02" two things at once, for pytest too.
    assume(not any(other.startswith(f"{preset}-{iteration_id(iteration)}") for other in presets))
    several = len(presets) > 1
    node = nodeid(base, preset if several else None, iteration, user)
    assert level_key(node, preset if several else None, iteration) == ((f"{base}[{user}]" if user else base), user)
    assert preset_iteration(node, presets) == (preset, iteration)


@pytest.mark.parametrize(
    ("presets", "node", "expected"),
    [
        # One preset id is the start of another: the longer one is the one named.
        (["tiny", "tiny-f16"], "t.py::t[tiny-f16-iter-02]", ("tiny-f16", 2)),
        (["tiny-f16", "tiny"], "t.py::t[tiny-iter-04-f16]", ("tiny", 4)),
        # With one preset the test id does not name it, whatever the preset is called.
        (["iter"], "t.py::t[iter-05]", ("iter", 5)),
    ],
)
def test_preset_ids_that_look_alike_are_told_apart(presets: list[str], node: str, expected: tuple[str, int]) -> None:
    assert preset_iteration(node, presets) == expected


def test_a_suite_parameter_that_starts_with_a_dash_keeps_it() -> None:
    # pytest's id for the value -1 is "-1": test[1] and test[-1] are two levels, not one.
    assert level_key("t.py::t[iter-01--1]", None, 1) == ("t.py::t[-1]", "-1")
    assert level_key("t.py::t[iter-01-1]", None, 1) == ("t.py::t[1]", "1")


def test_without_presets_the_run_has_none() -> None:
    assert preset_iteration("t.py::t[iter-02]", []) == ("none", 2)


@dataclass
class Mark:
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


def test_level_marks_read_the_level_and_each_gate_once_in_order() -> None:
    gates = [Mark(("score_mean >= 90", "errors<=0")), Mark(("score_mean>=90",)), Mark(("pass_rate >= 50",))]
    spec, exprs = level_marks(Mark((10,), {"iterations": 3}), gates, "t.py::t")
    assert (spec.points, spec.iterations) == (10.0, 3)
    assert exprs == ("score_mean>=90", "errors<=0", "pass_rate>=50")
    assert level_marks(None, [], "t.py::t") == (LevelSpec(), ())


@pytest.mark.parametrize(
    ("level", "gate", "message"),
    [
        (Mark(kwargs={"point": 3}), Mark(), "t.py::t: unknown argument(s) 'point' to @pytest.mark.level"),
        (
            None,
            Mark(kwargs={"expr": "score_mean>=1"}),
            "t.py::t: @pytest.mark.gate takes gate expressions as positional",
        ),
        (None, Mark(("score_mean >> 1",)), "t.py::t: cannot read gate 'score_mean >> 1'"),
    ],
)
def test_level_marks_that_cannot_be_read_name_the_test(level: Mark | None, gate: Mark, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        level_marks(level, [gate], "t.py::t")
    assert str(caught.value).startswith(message)


def test_level_info_names_a_level_with_the_suites_own_parameters() -> None:
    marks = (LevelSpec(points=2), ("errors<=0",))
    info = LevelInfo.of("t.py::test_add[q4-iter-02-big]", "test_add", "q4", 2, marks)
    assert info == LevelInfo(LevelSpec(points=2), "t.py::test_add[big]", "test_add[big]", ("errors<=0",))
    named = LevelInfo.of("t.py::test_add[iter-01]", "test_add", None, 1, (LevelSpec(name="addition"), ()))
    assert (named.key, named.name) == ("t.py::test_add", "addition")
