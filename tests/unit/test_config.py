"""Tests of pytest_quantgate.config: a run's options checked without pytest, and the one margin rule."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pytest

from pytest_quantgate.compare import CompareOptions
from pytest_quantgate.config import (
    DEFAULT_ITERATIONS,
    RawOptions,
    RunConfig,
    check_margin,
    default_out_dir,
    external_preset,
    raw_options,
    run_config,
)
from pytest_quantgate.errors import PresetError, SpecError
from pytest_quantgate.presets import Preset

if TYPE_CHECKING:
    from pathlib import Path

PRESET_FILE = """id: local-q4
model: /models/local-q4.gguf
gates: ["score_mean >= 80"]
"""


def raw(tmp_path: Path, **values: object) -> RawOptions:
    return RawOptions(rootdir=tmp_path, **values)  # type: ignore[arg-type]


def error(tmp_path: Path, **values: object) -> str:
    with pytest.raises(SpecError) as caught:
        run_config(raw(tmp_path, **values))
    return str(caught.value)


# -- every error the options can make ------------------------------------------------------------------


def test_an_unknown_preset_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(PresetError, match=r"no preset named 'tiny-f17'\. Known presets:.*tiny-f16"):
        run_config(raw(tmp_path, presets=("tiny-f17",)))


def test_the_same_preset_twice(tmp_path: Path) -> None:
    assert error(tmp_path, presets=("tiny-f16", "tiny-f16")) == "the same preset is named twice in --preset"


def test_base_url_with_two_presets(tmp_path: Path) -> None:
    message = error(tmp_path, presets=("tiny-f16", "tiny-q8_0"), base_url="http://127.0.0.1:9")
    assert message == "--base-url attaches to one server; give at most one --preset with it"


def test_ini_iterations_that_are_not_an_integer(tmp_path: Path) -> None:
    assert error(tmp_path, ini_iterations=" five ") == "ini option quantgate_iterations = 'five' is not an integer"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"iterations": 0}, "--iterations must be at least 1, got 0"),
        ({"ini_iterations": "-2"}, "quantgate_iterations must be at least 1, got -2"),
        ({"iterations": 3, "ini_iterations": "0"}, "quantgate_iterations must be at least 1, got 0"),
    ],
)
def test_iterations_below_one(tmp_path: Path, values: dict[str, object], message: str) -> None:
    assert error(tmp_path, **values) == message


@pytest.mark.parametrize(("flag", "name"), [("require_faster", "--require-faster"), ("sequential", "--sequential")])
def test_baseline_flags_without_a_baseline(tmp_path: Path, flag: str, name: str) -> None:
    message = error(tmp_path, **{flag: True})
    assert message == f"{name} compares against a baseline: give --baseline RESULT_OR_PRESET too"
    run_config(raw(tmp_path, baseline="tiny-f16", **{flag: True}))  # with one, fine


def test_an_ini_margin_that_is_not_a_number(tmp_path: Path) -> None:
    assert error(tmp_path, ini_margin="two") == "quantgate_margin = 'two' is not a number"


@pytest.mark.parametrize("margin", [-1.0, 100.0, 250.0, math.nan, math.inf])
def test_a_margin_outside_0_to_100_names_where_it_came_from(tmp_path: Path, margin: float) -> None:
    assert error(tmp_path, margin=margin).startswith(
        f"--margin={margin!r} must be a number of score points in [0, 100)"
    )
    assert error(tmp_path, ini_margin=str(margin)).startswith(f"quantgate_margin={margin!r} must be")


@pytest.mark.parametrize(
    ("values", "start"),
    [
        ({"gates": ("score_mean >> 95",)}, "--gate: cannot read gate 'score_mean >> 95'"),
        ({"gates": ("score_mean[t.py::a] >= 95",)}, "--gate: gate 'score_mean[t.py::a] >= 95': score_mean is a suite"),
        ({"ini_gates": ("score_mean >= 95", "pass_rate")}, "quantgate_gates: cannot read gate 'pass_rate'"),
    ],
)
def test_gates_that_cannot_be_read_name_the_option(tmp_path: Path, values: dict[str, object], start: str) -> None:
    assert error(tmp_path, **values).startswith(start)


# -- what a valid configuration resolves to ------------------------------------------------------------


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUANTGATE_DIR", raising=False)
    config = run_config(raw(tmp_path))
    assert config.presets == ()
    assert (config.iterations, config.default_iterations) == (None, DEFAULT_ITERATIONS)
    assert (config.margin, config.baseline, config.shared) == (2.0, None, False)
    assert config.out_dir == (tmp_path / ".quantgate").resolve()
    assert config.run_dir == config.out_dir / "runs" / config.run_id


def test_a_margin_of_zero_asks_for_not_worse_at_all(tmp_path: Path) -> None:
    assert run_config(raw(tmp_path, margin=0.0)).margin == 0.0
    assert run_config(raw(tmp_path, ini_margin="0")).margin == 0.0
    # The option wins over the ini value, which is then not even read.
    assert run_config(raw(tmp_path, margin=5.0, ini_margin="not read")).margin == 5.0


@pytest.mark.parametrize("margin", [-0.5, 0.0, 2.0, 99.99, 100.0, math.nan, -math.inf])
def test_the_run_and_compare_accept_the_same_margins(tmp_path: Path, margin: float) -> None:
    def accepted(check: object) -> bool:
        try:
            check()  # type: ignore[operator]
        except SpecError:
            return False
        return True

    run = accepted(lambda: run_config(raw(tmp_path, margin=margin)))
    assert run == accepted(lambda: CompareOptions(margin=margin)) == accepted(lambda: check_margin(margin))
    assert run == (0 <= margin < 100)


def test_iterations_the_option_beats_the_mark_which_beats_the_ini(tmp_path: Path) -> None:
    config = run_config(raw(tmp_path, ini_iterations=" 7 "))
    assert (config.iterations_for(None), config.iterations_for(3)) == (7, 3)
    config = run_config(raw(tmp_path, iterations=2, ini_iterations="7"))
    assert (config.iterations_for(None), config.iterations_for(3)) == (2, 2)


def test_option_and_ini_gates_are_read_in_that_order(tmp_path: Path) -> None:
    config = run_config(raw(tmp_path, gates=("score_mean>=90",), ini_gates=("pass_rate >= 0.5",)))
    assert [(g.expr, g.source) for g in config.gates] == [("score_mean>=90", "option"), ("pass_rate>=0.5", "ini")]


def test_presets_are_found_on_the_option_dirs_then_the_ini_dirs(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for directory in (first, second):
        directory.mkdir()
        (directory / "local-q4.yaml").write_text(PRESET_FILE)
    config = run_config(raw(tmp_path, presets=("local-q4", "tiny-f16"), preset_dirs=(str(second),),
                            ini_preset_dirs=(first,)))  # fmt: skip
    assert [p.id for p in config.presets] == ["local-q4", "tiny-f16"]
    assert config.presets[0].source == second / "local-q4.yaml"
    assert [g.expr for g in config.gates_for(config.presets[0])] == ["score_mean>=80"]


def test_base_url_attaches_keeping_the_named_presets_id_and_gates(tmp_path: Path) -> None:
    alone = run_config(raw(tmp_path, base_url="http://127.0.0.1:9"))
    assert [(p.id, p.driver, p.base_url) for p in alone.presets] == [("external", "external", "http://127.0.0.1:9")]
    like = run_config(raw(tmp_path, presets=("tiny-f16",), base_url="http://127.0.0.1:9")).presets[0]
    assert (like.id, like.driver, like.base_url) == ("tiny-f16", "external", "http://127.0.0.1:9")


def test_out_dir_option_is_relative_to_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = run_config(raw(tmp_path / "root", out_dir="results", ini_dir="ignored"))
    assert config.out_dir == (tmp_path / "results").resolve()


def test_out_dir_ini_is_relative_to_the_rootdir_and_the_environment_is_the_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUANTGATE_DIR", "from-env")
    assert run_config(raw(tmp_path, ini_dir="from-ini")).out_dir == (tmp_path / "from-ini").resolve()
    assert run_config(raw(tmp_path)).out_dir == (tmp_path / "from-env").resolve()
    assert default_out_dir(tmp_path, str(tmp_path / "abs")) == (tmp_path / "abs").resolve()


def test_a_worker_writes_to_the_controllers_run(tmp_path: Path) -> None:
    worker = {"quantgate_run_id": "20260101-000000-abcd", "quantgate_dir": str(tmp_path / "ctl")}
    config = run_config(raw(tmp_path, worker=worker, out_dir="ignored"))
    assert (config.run_id, config.out_dir, config.shared) == ("20260101-000000-abcd", tmp_path / "ctl", True)
    assert run_config(raw(tmp_path, xdist=True)).shared


def test_gates_are_in_force_from_a_mark_an_option_or_the_preset(tmp_path: Path) -> None:
    plain = Preset(id="p", name="p", driver="external", source=None)
    gated = Preset(id="g", name="g", driver="external", source=None, gates=("score_mean >= 50",))
    ceiling = Preset(id="c", name="c", driver="external", source=None, memory_ceiling_mb=100.0)
    config = RunConfig(presets=(plain, gated, ceiling), run_id="r", out_dir=tmp_path)
    assert not config.gated("p", ())
    assert config.gated("p", ("score_mean>=1",))
    assert config.gated("g", ()) and config.gated("c", ())
    assert not config.gated("not-in-this-run", ())
    assert run_config(raw(tmp_path, gates=("score_mean>=1",))).gated("anything", ())


def test_an_external_preset_without_a_like_is_named_external() -> None:
    preset = external_preset("http://h:1")
    assert (preset.id, preset.name, preset.source) == ("external", "http://h:1", None)


def test_raw_options_reads_every_option_and_ini_value_by_name(tmp_path: Path) -> None:
    options = {"--preset": ["tiny-f16"], "--preset-dir": ["d"], "--base-url": None, "--iterations": 3,
               "--gate": ["score_mean>=1"], "--quantgate-dir": None, "--baseline": "old", "--margin": 0.0,
               "--require-faster": True, "--sequential": False}  # fmt: skip
    ini = {"quantgate_preset_dirs": [tmp_path], "quantgate_iterations": "4", "quantgate_gates": ["errors<=0"],
           "quantgate_dir": "out", "quantgate_margin": ""}  # fmt: skip
    raw = raw_options(options.__getitem__, ini.__getitem__, rootdir=tmp_path, worker=None, xdist=True)
    assert raw == RawOptions(
        rootdir=tmp_path, presets=("tiny-f16",), preset_dirs=("d",), ini_preset_dirs=(tmp_path,), iterations=3,
        ini_iterations="4", gates=("score_mean>=1",), ini_gates=("errors<=0",), ini_dir="out", baseline="old",
        margin=0.0, require_faster=True, xdist=True,
    )  # fmt: skip


def test_sequential_under_xdist_is_refused_saying_why(tmp_path: Path) -> None:
    message = error(tmp_path, presets=("tiny-f16",), baseline="tiny-f16", sequential=True, xdist=True)
    assert message.startswith("--sequential decides after every iteration") and message.endswith("without -n")
