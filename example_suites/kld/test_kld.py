"""KL divergence and top-1 agreement of each preset against a reference model, on a fixed corpus.

    pytest example_suites/kld --reference tiny-f16 --preset tiny-q8_0 --preset tiny-q4_0

One level: the reference's top-K next-token lists at every position of every document (cached on disk, so
a second candidate never re-runs the reference) against the candidate's. It records ``kld`` (mean KL
divergence, nats), ``kld_p50``, ``kld_p99``, ``kld_worst``, ``kld_upper`` (its interval's upper bound),
``top1`` (%), ``top1_lower``, ``rms_dp`` (%), per category
``kld_<category>`` and ``top1_<category>``, and one item per document scored by its top-1 agreement, so
``--baseline`` compares documents pair by pair as for any item suite. Gate like any measurement:
``--gate 'kld_mean <= 0.05' --gate 'top1_mean >= 95'``.
"""

from __future__ import annotations

import pytest

from pytest_quantgate.kld.fixture import record


@pytest.mark.level(points=100, iterations=1)
def test_kld(quantgate_kld, measure):
    record(measure, quantgate_kld)
