"""The ``quantgate`` command: install-server, presets, compare, report.

Exit status: 0 success (``compare``: verdict swap), 1 ``compare``: verdict keep (``presets``: some files
could not be read), 2 any error — bad arguments, a missing or unreadable file, a failure of the command
itself (``quantgate: error: ...``) — 3 ``compare``: verdict inconclusive. An error never exits 0, 1 or 3, so
automation cannot read a crash as a verdict.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_quantgate.errors import QuantgateError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pytest_quantgate.compare import CompareOptions


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="quantgate", description="pytest-quantgate helper commands")
    sub = parser.add_subparsers(dest="command", required=True)

    install = sub.add_parser("install-server", help="Build (once) and cache a CPU llama-server from PyPI")
    install.add_argument("--jobs", type=int, help="Parallel compile jobs (default: CPU count)")
    install.add_argument("--sdist", type=Path, help="A local llama-cpp-python sdist instead of downloading one")
    install.set_defaults(func=_install_server)

    presets = sub.add_parser("presets", help="List the presets found and where")
    presets.add_argument("--preset-dir", action="append", default=[], type=Path, metavar="DIR")
    presets.set_defaults(func=_presets)

    comp = sub.add_parser(
        "compare",
        help="May CANDIDATE replace BASELINE? Exit 0 swap, 1 keep, 3 inconclusive, 2 error",
        description="Compare two result files (result.json, an interrupted run's result.jsonl, or a preset id: its "
        "latest stored result in $QUANTGATE_DIR/results, default .quantgate/results, for the suite of the other "
        "side). With more files, or directories (their result.json files, as CI artifacts hold them), from any "
        "number of hosts: one table with a row per (preset, host), and each other preset compared with the "
        "baseline preset (BASELINE's, or --baseline-preset) on its own host. Exit status: 0 swap (every "
        "candidate), 1 keep (any), 3 inconclusive, 2 any error.",
    )
    comp.add_argument("baseline", metavar="BASELINE", help="Result file (or preset id) of the preset in use")
    comp.add_argument("candidate", metavar="CANDIDATE", nargs="+",
                      help="Result file(s), directories or preset ids of the proposed preset(s)")  # fmt: skip
    comp.add_argument(
        "--baseline-preset",
        metavar="ID",
        help="With several files: the preset the others are compared with (default: BASELINE's)",
    )
    comp.add_argument("--margin", type=float, default=2.0, metavar="POINTS",
                      help="Non-inferiority margin in points of the maximum score (default 2)")  # fmt: skip
    comp.add_argument("--speed-floor", type=float, default=0.05, metavar="FRACTION",
                      help="Smallest relative speed/memory change that counts (default 0.05)")  # fmt: skip
    comp.add_argument("--require-faster", action="store_true", help="A swap also needs more tokens/s")
    comp.add_argument("--max-age-days", type=float, default=14.0, metavar="DAYS",
                      help="Runs further apart get a caveat (default 14)")  # fmt: skip
    comp.set_defaults(func=_compare)

    rep = sub.add_parser("report", help="Write a Markdown report (with plots when matplotlib is installed)")
    rep.add_argument("result", metavar="RESULT", nargs="+",
                     help="Result file (or preset id); several, or directories: one report over hosts")  # fmt: skip
    rep.add_argument("--baseline", metavar="B", help="Result file (or preset id) to compare against")
    rep.add_argument("-o", "--output", type=Path, metavar="OUT",
                     help="Report path (default: report.md beside a result.json)")  # fmt: skip
    rep.set_defaults(func=_report)

    args = parser.parse_args(argv)  # bad arguments: argparse exits with EXIT_ERROR (2)
    try:
        code: int = args.func(args)
    except (QuantgateError, OSError) as exc:
        print(f"quantgate: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception:
        # A bug, not a verdict: Python's own exit status for it (1) would read as "keep".
        traceback.print_exc()
        print("quantgate: error: an unexpected failure (a bug in pytest-quantgate; the traceback above says where)",
              file=sys.stderr)  # fmt: skip
        return EXIT_ERROR
    return code


EXIT_ERROR = 2


def _install_server(args: argparse.Namespace) -> int:
    from pytest_quantgate.install import binary_version, build_home, install_server

    started = time.monotonic()
    binaries = install_server(sdist=args.sdist, jobs=args.jobs, progress=lambda line: print(line, flush=True))
    took = time.monotonic() - started
    print(f"llama-server:   {binaries.server}")
    print(f"llama-quantize: {binaries.quantize}")
    print(f"{binary_version(binaries.server)}")
    print(f"cache: {build_home()} ({'reused' if took < 5 else f'built in {took:.0f} s'})")
    return 0


def _presets(args: argparse.Namespace) -> int:
    from pytest_quantgate.presets import catalogue, search_path
    from pytest_quantgate.render.table import table

    found = catalogue(args.preset_dir)
    rows = []
    for preset in found.presets:
        packaged = preset.packaged.describe() if preset.packaged else None
        target = preset.model or packaged or preset.base_url or " ".join(preset.redact(preset.command[:3]))
        rows.append([preset.id, preset.driver, preset.origin, str(target), str(preset.source)])
    print(table(["id", "driver", "format", "model / target", "file"], rows))
    print("\nsearched: " + ", ".join(str(p) for p in search_path(args.preset_dir)))
    if found.problems:
        print("\nfiles that could not be read:", file=sys.stderr)
        for problem in found.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2  # an error, as every quantgate error: never read as a verdict
    return 0


EXIT_BY_VERDICT = {"swap": 0, "keep": 1, "inconclusive": 3}


def _compare(args: argparse.Namespace) -> int:
    from pytest_quantgate.compare import CompareOptions, compare
    from pytest_quantgate.render.comparison import render
    from pytest_quantgate.results import load_result

    options = CompareOptions(
        margin=args.margin,
        speed_floor=args.speed_floor,
        require_faster=args.require_faster,
        max_age_days=args.max_age_days,
    )
    if len(args.candidate) > 1 or any(Path(s).is_dir() for s in (args.baseline, *args.candidate)):
        return _compare_fleet(args, options)
    base_path, cand_path = _resolve_pair(args.baseline, args.candidate[0])
    baseline, candidate = load_result(base_path), load_result(cand_path)
    comparison = compare(baseline, candidate, options)
    print(f"baseline:  {baseline.origin(base_path)}")
    print(f"candidate: {candidate.origin(cand_path)}")
    print(render(comparison))
    return EXIT_BY_VERDICT[comparison.verdict]


def _report(args: argparse.Namespace) -> int:
    from pytest_quantgate.compare import resolve_result
    from pytest_quantgate.render.markdown import write_report

    if len(args.result) > 1 or Path(args.result[0]).is_dir():
        return _report_fleet(args)
    args.result = args.result[0]
    if args.baseline:
        baseline, result = _resolve_pair(args.baseline, args.result)
        print(write_report(result, baseline=baseline, output=args.output))
    else:
        print(write_report(resolve_result(args.result), output=args.output))
    return 0


def _result_files(specs: Sequence[str]) -> list[Path]:
    """Files as named: a directory stands for the result.json files under it (a CI artifact download)."""
    from pytest_quantgate.compare import resolve_result
    from pytest_quantgate.errors import ResultsError

    files: list[Path] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            found = sorted(path.rglob("result.json"))
            if not found:
                raise ResultsError(f"{path}: a directory without any result.json under it")
            files += [p.resolve() for p in found]
        else:
            files.append(resolve_result(spec).resolve())
    return list(dict.fromkeys(files))


def _compare_fleet(args: argparse.Namespace, options: CompareOptions) -> int:
    from pytest_quantgate.fleet import compare_entries, load_entries
    from pytest_quantgate.render.fleet import render_fleet

    entries = load_entries(_result_files([args.baseline, *args.candidate]))
    compared = compare_entries(entries, options, args.baseline_preset)
    print(render_fleet(entries, compared))
    verdicts = {comp.verdict for _b, _c, comp in compared}
    if not verdicts:
        print("quantgate: every file holds the baseline preset: nothing to decide", file=sys.stderr)
        return EXIT_ERROR
    if "keep" in verdicts:
        return EXIT_BY_VERDICT["keep"]
    return EXIT_BY_VERDICT["swap"] if verdicts == {"swap"} else EXIT_BY_VERDICT["inconclusive"]


def _report_fleet(args: argparse.Namespace) -> int:
    from pytest_quantgate.compare import CompareOptions
    from pytest_quantgate.errors import ResultsError
    from pytest_quantgate.fleet import compare_entries, load_entries
    from pytest_quantgate.render.fleet import fleet_markdown

    entries = load_entries(_result_files([*([args.baseline] if args.baseline else []), *args.result]))
    baseline = entries[0].preset if args.baseline else None
    compared = compare_entries(entries, CompareOptions(), baseline) if args.baseline else []
    output: Path = args.output or Path("quantgate-report.md")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(fleet_markdown(entries, compared), encoding="utf-8")
    except OSError as exc:
        raise ResultsError(f"cannot write the report to {output}: {exc.strerror or exc}; pass -o PATH") from exc
    print(output)
    return 0


def _resolve_pair(baseline: str, candidate: str) -> tuple[Path, Path]:
    """The two result files; a preset id with stored results of several suites takes the other side's suite
    (a single file, or the one suite both preset ids have stored)."""
    from pytest_quantgate.compare import default_results_dir, resolve_result
    from pytest_quantgate.results import load_result, named_results

    results_dir = default_results_dir()
    sides = [named_results(spec, results_dir) for spec in (baseline, candidate)]
    if all(len(found) > 1 for found in sides):
        common = {p.name for p in sides[0]} & {p.name for p in sides[1]}
        if len(common) == 1:
            name = common.pop()
            return next(p for p in sides[0] if p.name == name), next(p for p in sides[1] if p.name == name)
    elif any(len(found) > 1 for found in sides) and all(sides):
        one = next(found[0] for found in sides if len(found) == 1)
        suite = load_result(one).suite
        return (
            resolve_result(baseline, results_dir, suite=suite if len(sides[0]) > 1 else None),
            resolve_result(candidate, results_dir, suite=suite if len(sides[1]) > 1 else None),
        )
    return resolve_result(baseline, results_dir), resolve_result(candidate, results_dir)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
