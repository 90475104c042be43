"""Train, export, quantize and evaluate the tiny model, and record everything in ``manifest.json``.

The pipeline is the one ``python -m pytest_quantgate.tinymodel build`` runs. Every number in the manifest
comes from the files as the real ``llama-server`` serves them, not from the torch model.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_quantgate.install import binary_version, find_binary
from pytest_quantgate.tinymodel import evaluate, export, tasks

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from pytest_quantgate.tinymodel.train import TinyConfig

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA = 1
FILE_PREFIX = "tiny"
# Q8_0 must be non-inferior to F16 and Q4_0 measurably worse; Q5_0 sits between them. K-quants are left
# out on purpose: they need rows that are a multiple of 256 and this model's rows are far shorter, so
# llama-quantize would silently fall back to the 32-block types above.
DEFAULT_QUANTS: tuple[str, ...] = ("q8_0", "q5_0", "q4_0")


@dataclass(frozen=True, slots=True)
class BuiltFile:
    """One model file and what evaluating it measured."""

    quant: str
    path: Path
    evaluation: evaluate.Evaluation | None


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_file_name(quant: str) -> str:
    """``tiny-<quant>.gguf``, the committed file name of one quantization."""
    return f"{FILE_PREFIX}-{quant}.gguf"


def quantize(quantize_binary: Path, source: Path, dest: Path, quant: str) -> None:
    """Run ``llama-quantize SOURCE DEST TYPE``; raise with its output if it fails."""
    proc = subprocess.run(
        [str(quantize_binary), str(source), str(dest), quant.upper()],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
        raise RuntimeError(f"llama-quantize {quant.upper()} failed with code {proc.returncode}:\n{tail}")


def build(
    out_dir: Path,
    config: TinyConfig,
    *,
    quants: Sequence[str] = DEFAULT_QUANTS,
    n_items: int = 400,
    eval_seed: int = 0,
    include_f32: bool = True,
    run_eval: bool = True,
    threads: int | None = None,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train *config*, write F16 (+F32) and each of *quants* into *out_dir*, evaluate, write the manifest.

    Returns the manifest as written.
    """
    import torch

    from pytest_quantgate.tinymodel.train import train

    out_dir.mkdir(parents=True, exist_ok=True)
    progress(f"training {config.n_layer}x{config.n_embd} for {config.steps} steps (seed {config.seed})")

    def on_step(step: int, loss: float) -> None:
        if step % 500 == 0 or step == config.steps - 1:
            progress(f"  step {step:5d}  loss {loss:.4f}")

    trained = train(config, on_step)
    progress(f"trained in {trained.train_seconds:.0f} s, {trained.n_params} parameters")

    paths: dict[str, Path] = {}
    paths["f16"] = export.write_gguf(out_dir / model_file_name("f16"), config, trained.tensors, dtype="f16")
    if include_f32:
        paths["f32"] = export.write_gguf(out_dir / model_file_name("f32"), config, trained.tensors, dtype="f32")
    quantize_binary = find_binary("llama-quantize")
    for quant in quants:
        progress(f"quantizing to {quant.upper()}")
        dest = out_dir / model_file_name(quant)
        quantize(quantize_binary, paths["f16"], dest, quant)
        paths[quant] = dest

    server_binary = find_binary("llama-server")
    built: list[BuiltFile] = []
    for quant, path in paths.items():
        ev = None
        if run_eval:
            started = time.perf_counter()
            ev = evaluate.evaluate_file(
                path, n_items=n_items, seed=eval_seed, server_binary=server_binary, threads=threads
            )
            accs = " ".join(f"{k}={v * 100:.1f}" for k, v in ev.accuracy().items())
            progress(
                f"{path.name}: {accs}  points={ev.points():.1f}  decode={ev.decode_tok_s:.0f} tok/s "
                f"({time.perf_counter() - started:.0f} s)"
            )
        built.append(BuiltFile(quant, path, ev))

    manifest = make_manifest(
        config,
        train_seconds=trained.train_seconds,
        n_params=trained.n_params,
        final_loss=trained.final_loss,
        files=built,
        n_items=n_items,
        eval_seed=eval_seed,
        versions={
            "torch": str(torch.__version__),
            "llama_server": binary_version(server_binary),
            "python": platform.python_version(),
        },
    )
    (out_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    progress(f"wrote {out_dir / MANIFEST_NAME}")
    return manifest


def make_manifest(
    config: TinyConfig,
    *,
    train_seconds: float,
    n_params: int,
    final_loss: float,
    files: Sequence[BuiltFile],
    n_items: int,
    eval_seed: int,
    versions: dict[str, str],
) -> dict[str, Any]:
    """The manifest's JSON structure (see docs/tiny-model.md)."""
    quant_entries: dict[str, Any] = {}
    for item in files:
        entry: dict[str, Any] = {
            "file": item.path.name,
            "sha256": sha256_file(item.path),
            "size_bytes": item.path.stat().st_size,
        }
        if item.evaluation is not None:
            ev = item.evaluation
            entry["accuracy"] = {name: round(s.accuracy, 4) for name, s in ev.scores.items()}
            entry["n_items"] = {name: s.n for name, s in ev.scores.items()}
            entry["points"] = round(ev.points(), 2)
            entry["decode_tok_s"] = round(ev.decode_tok_s, 1)
            entry["decode_tok_s_probes"] = [round(v, 1) for v in ev.decode_tok_s_probes]
            entry["eval_tok_s"] = round(ev.eval_tok_s, 1)
        quant_entries[item.quant] = entry
    return {
        "schema": MANIFEST_SCHEMA,
        "model": {
            "name": export.MODEL_NAME,
            "architecture": export.ARCH,
            "seed": config.seed,
            "steps": config.steps,
            "config": config.as_dict(),
            "train_seconds": round(train_seconds, 1),
            "n_params": n_params,
            "final_loss": round(final_loss, 5),
        },
        "tasks": {
            name: {"description": t.description, "difficulty": t.difficulty, "points": t.points}
            for name, t in tasks.TASKS.items()
        },
        "evaluation": {
            "n_items_per_task": n_items,
            "held_out_seed": eval_seed,
            # Identifies the exact items scored, so a later evaluation can check it asks the same ones.
            "items_sha256": {
                name: hashlib.sha256("\n".join(tasks.held_out_items(name, n_items, eval_seed)).encode()).hexdigest()
                for name in tasks.TASKS
            },
            "n_predict": evaluate.N_PREDICT,
            "server_ctx": evaluate.SERVER_CTX,
            "decode_probe_tokens": evaluate.PROBE_TOKENS,
            "greedy": True,
        },
        "versions": versions,
        "quants": quant_entries,
    }
