"""Hidden tests for the priority level: run in the sandbox against the model's code saved as solution.py."""

import random

import pytest
from solution import PriorityScheduler


def test_smaller_priority_number_runs_first():
    scheduler = PriorityScheduler()
    scheduler.submit("low", priority=5)
    scheduler.submit("urgent", priority=0)
    scheduler.submit("normal", priority=2)
    assert [scheduler.next() for _ in range(3)] == ["urgent", "normal", "low"]


def test_equal_priorities_keep_submission_order():
    scheduler = PriorityScheduler()
    for job in ["charlie", "alpha", "bravo"]:  # not alphabetical: the jobs must not be compared
        scheduler.submit(job, priority=1)
    assert [scheduler.next() for _ in range(3)] == ["charlie", "alpha", "bravo"]


def test_order_stays_stable_across_interleaved_submit_and_next():
    scheduler = PriorityScheduler()
    scheduler.submit("a", priority=1)
    scheduler.submit("b", priority=1)
    assert scheduler.next() == "a"
    scheduler.submit("c", priority=1)
    scheduler.submit("d", priority=0)
    assert [scheduler.next() for _ in range(3)] == ["d", "b", "c"]


def test_jobs_that_cannot_be_compared_are_fine():
    scheduler = PriorityScheduler()
    jobs = [{"id": 1}, {"id": 2}, {"id": 3}]
    for job in jobs:
        scheduler.submit(job, priority=3)
    scheduler.submit({"id": 0}, priority=1)
    assert [scheduler.next()["id"] for _ in range(4)] == [0, 1, 2, 3]


def test_default_priority_is_zero_and_negative_numbers_come_before_it():
    scheduler = PriorityScheduler()
    scheduler.submit("default")
    scheduler.submit("sooner", priority=-1)
    scheduler.submit("later", priority=1)
    assert [scheduler.next() for _ in range(3)] == ["sooner", "default", "later"]


def test_peek_shows_the_next_job_without_removing_it():
    scheduler = PriorityScheduler()
    scheduler.submit("x", priority=2)
    scheduler.submit("y", priority=1)
    assert scheduler.peek() == "y"
    assert len(scheduler) == 2
    assert scheduler.next() == "y"


def test_empty_scheduler_raises_index_error():
    scheduler = PriorityScheduler()
    with pytest.raises(IndexError):
        scheduler.next()
    with pytest.raises(IndexError):
        scheduler.peek()


def test_len_and_drain():
    scheduler = PriorityScheduler()
    for i, priority in enumerate([3, 1, 3, 2, 1]):
        scheduler.submit(f"job{i}", priority=priority)
    assert len(scheduler) == 5
    assert scheduler.drain() == ["job1", "job4", "job3", "job0", "job2"]
    assert len(scheduler) == 0
    assert scheduler.drain() == []


def test_many_jobs_come_out_in_stable_priority_order():
    rng = random.Random(5)
    submitted = [(rng.randrange(10), object()) for _ in range(5_000)]
    scheduler = PriorityScheduler()
    for priority, job in submitted:
        scheduler.submit(job, priority=priority)
    expected = [job for _, job in sorted(submitted, key=lambda pair: pair[0])]  # sorted() is stable
    assert scheduler.drain() == expected
