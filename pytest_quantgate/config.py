"""A run's configuration: options, ini values and xdist's worker input in, one validated RunConfig out.

No pytest here: the plugin gathers the raw values into :class:`RawOptions` and :func:`run_config` checks
them. Importing this module is cheap (the plugin does at ``pytest --help``): presets and gates are imported
where they are used.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_quantgate.errors import SpecError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from pytest_quantgate.gates import GateSpec
    from pytest_quantgate.presets import Preset

OPT_PRESET = "--preset"
OPT_PRESET_DIR = "--preset-dir"
OPT_BASE_URL = "--base-url"
OPT_ITERATIONS = "--iterations"
OPT_GATE = "--gate"
OPT_DIR = "--quantgate-dir"
OPT_BASELINE = "--baseline"
OPT_MARGIN = "--margin"
OPT_REQUIRE_FASTER = "--require-faster"
OPT_SEQUENTIAL = "--sequential"
INI_PRESET_DIRS = "quantgate_preset_dirs"
INI_ITERATIONS = "quantgate_iterations"
INI_GATES = "quantgate_gates"
INI_DIR = "quantgate_dir"
INI_MARGIN = "quantgate_margin"
# What the controller hands every xdist worker, so that all of them write to one run.
WORKER_RUN_ID = "quantgate_run_id"
WORKER_DIR = "quantgate_dir"

DEFAULT_ITERATIONS = 5
DEFAULT_DIR = ".quantgate"
DEFAULT_MARGIN = 2.0


def new_run_id() -> str:
    import datetime as dt
    import secrets

    return dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def check_margin(margin: float, name: str = "margin") -> None:
    """The one rule for a non-inferiority margin (--margin, the ini option, CompareOptions): score points
    in [0, 100); 0 asks for "not worse at all". Raises SpecError naming *name* and the value."""
    if not (math.isfinite(margin) and 0.0 <= margin < 100.0):
        raise SpecError(
            f"{name}={margin!r} must be a number of score points in [0, 100), e.g. 2 (0 asks for 'not worse at all')"
        )


@dataclass(frozen=True, slots=True)
class RunConfig:
    """Everything the options and ini file say, resolved once."""

    presets: tuple[Preset, ...]
    run_id: str
    out_dir: Path
    iterations: int | None = None  # --iterations: overrides marks and ini
    default_iterations: int = DEFAULT_ITERATIONS  # ini quantgate_iterations
    gates: tuple[GateSpec, ...] = ()  # --gate and ini quantgate_gates
    shared: bool = False  # under pytest-xdist
    baseline: str | None = None  # --baseline: a result file or a preset id
    margin: float = DEFAULT_MARGIN
    require_faster: bool = False
    sequential: bool = False

    @property
    def run_dir(self) -> Path:
        return self.out_dir / "runs" / self.run_id

    def preset_dir(self, preset_id: str) -> Path:
        return self.run_dir / preset_id

    def preset(self, preset_id: str) -> Preset:
        return next(p for p in self.presets if p.id == preset_id)

    def iterations_for(self, mark_iterations: int | None) -> int:
        if self.iterations is not None:
            return self.iterations
        return mark_iterations or self.default_iterations

    def gates_for(self, preset: Preset) -> list[GateSpec]:
        """Option and ini gates, the preset's own, and its memory ceiling."""
        from pytest_quantgate.gates import GateSpec, parse_gate

        specs = list(self.gates)
        where = f"preset {preset.id} ({preset.source})"
        specs += [parse_gate(g, "preset", where) for g in preset.gates]
        if preset.memory_ceiling_mb is not None:
            specs.append(GateSpec("memory_mb", "<=", preset.memory_ceiling_mb, source="ceiling"))
        return specs

    def gated(self, preset_id: str, mark_gates: tuple[str, ...]) -> bool:
        """Whether gates are in force for a level of *preset_id* (then they, not a wrong answer, decide
        the exit status)."""
        if mark_gates or self.gates:
            return True
        preset = next((p for p in self.presets if p.id == preset_id), None)
        return preset is not None and bool(preset.gates or preset.memory_ceiling_mb is not None)


@dataclass(frozen=True, slots=True, kw_only=True)
class RawOptions:
    """The option, ini and worker-input values a run is configured from, as pytest hands them over."""

    rootdir: Path  # where the ini file lives: a relative quantgate_dir is relative to it
    presets: tuple[str, ...] = ()  # --preset
    preset_dirs: tuple[str, ...] = ()  # --preset-dir
    ini_preset_dirs: tuple[Path, ...] = ()
    base_url: str | None = None
    iterations: int | None = None
    ini_iterations: str = ""
    gates: tuple[str, ...] = ()
    ini_gates: tuple[str, ...] = ()
    out_dir: str | None = None  # --quantgate-dir: relative to where the command was typed
    ini_dir: str = ""
    baseline: str | None = None
    margin: float | None = None
    ini_margin: str = ""
    require_faster: bool = False
    sequential: bool = False
    worker: Mapping[str, Any] | None = None  # xdist's workerinput, in a worker
    xdist: bool = False  # the controller of an xdist run (-n N)


def raw_options(
    getoption: Callable[[str], Any],
    getini: Callable[[str], Any],
    *,
    rootdir: Path,
    worker: Mapping[str, Any] | None = None,
    xdist: bool = False,
) -> RawOptions:
    """Read every option and ini value by name (pytest's ``config.getoption`` and ``config.getini``)."""
    return RawOptions(
        rootdir=rootdir,
        presets=tuple(getoption(OPT_PRESET)),
        preset_dirs=tuple(getoption(OPT_PRESET_DIR)),
        ini_preset_dirs=tuple(getini(INI_PRESET_DIRS)),
        base_url=getoption(OPT_BASE_URL),
        iterations=getoption(OPT_ITERATIONS),
        ini_iterations=str(getini(INI_ITERATIONS)),
        gates=tuple(getoption(OPT_GATE)),
        ini_gates=tuple(getini(INI_GATES)),
        out_dir=getoption(OPT_DIR),
        ini_dir=str(getini(INI_DIR)),
        baseline=getoption(OPT_BASELINE),
        margin=getoption(OPT_MARGIN),
        ini_margin=str(getini(INI_MARGIN)),
        require_faster=bool(getoption(OPT_REQUIRE_FASTER)),
        sequential=bool(getoption(OPT_SEQUENTIAL)),
        worker=worker,
        xdist=xdist,
    )


def run_config(raw: RawOptions) -> RunConfig:
    """Check *raw* and resolve its presets; a :class:`~pytest_quantgate.errors.QuantgateError` names the
    option or ini key and the value at fault."""
    from pytest_quantgate.gates import parse_gate
    from pytest_quantgate.presets import resolve

    dirs = [Path(d) for d in raw.preset_dirs] + list(raw.ini_preset_dirs)
    presets = [resolve(name, dirs) for name in raw.presets]
    if len({p.id for p in presets}) != len(presets):
        raise SpecError(f"the same preset is named twice in {OPT_PRESET}")
    if any(p.devices for p in presets):
        from pytest_quantgate.gpu.pinning import check_devices

        check_devices(presets)  # a device not visible, or one GPU for two presets: before any server starts
    if raw.base_url:
        if len(presets) > 1:
            raise SpecError(f"{OPT_BASE_URL} attaches to one server; give at most one {OPT_PRESET} with it")
        presets = [external_preset(raw.base_url, presets[0] if presets else None)]
    ini_iterations = raw.ini_iterations.strip()
    try:
        default_iterations = int(ini_iterations) if ini_iterations else DEFAULT_ITERATIONS
    except ValueError:
        raise SpecError(f"ini option {INI_ITERATIONS} = {ini_iterations!r} is not an integer") from None
    for value, name in ((raw.iterations, OPT_ITERATIONS), (default_iterations, INI_ITERATIONS)):
        if value is not None and value < 1:
            raise SpecError(f"{name} must be at least 1, got {value}")
    for flag, given in ((OPT_REQUIRE_FASTER, raw.require_faster), (OPT_SEQUENTIAL, raw.sequential)):
        if given and not raw.baseline:
            raise SpecError(f"{flag} compares against a baseline: give {OPT_BASELINE} RESULT_OR_PRESET too")
    if raw.sequential and (raw.xdist or raw.worker is not None):
        raise SpecError(
            f"{OPT_SEQUENTIAL} decides after every iteration and stops the run there; pytest-xdist hands levels "
            f"to its workers ahead of time and cannot stop between iterations: run {OPT_SEQUENTIAL} without -n"
        )
    margin = _margin(raw)
    gates = [parse_gate(g, "option", OPT_GATE) for g in raw.gates]
    gates += [parse_gate(g, "ini", INI_GATES) for g in raw.ini_gates]
    worker = raw.worker
    run_id = worker[WORKER_RUN_ID] if worker and WORKER_RUN_ID in worker else new_run_id()
    if worker and WORKER_DIR in worker:
        out_dir = Path(worker[WORKER_DIR])
    elif raw.out_dir:
        out_dir = Path(raw.out_dir).expanduser().resolve()
    else:
        out_dir = default_out_dir(raw.rootdir, raw.ini_dir or None)
    return RunConfig(
        presets=tuple(presets),
        run_id=run_id,
        out_dir=out_dir,
        iterations=raw.iterations,
        default_iterations=default_iterations,
        gates=tuple(gates),
        shared=worker is not None or raw.xdist,
        baseline=raw.baseline,
        margin=margin,
        require_faster=raw.require_faster,
        sequential=raw.sequential,
    )


def _margin(raw: RawOptions) -> float:
    if raw.margin is not None:
        check_margin(raw.margin, OPT_MARGIN)
        return raw.margin
    text = raw.ini_margin.strip()
    if not text:
        return DEFAULT_MARGIN
    try:
        margin = float(text)
    except ValueError:
        raise SpecError(f"{INI_MARGIN} = {text!r} is not a number") from None
    check_margin(margin, INI_MARGIN)
    return margin


def external_preset(base_url: str, like: Preset | None = None) -> Preset:
    """A preset that attaches to *base_url*; keeps *like*'s id, sampler and gates when given."""
    import dataclasses

    from pytest_quantgate.presets import Preset

    if like is not None:
        return dataclasses.replace(like, driver="external", base_url=base_url)
    return Preset(id="external", name=base_url, driver="external", source=None, base_url=base_url)


def default_out_dir(rootdir: Path, configured: str | None) -> Path:
    value = configured or os.environ.get("QUANTGATE_DIR") or DEFAULT_DIR
    path = Path(value).expanduser()
    return (path if path.is_absolute() else rootdir / path).resolve()
