"""Tests of pytest_quantgate.validators.extract."""

from __future__ import annotations

import ast
import contextlib
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_quantgate.validators import NoCodeFound, extract_code, find_code_blocks

SOLUTION = "def add(a, b):\n    return a + b\n"


def test_single_tagged_block_with_prose_around() -> None:
    answer = f"Sure! Here is the function:\n\n```python\n{SOLUTION}```\n\nIt adds two numbers. Hope it helps."
    assert extract_code(answer) == SOLUTION


def test_untagged_and_tilde_fences() -> None:
    assert extract_code(f"```\n{SOLUTION}```") == SOLUTION
    assert extract_code(f"~~~py\n{SOLUTION}~~~") == SOLUTION
    assert extract_code(f"````python\n{SOLUTION}````") == SOLUTION


def test_crlf_answers_come_back_with_lf() -> None:
    answer = "Here:\r\n```python\r\ndef add(a, b):\r\n    return a + b\r\n```\r\n"
    assert extract_code(answer) == SOLUTION


def test_unterminated_fence_of_a_truncated_answer() -> None:
    answer = "```python\ndef add(a, b):\n    return a + b\n\ndef sub(a, b):\n    return a - b"
    code = extract_code(answer)
    assert code.endswith("return a - b\n")
    ast.parse(code)


def test_indented_fence_inside_a_list() -> None:
    answer = "1. Write the function:\n\n   ```python\n   def add(a, b):\n       return a + b\n   ```\n"
    assert extract_code(answer) == SOLUTION


def test_chooses_the_requested_language() -> None:
    js = "function add(a, b) { return a + b; }"
    answer = f"In JS:\n```javascript\n{js}\n```\nIn Python:\n```python\n{SOLUTION}```"
    assert extract_code(answer) == SOLUTION
    assert extract_code(answer, language="js") == "function add(a, b) { return a + b; }\n"


def test_wrong_language_is_named_in_the_failure() -> None:
    answer = "```javascript\nfunction add(a, b) { return a + b; }\n```"
    with pytest.raises(NoCodeFound, match=r"found a ```javascript block but no python") as info:
        extract_code(answer)
    assert info.value.kind == "wrong-language"
    assert isinstance(info.value, AssertionError)


def test_several_blocks_joined_by_names_in_order_with_imports() -> None:
    answer = (
        "First the imports:\n```python\nimport heapq\n```\n"
        "The queue:\n```python\nclass JobQueue:\n    def __init__(self):\n        self._h = []\n```\n"
        "A helper:\n```python\ndef make_queue():\n    return JobQueue()\n```\n"
        "Usage:\n```python\nq = make_queue()\nprint(q)\n```\n"
    )
    code = extract_code(answer, names=["JobQueue", "make_queue"])
    assert code.startswith("import heapq\n")
    assert code.index("class JobQueue") < code.index("def make_queue")
    assert "print(q)" not in code
    ast.parse(code)


def test_the_last_definition_of_a_name_wins() -> None:
    answer = (
        "Draft:\n```python\ndef add(a, b):\n    return a - b\n```\n"
        "Oops, fixed:\n```python\ndef add(a, b):\n    return a + b\n```\n"
    )
    assert extract_code(answer, names=["add"]) == SOLUTION


def test_names_defined_nowhere_fail_clearly() -> None:
    with pytest.raises(NoCodeFound, match=r"none defines 'Stack'") as info:
        extract_code(f"```python\n{SOLUTION}```", names=["Stack"])
    assert info.value.kind == "missing-names"


def test_without_names_the_longest_block_wins() -> None:
    answer = f"```python\n{SOLUTION}```\nExample:\n```python\nprint(add(1, 2))\n```"
    assert extract_code(answer) == SOLUTION


def test_untagged_prose_block_is_not_python() -> None:
    answer = "```\nThis is just a note in a box.\n```"
    with pytest.raises(NoCodeFound, match="empty or not python"):
        extract_code(answer)


def test_unfenced_answer_that_parses() -> None:
    assert extract_code(SOLUTION) == SOLUTION


def test_unfenced_code_among_prose() -> None:
    answer = (
        "Here is my solution. It uses a simple loop.\n\n"
        "def total(xs):\n    result = 0\n    for x in xs:\n        result += x\n    return result\n\n"
        "This runs in O(n) time, which is optimal."
    )
    code = extract_code(answer)
    assert code.startswith("def total(xs):")
    assert "optimal" not in code


def test_doctest_blocks_lose_their_prompts() -> None:
    answer = "```pycon\n>>> def add(a, b):\n...     return a + b\n>>> add(1, 2)\n3\n```"
    assert extract_code(answer) == "def add(a, b):\n    return a + b\nadd(1, 2)\n"


@pytest.mark.parametrize("answer", ["", "   \n\t\n"])
def test_empty_answer(answer: str) -> None:
    with pytest.raises(NoCodeFound, match="the answer is empty") as info:
        extract_code(answer)
    assert info.value.kind == "empty"


def test_prose_only_answer() -> None:
    with pytest.raises(NoCodeFound, match="no python code") as info:
        extract_code("I am not able to help with that request, sorry.")
    assert info.value.kind == "no-code"


def test_code_only_in_reasoning_is_ignored_by_default_but_named() -> None:
    reasoning = f"Let me think.\n```python\n{SOLUTION}```"
    with pytest.raises(NoCodeFound, match="reasoning_content has python code, but use_reasoning=False") as info:
        extract_code("The function adds numbers.", reasoning=reasoning)
    assert info.value.kind == "reasoning-only"
    assert extract_code("The function adds numbers.", reasoning=reasoning, use_reasoning=True) == SOLUTION


def test_answer_code_beats_reasoning_code() -> None:
    reasoning = "```python\ndef add(a, b):\n    return 0\n```"
    assert extract_code(f"```python\n{SOLUTION}```", reasoning=reasoning, use_reasoning=True) == SOLUTION


def test_no_code_anywhere_with_reasoning() -> None:
    with pytest.raises(NoCodeFound, match="the reasoning has no python code either"):
        extract_code("Nope.", reasoning="Hmm, hard.", use_reasoning=True)
    with pytest.raises(NoCodeFound, match="no python code") as info:
        extract_code("Nope.", reasoning="Hmm, hard.")
    assert "reasoning" not in str(info.value)


def test_find_code_blocks_reports_language_and_closure() -> None:
    blocks = find_code_blocks("a\n```Python title='x.py'\nx = 1\n```\n~~~\ny = 2")
    assert [(b.language, b.code, b.closed, b.line) for b in blocks] == [
        ("python", "x = 1", True, 2),
        ("", "y = 2", False, 5),
    ]


_FRAGMENTS = st.sampled_from(
    [
        "```",
        "```python",
        "~~~",
        "```js",
        "\n",
        "\r\n",
        "def f(",
        "):",
        "    return 1",
        ">>> ",
        "class A:",
        "(" * 50,
        "\x00",
        "def f(x):\n    return x\n",
        "for i in y:\n",
        "x = 1\n",
        "print(1)\n",
        "Here is the code.\n",
        "    ",
        "@dec\n",
        "import os\n",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    answer=st.one_of(st.text(), st.lists(st.one_of(_FRAGMENTS, st.text(max_size=20))).map("".join)),
    reasoning=st.one_of(st.none(), st.text(max_size=200)),
    use_reasoning=st.booleans(),
    names=st.lists(st.sampled_from(["f", "A", "add"]), max_size=2),
)
def test_extraction_never_raises_anything_but_no_code_found(
    answer: str, reasoning: str | None, use_reasoning: bool, names: list[str]
) -> None:
    try:
        code = extract_code(answer, names=names, reasoning=reasoning, use_reasoning=use_reasoning)
    except NoCodeFound as exc:
        assert str(exc)
    else:
        assert code.endswith("\n")


@pytest.mark.parametrize("text", ["for x in " * 20000, "(" * 100000, "x = 1\n" * 20000, "```\n" * 20000])
def test_pathological_answers_take_linear_time(text: str) -> None:
    # Regression guard against quadratic line heuristics; the bound is loose on purpose.
    start = time.monotonic()
    with contextlib.suppress(NoCodeFound):
        extract_code(text)
    assert time.monotonic() - start < 5
