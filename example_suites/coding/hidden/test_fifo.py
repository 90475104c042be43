"""Hidden tests for the FIFO level: run in the sandbox against the model's code saved as solution.py."""

import threading

import pytest
from solution import JobQueue, QueueEmpty, QueueFull


def test_jobs_come_out_in_the_order_they_went_in():
    queue = JobQueue()
    for job in ["a", "b", "c", "d"]:
        queue.put(job)
    assert [queue.get() for _ in range(4)] == ["a", "b", "c", "d"]


def test_interleaved_put_and_get_keep_fifo_order():
    queue = JobQueue()
    queue.put(1)
    queue.put(2)
    assert queue.get() == 1
    queue.put(3)
    assert queue.get() == 2
    assert queue.get() == 3


def test_len_counts_waiting_jobs():
    queue = JobQueue()
    assert len(queue) == 0
    queue.put("x")
    queue.put("y")
    assert len(queue) == 2
    queue.get()
    assert len(queue) == 1


def test_peek_returns_the_oldest_without_removing_it():
    queue = JobQueue()
    queue.put("first")
    queue.put("second")
    assert queue.peek() == "first"
    assert len(queue) == 2
    assert queue.get() == "first"


def test_get_and_peek_on_an_empty_queue_raise_queue_empty():
    queue = JobQueue()
    with pytest.raises(QueueEmpty):
        queue.get()
    with pytest.raises(QueueEmpty):
        queue.peek()
    queue.put(1)
    queue.get()
    with pytest.raises(QueueEmpty):
        queue.get()


def test_queue_errors_are_exceptions_of_their_own():
    assert issubclass(QueueEmpty, Exception)
    assert issubclass(QueueFull, Exception)
    assert QueueEmpty is not QueueFull


def test_any_object_is_a_job_even_none_and_unhashable_ones():
    queue = JobQueue()
    jobs = [None, {"id": 1}, [1, 2], 0, ""]
    for job in jobs:
        queue.put(job)
    assert [queue.get() for _ in jobs] == jobs


def test_maxsize_bounds_the_queue():
    queue = JobQueue(maxsize=2)
    queue.put("a")
    queue.put("b")
    with pytest.raises(QueueFull):
        queue.put("c")
    assert len(queue) == 2
    assert queue.get() == "a"
    queue.put("c")  # room again after a get
    assert [queue.get(), queue.get()] == ["b", "c"]


def test_maxsize_zero_means_unbounded():
    queue = JobQueue(maxsize=0)
    for i in range(10_000):
        queue.put(i)
    assert len(queue) == 10_000
    assert queue.get() == 0


def test_concurrent_producers_lose_no_job():
    queue = JobQueue()

    def produce(start):
        for i in range(start, start + 2_000):
            queue.put(i)

    threads = [threading.Thread(target=produce, args=(k * 2_000,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    got = [queue.get() for _ in range(len(queue))]
    assert sorted(got) == list(range(8_000))
    # Each producer's own jobs keep their relative order.
    for k in range(4):
        mine = [job for job in got if k * 2_000 <= job < (k + 1) * 2_000]
        assert mine == sorted(mine)
