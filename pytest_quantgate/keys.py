"""Level keys, iteration ids and preset ids in test ids: formatted and parsed in one place, with what a level
item is known by (:class:`LevelInfo`: its key, display name, mark and gate marks).

A level run's test id starts with quantgate's own parameters, then the suite's:
``test_x.py::test_add[tiny-f16-iter-03-big]`` is preset ``tiny-f16`` (named only when a run has several),
iteration 3, and the suite's own parameter id ``big``. Its *level key* drops quantgate's part:
``test_x.py::test_add[big]``, the same in every iteration and for every preset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from pytest_quantgate.levels import LevelSpec

ITERATION_PREFIX = "iter-"
ITERATION_RE = re.compile(r"iter-(\d+)")


def iteration_id(iteration: int) -> str:
    """The test-id part of an iteration: ``iter-07``."""
    return f"{ITERATION_PREFIX}{iteration:02d}"


def level_key(nodeid: str, preset: str | None, iteration: int) -> tuple[str, str]:
    """(level key, the suite's own parameter id) for a level run's node id; *preset* is the preset id when
    the run has several (then it leads the test id), else None."""
    base, _, params = nodeid.partition("[")
    params = params[:-1] if params.endswith("]") else params
    prefix = (f"{preset}-" if preset else "") + iteration_id(iteration)
    # Exactly one "-" joins our part to the suite's: its own id may start with one ("-1" for -1).
    user = params[len(prefix) + 1 :] if params.startswith(prefix) else params
    return (f"{base}[{user}]" if user else base), user


def suite_of(level_key: str) -> str:
    """The suite a level belongs to: its test module, as the key names it (``test_tiny.py``,
    ``suites/coding/test_fifo.py``). A run over several modules keeps each apart (score, gates, verdict)."""
    return level_key.partition("::")[0]


def preset_iteration(nodeid: str, preset_ids: Sequence[str]) -> tuple[str, int]:
    """(preset id, iteration) of a level run's node id, given the run's presets in order.

    With several presets the test id starts with one of them; when one id is the start of another
    (``tiny``, ``tiny-f16``) the one followed by the iteration is meant. With one preset, the test id
    does not name it.
    """
    params = nodeid.partition("[")[2]
    if len(preset_ids) > 1:
        for preset in sorted(preset_ids, key=len, reverse=True):
            if params.startswith(preset + "-") and (match := _ITERATION_END.match(params, len(preset) + 1)):
                return preset, int(match.group(1))
    match = _ITERATION_END.match(params)
    return preset_ids[0] if preset_ids else "none", int(match.group(1)) if match else 1


# An iteration id ends where the suite's parameters (after a "-") or the test id ("]") begin.
_ITERATION_END = re.compile(r"iter-(\d+)(?=-|\]|$)")


class Mark(Protocol):
    """What is read of a mark (pytest's ``Mark`` has both)."""

    @property
    def args(self) -> tuple[Any, ...]: ...

    @property
    def kwargs(self) -> Mapping[str, Any]: ...


def level_marks(level: Mark | None, gates: Iterable[Mark], where: str) -> tuple[LevelSpec, tuple[str, ...]]:
    """The ``level`` mark as a LevelSpec and the ``gate`` marks' expressions (each checked, once, in order).
    A SpecError names *where* (the test) and the argument at fault."""
    from pytest_quantgate.errors import SpecError
    from pytest_quantgate.gates import parse_gate
    from pytest_quantgate.levels import LevelSpec

    spec = LevelSpec.from_mark(level.args, level.kwargs, where) if level else LevelSpec()
    exprs: list[str] = []
    for gate in gates:
        if gate.kwargs:
            raise SpecError(f"{where}: @pytest.mark.gate takes gate expressions as positional arguments")
        exprs += [parse_gate(str(expr), "mark", where).expr for expr in gate.args]
    return spec, tuple(dict.fromkeys(exprs))


@dataclass(frozen=True, slots=True)
class LevelInfo:
    """What collection learned about one level item: its mark, key, display name and mark gates."""

    spec: LevelSpec
    key: str
    name: str
    gates: tuple[str, ...]

    @classmethod
    def of(
        cls, nodeid: str, test_name: str, preset: str | None, iteration: int, marks: tuple[LevelSpec, tuple[str, ...]]
    ) -> LevelInfo:
        """A level run's info: *test_name* (the mark's ``name`` wins) with the suite's own parameter id."""
        spec, gates = marks
        key, user_id = level_key(nodeid, preset, iteration)
        name = spec.name or test_name
        return cls(spec, key, f"{name}[{user_id}]" if user_id else name, gates)
