"""Results from several hosts in one view: one row per (preset, host), each host's provenance, the caveats
between hosts, and which result each candidate is compared against.

A CI matrix over GPU runners leaves one result file per preset per host (``docs/memory.md``); this module
reads any number of them. A candidate is compared with the baseline preset's result *from its own host*
where there is one: speed and measured memory are properties of a machine, and only the llama.cpp figure
is the same on every host for the same model and flags.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_quantgate.errors import ResultsError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from pytest_quantgate.compare import CompareOptions, Comparison
    from pytest_quantgate.levels import RunAggregate
    from pytest_quantgate.results import ResultFile

UNKNOWN_HOST = "(host not recorded)"
# Host fields whose difference is a caveat, with how a reader calls them.
_HOST_FIELDS = (
    ("cpu", "CPU"),
    ("gpu", "GPU"),
    ("ram_mb", "RAM (MB)"),
    ("platform", "OS"),
)


@dataclass(frozen=True, slots=True)
class Entry:
    """One result file and where it came from."""

    path: Path
    result: ResultFile

    @property
    def host(self) -> str:
        name = self.result.host.get("hostname")
        return str(name) if name else UNKNOWN_HOST

    @property
    def preset(self) -> str:
        return self.result.preset.id

    @property
    def suite(self) -> str:
        return self.result.suite

    @property
    def label(self) -> str:
        """``preset @ host``: the row's name in the table."""
        return f"{self.preset} @ {self.host}"

    def name(self, entries: Sequence[Entry]) -> str:
        """The row's name among *entries*: :attr:`label`, and the suite when they hold several."""
        several = len({e.suite for e in entries}) > 1
        return f"{self.label} · {self.suite}" if several else self.label


def load_entries(paths: Sequence[Path]) -> list[Entry]:
    """Every file as an :class:`Entry`; a file of another schema (another pytest-quantgate version on some
    host) or two files for one (preset, host, run, suite) are a ResultsError naming the files."""
    from pytest_quantgate.results import load_result

    entries = []
    for path in paths:
        try:
            entries.append(Entry(path, load_result(path)))
        except ResultsError as exc:
            raise ResultsError(
                f"{exc}\n  (one of {len(paths)} result files; every host must run a pytest-quantgate that writes "
                "this schema: install the same version on all runners)"
            ) from None
    seen: dict[tuple[str, str, str, str], Path] = {}
    for e in entries:
        key = (e.preset, e.host, e.result.run_id, e.suite)
        if key in seen:
            raise ResultsError(f"{seen[key]} and {e.path} are the same run ({e.label}, run {e.result.run_id})")
        seen[key] = e.path
    return entries


def labelled_aggregate(entry: Entry, entries: Sequence[Entry] = ()) -> RunAggregate:
    """The entry's aggregate, named ``preset @ host`` for the table (and its suite, when *entries* hold
    results of several suites)."""
    from pytest_quantgate.compare import result_aggregate

    return dataclasses.replace(result_aggregate(entry.result), preset=entry.name(entries or [entry]))


def pairings(entries: Sequence[Entry], baseline_preset: str | None = None) -> list[tuple[Entry, Entry]]:
    """(baseline, candidate) pairs: every entry of another preset against *baseline_preset*'s result on the
    same suite from the same host, else from the first host that has one (a cross-host comparison: its
    caveats say so). A candidate on a suite the baseline preset has no result of is not paired.

    *baseline_preset* defaults to the first file's preset.
    """
    if not entries:
        return []
    wanted = baseline_preset or entries[0].preset
    baselines = [e for e in entries if e.preset == wanted]
    if not baselines:
        present = ", ".join(sorted({e.preset for e in entries}))
        raise ResultsError(f"no result of the baseline preset {wanted!r} among the files (presets: {present})")
    by_host = {(e.host, e.suite): e for e in reversed(baselines)}  # the first file of each host wins
    first = {e.suite: e for e in reversed(baselines)}
    return [
        (by_host.get((e.host, e.suite), first[e.suite]), e)
        for e in entries
        if e.preset != wanted and e.suite in first
    ]


def host_rows(entries: Sequence[Entry]) -> list[list[str]]:
    """One row per host: its machine, the llama-server builds and pytest-quantgate versions it ran, its runs."""
    rows = []
    hosts: dict[str, list[Entry]] = {}
    for e in entries:
        hosts.setdefault(e.host, []).append(e)
    for host, mine in hosts.items():
        info = mine[0].result.host
        binaries = sorted({e.result.preset.binary_version or "(not recorded)" for e in mine})
        plugins = sorted({e.result.plugin_version for e in mine})
        devices = sorted({d for e in mine for d in e.result.server.devices})
        rows.append(
            [
                host,
                str(info.get("cpu") or "—"),
                str(info.get("gpu") or "none"),
                str(info.get("ram_mb") or "—"),
                "; ".join(binaries),
                ", ".join(plugins),
                ", ".join(devices) or "—",
                ", ".join(sorted({e.result.run_id for e in mine})),
            ]
        )
    return rows


HOST_HEADERS = ("host", "CPU", "GPU", "RAM MB", "llama-server", "quantgate", "pinned devices", "runs")


def host_caveats(entries: Sequence[Entry]) -> list[str]:
    """What differs between the hosts, and what that means for reading the table across them."""
    hosts: dict[str, ResultFile] = {}
    for e in entries:
        hosts.setdefault(e.host, e.result)
    out: list[str] = []
    if len(hosts) > 1:
        out.append(
            f"{len(hosts)} hosts: tokens/s, TTFT, load time and measured memory are properties of each machine; "
            "compare them between rows of one host. Scores and llama.cpp's memory figure do not depend on the host "
            "for the same model, flags and build"
        )
    names = list(hosts)
    first = hosts[names[0]] if names else None
    for name in names[1:]:
        other = hosts[name]
        assert first is not None
        for key, label in _HOST_FIELDS:
            a, b = first.host.get(key), other.host.get(key)
            if a != b:
                out.append(f"host {label}: {names[0]} {a or '(not recorded)'} vs {name} {b or '(not recorded)'}")
        if first.plugin_version != other.plugin_version:
            out.append(f"pytest-quantgate: {names[0]} {first.plugin_version} vs {name} {other.plugin_version}")
    by_preset: dict[str, list[Entry]] = {}
    for e in entries:
        by_preset.setdefault(e.preset, []).append(e)
    for preset, mine in by_preset.items():
        builds = {e.result.preset.binary_version for e in mine}
        if len(builds) > 1:
            shown = ", ".join(f"{e.host}: {e.result.preset.binary_version or '(not recorded)'}" for e in mine)
            out.append(f"{preset}: different llama-server builds ({shown}): speed and sampling may differ")
        reported = {round(e.result.server.llama_memory_mb, 2) for e in mine if e.result.server.llama_memory_mb}
        if len(reported) > 1:
            shown = ", ".join(f"{e.host}: {e.result.server.llama_memory_mb:g} MB" for e in mine)
            out.append(
                f"{preset}: llama.cpp reports different allocations ({shown}): other flags, another build, or "
                "--fit lowered the context or GPU layers on a smaller device"
            )
        sources = {e.result.server.memory_source for e in mine if e.result.server.memory_source}
        if len(sources) > 1:
            out.append(f"{preset}: measured memory from different sources ({', '.join(sorted(sources))})")
    return out


def compare_entries(
    entries: Sequence[Entry], options: CompareOptions, baseline_preset: str | None = None
) -> list[tuple[Entry, Entry, Comparison]]:
    """Each candidate's :class:`Comparison` with its baseline (see :func:`pairings`)."""
    from pytest_quantgate.compare import compare

    return [(b, c, compare(b.result, c.result, options)) for b, c in pairings(entries, baseline_preset)]


__all__ = [
    "HOST_HEADERS",
    "Entry",
    "compare_entries",
    "host_caveats",
    "host_rows",
    "labelled_aggregate",
    "load_entries",
    "pairings",
]
