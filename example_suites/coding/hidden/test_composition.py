"""Hidden tests for the composition level: run in the sandbox against the model's code saved as solution.py."""

import pytest
from solution import Job, JobQueue, RetryPolicy, Worker


def flaky(failures, value):
    """A job function that raises ConnectionError ``failures`` times, then returns ``value``."""
    state = {"left": failures}

    def func():
        if state["left"] > 0:
            state["left"] -= 1
            raise ConnectionError(f"{state['left']} failures left")
        return value

    return func


def test_job_counts_attempts_from_zero():
    job = Job("a", lambda: 1)
    assert job.name == "a"
    assert job.attempts == 0


def test_policy_delays_grow_and_are_capped():
    policy = RetryPolicy(max_attempts=5, base_delay=0.5, factor=2.0, max_delay=1.5)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == pytest.approx([0.5, 1.0, 1.5, 1.5])


def test_queue_is_fifo_and_raises_index_error_when_empty():
    queue = JobQueue()
    first, second = Job("1", lambda: 1), Job("2", lambda: 2)
    queue.put(first)
    queue.put(second)
    assert len(queue) == 2
    assert queue.get() is first
    assert queue.get() is second
    with pytest.raises(IndexError):
        queue.get()


def test_worker_runs_every_job_in_fifo_order():
    order = []
    queue = JobQueue()
    for name in ["c", "a", "b"]:
        queue.put(Job(name, lambda name=name: order.append(name) or name.upper()))
    results = Worker(queue, RetryPolicy(), sleep=lambda s: None).run()
    assert order == ["c", "a", "b"]
    assert results == {"c": "C", "a": "A", "b": "B"}
    assert len(queue) == 0


def test_worker_retries_with_the_policy_delays():
    sleeps = []
    queue = JobQueue()
    job = Job("flaky", flaky(2, "ok"))
    queue.put(job)
    policy = RetryPolicy(max_attempts=4, base_delay=0.25, factor=3.0, max_delay=10.0)
    worker = Worker(queue, policy, sleep=sleeps.append)
    assert worker.run() == {"flaky": "ok"}
    assert job.attempts == 3
    assert sleeps == pytest.approx([0.25, 0.75])
    assert worker.failed == []


def test_worker_records_a_job_that_never_succeeds_and_goes_on():
    sleeps = []
    queue = JobQueue()
    doomed = Job("doomed", flaky(99, "never"))
    queue.put(doomed)
    queue.put(Job("fine", lambda: 5))
    worker = Worker(queue, RetryPolicy(max_attempts=3, base_delay=0.1), sleep=sleeps.append)
    assert worker.run() == {"fine": 5}
    assert doomed.attempts == 3
    assert len(sleeps) == 2
    assert len(worker.failed) == 1
    name, error = worker.failed[0]
    assert name == "doomed"
    assert isinstance(error, ConnectionError)
    assert str(error) == "96 failures left"  # the last attempt's error


def test_max_attempts_one_means_no_retry():
    sleeps = []
    queue = JobQueue()
    job = Job("once", flaky(1, "late"))
    queue.put(job)
    worker = Worker(queue, RetryPolicy(max_attempts=1), sleep=sleeps.append)
    assert worker.run() == {}
    assert job.attempts == 1
    assert sleeps == []


def test_worker_asks_the_policy_for_each_delay():
    class FixedPolicy(RetryPolicy):
        def delay(self, retry):
            return 7.0 + retry

    sleeps = []
    queue = JobQueue()
    queue.put(Job("flaky", flaky(2, "ok")))
    Worker(queue, FixedPolicy(max_attempts=3), sleep=sleeps.append).run()
    assert sleeps == [8.0, 9.0]


def test_worker_takes_jobs_through_the_queue_get_method():
    taken = []

    class WatchedQueue(JobQueue):
        def get(self):
            job = super().get()
            taken.append(job.name)
            return job

    queue = WatchedQueue()
    queue.put(Job("x", lambda: 1))
    queue.put(Job("y", lambda: 2))
    Worker(queue, RetryPolicy(), sleep=lambda s: None).run()
    assert taken == ["x", "y"]
