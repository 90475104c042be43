"""The scripted answers the example suites are checked with (see scripted_server.py and
tests/plugin/test_example_suites.py): for every level a known-good answer and a known-bad one, each keyed by
a fingerprint, a distinctive substring of the level's prompt.

The good answers are written to pass their validators; each bad answer is a plausible wrong answer that
must fail for a reason the test can name (``BAD_REASONS``). None of it is a model's output or a figure.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from peers.scripted_server import Answer

REPO = Path(__file__).resolve().parents[2]
KNOWLEDGE_ITEMS = yaml.safe_load((REPO / "example_suites" / "knowledge" / "items.yaml").read_text(encoding="utf-8"))


def fenced(prose: str, code: str, language: str = "python") -> str:
    """An answer as models write it: a sentence of prose, then the code in a fence."""
    return f"{prose}\n\n```{language}\n{code}```\n"


# -- coding ---------------------------------------------------------------------------------------------

# Fingerprints: a phrase that only that level's prompt contains.
FIFO = "first-in, first-out job queue"
RETRY = "retry policy using exponential backoff"
PRIORITY = "priority scheduler for jobs"
RACE = "Find the bug and fix it"
COMPOSITION = "runs jobs from a queue with retries"

FIFO_GOOD = '''\
import threading
from collections import deque


class QueueEmpty(Exception):
    """Raised by get() and peek() on an empty queue."""


class QueueFull(Exception):
    """Raised by put() when a bounded queue is full."""


class JobQueue:
    def __init__(self, maxsize: int = 0):
        self.maxsize = maxsize
        self._items = deque()
        self._lock = threading.Lock()

    def put(self, job) -> None:
        with self._lock:
            if self.maxsize and len(self._items) >= self.maxsize:
                raise QueueFull(f"queue holds {self.maxsize} jobs")
            self._items.append(job)

    def get(self):
        with self._lock:
            if not self._items:
                raise QueueEmpty("no job waiting")
            return self._items.popleft()

    def peek(self):
        with self._lock:
            if not self._items:
                raise QueueEmpty("no job waiting")
            return self._items[0]

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
'''

FIFO_LIFO = """\
class QueueEmpty(Exception):
    pass


class QueueFull(Exception):
    pass


class JobQueue:
    def __init__(self, maxsize=0):
        self.maxsize = maxsize
        self._items = []

    def put(self, job):
        if self.maxsize and len(self._items) >= self.maxsize:
            raise QueueFull()
        self._items.append(job)

    def get(self):
        if not self._items:
            raise QueueEmpty()
        return self._items.pop()

    def peek(self):
        if not self._items:
            raise QueueEmpty()
        return self._items[-1]

    def __len__(self):
        return len(self._items)
"""

RETRY_GOOD = """\
import random
import time


class RetryPolicy:
    def __init__(self, max_attempts: int = 3, base_delay: float = 0.1, factor: float = 2.0,
                 max_delay: float = 5.0, jitter: float = 0.1, retry_on: tuple = (Exception,)):
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if base_delay < 0:
            raise ValueError("base_delay must not be negative")
        if factor < 1:
            raise ValueError("factor must be at least 1")
        if not 0 <= jitter <= 1:
            raise ValueError("jitter must lie between 0 and 1")
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.factor = factor
        self.max_delay = max_delay
        self.jitter = jitter
        self.retry_on = tuple(retry_on)

    def delay(self, retry: int, rng=None) -> float:
        if retry < 1:
            raise ValueError("retry numbers start at 1")
        nominal = min(self.max_delay, self.base_delay * self.factor ** (retry - 1))
        uniform = rng.uniform if rng is not None else random.uniform
        return nominal * uniform(1 - self.jitter, 1 + self.jitter)

    def call(self, func, *args, sleep=time.sleep, rng=None, **kwargs):
        for attempt in range(1, self.max_attempts + 1):
            try:
                return func(*args, **kwargs)
            except self.retry_on:
                if attempt == self.max_attempts:
                    raise
            sleep(self.delay(attempt, rng))
        raise AssertionError("unreachable")
"""

RETRY_BAD = """\
import random
import time


class RetryPolicy:
    def __init__(self, max_attempts=3, base_delay=0.1, factor=2.0, max_delay=5.0, jitter=0.1,
                 retry_on=(Exception,)):
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.factor = factor
        self.max_delay = max_delay
        self.jitter = jitter
        self.retry_on = retry_on

    def delay(self, retry, rng=None):
        rng = rng or random
        return self.base_delay * self.factor ** retry + rng.uniform(0, self.jitter)

    def call(self, func, *args, sleep=time.sleep, rng=None, **kwargs):
        for attempt in range(self.max_attempts + 1):
            try:
                return func(*args, **kwargs)
            except Exception:
                if attempt == self.max_attempts:
                    raise
                sleep(self.delay(attempt, rng))
"""

PRIORITY_GOOD = """\
import heapq
import itertools


class PriorityScheduler:
    def __init__(self):
        self._heap = []
        # The submission counter breaks ties: equal priorities keep their order, jobs are never compared.
        self._counter = itertools.count()

    def submit(self, job, priority: int = 0) -> None:
        heapq.heappush(self._heap, (priority, next(self._counter), job))

    def next(self):
        if not self._heap:
            raise IndexError("no job waiting")
        return heapq.heappop(self._heap)[2]

    def peek(self):
        if not self._heap:
            raise IndexError("no job waiting")
        return self._heap[0][2]

    def drain(self) -> list:
        jobs = [entry[2] for entry in sorted(self._heap)]
        self._heap.clear()
        return jobs

    def __len__(self) -> int:
        return len(self._heap)
"""

PRIORITY_UNSTABLE = """\
import heapq


class PriorityScheduler:
    def __init__(self):
        self._heap = []

    def submit(self, job, priority=0):
        heapq.heappush(self._heap, (priority, job))

    def next(self):
        return heapq.heappop(self._heap)[1]

    def peek(self):
        return self._heap[0][1]

    def drain(self):
        jobs = []
        while self._heap:
            jobs.append(self.next())
        return jobs

    def __len__(self):
        return len(self._heap)
"""

RACE_GOOD = '''\
import threading


class JobRegistry:
    """Runs each job's expensive setup once and hands every caller the same result."""

    def __init__(self, setup):
        self._setup = setup
        self._results = {}
        self._lock = threading.Lock()  # guards _results and _id_locks only, never held during setup
        self._id_locks = {}

    def get(self, job_id):
        with self._lock:
            if job_id in self._results:
                return self._results[job_id]
            id_lock = self._id_locks.setdefault(job_id, threading.Lock())
        with id_lock:  # one setup per id at a time; other ids are not held up
            with self._lock:
                if job_id in self._results:
                    return self._results[job_id]
            result = self._setup(job_id)
            with self._lock:
                self._results[job_id] = result
                self._id_locks.pop(job_id, None)
            return result

    def __len__(self):
        with self._lock:
            return len(self._results)
'''

RACE_HALF_FIX = """\
import threading


class JobRegistry:
    def __init__(self, setup):
        self._setup = setup
        self._results = {}
        self._lock = threading.Lock()

    def get(self, job_id):
        if job_id not in self._results:
            result = self._setup(job_id)
            with self._lock:
                # setdefault keeps the first result, so every caller gets the same object
                self._results.setdefault(job_id, result)
        return self._results[job_id]

    def __len__(self):
        return len(self._results)
"""

COMPOSITION_GOOD = """\
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable


@dataclass
class Job:
    name: str
    func: Callable[[], Any]
    attempts: int = 0


class RetryPolicy:
    def __init__(self, max_attempts: int = 3, base_delay: float = 0.01, factor: float = 2.0,
                 max_delay: float = 1.0):
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.factor = factor
        self.max_delay = max_delay

    def delay(self, retry: int) -> float:
        return min(self.max_delay, self.base_delay * self.factor ** (retry - 1))


class JobQueue:
    def __init__(self):
        self._jobs = deque()

    def put(self, job) -> None:
        self._jobs.append(job)

    def get(self):
        if not self._jobs:
            raise IndexError("the queue is empty")
        return self._jobs.popleft()

    def __len__(self) -> int:
        return len(self._jobs)


class Worker:
    def __init__(self, queue, policy, sleep=time.sleep):
        self.queue = queue
        self.policy = policy
        self.sleep = sleep
        self.failed = []

    def run(self) -> dict:
        results = {}
        while len(self.queue) > 0:
            job = self.queue.get()
            for attempt in range(1, self.policy.max_attempts + 1):
                job.attempts += 1
                try:
                    results[job.name] = job.func()
                    break
                except Exception as exc:
                    if attempt == self.policy.max_attempts:
                        self.failed.append((job.name, exc))
                    else:
                        self.sleep(self.policy.delay(attempt))
        return results
"""

COMPOSITION_REIMPLEMENTED = """\
import time
from collections import deque
from dataclasses import dataclass


@dataclass
class Job:
    name: str
    func: object
    attempts: int = 0


class RetryPolicy:
    def __init__(self, max_attempts=3, base_delay=0.01, factor=2.0, max_delay=1.0):
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.factor = factor
        self.max_delay = max_delay

    def delay(self, retry):
        return min(self.max_delay, self.base_delay * self.factor ** (retry - 1))


class JobQueue:
    def __init__(self):
        self.items = deque()

    def put(self, job):
        self.items.append(job)

    def get(self):
        return self.items.popleft()

    def __len__(self):
        return len(self.items)


class Worker:
    def __init__(self, queue, policy, sleep=time.sleep):
        self.queue = queue
        self.policy = policy
        self.sleep = sleep
        self.failed = []

    def run(self):
        results = {}
        while self.queue.items:
            job = self.queue.items.popleft()
            for attempt in range(self.policy.max_attempts):
                job.attempts += 1
                try:
                    results[job.name] = job.func()
                    break
                except Exception as exc:
                    self.sleep(0.01 * 2 ** attempt)
                    last = exc
            else:
                self.failed.append((job.name, last))
        return results
"""

CODING_GOOD = {
    FIFO: fenced("A deque under a lock keeps the order and survives concurrent callers.", FIFO_GOOD),
    RETRY: fenced("Here is the policy; `delay` caps before it applies the jitter.", RETRY_GOOD),
    PRIORITY: fenced("A heap of (priority, submission number, job): the counter keeps ties stable.", PRIORITY_GOOD),
    RACE: fenced(
        "The bug: the check and the setup are not atomic, so several threads see the id missing and all run "
        "setup; the fix takes a lock per job id around the setup.",
        RACE_GOOD,
    ),
    COMPOSITION: fenced("The worker drives the three parts through their methods.", COMPOSITION_GOOD),
}

CODING_BAD = {
    FIFO: fenced("A list works as a queue.", FIFO_LIFO),  # pops from the end: last in, first out
    RETRY: fenced("Exponential backoff with jitter:", RETRY_BAD),  # no cap, additive jitter, one retry too many
    PRIORITY: fenced("heapq does the ordering.", PRIORITY_UNSTABLE),  # (priority, job): ties compare the jobs
    # Gives every caller the same object, but setup still runs once per racing thread.
    RACE: fenced("The bug: two threads can both store a result; setdefault keeps the first.", RACE_HALF_FIX),
    # Pops the queue's deque and computes its own backoff: the source checks see it.
    COMPOSITION: fenced("The worker:", COMPOSITION_REIMPLEMENTED),
}

# What each bad answer's miss must say (a substring of the sample's error, per level name).
CODING_BAD_REASONS = {
    "test_fifo_queue": "test_jobs_come_out_in_the_order_they_went_in",
    "test_retry_backoff": "test_delay_is_capped_at_max_delay",
    "test_priority_scheduling": "test_equal_priorities_keep_submission_order",
    "test_fix_the_race": "test_concurrent_gets_for_one_id_run_setup_exactly_once",
    "test_compose_queue_retry_worker": "class 'Worker' does not call 'get'",
}


# -- malformed answers to the FIFO level (the "bad input" tests): script name -> (answer, reason) ------

MALFORMED = {
    "no-code": (
        Answer(
            "Use a deque guarded by a lock: append on put, popleft on get, and raise the errors when the "
            "queue is empty or full."
        ),
        "the answer has no python code",
    ),
    "truncated": (
        Answer(
            "Here is the queue:\n\n```python\nfrom collections import deque\n\n\nclass JobQueue:\n"
            "    def __init__(self, maxsize=0):\n        self._items = deque(\n",
            finish_reason="length",
        ),
        "the code does not parse",
    ),
    "wrong-language": (
        Answer(fenced("In JavaScript:", "class JobQueue {\n  put(job) { this.items.push(job); }\n}\n", "javascript")),
        "found a ```javascript block but no python",
    ),
    "empty": (Answer(""), "the answer is empty"),
    "reasoning-only": (
        Answer("", reasoning=fenced("Let me draft it first.", FIFO_GOOD)),
        "the reasoning_content has python code, but use_reasoning=False leaves it out",
    ),
}


# -- constraints ---------------------------------------------------------------------------------------

VOICE = "stow the mooring lines"
MULTI_HOP = "Three depots ship parcels"
NUANCE = 'thread-safe" and "reentrant'
STRICT = "deployment scripts in version control"
EDGE_CASE = "Apply this refund policy exactly as written"
CONTINUATION = "Continue this story in the same voice"

STRICT_GOOD = """\
A deployment script is the one piece of code that touches production every time. When it lives on one
person's laptop, the team depends on that laptop, and nobody can say which version ran last Tuesday.

Version control gives the scripts a history. Every change has an author, a date and a reason, and a bad
change can be undone in a minute. Reviews catch the typo that would have stopped the database.

For a small team this matters more, not less. People go on holiday and people leave. With the scripts in
the repository, whoever is on call can read them, run them and trust them.
"""

STRICT_BAD = """\
# Why version control?

Let us delve into it. Version control is a **game changer** for deployment scripts.

- history
- reviews

It's important to note that small teams benefit too.

In conclusion, keep them in git.
"""

CONSTRAINTS_GOOD = {
    VOICE: (
        "Coil each line clockwise. Tight loops, no slack. Lash the coils to the starboard cleats with two half "
        "hitches. Check the knots. Then check them again. Nothing goes in the forward locker; it floods. If a "
        "line fouls, you call me. You do not improvise in a storm.\n\n— Bramble"
    ),
    MULTI_HOP: (
        "North ships 250 × 1.4 = 350 parcels a day. East ships 350 + 250 − 120 = 480 a day.\n"
        "Per day: (350 + 250) × 2.5 kg = 1,500 kg, plus 480 × 4 kg = 1,920 kg, so 3,420 kg.\n"
        "Over five days: 3,420 × 5 = 17,100 kg.\n\nAnswer: 17100"
    ),
    NUANCE: (
        "Thread-safe means concurrent calls from several threads behave correctly, usually thanks to locks. "
        "Reentrant means a call can be interrupted and the function entered again before the first call "
        "finishes, for example from a signal handler. A function that takes a lock is thread-safe but not "
        "reentrant: re-entered from a signal handler it deadlocks on its own lock. A function that only "
        "uses its arguments and locals but updates a shared counter without a lock, restoring it before it "
        "returns, can be reentrant on one thread yet not thread-safe."
    ),
    STRICT: STRICT_GOOD,
    EDGE_CASE: (
        "APPROVE\nThe request came exactly 30 days after delivery, which is no more than 30 days, and the "
        "policy says use does not matter."
    ),
    CONTINUATION: (
        "You strike a match. The wick takes it slowly, the way old men take advice. The glass throws the "
        "light back at you, then out across the water.\n\n"
        "Hours pass. You wipe the lens, you trim the wick, you listen. Near dawn a horn sounds twice from "
        "the harbour mouth, and you let out a breath you did not know you held. The lamp stays lit."
    ),
}

CONSTRAINTS_BAD = {
    VOICE: "Aye aye, cadet! Coil the lines and throw them below decks! Easy as pie!",
    MULTI_HOP: "North 350, East 350 + 250 = 600. Per day 600 × 2.5 + 600 × 4 = 3,900 kg.\n\nAnswer: 19500",
    NUANCE: "",
    STRICT: STRICT_BAD,
    EDGE_CASE: "DENY\nThe request arrived 30 days after delivery and the item has been used.",
    CONTINUATION: "Suddenly the door bursts open and a storm rolls in. The keeper runs down the stairs.",
}

CONSTRAINTS_BAD_REASONS = {
    "test_voice_consistency": "banned phrase '!'",
    "test_multi_hop_reasoning": "answered 19500, expected 17100",
    "test_nuanced_distinction": "the answer is empty",
    "test_strict_constraints": "banned phrase 'delve'",
    "test_edge_case_judgement": "expected 'APPROVE'",
    "test_continuation_in_voice": "1 paragraphs (expected exactly 2)",
}


# -- knowledge -----------------------------------------------------------------------------------------

# The ways models state a choice, in turn, so that extract_choice is exercised on each.
_GOOD_FORMS = (
    "The correct option is {text}.\n\nAnswer: {letter}",
    "Let me check each option. Only {text} fits.\n\n**Answer: {letter}**",
    "Working it through, the answer is ({letter}).",
    "{text} is right.\n\n{letter}",
)
_BAD_FORMS = (
    "Answer: {letter}",
    "I am fairly sure the answer is ({letter}).",
    "It is either {letter} or {other}, hard to say.",  # no single answer
)


def _knowledge(good: bool) -> tuple[dict[str, str], dict[str, str]]:
    answers: dict[str, str] = {}
    reasons: dict[str, str] = {}
    for n, item in enumerate(KNOWLEDGE_ITEMS):
        right = item["answer"]
        if good:
            form = _GOOD_FORMS[n % len(_GOOD_FORMS)]
            answers[item["question"]] = form.format(letter=right, text=item["choices"][right])
            continue
        wrong = [letter for letter in "ABCD" if letter != right]
        form = _BAD_FORMS[n % len(_BAD_FORMS)]
        answers[item["question"]] = form.format(letter=wrong[0], other=wrong[1])
        level = f"test_question[{item['id']}]"
        if "either" in form:
            reasons[level] = f"no single answer among ABCD found (expected {right})"
        else:
            reasons[level] = f"answered {wrong[0]}, expected {right}"
    return answers, reasons


KNOWLEDGE_GOOD, _ = _knowledge(good=True)
KNOWLEDGE_BAD, KNOWLEDGE_BAD_REASONS = _knowledge(good=False)


GOOD = {**CODING_GOOD, **CONSTRAINTS_GOOD, **KNOWLEDGE_GOOD}
BAD = {**CODING_BAD, **CONSTRAINTS_BAD, **KNOWLEDGE_BAD}
BAD_REASONS = {"coding": CODING_BAD_REASONS, "constraints": CONSTRAINTS_BAD_REASONS, "knowledge": KNOWLEDGE_BAD_REASONS}
