"""Tests of pytest_quantgate.baselines without pytest or a server: --baseline resolved against the collected
suite."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from result_builders import make_result, tiny_levels

from pytest_quantgate.baselines import load_baselines
from pytest_quantgate.config import RunConfig
from pytest_quantgate.errors import ResultsError
from pytest_quantgate.presets import Preset
from pytest_quantgate.results import store_latest

if TYPE_CHECKING:
    from pathlib import Path


def config(tmp_path: Path, *preset_ids: str, baseline: str | None = None) -> RunConfig:
    presets = tuple(
        Preset(id=p, name=p, driver="external", source=None, base_url="http://127.0.0.1:9") for p in preset_ids
    )
    return RunConfig(presets=presets, run_id="20261120-100000-abcd", out_dir=tmp_path / "qg", baseline=baseline)


def test_no_baseline_when_none_is_named_or_it_is_a_preset_of_this_run(tmp_path: Path) -> None:
    keys = ["test_tiny.py::test_copy"]
    assert load_baselines(config(tmp_path, "p"), keys) == {}
    assert load_baselines(config(tmp_path, "p", "q", baseline="q"), keys) == {}
    assert load_baselines(config(tmp_path, "p", baseline="old"), []) == {}  # nothing collected


def test_a_stored_baseline_is_found_by_preset_id_for_this_suite(tmp_path: Path) -> None:
    old = make_result("old", tiny_levels(5))
    stored = store_latest(old, tmp_path / "qg" / "results")
    baselines = load_baselines(config(tmp_path, "p", baseline="old"), ["test_tiny.py::test_copy", "test_tiny.py::x"])
    baseline = baselines["test_tiny.py"]
    assert (baseline.path, baseline.result.preset.id) == (stored, "old")


def test_a_missing_baseline_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match=r"^--baseline .*nowhere"):
        load_baselines(config(tmp_path, "p", baseline="nowhere"), ["test_tiny.py::test_copy"])


def test_a_baseline_from_another_suite_names_both(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    path.write_text(make_result("old", tiny_levels(5)).model_dump_json())
    with pytest.raises(ResultsError, match=r"comes from another suite: it holds the suite test_tiny\.py .*"
                                           r"this run collected test_other\.py"):  # fmt: skip
        load_baselines(config(tmp_path, "p", baseline=str(path)), ["test_other.py::test_a"])
