"""Hidden tests for the retry level: run in the sandbox against the model's code saved as solution.py."""

import random

import pytest
from solution import RetryPolicy


def test_delays_grow_exponentially_from_the_base():
    policy = RetryPolicy(base_delay=0.1, factor=2.0, max_delay=100.0, jitter=0.0)
    assert [policy.delay(n) for n in range(1, 6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6])


def test_delay_is_capped_at_max_delay():
    policy = RetryPolicy(base_delay=1.0, factor=10.0, max_delay=30.0, jitter=0.0)
    assert policy.delay(1) == pytest.approx(1.0)
    assert policy.delay(2) == pytest.approx(10.0)
    assert policy.delay(3) == pytest.approx(30.0)
    assert policy.delay(40) == pytest.approx(30.0)


def test_jitter_stays_within_its_bounds_and_spreads_over_them():
    policy = RetryPolicy(base_delay=1.0, factor=2.0, max_delay=8.0, jitter=0.25)
    rng = random.Random(1)
    for retry in range(1, 7):
        nominal = min(8.0, 2.0 ** (retry - 1))
        draws = [policy.delay(retry, rng) for _ in range(500)]
        assert min(draws) >= nominal * 0.75 - 1e-9, f"retry {retry}: {min(draws)} below the jitter band"
        assert max(draws) <= nominal * 1.25 + 1e-9, f"retry {retry}: {max(draws)} above the jitter band"
        # 500 uniform draws cover most of the band; a fixed or one-sided jitter does not.
        assert min(draws) < nominal * 0.85 and max(draws) > nominal * 1.15, f"retry {retry}: jitter not spread"


def test_jitter_is_drawn_from_the_given_rng():
    policy = RetryPolicy(base_delay=1.0, factor=2.0, max_delay=60.0, jitter=0.5)
    first = [policy.delay(n, random.Random(42)) for n in range(1, 6)]
    again = [policy.delay(n, random.Random(42)) for n in range(1, 6)]
    other = [policy.delay(n, random.Random(7)) for n in range(1, 6)]
    assert first == again
    assert first != other


def test_delay_rejects_retry_numbers_below_one():
    policy = RetryPolicy()
    for retry in (0, -1):
        with pytest.raises(ValueError):
            policy.delay(retry)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"base_delay": -1.0}, {"factor": 0.5}, {"jitter": -0.1}, {"jitter": 1.5}],
)
def test_constructor_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


def test_call_returns_at_once_on_success():
    sleeps = []
    assert RetryPolicy().call(lambda: 42, sleep=sleeps.append) == 42
    assert sleeps == []


def test_call_passes_arguments_through():
    def add(a, b, *, c):
        return a + b + c

    assert RetryPolicy().call(add, 1, 2, c=3, sleep=lambda s: None) == 6


def test_call_retries_until_success_sleeping_the_policy_delays():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("not yet")
        return "ok"

    sleeps = []
    policy = RetryPolicy(max_attempts=5, base_delay=0.5, factor=3.0, max_delay=100.0, jitter=0.0)
    assert policy.call(flaky, sleep=sleeps.append) == "ok"
    assert len(calls) == 3
    assert sleeps == pytest.approx([0.5, 1.5])


def test_call_gives_up_after_max_attempts_and_reraises_the_last_error():
    calls = []

    def always_fails():
        calls.append(1)
        raise ValueError(f"failure {len(calls)}")

    sleeps = []
    policy = RetryPolicy(max_attempts=4, base_delay=0.01, jitter=0.0)
    with pytest.raises(ValueError, match="failure 4"):
        policy.call(always_fails, sleep=sleeps.append)
    assert len(calls) == 4
    assert len(sleeps) == 3


def test_call_does_not_retry_exceptions_outside_retry_on():
    calls = []

    def broken():
        calls.append(1)
        raise KeyError("bug")

    sleeps = []
    policy = RetryPolicy(max_attempts=5, retry_on=(ConnectionError,))
    with pytest.raises(KeyError):
        policy.call(broken, sleep=sleeps.append)
    assert len(calls) == 1
    assert sleeps == []


def test_retry_on_covers_subclasses():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionResetError("reset")  # a subclass of OSError
        return "done"

    policy = RetryPolicy(max_attempts=2, retry_on=(OSError,), jitter=0.0)
    assert policy.call(flaky, sleep=lambda s: None) == "done"
    assert len(calls) == 2


def test_call_draws_its_jitter_from_rng():
    def always_fails():
        raise OSError("down")

    policy = RetryPolicy(max_attempts=3, base_delay=1.0, factor=2.0, max_delay=10.0, jitter=0.5)
    sleeps = []
    with pytest.raises(OSError):
        policy.call(always_fails, sleep=sleeps.append, rng=random.Random(3))
    expected_rng = random.Random(3)
    assert sleeps == pytest.approx([policy.delay(1, expected_rng), policy.delay(2, expected_rng)])
