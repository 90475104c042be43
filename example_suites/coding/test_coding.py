"""Coding levels: the model writes Python, and hidden pytest tests judge what it wrote.

Each level is one prompt that names the exact classes, functions and signatures the hidden tests use; the
code is pulled out of the answer (extract_code) and run against the tests in ``hidden/`` in a guarded
child process (assert_hidden_tests_pass). The composition level also inspects the source, so that a
solution which re-implements the parts instead of using them is a miss even when it behaves.

Thinking-model settings (enable_thinking, a large max_tokens, a long per-request timeout) belong in the
preset, so the levels set only their points.

    pytest example_suites/coding --preset NAME
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_quantgate.validators import (
    assert_calls,
    assert_defines_class,
    assert_hidden_tests_pass,
    extract_code,
    inspect_source,
)

HIDDEN = Path(__file__).parent / "hidden"
# Wall-clock limit for one run of a level's hidden tests (the slowest, the race tests, need about 1 s).
HIDDEN_TIMEOUT_S = 30

pytestmark = pytest.mark.gate(
    # Quality: a good quant passes the three 25-point basics every time and may drop the 15-point fix or
    # the 10-point composition now and then; a mean under 85 means it loses a basic level regularly.
    "score_mean >= 85",
    # Consistency: a damaged quant often shows as spread before it shows in the mean; 12 is about one
    # 10-15 point level changing hands between iterations.
    "score_sigma <= 12",
    # No bad day: losing two basic levels in the same iteration (50 points) is never acceptable.
    "score_min >= 60",
    # Speed: below this a thinking model's answers take minutes each (a 15-iteration run takes hours),
    # and it catches a quant that no longer fits on the GPU and spills layers to the CPU.
    "tps_mean >= 30",
)

ANSWER_FORMAT = "Answer with the complete module in one ```python code block; no example usage, no tests."


def solution_code(answer, *names: str) -> str:
    """The answer's Python code, parsed; a miss that says why when there is none (or it was cut off)."""
    __tracebackhide__ = True
    # A truncated answer shows up as code that does not parse; say so, or it reads as the model's syntax error.
    cut = " (the answer was cut off at max_tokens: finish_reason 'length')" if answer.finish_reason == "length" else ""
    try:
        code = extract_code(answer.content, names=names, reasoning=answer.reasoning)
        inspect_source(code)
    except AssertionError as exc:
        raise AssertionError(f"{exc}{cut}") from None
    return code


def hidden_tests(name: str) -> str:
    return (HIDDEN / name).read_text(encoding="utf-8")


FIFO_PROMPT = f"""\
Write a Python module with a first-in, first-out job queue.

- `class QueueEmpty(Exception)` and `class QueueFull(Exception)`.
- `class JobQueue` with:
  - `__init__(self, maxsize: int = 0)`: `maxsize` 0 means unbounded.
  - `put(self, job) -> None`: add `job` at the back; raise `QueueFull` when the queue already holds
    `maxsize` jobs (and `maxsize` is not 0).
  - `get(self)`: remove and return the oldest job; raise `QueueEmpty` when there is none.
  - `peek(self)`: return the oldest job without removing it; raise `QueueEmpty` when there is none.
  - `__len__(self) -> int`: the number of waiting jobs.

A job can be any object, including `None` and unhashable ones. Several threads may call `put` and `get`
at the same time; no job may be lost or duplicated. Do not use `queue.Queue`.

{ANSWER_FORMAT}
"""


@pytest.mark.level(points=25)
def test_fifo_queue(llm):
    answer = llm.chat(FIFO_PROMPT)
    code = solution_code(answer, "JobQueue", "QueueEmpty", "QueueFull")
    assert_hidden_tests_pass(code, hidden_tests("test_fifo.py"), timeout_s=HIDDEN_TIMEOUT_S)


RETRY_PROMPT = f"""\
Write a Python module with a retry policy using exponential backoff and jitter.

`class RetryPolicy` with:

- `__init__(self, max_attempts: int = 3, base_delay: float = 0.1, factor: float = 2.0,
  max_delay: float = 5.0, jitter: float = 0.1, retry_on: tuple = (Exception,))`.
  Raise `ValueError` when `max_attempts < 1`, `base_delay < 0`, `factor < 1`, or `jitter` is not
  between 0 and 1 (inclusive).
- `delay(self, retry: int, rng=None) -> float`: the wait in seconds before retry number `retry`
  (1 for the first retry). The nominal delay is `min(max_delay, base_delay * factor ** (retry - 1))`; the
  result is the nominal delay multiplied by a factor drawn uniformly from `[1 - jitter, 1 + jitter]`,
  drawn with `rng.uniform` when `rng` (a `random.Random`) is given, else with `random.uniform`. So the
  result always lies between `nominal * (1 - jitter)` and `nominal * (1 + jitter)`. Raise `ValueError`
  when `retry < 1`.
- `call(self, func, *args, sleep=time.sleep, rng=None, **kwargs)`: call `func(*args, **kwargs)` and return
  its result. When it raises an exception that is an instance of one of `retry_on` and attempts remain,
  call `sleep(self.delay(n, rng))` (n = 1 before the second attempt, 2 before the third, ...) and try
  again. `func` is called at most `max_attempts` times in all; after the last failed attempt, re-raise its
  exception. An exception that is not an instance of `retry_on` propagates at once, without sleeping.

{ANSWER_FORMAT}
"""


@pytest.mark.level(points=25)
def test_retry_backoff(llm):
    answer = llm.chat(RETRY_PROMPT)
    code = solution_code(answer, "RetryPolicy")
    assert_hidden_tests_pass(code, hidden_tests("test_retry.py"), timeout_s=HIDDEN_TIMEOUT_S)


PRIORITY_PROMPT = f"""\
Write a Python module with a priority scheduler for jobs.

`class PriorityScheduler` with:

- `submit(self, job, priority: int = 0) -> None`: add a job. A smaller `priority` number runs first
  (0 before 5; negative numbers are allowed).
- `next(self)`: remove and return the job that runs next; raise `IndexError` when there is none.
- `peek(self)`: return the job that runs next without removing it; raise `IndexError` when there is none.
- `drain(self) -> list`: remove all jobs and return them in the order they would run.
- `__len__(self) -> int`: the number of waiting jobs.

Jobs with equal priority run in the order they were submitted (stable order), also when jobs are submitted
and taken in turns. Jobs can be any objects, including ones that cannot be compared with each other (such
as dicts). `submit` and `next` must take O(log n) time.

{ANSWER_FORMAT}
"""


@pytest.mark.level(points=25)
def test_priority_scheduling(llm):
    answer = llm.chat(PRIORITY_PROMPT)
    code = solution_code(answer, "PriorityScheduler")
    assert_hidden_tests_pass(code, hidden_tests("test_priority.py"), timeout_s=HIDDEN_TIMEOUT_S)


BUGGY_REGISTRY = """\
import threading


class JobRegistry:
    \"\"\"Runs each job's expensive setup once and hands every caller the same result.\"\"\"

    def __init__(self, setup):
        self._setup = setup  # setup(job_id) -> result; slow: reads files, opens connections
        self._results = {}
        self._lock = threading.Lock()

    def get(self, job_id):
        if job_id not in self._results:
            result = self._setup(job_id)
            with self._lock:
                self._results[job_id] = result
        return self._results[job_id]

    def __len__(self):
        return len(self._results)
"""

RACE_PROMPT = f"""\
Worker threads call `registry.get(job_id)` on the class below. In production, `setup` sometimes runs
several times for the same job id, and callers get different result objects. Find the bug and fix it.

```python
{BUGGY_REGISTRY}```

The fixed class must keep the name `JobRegistry`, the constructor `__init__(self, setup)`, `get(self,
job_id)` and `__len__(self)` (the number of job ids set up), and must meet all of these:

- `setup` runs exactly once per job id, however many threads call `get` for it at the same time, and every
  caller gets the same result object.
- A slow `setup` for one job id must not hold up `get` for any other job id: setups of different ids may
  run at the same time, and ids already set up are returned at once.
- If `setup` raises, the exception propagates to the caller of `get` and nothing is stored, so a later
  `get` for that id runs `setup` again.

Say in one sentence what the bug was, then give the whole corrected module in one ```python code block.
"""


@pytest.mark.level(points=15)
def test_fix_the_race(llm):
    answer = llm.chat(RACE_PROMPT)
    code = solution_code(answer, "JobRegistry")
    assert_hidden_tests_pass(code, hidden_tests("test_race_fix.py"), timeout_s=HIDDEN_TIMEOUT_S)


COMPOSITION_PROMPT = f"""\
Write a Python module that runs jobs from a queue with retries, built from three small parts and a worker
that uses them.

- `Job`: a dataclass with fields `name: str`, `func` (a callable taking no arguments) and
  `attempts: int = 0` (how many times `func` has been called).
- `class RetryPolicy` with `__init__(self, max_attempts: int = 3, base_delay: float = 0.01,
  factor: float = 2.0, max_delay: float = 1.0)`, keeping `max_attempts` as an attribute, and
  `delay(self, retry: int) -> float` returning `min(max_delay, base_delay * factor ** (retry - 1))`
  (no jitter).
- `class JobQueue`: first in, first out, with `put(self, job) -> None`, `get(self)` (remove and return the
  oldest job; raise `IndexError` when empty) and `__len__(self) -> int`.
- `class Worker` with `__init__(self, queue, policy, sleep=time.sleep)`, an attribute `failed` (a list,
  initially empty) and `run(self) -> dict`. `run` takes jobs with `queue.get()` until the queue is empty.
  For each job it calls `job.func()` up to `policy.max_attempts` times, adding 1 to `job.attempts` for each
  call; between attempts it calls `sleep(policy.delay(n))` for retry n = 1, 2, .... When a call succeeds,
  the result is stored under `job.name`; when the last attempt fails, `(job.name, exception)` with the last
  exception is appended to `failed` and the worker goes on with the next job. `run` returns the dict of
  results.

`Worker` must use the parts through their methods (`queue.get()`, `policy.delay()`, `job.func()`): do not
re-implement the queue or the backoff inside it.

{ANSWER_FORMAT}
"""


@pytest.mark.level(points=10)
def test_compose_queue_retry_worker(llm):
    answer = llm.chat(COMPOSITION_PROMPT)
    code = solution_code(answer, "Job", "RetryPolicy", "JobQueue", "Worker")
    # Real use of the parts, read from the source: a Worker that pops the queue's list itself or computes
    # its own backoff may pass the behaviour tests by accident, but it is not the composition asked for.
    source = inspect_source(code)
    assert_defines_class(source, "Job")
    assert_defines_class(source, "RetryPolicy", methods=["delay"])
    assert_defines_class(source, "JobQueue", methods=["put", "get", "__len__"])
    assert_defines_class(source, "Worker", methods=["run"])
    assert_calls(source, "get", within="Worker")
    assert_calls(source, "delay", within="Worker")
    assert_calls(source, "func", within="Worker")
    assert_hidden_tests_pass(code, hidden_tests("test_composition.py"), timeout_s=HIDDEN_TIMEOUT_S)
