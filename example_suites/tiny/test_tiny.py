"""The demo suite for the tiny presets: one level per task family, points weighted by difficulty.

Each iteration asks every level ITEMS fresh held-out items (never seen in training; a different draw per
iteration) through the raw completion endpoint, and the level passes when at least PASS_AT of them are
exactly right. Easy levels pass on every quant; the additions with carries are where quantization bites.

    pytest example_suites/tiny --preset tiny-f16 --preset tiny-q4_0
"""

from __future__ import annotations

import pytest

from pytest_quantgate.tinymodel import tasks

ITEMS = 10
PASS_AT = 9

# F16 meets these; Q4_0 does not (see docs/tiny-model.md for the per-quant accuracies behind them).
pytestmark = pytest.mark.gate("score_mean >= 90", "score_min >= 75", "tps_mean >= 50")


def ask(llm, task: str, iteration: int) -> None:
    """Ask ITEMS held-out items of *task*; fail the level (a miss) below PASS_AT correct."""
    __tracebackhide__ = True
    wrong = []
    items = tasks.held_out_items(task, ITEMS, seed=iteration)
    for item in items:
        answer = llm.complete(tasks.prompt(task, item)).content
        if not tasks.is_correct(task, item, answer):
            wrong.append(f"{tasks.prompt(task, item)}{answer.strip()!r} (expected {tasks.answer(task, item)})")
    correct = len(items) - len(wrong)
    assert correct >= PASS_AT, f"{task}: {correct}/{len(items)} correct, {PASS_AT} needed; wrong: {'; '.join(wrong)}"


@pytest.mark.level(points=tasks.TASKS["copy"].points)
def test_copy(llm, quantgate_iteration):
    ask(llm, "copy", quantgate_iteration)


@pytest.mark.level(points=tasks.TASKS["reverse"].points)
def test_reverse(llm, quantgate_iteration):
    ask(llm, "reverse", quantgate_iteration)


@pytest.mark.level(points=tasks.TASKS["inc"].points)
def test_increment(llm, quantgate_iteration):
    ask(llm, "inc", quantgate_iteration)


@pytest.mark.level(points=tasks.TASKS["add2"].points)
def test_add_two_digits(llm, quantgate_iteration):
    ask(llm, "add2", quantgate_iteration)


@pytest.mark.level(points=tasks.TASKS["add3"].points)
def test_add_three_terms(llm, quantgate_iteration):
    ask(llm, "add3", quantgate_iteration)
