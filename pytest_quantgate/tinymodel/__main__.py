"""Command line: ``python -m pytest_quantgate.tinymodel build [--out DIR] [--micro]``."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from pytest_quantgate.tinymodel import MODELS_DIR


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pytest_quantgate.tinymodel")
    sub = parser.add_subparsers(dest="command", required=True)

    build = sub.add_parser("build", help="train, export, quantize, evaluate and write manifest.json")
    build.add_argument("--out", type=Path, default=MODELS_DIR, help=f"output folder (default {MODELS_DIR})")
    build.add_argument("--micro", action="store_true", help="a few-step smoke configuration")
    build.add_argument("--steps", type=int, help="override the number of training steps")
    build.add_argument("--seed", type=int, help="override the training seed")
    build.add_argument("--n-items", type=int, default=400, help="held-out items per task (default 400)")
    build.add_argument("--quants", default=None, help="comma-separated llama-quantize types (default q8_0,q5_0,q4_0)")
    build.add_argument("--no-f32", action="store_true", help="do not write the F32 reference file")
    build.add_argument("--no-eval", action="store_true", help="skip the llama-server evaluation")
    build.add_argument("--threads", type=int, help="llama-server -t for the evaluation")

    ev = sub.add_parser("evaluate", help="evaluate GGUF files through llama-server")
    ev.add_argument("files", nargs="+", type=Path)
    ev.add_argument("--n-items", type=int, default=200)
    ev.add_argument("--threads", type=int)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    if args.command == "evaluate":
        from pytest_quantgate.tinymodel.evaluate import evaluate_file

        for path in args.files:
            result = evaluate_file(path, n_items=args.n_items, threads=args.threads)
            accs = " ".join(f"{k}={v * 100:.1f}" for k, v in result.accuracy().items())
            print(f"{path.name}: {accs} points={result.points():.1f} decode={result.decode_tok_s:.0f} tok/s")
        return 0

    from pytest_quantgate.tinymodel.build import DEFAULT_QUANTS, build
    from pytest_quantgate.tinymodel.train import DEFAULT_CONFIG, MICRO_CONFIG

    config = MICRO_CONFIG if args.micro else DEFAULT_CONFIG
    overrides: dict[str, Any] = {}
    if args.steps is not None:
        overrides["steps"] = args.steps
    if args.seed is not None:
        overrides["seed"] = args.seed
    config = dataclasses.replace(config, **overrides)
    quants = tuple(q.strip().lower() for q in args.quants.split(",")) if args.quants else DEFAULT_QUANTS
    build(
        args.out,
        config,
        quants=quants,
        n_items=args.n_items,
        include_f32=not args.no_f32,
        run_eval=not args.no_eval,
        threads=args.threads,
        progress=lambda msg: print(msg, flush=True),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
