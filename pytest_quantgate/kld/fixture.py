"""The pytest side of a KLD measurement: options, the ``quantgate_kld`` fixture, recording, the summary.

``--reference PRESET`` (or ini ``quantgate_reference``) names the reference; a level asks for the
``quantgate_kld`` fixture and gets the candidate's :class:`~pytest_quantgate.kld.measure.Result`, computed once
per preset per process. The reference runs (or is read from the cache) **before** the candidate's server is
requested, so a machine never has to hold both models. :func:`record` turns a result into measurements
(``kld``, ``top1``, ``rms_dp``, ``kld_p99``, ... gated as ``kld_mean <= 0.05``, ``top1_mean >= 95``) and items (one per
document, scored by its top-1 agreement and weighted by its positions, so a baseline comparison pairs
documents like any item suite). Each preset's figures go to ``kld.json`` in its run directory; the terminal
summary prints the field's table (preset × top-1, mean KLD, then per category), the caveats, and the paired
comparisons between presets measured against the same reference.

Imports stay light here (this module is imported with the plugin at ``pytest --help``).
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pathlib import Path

    from pytest_quantgate.kld.corpus import Corpus
    from pytest_quantgate.kld.fetch import Method
    from pytest_quantgate.kld.measure import Options, Result
    from pytest_quantgate.measures import Measure
    from pytest_quantgate.presets import Preset

OPT_REFERENCE = "--reference"
INI_REFERENCE = "quantgate_reference"
INI_CORPUS = "quantgate_kld_corpus"
INI_K = "quantgate_kld_k"
INI_MAX_TOKENS = "quantgate_kld_max_tokens"
INI_STRIDE = "quantgate_kld_stride"
INI_METHOD = "quantgate_kld_method"
INI_MARGIN = "quantgate_kld_margin"
DEFAULT_MARGIN = 0.01  # nats of mean KLD a candidate may lose against a baseline
RESULT_FILE = "kld.json"
_RESULTS: pytest.StashKey[dict[str, Result]] = pytest.StashKey()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("quantgate")
    group.addoption(OPT_REFERENCE, metavar="PRESET",
                    help="Reference preset for KL-divergence suites (its lists are cached on disk)")  # fmt: skip
    parser.addini(INI_REFERENCE, "Reference preset for KL-divergence suites", default="")
    parser.addini(INI_CORPUS, "KLD corpus: auto, default, tiny, or files/directories, one per line",
                  type="linelist", default=[])  # fmt: skip
    parser.addini(
        INI_K, "Top-K tokens per position for KLD (default 40; the vocabulary size for exact KLD)", default=""
    )
    parser.addini(INI_MAX_TOKENS, "KLD: score at most this many tokens of each document (default: all)", default="")
    parser.addini(INI_STRIDE, "KLD: score every N-th position (default 1)", default="")
    parser.addini(INI_METHOD, "KLD: how lists are asked for: auto (default), forced or prefixes", default="")
    parser.addini(INI_MARGIN, "KLD non-inferiority margin in nats of mean KLD (default 0.01)", default="")


def _int_ini(config: pytest.Config, name: str, default: int) -> int:
    from pytest_quantgate.errors import SpecError

    text = str(config.getini(name)).strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise SpecError(f"ini option {name} = {text!r} is not an integer") from None
    if value < 0:
        raise SpecError(f"ini option {name} = {value} must be >= 0")
    return value


def reference_name(config: pytest.Config) -> str | None:
    return config.getoption(OPT_REFERENCE) or str(config.getini(INI_REFERENCE)).strip() or None


def options(config: pytest.Config) -> Options:
    from pytest_quantgate.kld.fetch import DEFAULT_K, Positions
    from pytest_quantgate.kld.measure import Options

    k = _int_ini(config, INI_K, DEFAULT_K) or DEFAULT_K
    positions = Positions(max_tokens=_int_ini(config, INI_MAX_TOKENS, 0), stride=_int_ini(config, INI_STRIDE, 1) or 1)
    text = str(config.getini(INI_METHOD)).strip() or "auto"
    methods: dict[str, Method] = {"auto": "auto", "forced": "forced", "prefixes": "prefixes"}
    if text not in methods:
        from pytest_quantgate.errors import SpecError

        raise SpecError(f"ini option {INI_METHOD} = {text!r}: use auto, forced or prefixes")
    return Options(k=k, positions=positions, method=methods[text])


def corpus(config: pytest.Config, reference: Preset) -> Corpus:
    """The corpus the ini names; ``auto`` (the default) is the tiny corpus for the shipped tiny presets and
    the default corpus otherwise."""
    from pytest_quantgate.kld.corpus import default_corpus, load_files, tiny_corpus

    entries = [str(e) for e in config.getini(INI_CORPUS)] or ["auto"]
    if entries == ["auto"]:
        tiny = reference.model is not None and reference.model.name.startswith("tiny-")
        entries = ["tiny" if tiny and reference.id.startswith("tiny-") else "default"]
    if entries == ["default"]:
        return default_corpus()
    if entries == ["tiny"]:
        return tiny_corpus()
    return load_files([config.rootpath / e for e in entries])


def _fail(message: str) -> None:
    __tracebackhide__ = True
    pytest.fail(message, pytrace=False)


@pytest.fixture
def quantgate_kld(request: pytest.FixtureRequest, quantgate_preset: Preset, quantgate_iteration: int) -> Result:
    """The candidate preset's KLD figures against ``--reference`` (computed once per preset and process)."""
    from pathlib import Path

    from pytest_quantgate.config import INI_PRESET_DIRS, OPT_PRESET_DIR
    from pytest_quantgate.errors import QuantgateError
    from pytest_quantgate.kld.fetch import KldServer
    from pytest_quantgate.kld.measure import measure, preset_reference, reference_lists
    from pytest_quantgate.presets import resolve
    from pytest_quantgate.stash import CONFIG_KEY

    config = request.config
    done = config.stash.setdefault(_RESULTS, {})
    if quantgate_preset.id in done:
        return done[quantgate_preset.id]
    name = reference_name(config)
    if name is None:
        _fail(
            f"a KLD level needs a reference model: run with {OPT_REFERENCE} PRESET (or set {INI_REFERENCE} in the ini)"
        )
    run_config = config.stash[CONFIG_KEY]
    failure = ""
    try:
        dirs = [*map(str, config.getoption(OPT_PRESET_DIR)), *map(str, config.getini(INI_PRESET_DIRS))]
        ref_preset = resolve(str(name), [Path(d) for d in dirs])
        chosen = corpus(config, ref_preset)
        opts = options(config)
        lists = reference_lists(preset_reference(ref_preset, run_config.run_dir / "kld-reference"), chosen, opts)
        lease = request.getfixturevalue("quantgate_server")  # the candidate starts only now
        with KldServer(lease.base_url, label=quantgate_preset.id, api_key=quantgate_preset.api_key()) as server:
            result = measure(server, lists, chosen, opts, candidate_gguf=quantgate_preset.model)
    except QuantgateError as exc:
        failure = f"KLD of {quantgate_preset.id} against {name}: {exc}"
    if failure:
        _fail(failure)
    done[quantgate_preset.id] = result
    write(run_config.preset_dir(quantgate_preset.id) / RESULT_FILE, result, corpus_name=chosen.name)
    return result


def metric_name(category: str) -> str:
    """A category as a measurement-name suffix: lower case, [a-z0-9_]."""
    return re.sub(r"[^a-z0-9_]+", "_", category.lower()).strip("_")[:24] or "x"


def record(measure: Measure, result: Result) -> None:
    """Record *result* as measurements and items (see the module docstring)."""
    f = result.overall
    measure("kld", f.kld_mean, unit="nats", better="lower")
    # Per-position statistics get names that no gate suffix shadows: a gate "kld_max" would mean the largest
    # per-iteration mean KLD, so the largest per-position KLD is "kld_worst" (gated "kld_worst_mean").
    measure("kld_p50", f.kld_median, unit="nats", better="lower")
    measure("kld_p99", f.kld_p99, unit="nats", better="lower")
    measure("kld_worst", f.kld_max, unit="nats", better="lower")
    measure("top1", 100 * f.top1, unit="%", better="higher")
    measure("rms_dp", 100 * f.rms_dp, unit="%", better="lower")
    if f.kld_ci is not None:
        measure("kld_upper", f.kld_ci.upper, unit="nats", better="lower")
    measure("top1_lower", 100 * f.top1_ci.lower, unit="%", better="higher")
    for cat in result.figures[1:]:
        measure(f"kld_{metric_name(cat.label)}", cat.kld_mean, unit="nats", better="lower")
        measure(f"top1_{metric_name(cat.label)}", 100 * cat.top1, unit="%", better="higher")
    for totals, _ in result.docs:
        if totals.n:
            measure.item(totals.doc_id, totals.top1_sum / totals.n, weight=totals.n)


def write(path: Path, result: Result, *, corpus_name: str) -> None:
    """The preset's figures and per-document totals (what a later comparison needs) as JSON."""

    def interval(i: Any) -> list[float] | None:
        return None if i is None else [i.lower, i.upper]

    data = {
        "candidate": result.candidate,
        "reference": result.reference,
        "k": result.k,
        "corpus": corpus_name,
        "cache": result.cache,
        "lists": result.candidate_stats.method,  # how the candidate's lists were asked for: forced or prefixes
        "caveats": list(result.caveats),
        "figures": [
            {
                "label": f.label,
                "positions": f.n_positions,
                "documents": f.n_documents,
                "kld_mean": f.kld_mean,
                "kld_ci": interval(f.kld_ci),
                "kld_median": f.kld_median,
                "kld_p99": f.kld_p99,
                "kld_max": f.kld_max,
                "top1": f.top1,
                "top1_ci": interval(f.top1_ci),
                "rms_dp": f.rms_dp,
                "rms_dp_next": None if math.isnan(f.rms_dp_next) else f.rms_dp_next,
            }
            for f in result.figures
        ],
        "documents": [t.to_dict() for t, _ in result.docs],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(KldSummary(config), "quantgate-kld-summary")


class KldSummary:
    """Registered by the plugin: prints the KLD tables of the run (read from the presets' kld.json files, so
    it sees what xdist workers measured too)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        from pytest_quantgate.stash import CONFIG_KEY

        if hasattr(self.config, "workerinput"):
            return
        run_config = self.config.stash.get(CONFIG_KEY, None)
        if run_config is None:
            return
        found = {p.id: run_config.preset_dir(p.id) / RESULT_FILE for p in run_config.presets}
        data = {pid: json.loads(path.read_text()) for pid, path in found.items() if path.is_file()}
        baseline = run_config.baseline
        if data and baseline and baseline not in data and (earlier := latest_result(run_config.out_dir, baseline)):
            data[baseline] = json.loads(earlier.read_text())  # the baseline preset's KLD from an earlier run
        if data:
            from pytest_quantgate.kld.report import summary_lines

            margin = _float_ini(self.config, INI_MARGIN, DEFAULT_MARGIN)
            terminalreporter.write_sep("=", "quantgate: KL divergence against the reference")
            for line in summary_lines(
                data, baseline=run_config.baseline, kld_margin=margin, top1_margin=run_config.margin
            ):
                terminalreporter.write_line(line)


def latest_result(out_dir: Path, preset_id: str) -> Path | None:
    """The newest ``kld.json`` of *preset_id* among the runs under *out_dir*, if any."""
    found = [p for p in out_dir.glob(f"runs/*/{preset_id}/{RESULT_FILE}") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime_ns, default=None)


def _float_ini(config: pytest.Config, name: str, default: float) -> float:
    text = str(config.getini(name)).strip()
    try:
        return float(text) if text else default
    except ValueError:
        return default


__all__ = ["KldSummary", "quantgate_kld", "record"]
