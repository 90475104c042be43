"""B8: KL divergence of a candidate against a reference, ours through the running server vs llama.cpp's own
``llama-perplexity --kl-divergence`` on the same tokens (docs/benchmarks.md). Prints medians of --repeat runs
and their spread; never asserts.

    python benchmarks/bench_kld.py [--repeat 3] [--chunks 80] [--k 40] [--smollm2]

Workload: tiny-f16 as reference, tiny-q4_0 as candidate, the tiny model's task lines cut into chunks of 128
tokens as llama-perplexity cuts them (80 chunks: 5,040 scored positions, the second half of each chunk).

* ours, reference + candidate: both servers already up (server start apart); tokenize, fetch both sides' top-K
  lists (as ``fetch`` chooses: forced generation on this vocabulary), score; the reference cache off. Where the
  time goes: the server's own time (prompt and forced tokens), JSON decoding, our array building, scoring,
  and the rest (HTTP, the server's JSON encoding, waiting); the same with one prompt per prefix beside it;
* ours, a second candidate against the cached reference: only its own positions;
* llama-perplexity: the reference pass (``--kl-divergence-base``) and the candidate pass, model loads included;
* slots: the candidate's fetch on a ``--parallel 2`` server vs ``--parallel 1``;
* ``--smollm2``: the two ways of asking on SmolLM2 (Q8_0 reference, Q4_0 candidate, the default corpus), whose
  49,152-token vocabulary makes forced generation the slower way (what ``FORCED_MAX_VOCAB`` rests on).

Run it on a quiet machine: other work on the CPU slows llama-server several-fold.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_quantgate.install import install_perplexity
from pytest_quantgate.kld import perplexity
from pytest_quantgate.kld.corpus import tiny_corpus
from pytest_quantgate.kld.divergence import score_positions
from pytest_quantgate.kld.fetch import FetchStats, KldServer, fetch, tokenize
from pytest_quantgate.kld.measure import Options, measure, preset_reference, reference_lists
from pytest_quantgate.presets import resolve
from pytest_quantgate.server import ServerProcess, spec_for

if TYPE_CHECKING:
    from collections.abc import Iterator

MODELS = Path(__file__).resolve().parents[1] / "pytest_quantgate" / "models"
N_CTX = 128


@contextlib.contextmanager
def serve(preset_id: str, log_dir: Path, parallel: int = 1) -> Iterator[KldServer]:
    preset = dataclasses.replace(resolve(preset_id), parallel=parallel)
    with (
        ServerProcess.start(spec_for(preset), log_dir / f"{preset_id}-{parallel}.log") as process,
        KldServer(process.base_url, label=preset_id) as server,
    ):
        yield server


def med(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.median(values):.3f} (range {min(values):.3f}-{max(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunks", type=int, default=80)
    parser.add_argument("--k", type=int, default=40)
    parser.add_argument("--smollm2", action="store_true", help="the two ways of asking on SmolLM2 instead")
    args = parser.parse_args()
    if args.smollm2:
        smollm2(args.k, args.repeat)
        return
    lines = "\n".join(d.text for d in tiny_corpus(documents_per_task=400).documents)
    text = lines[: args.chunks * N_CTX]
    corpus, positions = perplexity.chunk_corpus(text, N_CTX)
    binary = install_perplexity()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "text.txt").write_text(text)
        walls: dict[str, list[float]] = {}
        methods: set[str] = set()

        def note(name: str, value: float) -> None:
            walls.setdefault(name, []).append(value)

        with serve("tiny-f16", tmp) as ref, serve("tiny-q4_0", tmp) as cand, serve("tiny-q4_0", tmp, 2) as cand2:
            for _ in range(args.repeat):
                # Reference + candidate, nothing cached.
                started = time.perf_counter()
                ref_stats, cand_stats = FetchStats(), FetchStats()
                tokens = tokenize(ref, corpus, positions)
                ref_topk = fetch(ref, tokens, args.k, ref_stats)
                cand_tokens = tokenize(cand, corpus, positions)
                cand_topk = fetch(cand, cand_tokens, args.k, cand_stats)
                methods.add(f"{ref_stats.method}/{cand_stats.method}")
                scoring = time.perf_counter()
                scores = score_positions(ref_topk, cand_topk, cand_tokens.next_ids())
                ended = time.perf_counter()
                total = ended - started
                note("ours: reference + candidate (s)", total)
                note("  the servers' own time (s)", (ref_stats.server_ms + cand_stats.server_ms) / 1000)
                note("  JSON decoding (s)", ref_stats.json_s + cand_stats.json_s)
                note("  arrays from entries (s)", ref_stats.parse_s + cand_stats.parse_s)
                note("  scoring (s)", ended - scoring)
                fetched = ref_stats.wall_s + cand_stats.wall_s
                note("  tokenize (s)", total - fetched - (ended - scoring))
                rest = fetched - (ref_stats.server_ms + cand_stats.server_ms) / 1000 - ref_stats.json_s
                note(
                    "  HTTP, server JSON encoding, waiting (s)",
                    rest - cand_stats.json_s - ref_stats.parse_s - cand_stats.parse_s,
                )
                note("ours: ms per position (both sides)", 1000 * total / scores.n)
                # The same two fetches, one prompt per prefix.
                started = time.perf_counter()
                fetch(ref, tokens, args.k, method="prefixes")
                fetch(cand, cand_tokens, args.k, method="prefixes")
                note("ours, one prompt per prefix: both fetches (s)", time.perf_counter() - started)
                # A second candidate against the cached reference: only its own positions.
                options = Options(k=args.k, positions=positions, cache_dir=tmp / "cache")
                reference = preset_reference(resolve("tiny-f16"), tmp)
                reference_lists(reference, corpus, options)  # fills the cache (not timed)
                started = time.perf_counter()
                result = measure(cand, reference, corpus, options)
                note("ours: second candidate, cached reference (s)", time.perf_counter() - started)
                assert result.cache == "hit"
                # Slots: the candidate's fetch on 2 slots vs 1.
                one, two = FetchStats(), FetchStats()
                fetch(cand, cand_tokens, args.k, one)
                fetch(cand2, cand_tokens, args.k, two)
                note("candidate fetch, 1 slot (positions/s)", one.positions / one.wall_s)
                note("candidate fetch, 2 slots (positions/s)", two.positions / two.wall_s)
                # llama.cpp on the same tokens, model loads included.
                theirs = perplexity.run(
                    binary, MODELS / "tiny-f16.gguf", MODELS / "tiny-q4_0.gguf", tmp / "text.txt", N_CTX, tmp
                )
                note("llama-perplexity: both passes (s)", theirs.base_s + theirs.kld_s)
                note("ratio ours / llama-perplexity", total / (theirs.base_s + theirs.kld_s))
        print(f"B8  {scores.n} positions, K = {args.k}, {args.repeat} runs (median, range); asked: {sorted(methods)}")
        for name, values in walls.items():
            print(f"  {name:<46} {med(values)}")
        print(
            f"  figures: ours KLD {result.overall.kld_mean:.5f}, top-1 {100 * result.overall.top1:.3f} %; "
            f"llama-perplexity KLD {theirs.kld_mean:.5f} ± {theirs.kld_mean_se:.5f}, "
            f"same top {theirs.same_top_percent:.3f} %"
        )


def smollm2(k: int, repeat: int) -> None:
    """Forced generation vs one prompt per prefix on SmolLM2's 49,152-token vocabulary (the default corpus)."""
    from pytest_quantgate.kld.corpus import default_corpus
    from pytest_quantgate.kld.fetch import Positions

    corpus = default_corpus()
    with (
        tempfile.TemporaryDirectory() as tmp_name,
        serve("smollm2-q8_0", Path(tmp_name)) as ref,
        serve("smollm2-q4_0", Path(tmp_name)) as cand,
    ):
        tokens = tokenize(ref, corpus, Positions())
        walls: dict[str, list[float]] = {}
        for _ in range(repeat):
            for method in ("forced", "prefixes"):
                ref_stats, cand_stats = FetchStats(), FetchStats()
                scores = score_positions(
                    fetch(ref, tokens, k, ref_stats, method=method),
                    fetch(cand, tokens, k, cand_stats, method=method),
                    tokens.next_ids(),
                )
                walls.setdefault(f"{method}: reference + candidate (s)", []).append(
                    ref_stats.wall_s + cand_stats.wall_s
                )
                walls.setdefault(f"{method}: the servers' own time (s)", []).append(
                    (ref_stats.server_ms + cand_stats.server_ms) / 1000
                )
                walls.setdefault(f"{method}: KLD", []).append(float(scores.kld.mean()))
        print(f"SmolLM2 (vocabulary {ref.n_vocab}), {tokens.n_positions} positions, K = {k}, {repeat} runs")
        for name, values in walls.items():
            print(f"  {name:<46} {med(values)}")


if __name__ == "__main__":
    main()
