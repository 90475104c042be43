"""Hidden tests for the find-and-fix level: run in the sandbox against the model's code saved as solution.py.

Each test forces the interleaving it needs (barriers and events), so a race shows up on every run rather
than now and then; every wait has a timeout, so a deadlocked answer fails instead of hanging.
"""

import threading
import time

import pytest
from solution import JobRegistry

WAIT_S = 10


class CountingSetup:
    """A slow setup that counts its calls per job id; ``gate`` (if given) holds it until released."""

    def __init__(self, pause_s=0.0, gate=None):
        self.pause_s = pause_s
        self.gate = gate
        self.calls = {}
        self.started = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, job_id):
        with self._lock:
            self.calls[job_id] = self.calls.get(job_id, 0) + 1
        self.started.set()
        if self.gate is not None and job_id == "slow":
            assert self.gate.wait(WAIT_S), "test gate never opened"
        time.sleep(self.pause_s)
        return {"job": job_id}


def run_threads(targets):
    threads = [threading.Thread(target=target, daemon=True) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    assert not any(thread.is_alive() for thread in threads), "threads still blocked: a deadlock?"


def test_sequential_gets_run_setup_once():
    setup = CountingSetup()
    registry = JobRegistry(setup)
    first = registry.get("a")
    assert registry.get("a") is first
    assert first == {"job": "a"}
    assert setup.calls == {"a": 1}
    assert len(registry) == 1


def test_concurrent_gets_for_one_id_run_setup_exactly_once():
    setup = CountingSetup(pause_s=0.2)
    registry = JobRegistry(setup)
    barrier = threading.Barrier(8)
    results = []

    def worker():
        barrier.wait(WAIT_S)
        results.append(registry.get("job-1"))

    run_threads([worker] * 8)
    assert setup.calls == {"job-1": 1}
    assert len(results) == 8
    assert all(result is results[0] for result in results), "callers got different result objects"


def test_many_ids_from_many_threads_each_set_up_once():
    setup = CountingSetup(pause_s=0.05)
    registry = JobRegistry(setup)
    barrier = threading.Barrier(20)
    ids = [f"job-{i % 5}" for i in range(20)]

    def worker(job_id):
        barrier.wait(WAIT_S)
        assert registry.get(job_id) == {"job": job_id}

    run_threads([lambda job_id=job_id: worker(job_id) for job_id in ids])
    assert setup.calls == {f"job-{i}": 1 for i in range(5)}
    assert len(registry) == 5


def test_a_slow_setup_does_not_hold_up_other_ids():
    gate = threading.Event()
    setup = CountingSetup(gate=gate)
    registry = JobRegistry(setup)
    slow = threading.Thread(target=registry.get, args=("slow",), daemon=True)
    slow.start()
    try:
        assert setup.started.wait(WAIT_S)
        fast = threading.Thread(target=registry.get, args=("fast",), daemon=True)
        fast.start()
        fast.join(2)
        assert not fast.is_alive(), "get('fast') waited for the setup of another id"
    finally:
        gate.set()
        slow.join(WAIT_S)
    assert setup.calls == {"slow": 1, "fast": 1}


def test_ready_results_are_served_while_another_setup_runs():
    gate = threading.Event()
    setup = CountingSetup(gate=gate)
    registry = JobRegistry(setup)
    ready = registry.get("ready")
    slow = threading.Thread(target=registry.get, args=("slow",), daemon=True)
    slow.start()
    try:
        assert setup.started.wait(WAIT_S)
        got = []
        reader = threading.Thread(target=lambda: got.append(registry.get("ready")), daemon=True)
        reader.start()
        reader.join(2)
        assert got and got[0] is ready, "get('ready') waited for the setup of another id"
    finally:
        gate.set()
        slow.join(WAIT_S)


def test_a_failed_setup_raises_and_is_retried_later():
    attempts = []

    def setup(job_id):
        attempts.append(job_id)
        if len(attempts) == 1:
            raise RuntimeError("config server down")
        return f"ready:{job_id}"

    registry = JobRegistry(setup)
    with pytest.raises(RuntimeError, match="config server down"):
        registry.get("x")
    assert len(registry) == 0
    assert registry.get("x") == "ready:x"
    assert registry.get("x") == "ready:x"
    assert attempts == ["x", "x"]
