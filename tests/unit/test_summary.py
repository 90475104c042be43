"""The typed summary: what a run writes is what the comparison reads, and older files still load."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from pydantic import TypeAdapter

from pytest_quantgate.levels import RequestRecord, Sample, aggregate
from pytest_quantgate.measures import Measurement
from pytest_quantgate.summary import SummaryRecord


def _samples(iterations: int = 3) -> list[Sample]:
    out = []
    for k in range(1, iterations + 1):
        for level, points in (("s/test_a.py::test_x", 2.0), ("s/test_a.py::test_y", 1.0)):
            out.append(
                Sample(
                    preset="p",
                    level=level,
                    name=level.rpartition("::")[2],
                    iteration=k,
                    points=points,
                    outcome="passed" if (k + points) % 3 else "failed",
                    duration_s=0.1,
                    requests=(
                        RequestRecord(
                            endpoint="/v1/completions",
                            wall_s=0.2,
                            ttft_s=0.01 * k,
                            predicted_n=10,
                            predicted_ms=100.0 + k,
                        ),
                    ),
                    memory_mb=100.0 + k,
                    measures=(Measurement("chars_per_s", 10.0 * k, "chars/s"),),
                )
            )
    return out


def _through_json(record: SummaryRecord) -> SummaryRecord:
    return SummaryRecord.model_validate_json(record.model_dump_json())


@pytest.mark.parametrize("iterations", [1, 3])
def test_what_is_written_reads_back_as_the_same_numbers(iterations: int) -> None:
    agg = aggregate("p", _samples(iterations), load_s=0.5)
    back = _through_json(SummaryRecord.of(agg))
    assert back.stat("score") == agg.score
    assert back.stat("tps") == agg.tps
    assert back.stat("ttft_ms") == agg.ttft_ms
    assert back.iteration_scores() == agg.iterations
    levels = back.level_aggregates()
    assert {k: (lv.rate.passed, lv.rate.n, lv.points) for k, lv in levels.items()} == {
        lv.level: (lv.rate.passed, lv.rate.n, lv.points) for lv in agg.levels
    }
    assert back.series() == dict(agg.measures)
    assert back.load_s == 0.5 and back.memory_peak_mb == agg.memory_peak_mb


def _old_summary(agg: Any) -> dict[str, Any]:
    """The summary as results written before the typed model held it (a dict of the aggregate)."""
    out = dataclasses.asdict(agg)
    out.pop("measures")
    out.pop("suite")  # added later, never written
    out.pop("memory_reported_mb")  # added to the aggregate later still
    out.pop("memory_reported_scope")
    out["levels"] = {
        lv.level: {"name": lv.name, "points": lv.points, "passed": lv.rate.passed, "n": lv.rate.n} for lv in agg.levels
    }
    # As the result writer serialised it: infinite interval ends (n = 1) became null.
    return json.loads(TypeAdapter(dict[str, Any]).dump_json(out))


@pytest.mark.parametrize("iterations", [1, 3])
def test_a_summary_written_before_measurements_still_loads(iterations: int) -> None:
    agg = aggregate("p", _samples(iterations))
    old = SummaryRecord.model_validate(_old_summary(agg))
    assert old.stat("score") == agg.score
    assert old.iteration_scores() == agg.iterations
    assert old.series() == {}


def test_an_interrupted_run_has_an_empty_summary() -> None:
    empty = SummaryRecord.model_validate({})
    assert empty.stat("score") is None and empty.level_aggregates() == {} and empty.iteration_scores() == ()


def test_an_unknown_summary_key_is_an_error() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="scroe"):
        SummaryRecord.model_validate({"scroe": 1})
