"""The lane table (render/lanes.py): one row per preset, n/a for a figure its server could not give."""

from __future__ import annotations

import dataclasses

from result_builders import make_result, tiny_levels, with_samples

from pytest_quantgate.compare import result_aggregate
from pytest_quantgate.measures import Measurement
from pytest_quantgate.render.lanes import has_lanes, lane_rows
from pytest_quantgate.render.markdown import render_markdown
from pytest_quantgate.render.terminal import render

LANE = {
    "prefill_tps": 5000.0, "decode_tps": 120.0, "fixed_wall_s": 17.5, "fixed_prompt_tokens": 1150.0,
    "fixed_output_tokens": 2000.0, "slots_aggregate_tps": 210.0, "slots_n": 2.0, "draft_acceptance": 0.918,
}  # fmt: skip


def lane_result(preset: str, figures: dict[str, float]):
    result = make_result(preset, tiny_levels(3), load_s=4.25)
    samples = [
        dataclasses.replace(s, measures=tuple(Measurement(k, v) for k, v in figures.items()))
        if s.name == result.samples[0].name else s
        for s in result.samples
    ]  # fmt: skip
    return with_samples(result, samples)


def test_one_row_per_preset_in_the_field_s_columns() -> None:
    agg = result_aggregate(lane_result("qat-q4", LANE))
    assert lane_rows([agg]) == [["qat-q4", "4.25", "5,000", "120", "17.50 (1150→2000)", "210 (×2)", "91.8 %"]]


def test_a_figure_not_measured_is_n_a_not_zero() -> None:
    partial = {k: v for k, v in LANE.items() if k not in ("prefill_tps", "decode_tps", "draft_acceptance")}
    (row,) = lane_rows([result_aggregate(lane_result("openai", partial))])
    assert row[2] == row[3] == row[6] == "n/a"
    assert row[4] == "17.50 (1150→2000)"


def test_no_lane_figures_no_lane_table() -> None:
    agg = result_aggregate(make_result("plain", tiny_levels(3)))
    assert not has_lanes([agg])
    assert "lanes (" not in render([agg], {})
    assert "## Lanes" not in render_markdown(make_result("plain", tiny_levels(3)), agg, None, [])


def test_terminal_and_markdown_show_the_lane_row() -> None:
    result = lane_result("qat-q4", LANE)
    agg = result_aggregate(result)
    assert "qat-q4" in render([agg], {}).split("lanes (")[1].splitlines()[3]
    row = "| qat-q4 | 4.25 | 5,000 | 120 | 17.50 (1150→2000) | 210 (×2) | 91.8 % |"
    assert row in render_markdown(result, agg, None, [])
