"""The ``quantgate`` command: install-server, presets."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_quantgate.errors import QuantgateError

if TYPE_CHECKING:
    from collections.abc import Sequence


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

    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except QuantgateError as exc:
        print(f"quantgate: error: {exc}", file=sys.stderr)
        return 2
    return code


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
    from pytest_quantgate.report import table

    found = catalogue(args.preset_dir)
    rows = []
    for preset in found.presets:
        target = preset.model or preset.base_url or " ".join(preset.command[:3])
        rows.append([preset.id, preset.driver, preset.origin, str(target), str(preset.source)])
    print(table(["id", "driver", "format", "model / target", "file"], rows))
    print("\nsearched: " + ", ".join(str(p) for p in search_path(args.preset_dir)))
    if found.problems:
        print("\nfiles that could not be read:", file=sys.stderr)
        for problem in found.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
