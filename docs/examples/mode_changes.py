#!/usr/bin/env python3
"""Which modes change their preset between two git revisions, and the pytest-quantgate runs that judge it.

A repository keeps presets (``presets/*.yaml``) and modes (``modes/*.yaml``), each mode naming the preset
it uses::

    # modes/agent.yaml
    preset: gemma4-26b-a4b-qat-q4
    suites: [suites/coding, suites/knowledge]   # optional; else --suites
    margin: 5                                    # optional: --margin for this mode
    require_faster: false                        # optional
    iterations: 15                               # optional

A mode's preset changes when its ``preset:`` line names another preset, or when the preset file it names
is edited. For each such mode this prints the command that runs the mode's suites on the new preset
against the stored result of the old one (see docs/baselines.md)::

    $ python docs/examples/mode_changes.py --base origin/main --head HEAD
    # mode agent: preset gemma4-qat-q4 → gemma4-ud-q4
    pytest suites/coding suites/knowledge --preset gemma4-ud-q4 --baseline .quantgate/results/gemma4-qat-q4

``--store DIR`` prints instead the runs that refresh the stored results after a merge (``--all``: of every
mode's preset, to bootstrap the store). Lines starting with ``#`` are notes. Needs git and PyYAML.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

YAML_SUFFIXES = (".yaml", ".yml")


class ModeError(Exception):
    """A mode or preset file, or a git revision, that cannot be used; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Mode:
    name: str
    path: str
    preset: str
    suites: tuple[str, ...]
    margin: float | None
    require_faster: bool
    iterations: int | None


@dataclass(frozen=True, slots=True)
class Change:
    mode: Mode  # as of the head revision
    old_preset: str
    why: str


def git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise ModeError("git is not installed or not on PATH") from None
    except subprocess.CalledProcessError as exc:
        raise ModeError(f"`git {' '.join(args)}` failed: {exc.stderr.strip()}") from None
    return done.stdout


def show(rev: str, path: str) -> str | None:
    """The file at *rev*, or None when it does not exist there."""
    try:
        return git("show", f"{rev}:{path}")
    except ModeError:
        return None


def changed_files(base: str, head: str, directory: str) -> list[str]:
    out = git("diff", "--name-only", "--no-renames", base, head, "--", directory)
    return [p for p in out.splitlines() if p.endswith(YAML_SUFFIXES)]


def load_yaml(text: str, where: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ModeError(f"{where}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ModeError(f"{where}: expected a mapping of keys, got {type(data).__name__}")
    return data


def parse_mode(text: str, path: str, rev: str, default_suites: tuple[str, ...]) -> Mode:
    where = f"{path} at {rev}"
    data = load_yaml(text, where)
    preset = data.get("preset")
    if not isinstance(preset, str) or not preset:
        raise ModeError(f"{where}: a mode needs `preset: <preset id>`, got {preset!r}")
    suites = data.get("suites", list(default_suites))
    if isinstance(suites, str):
        suites = [suites]
    if not isinstance(suites, list) or not all(isinstance(s, str) for s in suites):
        raise ModeError(f"{where}: `suites` must be a list of paths, got {suites!r}")
    margin = data.get("margin")
    if margin is not None and (isinstance(margin, bool) or not isinstance(margin, int | float)):
        raise ModeError(f"{where}: `margin` must be a number of score points, got {margin!r}")
    iterations = data.get("iterations")
    if iterations is not None and (type(iterations) is not int or iterations < 1):
        raise ModeError(f"{where}: `iterations` must be an integer ≥ 1, got {iterations!r}")
    return Mode(
        name=PurePosixPath(path).stem,
        path=path,
        preset=preset,
        suites=tuple(suites),
        margin=None if margin is None else float(margin),
        require_faster=bool(data.get("require_faster", False)),
        iterations=iterations,
    )


def preset_id(text: str, path: str) -> str:
    """The preset's id: its ``id:`` key, else the file name (as pytest-quantgate finds it)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("id"), str):
        return str(data["id"])
    return PurePosixPath(path).stem


def modes_at(rev: str, directory: str, default_suites: tuple[str, ...]) -> list[Mode]:
    names = git("ls-tree", "-r", "--name-only", rev, "--", directory).splitlines()
    modes = []
    for path in names:
        if path.endswith(YAML_SUFFIXES):
            text = show(rev, path)
            if text is not None:
                modes.append(parse_mode(text, path, rev, default_suites))
    return modes


def find_changes(
    base: str, head: str, modes_dir: str, presets_dir: str, default_suites: tuple[str, ...]
) -> tuple[list[Change], list[Mode], list[str]]:
    """(changes, modes added, notes). *base* is compared at its merge base with *head*, as a pull request is."""
    fork = git("merge-base", base, head).strip()
    changes: dict[str, Change] = {}
    added: list[Mode] = []
    notes: list[str] = []
    for path in changed_files(fork, head, modes_dir):
        new_text, old_text = show(head, path), show(fork, path)
        if new_text is None:
            notes.append(f"# {path}: mode removed; nothing to judge")
            continue
        mode = parse_mode(new_text, path, head, default_suites)
        if old_text is None:
            added.append(mode)
            notes.append(f"# {path}: new mode on preset {mode.preset}; no old preset to compare against")
            continue
        old = parse_mode(old_text, path, fork, default_suites)
        if old.preset != mode.preset:
            changes[path] = Change(mode, old.preset, f"mode {mode.name}: preset {old.preset} → {mode.preset}")
    edited = {}
    for path in changed_files(fork, head, presets_dir):
        text = show(head, path)
        if text is not None:
            edited[preset_id(text, path)] = path
    for mode in modes_at(head, modes_dir, default_suites):
        if mode.path not in changes and mode.preset in edited:
            changes[mode.path] = Change(
                mode, mode.preset, f"mode {mode.name}: preset file {edited[mode.preset]} edited"
            )
    return sorted(changes.values(), key=lambda c: c.mode.path), added, notes


def pytest_command(mode: Mode, *, preset: str, extra: list[str]) -> list[str]:
    cmd = ["pytest", *mode.suites, "--preset", preset]
    if mode.iterations is not None:
        cmd += ["--iterations", str(mode.iterations)]
    return cmd + extra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--base", default="origin/main", help="Revision the change is judged against")
    parser.add_argument("--head", default="HEAD", help="Revision with the change")
    parser.add_argument("--modes-dir", default="modes", help="Where mode files live (default: modes)")
    parser.add_argument("--presets-dir", default="presets", help="Where preset files live (default: presets)")
    parser.add_argument("--suites", nargs="*", default=["suites"], help="Suites of modes that name none")
    parser.add_argument("--results-dir", default=".quantgate/results", type=Path,
                        help="Stored results of the old presets (<dir>/<preset>/, one per suite)")  # fmt: skip
    parser.add_argument("--quantgate-dir", help="Passed on as --quantgate-dir: where the new runs write")
    parser.add_argument("--report-dir", help="Also print a `quantgate report` command per change, into this dir")
    parser.add_argument("--store", metavar="DIR", help="Print the runs that refresh DIR/results after a merge")
    parser.add_argument("--all", action="store_true", help="With --store: every mode's preset, not only changed")
    args = parser.parse_args(argv)
    suites = tuple(args.suites)
    changes: list[Change] = []
    notes: list[str] = []
    try:
        if args.store and args.all:
            targets = {m.preset: m for m in modes_at(args.head, args.modes_dir, suites)}
        else:
            changes, added, notes = find_changes(args.base, args.head, args.modes_dir, args.presets_dir, suites)
            targets = {m.preset: m for m in [*added, *(c.mode for c in changes)]}
    except ModeError as exc:
        print(f"mode_changes: error: {exc}", file=sys.stderr)
        return 2
    for note in notes:
        print(note)
    if args.store:
        for preset, mode in sorted(targets.items()):
            print(shlex.join(pytest_command(mode, preset=preset, extra=["--quantgate-dir", args.store])))
        return 0
    if not changes:
        print("# no mode changes its preset")
    for change in changes:
        mode = change.mode
        stored = args.results_dir / change.old_preset  # --baseline DIR picks the file of the suite being run
        print(f"# {change.why}")
        if not any(stored.glob("*.json")):
            print(
                f"# no stored result {stored}: run `pytest {' '.join(mode.suites)} --preset {change.old_preset}` "
                "on the base revision first (the run below will stop with an error)"
            )
        writes = Path(args.quantgate_dir or ".quantgate") / "results"
        if change.old_preset == mode.preset and writes.resolve() == args.results_dir.resolve():
            print(f"# the run below replaces {stored} with the new result: pass --quantgate-dir elsewhere to keep it")
        extra = ["--baseline", str(stored)]
        if mode.margin is not None:
            extra += ["--margin", f"{mode.margin:g}"]
        if mode.require_faster:
            extra.append("--require-faster")
        if args.quantgate_dir:
            extra += ["--quantgate-dir", args.quantgate_dir]
        print(shlex.join(pytest_command(mode, preset=mode.preset, extra=extra)))
        if args.report_dir:
            report = Path(args.report_dir) / f"{mode.name}.md"
            candidate = writes / mode.preset  # the run's stored result (only a run without errors is stored)
            print(shlex.join(["quantgate", "report", str(candidate), "--baseline", str(stored), "-o", str(report)]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
