"""The report's PNG plots: score and tokens/s per iteration, memory over the run.

matplotlib (the optional extra ``plots``) is imported only here and only when plots are written, and it
draws on the Agg canvas directly (no pyplot, no process-wide backend switch). Without it the report says
the plots were skipped and how to get them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_quantgate.render.format import number

if TYPE_CHECKING:
    from pathlib import Path

    from pytest_quantgate.levels import RunAggregate
    from pytest_quantgate.results import ResultFile

PLOTS_HINT = "pip install 'pytest-quantgate[plots]'"


def write_plots(
    result: ResultFile,
    agg: RunAggregate,
    baseline: ResultFile | None,
    base_agg: RunAggregate | None,
    output: Path,
) -> list[str]:
    """Write the PNGs beside *output*; return the Markdown lines that show them (or say why not)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return [
            f"Plots skipped: matplotlib is not installed. Install it with `{PLOTS_HINT}` and write the report "
            "again (`quantgate report RESULT`)."
        ]
    series = [(result.preset.id, result, agg)]
    if baseline is not None and base_agg is not None:
        series.append((f"{baseline.preset.id} (baseline)", baseline, base_agg))
    lines: list[str] = []

    def save(figure: Figure, suffix: str, title: str) -> None:
        path = output.with_name(f"{output.stem}-{suffix}.png")
        FigureCanvasAgg(figure)
        figure.tight_layout()
        figure.savefig(path, dpi=100)
        lines.append(f"![{title}]({path.name})")

    fig = Figure(figsize=(7, 3.2))
    ax = fig.add_subplot()
    for label, _r, a in series:
        ax.plot([it.iteration for it in a.iterations], [it.percent for it in a.iterations], marker="o", label=label)
    ax.set(xlabel="iteration", ylabel="score, % of max", title="Score per iteration", ylim=(0, 105))
    ax.legend(loc="best")
    save(fig, "score", "score per iteration")

    if any(it.tokens_per_s is not None for _l, _r, a in series for it in a.iterations):
        fig = Figure(figsize=(7, 3.2))
        ax = fig.add_subplot()
        for label, _r, a in series:
            pts = [(it.iteration, it.tokens_per_s) for it in a.iterations if it.tokens_per_s is not None]
            ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=label)
        ax.set(xlabel="iteration", ylabel="decode tokens/s", title="Tokens/s per iteration")
        ax.set_ylim(bottom=0)
        ax.legend(loc="best")
        save(fig, "tps", "tokens/s per iteration")
    else:
        lines.append("No tokens/s plot: no iteration recorded a decode rate.")

    memory = []
    for label, r, _a in series:
        elapsed = 0.0
        points = []
        for s in r.samples:
            elapsed += s.duration_s
            if s.memory_mb is not None:
                points.append((elapsed, s.memory_mb))
        if points:
            memory.append((label, points))
    if memory:
        fig = Figure(figsize=(7, 3.2))
        ax = fig.add_subplot()
        for label, points in memory:
            ax.plot([x for x, _ in points], [y for _, y in points], label=label)
        if result.preset.memory_ceiling_mb is not None:
            ceiling = result.preset.memory_ceiling_mb
            ax.axhline(ceiling, color="red", linestyle="--", label=f"ceiling {number(ceiling, 0, ' MB')}")
        source = f" ({result.server.memory_source})" if result.server.memory_source else ""
        ax.set(xlabel="time in levels, s (sum of level durations)", ylabel=f"MB{source}", title="Memory over the run")
        ax.set_ylim(bottom=0)
        ax.legend(loc="best")
        save(fig, "memory", "memory over the run")
    else:
        lines.append("No memory plot: the samples hold no memory readings (attached server?).")
    return lines


__all__ = ["PLOTS_HINT", "write_plots"]
