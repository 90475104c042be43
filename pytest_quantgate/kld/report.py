"""The KLD summary as text: the field's table (preset × top-1, mean KLD; then per category), caveats, and the
paired and non-inferiority comparisons between presets measured against the same reference.

Input: the presets' ``kld.json`` contents (:func:`pytest_quantgate.kld.fixture.write`). No pytest here.
"""

from __future__ import annotations

from typing import Any

from pytest_quantgate.errors import QuantgateError
from pytest_quantgate.kld.figures import DocTotals, noninferiority, paired


def _ci(pair: list[float] | None, scale: float = 1.0, fmt: str = ".4f") -> str:
    return "—" if pair is None else f"[{pair[0] * scale:{fmt}}, {pair[1] * scale:{fmt}}]"


def table(data: dict[str, dict[str, Any]]) -> list[str]:
    """One row per preset: top-1 % with its interval, mean KLD with its interval clustered by document,
    median, p99, max, RMS Δp; then a preset × category block of top-1 and mean KLD."""
    lines = [
        f"{'preset':<22} {'top-1 %':>8} {'95% CI':>16} {'mean KLD':>10} {'95% CI':>20} {'median':>9} {'p99':>8} "
        f"{'max':>8} {'RMS Δp %':>9} {'positions':>9}"
    ]
    for pid, d in data.items():
        f = d["figures"][0]
        lines.append(
            f"{pid:<22} {100 * f['top1']:>8.2f} {_ci(f['top1_ci'], 100, '.2f'):>16} {f['kld_mean']:>10.5f} "
            f"{_ci(f['kld_ci'], 1, '.5f'):>20} {f['kld_median']:>9.2e} {f['kld_p99']:>8.4f} {f['kld_max']:>8.4f} "
            f"{100 * f['rms_dp']:>9.2f} {f['positions']:>9}"
        )
    categories = list(dict.fromkeys(c["label"] for d in data.values() for c in d["figures"][1:]))
    if categories:
        lines.append("")
        lines.append(f"{'per category (top-1 % / mean KLD)':<34}" + "".join(f"{c[:16]:>18}" for c in categories))
        for pid, d in data.items():
            by = {c["label"]: c for c in d["figures"][1:]}
            cells = [f"{100 * by[c]['top1']:.1f} / {by[c]['kld_mean']:.4f}" if c in by else "—" for c in categories]
            lines.append(f"{pid:<34}" + "".join(f"{cell:>18}" for cell in cells))
    return lines


def _same_basis(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return bool(a["reference"] == b["reference"] and a["k"] == b["k"] and a["corpus"] == b["corpus"])


def _docs(d: dict[str, Any]) -> list[DocTotals]:
    return [DocTotals.from_dict(x, f"kld.json of {d['candidate']}") for x in d["documents"]]


def summary_lines(
    data: dict[str, dict[str, Any]], *, baseline: str | None, kld_margin: float, top1_margin: float
) -> list[str]:
    lines = []
    refs = sorted({d["reference"] for d in data.values()})
    lines.append(
        f"reference {', '.join(refs)}; K = {', '.join(sorted({str(d['k']) for d in data.values()}))}; corpus "
        f"{', '.join(sorted({d['corpus'] for d in data.values()}))}; intervals clustered by document"
    )
    lines += table(data)
    for pid, d in data.items():
        lines += [f"caveat ({pid}): {c}" for c in d["caveats"]]
    ids = list(data)
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            if not _same_basis(data[a], data[b]):
                continue
            try:
                lines.append("paired by position: " + paired(a, _docs(data[a]), b, _docs(data[b])).describe())
            except QuantgateError as exc:
                lines.append(f"paired {a} vs {b}: {exc}")
    if baseline in data:
        for pid in ids:
            if pid == baseline or not _same_basis(data[pid], data[baseline]):
                continue
            try:
                ni = noninferiority(
                    _docs(data[pid]), _docs(data[baseline]), kld_margin=kld_margin, top1_margin=top1_margin
                )
            except QuantgateError as exc:
                lines.append(f"{pid} vs baseline {baseline}: {exc}")
                continue
            k = ni.difference.kld
            shown = f"KLD {k.estimate:+.4g} nats [{k.lower:+.4g}, {k.upper:+.4g}]" if k else "no interval"
            lines.append(
                f"{pid} vs baseline {baseline} (margins {kld_margin:g} nats, {top1_margin:g} top-1 points): "
                f"{ni.decision.upper()}; {shown}" + (f"; {'; '.join(ni.reasons)}" if ni.reasons else "")
            )
    return lines


__all__ = ["summary_lines", "table"]
