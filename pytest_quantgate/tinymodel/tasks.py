"""Synthetic tasks of graded difficulty for the tiny model, shared by training and evaluation.

Pure Python on purpose: test suites import this at run time to build prompts and check answers, and
must not need torch or numpy for that.

An *item* is the task's payload as a string (``"47+85"`` for ``add2``, ``"kqz"`` for ``copy``): strings
hash, sort and serialize without ceremony. The raw ``/completion`` prompt is ``"<task> <item>="`` and
the expected completion is the bare answer (``"132"``), after which the model emits its end-of-text
token. Training and evaluation both go through :func:`prompt` and :func:`answer`, so they cannot drift
apart.

Held-out items are chosen by a hash of ``task|item``, not by sampling: an item is held out or not once and
for all, whatever seed, order or count a caller uses, so no training run can ever see an evaluation item.
"""

from __future__ import annotations

import hashlib
import random
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


@dataclass(frozen=True, slots=True)
class Task:
    """One task: its name (also the prompt prefix), what it asks, difficulty 1-5 and gate points."""

    name: str
    description: str
    difficulty: int
    points: int


@dataclass(frozen=True, slots=True)
class _Impl:
    sample: Callable[[random.Random], str]
    solve: Callable[[str], str]
    # Small item spaces are enumerated so that held_out_items can return every held-out item exactly
    # once instead of rejection-sampling forever for items that do not exist.
    enumerate_all: Callable[[], list[str]] | None
    held_out_permille: int


_LETTERS = string.ascii_lowercase


def _letters(rng: random.Random, lo: int, hi: int) -> str:
    return "".join(rng.choice(_LETTERS) for _ in range(rng.randint(lo, hi)))


def _sum_terms(item: str) -> str:
    return str(sum(int(term) for term in item.split("+")))


def _inc_item(rng: random.Random) -> str:
    n = rng.randint(0, 9999)
    if rng.random() < 0.4:
        # Uniform numbers carry (end in 9) only one time in ten, too rarely for a tiny model to learn
        # the carry; forcing 1-4 trailing nines makes carries common in training.
        width = rng.choice((1, 1, 1, 2, 2, 3, 4))
        n = n - n % 10**width + (10**width - 1)
    return str(n)


def _terms(rng: random.Random, count: int, lo: int, hi: int) -> str:
    return "+".join(str(rng.randint(lo, hi)) for _ in range(count))


TASKS: dict[str, Task] = {
    "copy": Task("copy", "copy 3-5 lowercase letters", 1, 10),
    "reverse": Task("reverse", "reverse 3-5 lowercase letters", 2, 10),
    "inc": Task("inc", "add one to a number below 10000", 2, 15),
    "add2": Task("add2", "add two 2-digit numbers (carries)", 3, 25),
    "add3": Task("add3", "add three 2-digit numbers (carries of up to 2)", 5, 40),
}

_IMPLS: dict[str, _Impl] = {
    "copy": _Impl(lambda rng: _letters(rng, 3, 5), lambda item: item, None, 100),
    "reverse": _Impl(lambda rng: _letters(rng, 3, 5), lambda item: item[::-1], None, 100),
    "inc": _Impl(
        _inc_item,
        lambda item: str(int(item) + 1),
        lambda: [str(i) for i in range(10000)],
        100,
    ),
    "add2": _Impl(lambda rng: _terms(rng, 2, 10, 99), _sum_terms, None, 100),
    "add3": _Impl(lambda rng: _terms(rng, 3, 10, 99), _sum_terms, None, 100),
}


def _impl(task_name: str) -> _Impl:
    try:
        return _IMPLS[task_name]
    except KeyError:
        raise KeyError(f"unknown tiny-model task {task_name!r}; known: {', '.join(TASKS)}") from None


def prompt(task_name: str, item: str) -> str:
    """The raw completion prompt for *item*, e.g. ``prompt("add2", "47+85") == "add2 47+85="``."""
    _impl(task_name)
    return f"{task_name} {item}="


def answer(task_name: str, item: str) -> str:
    """The exact expected completion for *item* (no end-of-text marker), e.g. ``"132"``."""
    return _impl(task_name).solve(item)


def is_correct(task_name: str, item: str, completion_text: str) -> bool:
    """Exact match of the completion against the answer, ignoring surrounding whitespace."""
    return completion_text.strip() == answer(task_name, item)


def is_held_out(task_name: str, item: str) -> bool:
    """Whether *item* belongs to the evaluation split (decided by a stable hash, never by a seed)."""
    impl = _impl(task_name)
    digest = hashlib.sha256(f"{task_name}|{item}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 1000 < impl.held_out_permille


def held_out_items(task_name: str, n: int, seed: int = 0) -> list[str]:
    """Up to *n* distinct held-out items, in an order fixed by *seed*.

    Fewer than *n* come back only when the task's held-out split is smaller than *n* (``inc`` has 10,000
    items in all, about 1,000 of them held out).
    """
    impl = _impl(task_name)
    rng = random.Random(f"held-out|{task_name}|{seed}")
    if impl.enumerate_all is not None:
        pool = [item for item in impl.enumerate_all() if is_held_out(task_name, item)]
        rng.shuffle(pool)
        return pool[:n]
    seen: set[str] = set()
    items: list[str] = []
    # The large spaces hold far more than n held-out items; the cap only guards against a misuse
    # (an n beyond the split) turning into an endless loop.
    for _ in range(max(1000, 1000 * n)):
        if len(items) >= n:
            break
        item = impl.sample(rng)
        if item not in seen and is_held_out(task_name, item):
            seen.add(item)
            items.append(item)
    return items


def sample_training_item(task_name: str, rng: random.Random) -> str:
    """One random training item (never a held-out one) drawn with *rng*."""
    impl = _impl(task_name)
    while True:
        item = impl.sample(rng)
        if not is_held_out(task_name, item):
            return item


def training_items(task_name: str, seed: int = 0) -> Iterator[str]:
    """An endless, seed-determined stream of training items for one task (held-out items never appear)."""
    rng = random.Random(f"train|{task_name}|{seed}")
    while True:
        yield sample_training_item(task_name, rng)
