"""A Markdown report of one result file, optionally against a baseline, shaped like the field's write-ups.

TL;DR table, recommendation (with a baseline), per-level pass rates, per-iteration scores and tokens/s,
PNG plots (:mod:`pytest_quantgate.render.plots`, which needs matplotlib), gates, provenance, caveats.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_quantgate import effective
from pytest_quantgate.compare import Comparison, compare, result_aggregate
from pytest_quantgate.errors import ResultsError
from pytest_quantgate.render.comparison import (
    LEVEL_HEADERS,
    RECOMMENDATION_HEADERS,
    decision_table_rows,
    level_rows,
    recommendation_rows,
)
from pytest_quantgate.render.format import number
from pytest_quantgate.render.lanes import LANE_HEADERS, has_lanes, lane_rows
from pytest_quantgate.render.plots import PLOTS_HINT, write_plots
from pytest_quantgate.render.terminal import DECISION_HEADERS, MEASURE_HEADERS, decision_rows, measure_rows, verdict
from pytest_quantgate.results import load_result

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from pytest_quantgate.levels import RunAggregate
    from pytest_quantgate.results import ResultFile


def write_report(result: Path, *, baseline: Path | None = None, output: Path | None = None) -> Path:
    """Write the Markdown report of *result* (against *baseline* when given); returns the report's path.

    *output* defaults to ``report.md`` beside a ``result.json``/``result.jsonl``, and to
    ``<name>-report.md`` beside any other result file (so the reports of ``results/<preset>.json`` files do
    not overwrite each other). Plots are written beside the report as ``<report name>-*.png``.
    """
    candidate = load_result(result)
    base = load_result(baseline) if baseline is not None else None
    if output is None:
        name = "report.md" if result.stem == "result" else f"{result.stem}-report.md"
        output = result.parent / name
    comparison = compare(base, candidate) if base is not None else None
    agg = result_aggregate(candidate)
    base_agg = None
    if comparison is not None:
        # Plot what the comparison judged: the levels both runs hold.
        agg, base_agg = comparison.candidate_aggregate, comparison.baseline_aggregate
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        plots = write_plots(candidate, agg, base, base_agg, output)
        text = render_markdown(
            candidate, agg, comparison, plots, baseline=base, source=result, baseline_source=baseline
        )
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ResultsError(
            f"cannot write the report to {output}: {exc.strerror or exc}; pass -o PATH in a writable directory"
        ) from exc
    return output


# --------------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------------


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: frozenset[int] = frozenset()) -> str:
    """A GitHub-flavoured Markdown table; *right* holds the indexes of right-aligned columns."""
    rule = ["---:" if i in right else "---" for i in range(len(headers))]
    lines = [headers, rule, *rows]
    return "\n".join("| " + " | ".join(_cell(c) for c in line) + " |" for line in lines)


def render_markdown(
    result: ResultFile,
    agg: RunAggregate,
    comparison: Comparison | None,
    plots: Sequence[str],
    *,
    baseline: ResultFile | None = None,
    source: Path | None = None,
    baseline_source: Path | None = None,
) -> str:
    """The report text. *plots* are paragraphs for "Plots" (image links, or why there are none); *baseline*
    adds its provenance column."""
    p = result.preset
    state = "complete" if result.complete else "**incomplete** (interrupted run)"
    out = [
        f"# {p.name} (`{p.id}`): quantgate report",
        "",
        f"Run `{result.run_id}`, started {result.started_at}, {state}; pytest-quantgate {result.plugin_version}."
        + (f" Result file: `{source}`." if source else ""),
        "",
        "## TL;DR",
        "",
    ]
    right = frozenset(range(1, 11))
    if comparison is not None:
        out += [
            md_table(DECISION_HEADERS, decision_table_rows(comparison), right=right),
            "",
            f"**{comparison.message}**",
            "",
            "## Recommendation",
            "",
            f"Baseline: `{comparison.baseline_label}`" + (f" (`{baseline_source}`)" if baseline_source else "")
            + f", margin {comparison.options.margin:g} points of the maximum score.",
            "",
            md_table(RECOMMENDATION_HEADERS, recommendation_rows(comparison)),
        ]  # fmt: skip
    else:
        row = decision_rows([agg], {})[0]
        row[-1] = verdict(result.gates, agg.errors)  # the stored outcomes, in the terminal table's words
        out.append(md_table(DECISION_HEADERS, [row], right=right))
    lanes = [agg] if comparison is None else [agg, comparison.baseline_aggregate]
    if has_lanes(lanes):
        out += ["", "## Lanes", "", "Means over iterations; n/a: the server could not give the figure.", ""]
        out.append(md_table(LANE_HEADERS, lane_rows(lanes), right=frozenset(range(1, len(LANE_HEADERS)))))
    if agg.measures:
        out += ["", "## Measurements", "", "Per iteration: the mean of what the levels recorded under the name.", ""]
        out.append(md_table(MEASURE_HEADERS, measure_rows([agg]), right=frozenset(range(4, 11))))
    out += ["", "## Per-level pass rates", ""]
    if comparison is not None:
        alpha = comparison.options.alpha
        out += [
            f"Δ = candidate − baseline in points of the level's pass rate; interval {100 * (1 - 2 * alpha):g} % "
            "(its ends are the one-sided bounds the verdict uses).",
            "",
            md_table(LEVEL_HEADERS, level_rows(comparison), right=frozenset({1, 2, 3, 4})),
        ]
    else:
        rows = [
            [
                lv.name,
                f"{lv.points:g}",
                f"{lv.rate.passed}/{lv.rate.n}",
                number(100 * lv.rate.rate, 1, " %"),
                f"[{number(100 * lv.rate.low)}, {number(100 * lv.rate.high)}]",
            ]
            for lv in agg.levels
        ]
        out.append(md_table(["level", "points", "passed", "rate", "95% Wilson CI"], rows, right=frozenset({1, 2, 3})))
    out += ["", "## Per iteration", "", _iteration_table(agg, comparison), "", "## Plots"]
    for paragraph in plots:
        out += ["", paragraph]
    if result.gates:
        out += ["", "## Gates", ""]
        gate_rows = [[g.id, "pass" if g.passed else "**FAIL**", g.source, g.message] for g in result.gates]
        out.append(md_table(["gate", "outcome", "from", "detail"], gate_rows))
    out += ["", "## Provenance", "", _provenance_table([result] if baseline is None else [result, baseline])]
    if comparison is not None:
        if comparison.caveats:
            out += ["", "## Caveats", "", "The runs differ in more than the model:", ""]
            out += [f"- {c}" for c in comparison.caveats]
        if comparison.problems:
            out += ["", "## Limits of this comparison", ""]
            out += [f"- {c}" for c in comparison.problems]
        out += ["", "## Verdict", "", comparison.message]
    return "\n".join(out) + "\n"


def _iteration_table(agg: RunAggregate, comparison: Comparison | None) -> str:
    if not agg.iterations:
        return "No per-iteration data in this result (it holds only a summary)."
    headers = ["iteration", "score %", "raw", "tok/s", "errors"]
    base = {}
    if comparison is not None:
        # The comparison's own aggregates cover the common levels only; show the same scores it judged.
        agg = comparison.candidate_aggregate
        base = {it.iteration: it for it in comparison.baseline_aggregate.iterations}
        headers += ["baseline score %", "baseline tok/s"]
    rows = []
    iterations = sorted({it.iteration for it in agg.iterations} | set(base))
    mine = {it.iteration: it for it in agg.iterations}
    for k in iterations:
        it = mine.get(k)
        row = [
            str(k),
            number(it.percent) if it else "—",
            f"{it.raw:g}" if it else "—",
            number(it.tokens_per_s, 0) if it else "—",
            str(it.errors) if it else "—",
        ]
        if comparison is not None:
            b = base.get(k)
            row += [number(b.percent) if b else "—", number(b.tokens_per_s, 0) if b else "—"]
        rows.append(row)
    return md_table(headers, rows, right=frozenset(range(len(headers))))


def _provenance_table(results: Sequence[ResultFile]) -> str:
    """What ran: the result (and the baseline) side by side."""

    def fields(r: ResultFile) -> list[tuple[str, object]]:
        p = r.preset
        size = f"{p.model_size_bytes:,} bytes" if p.model_size_bytes else None
        return [
            ("preset", f"{p.id} ({p.name})"),
            ("driver", p.driver),
            ("preset file", p.source),
            ("model (GGUF)", p.model),
            ("model size", size),
            ("model digest", p.model_digest),
            ("server binary", p.binary),
            ("binary --version", p.binary_version),
            ("binary hash", p.binary_sha256),
            ("argv", " ".join(p.argv) if p.argv else None),
            ("context size", p.context_size),
            ("parallel slots", p.parallel),
            ("extra_args", " ".join(p.extra_args) if p.extra_args else None),
            ("sampler", p.sampler or None),
            ("chat template kwargs", p.chat_template_kwargs or None),
            ("memory ceiling MB", p.memory_ceiling_mb),
            ("speculative draft", _draft_text(p.draft)),
            *((f"server took: {label}", value) for label, value in effective.describe(p.effective or {})),
            ("load s", r.server.load_s),
            ("memory source", r.server.memory_source),
            ("llama.cpp buffers MB", _buffers(r) or None),
            ("prompt cache MB", r.server.prompt_cache_mb),
            ("pinned devices", ", ".join(r.server.devices) or None),
            ("memory notes", "; ".join(r.server.memory_notes) or None),
            *((f"host {k}", v) for k, v in r.host.items()),
            ("run", r.run_id),
            ("started", r.started_at),
            ("finished", r.finished_at),
            ("complete", r.complete),
            ("pytest-quantgate", r.plugin_version),
        ]

    columns = [dict(fields(r)) for r in results]
    keys = list(dict.fromkeys(k for r in results for k, _ in fields(r)))
    headers = ["", *(r.preset.id for r in results)]
    if len(results) == 2:
        headers = ["", f"{results[0].preset.id} (this result)", f"{results[1].preset.id} (baseline)"]
    rows = [[k, *("—" if col.get(k) is None else f"`{col[k]}`" for col in columns)] for k in keys]
    table = md_table(headers, rows)
    # "server took" rows are what /props and /slots reported; where that differs from the preset, say so.
    notes = [f"- {line}" for r in results for line in effective.asked_vs_took(r.preset)]
    if notes:
        table += "\n\nWhat the server took differs from what the preset asked:\n\n" + "\n".join(notes)
    return table


def _draft_text(draft: dict[str, object] | None) -> str | None:
    if not draft:
        return None
    parts = [str(draft.get("spec_type") or "draft")]
    if draft.get("model"):
        parts.append(f"model {draft['model']}")
    if draft.get("n_max"):
        parts.append(f"n_max {draft['n_max']}")
    return ", ".join(parts)


def _buffers(result: ResultFile) -> str:
    """``CPU: model 0.24, kv 0.12, compute 0.47``: what llama.cpp reported, per device."""
    per: dict[str, dict[str, float]] = {}
    for b in result.server.llama_buffers:
        per.setdefault(b.device, {})
        per[b.device][b.kind] = per[b.device].get(b.kind, 0.0) + b.mb
    return "; ".join(f"{d}: " + ", ".join(f"{k} {v:.2f}" for k, v in kinds.items()) for d, kinds in per.items())


__all__ = ["PLOTS_HINT", "md_table", "render_markdown", "write_report"]
