"""Results of several hosts as text and Markdown: the decision table with a row per (preset, host), the
hosts, the caveats between them, and each candidate's verdict against its baseline."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_quantgate.fleet import HOST_HEADERS, host_caveats, host_rows, labelled_aggregate
from pytest_quantgate.render.table import table
from pytest_quantgate.render.terminal import DECISION_HEADERS, decision_rows, verdict

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pytest_quantgate.compare import Comparison
    from pytest_quantgate.fleet import Entry


def fleet_rows(entries: Sequence[Entry], compared: Sequence[tuple[Entry, Entry, Comparison]]) -> list[list[str]]:
    """Decision-table rows, one per file; the last column is the run's gates, and for a candidate the
    verdict against its baseline."""
    verdicts = {id(c): f"{comp.verdict} vs {b.label}" for b, c, comp in compared}
    rows = []
    for entry in entries:
        agg = labelled_aggregate(entry, entries)
        row = decision_rows([agg], {})[0]
        gates = verdict(entry.result.gates, agg.errors)
        row[-1] = f"{gates}; {verdicts[id(entry)]}" if id(entry) in verdicts else gates
        rows.append(row)
    return rows


def render_fleet(entries: Sequence[Entry], compared: Sequence[tuple[Entry, Entry, Comparison]]) -> str:
    """The terminal text of ``quantgate compare`` over several hosts' files."""
    right = frozenset(range(1, 11))
    parts = [
        f"{len(entries)} results, {len({e.host for e in entries})} host(s): one row per preset and host",
        "",
        table(DECISION_HEADERS, fleet_rows(entries, compared), right=right),
        "",
        "hosts:",
        table(HOST_HEADERS, host_rows(entries)),
    ]
    caveats = host_caveats(entries)
    if caveats:
        parts += ["", "caveats between hosts:", *(f"  - {c}" for c in caveats)]
    if compared:
        parts += ["", "verdicts (each candidate against the baseline preset on its own host where there is one):"]
        for b, c, comp in compared:
            parts.append(f"  {c.name(entries)} vs {b.name(entries)}: {comp.message}")
            parts += [f"      - {caveat}" for caveat in comp.caveats]
    return "\n".join(parts)


def fleet_markdown(entries: Sequence[Entry], compared: Sequence[tuple[Entry, Entry, Comparison]]) -> str:
    """The Markdown report of ``quantgate report`` over several hosts' files."""
    from pytest_quantgate.render.markdown import md_table

    right = frozenset(range(1, 11))
    hosts = len({e.host for e in entries})
    out = [
        "# quantgate report: several hosts",
        "",
        f"{len(entries)} result files from {hosts} host(s); one row per preset and host.",
        "",
        md_table(DECISION_HEADERS, fleet_rows(entries, compared), right=right),
        "",
        "## Hosts",
        "",
        md_table(HOST_HEADERS, host_rows(entries)),
        "",
        "## Files",
        "",
        *(f"- `{e.name(entries)}`: `{e.path}` (run {e.result.run_id}, started {e.result.started_at})" for e in entries),
    ]
    caveats = host_caveats(entries)
    if caveats:
        out += ["", "## Caveats between hosts", "", *(f"- {c}" for c in caveats)]
    if compared:
        out += ["", "## Verdicts", ""]
        for b, c, comp in compared:
            out.append(f"- **{c.name(entries)}** vs {b.name(entries)}: {comp.message}")
            out += [f"  - {caveat}" for caveat in comp.caveats]
    return "\n".join(out) + "\n"


__all__ = ["fleet_markdown", "fleet_rows", "render_fleet"]
