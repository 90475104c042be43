"""Validators that judge a model's answer inside a level test.

Every failure is an :class:`AssertionError` whose message reads like a good assertion (the plugin stores
it in the iteration's artifact); :class:`~pytest_quantgate.errors.ValidationError` is raised only when a
validator cannot judge at all (bad arguments, a sandbox that cannot start).

* code: :func:`extract_code` (raises :class:`NoCodeFound`), :func:`run_hidden_tests` /
  :func:`assert_hidden_tests_pass` (pytest in a guarded child process), :func:`inspect_source` and the
  ``assert_defines_*`` / ``assert_calls`` / ``assert_uses`` / ``assert_imports`` helpers;
* prose: :func:`check_text` / :func:`assert_text` with :class:`TextRules`, :func:`parse_json`;
* short answers: :func:`extract_choice` / :func:`assert_choice`, :func:`extract_number` /
  :func:`assert_number`, :func:`normalize` / :func:`assert_exact`.

See ``docs/validators.md`` for examples and for what the sandbox does and does not guard against.
"""

from __future__ import annotations

from pytest_quantgate.validators.answers import (
    assert_choice,
    assert_exact,
    assert_number,
    extract_choice,
    extract_number,
    normalize,
)
from pytest_quantgate.validators.extract import CodeBlock, NoCodeFound, extract_code, find_code_blocks
from pytest_quantgate.validators.sandbox import (
    HiddenTestResult,
    Limits,
    assert_hidden_tests_pass,
    hidden_test_names,
    run_hidden_tests,
)
from pytest_quantgate.validators.source import (
    ClassInfo,
    FunctionInfo,
    SourceInfo,
    UnparsableCode,
    assert_calls,
    assert_defines_class,
    assert_defines_function,
    assert_imports,
    assert_not_calls,
    assert_not_imports,
    assert_uses,
    inspect_source,
)
from pytest_quantgate.validators.text import (
    TextRules,
    assert_text,
    check_text,
    count_words,
    find_phrase,
    paragraphs,
    parse_json,
)

__all__ = [
    "ClassInfo",
    "CodeBlock",
    "FunctionInfo",
    "HiddenTestResult",
    "Limits",
    "NoCodeFound",
    "SourceInfo",
    "TextRules",
    "UnparsableCode",
    "assert_calls",
    "assert_choice",
    "assert_defines_class",
    "assert_defines_function",
    "assert_exact",
    "assert_hidden_tests_pass",
    "assert_imports",
    "assert_not_calls",
    "assert_not_imports",
    "assert_number",
    "assert_text",
    "assert_uses",
    "check_text",
    "count_words",
    "extract_choice",
    "extract_code",
    "extract_number",
    "find_code_blocks",
    "find_phrase",
    "hidden_test_names",
    "inspect_source",
    "normalize",
    "paragraphs",
    "parse_json",
    "run_hidden_tests",
]
