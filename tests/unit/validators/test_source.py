"""Tests of pytest_quantgate.validators.source."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_quantgate.validators import (
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

CODE = """
import heapq
import collections.abc
import numpy as np
from dataclasses import dataclass, field as dc_field
from heapq import heappop as pop_min


class Base:
    def size(self):
        return len(self._items)


@dataclass
class Job:
    priority: int
    name: str = dc_field(default="")


class JobQueue(Base):
    def __init__(self):
        self._items: list[Job] = []

    def put(self, job: Job) -> None:
        heapq.heappush(self._items, job)

    def get(self) -> Job:
        return pop_min(self._items)

    async def drain(self, *jobs, limit=3, **opts):
        super().__init__()
        return np.array(sorted(self._items))


def make_queue(n):
    return JobQueue()
"""


def test_inspect_source_describes_the_module() -> None:
    info = inspect_source(CODE)
    assert set(info.classes) == {"Base", "Job", "JobQueue"}
    queue = info.classes["JobQueue"]
    assert queue.bases == ("Base",)
    assert set(queue.methods) == {"__init__", "put", "get", "drain"}
    assert queue.methods["drain"].is_async
    assert queue.methods["drain"].args == ("self", "*jobs", "limit", "**opts")
    assert info.classes["Job"].decorators == ("dataclasses.dataclass",)
    assert set(info.functions) == {"make_queue"}
    assert {"heapq", "collections.abc", "numpy", "dataclasses", "dataclasses.field", "heapq.heappop"} <= info.imports
    assert "heapq.heappush" in info.calls
    assert "heapq.heappop" in info.calls  # resolved through "from heapq import heappop as pop_min"
    assert "numpy.array" in info.calls
    assert "super().__init__" in info.calls


def test_assert_defines_class() -> None:
    cls = assert_defines_class(CODE, "JobQueue", methods=["put", "get", "size"], bases=["Base"])
    assert cls.name == "JobQueue"
    with pytest.raises(AssertionError, match=r"class 'Queue' is not defined; classes defined: Base, Job, JobQueue"):
        assert_defines_class(CODE, "Queue")
    with pytest.raises(AssertionError, match=r"class 'JobQueue' lacks method\(s\) 'peek'; it has: __init__, drain"):
        assert_defines_class(CODE, "JobQueue", methods=["peek"])
    with pytest.raises(AssertionError, match=r"does not derive from 'dict'; its bases: Base"):
        assert_defines_class(CODE, "JobQueue", bases=["dict"])


def test_assert_defines_function() -> None:
    assert assert_defines_function(CODE, "make_queue", args=["n"]).name == "make_queue"
    with pytest.raises(AssertionError, match=r"function 'solve' is not defined; functions defined: make_queue"):
        assert_defines_function(CODE, "solve")
    with pytest.raises(AssertionError, match=r"takes \(n\), expected \(n, m\)"):
        assert_defines_function(CODE, "make_queue", args=["n", "m"])


def test_assert_calls_by_scope_and_tail() -> None:
    info = inspect_source(CODE)
    assert_calls(info, "heapq.heappush")
    assert_calls(info, "heappush", within="JobQueue.put")
    assert_calls(info, "heappop", within="JobQueue")
    assert_calls(info, "len", within="JobQueue.size")  # inherited method
    assert_calls(info, "JobQueue", within="make_queue")
    with pytest.raises(AssertionError, match=r"JobQueue.get\(\) does not call 'heappush'; it calls: heapq.heappop"):
        assert_calls(info, "heappush", within="JobQueue.get")
    with pytest.raises(AssertionError, match="'Nope' is neither a class nor a function"):
        assert_calls(info, "len", within="Nope")
    with pytest.raises(AssertionError, match=r"method 'JobQueue\.nope' is not defined"):
        assert_calls(info, "len", within="JobQueue.nope")


def test_assert_not_calls_and_imports() -> None:
    assert_not_calls(CODE, "print")
    with pytest.raises(AssertionError, match=r"calls 'sorted' \(sorted\), which the level forbids"):
        assert_not_calls(CODE, "sorted")
    assert_imports(CODE, "collections")
    assert_imports(CODE, "heapq")
    with pytest.raises(AssertionError, match="does not import 'bisect'; it imports:"):
        assert_imports(CODE, "bisect")
    assert_not_imports(CODE, "bisect")
    with pytest.raises(AssertionError, match="imports numpy, which the level forbids"):
        assert_not_imports(CODE, "numpy")


def test_assert_uses() -> None:
    assert_uses(CODE, "JobQueue", "Job")  # annotations
    assert_uses(CODE, "JobQueue", "Base")  # base class
    assert_uses(CODE, "JobQueue", "heapq")
    with pytest.raises(AssertionError, match="class 'Job' does not reference 'JobQueue'; it references:"):
        assert_uses(CODE, "Job", "JobQueue")
    with pytest.raises(AssertionError, match="class 'Nope' is not defined"):
        assert_uses(CODE, "Nope", "Job")


def test_unparsable_code_is_an_assertion_error() -> None:
    with pytest.raises(UnparsableCode, match=r"the code does not parse: .* at line 1"):
        inspect_source("def f(:\n")
    with pytest.raises(AssertionError):
        assert_defines_class("class (", "A")


@settings(max_examples=200, deadline=None)
@given(code=st.text())
def test_inspect_source_raises_only_unparsable_code(code: str) -> None:
    try:
        inspect_source(code)
    except UnparsableCode as exc:
        assert str(exc).startswith("the code does not parse")
