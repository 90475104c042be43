"""llama.cpp's own KL divergence (``llama-perplexity --kl-divergence``) on the same tokens, to check ours against.

llama-perplexity tokenizes a text file (BOS first), cuts it into chunks of ``n_ctx`` tokens, puts BOS at the
start of each chunk, and scores only the second half of each chunk: positions ``n_ctx/2 .. n_ctx-2``. The
reference's log-probabilities over the whole vocabulary are saved (``--kl-divergence-base``, quantized to
16 bits) and the candidate's run reads them. :func:`chunk_corpus` builds the documents and positions that make
our measurement score exactly those tokens; :func:`run` runs both passes and :func:`parse` reads its summary.
"""

from __future__ import annotations

import math
import re
import subprocess
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_quantgate.errors import KldError
from pytest_quantgate.kld.corpus import Corpus, Document
from pytest_quantgate.kld.fetch import Positions

if TYPE_CHECKING:
    from pathlib import Path

_FIGURES = {
    "kld_mean": re.compile(r"^Mean\s+KLD:\s+([-0-9.e+]+)\s+±\s+([-0-9.e+]+)", re.MULTILINE),
    "kld_median": re.compile(r"^Median\s+KLD:\s+([-0-9.e+]+)", re.MULTILINE),
    "kld_p99": re.compile(r"^99\.0%\s+KLD:\s+([-0-9.e+]+)", re.MULTILINE),
    "kld_max": re.compile(r"^Maximum KLD:\s+([-0-9.e+]+)", re.MULTILINE),
    "rms_dp": re.compile(r"^RMS Δp\s*:\s+([-0-9.e+]+)\s+±\s+([-0-9.e+]+)\s*%", re.MULTILINE),
    "same_top": re.compile(r"^Same top p:\s+([-0-9.e+]+)\s+±\s+([-0-9.e+]+)\s*%", re.MULTILINE),
}


@dataclass(frozen=True, slots=True)
class PerplexityKld:
    """What llama-perplexity printed (percentages as printed), and how long each pass took."""

    kld_mean: float
    kld_mean_se: float  # its "±": tokens treated as independent
    kld_median: float
    kld_p99: float
    kld_max: float
    rms_dp_percent: float
    same_top_percent: float
    same_top_se_percent: float
    base_s: float
    kld_s: float


# A per-chunk line: chunk, PPL ± , ln(PPL(Q)/PPL(base)) ± , KLD ± , Δp RMS ± %, same top ± %; cumulative figures.
_CHUNK_LINE = re.compile(
    r"^\s*\d+\s+\S+ ± \S+\s+\S+ ±\s+\S+\s+([-0-9.e+]+) ±\s+([-0-9.e+]+)\s+([-0-9.e+]+) ±\s+\S+ %"
    r"\s+([-0-9.e+]+) ±\s+([-0-9.e+]+) %",
    re.MULTILINE,
)


def parse(output: str) -> PerplexityKld:
    """The figures of ``llama-perplexity --kl-divergence``.

    Mean KLD, RMS Δp and "Same top p" come from its summary or, when the summary is cut short, from the last
    per-chunk line (cumulative, one digit fewer): llama.cpp logs from a background thread, and on a loaded
    machine the tail of its output was often missing (cut off inside the summary) although it exited 0.
    Median, p99 and maximum exist only in the summary (NaN without it). A :class:`KldError` quotes the
    output's tail when neither is there.
    """
    found = {}
    for name, pattern in _FIGURES.items():
        match = pattern.search(output)
        if match is not None:
            found[name] = [float(g) for g in match.groups()]
    chunks = _CHUNK_LINE.findall(output)
    if chunks:
        kld, kld_se, rms_dp, same, same_se = (float(v) for v in chunks[-1])
        found.setdefault("kld_mean", [kld, kld_se])
        found.setdefault("rms_dp", [rms_dp, math.nan])
        found.setdefault("same_top", [same, same_se])
    missing = [name for name in ("kld_mean", "rms_dp", "same_top") if name not in found]
    if missing:
        tail = "\n".join(output.splitlines()[-15:])
        raise KldError(f"llama-perplexity printed no {missing[0]!r} figure; last lines:\n{tail}")
    return PerplexityKld(
        kld_mean=found["kld_mean"][0],
        kld_mean_se=found["kld_mean"][1],
        kld_median=found.get("kld_median", [math.nan])[0],
        kld_p99=found.get("kld_p99", [math.nan])[0],
        kld_max=found.get("kld_max", [math.nan])[0],
        rms_dp_percent=found["rms_dp"][0],
        same_top_percent=found["same_top"][0],
        same_top_se_percent=found["same_top"][1],
        base_s=0.0,
        kld_s=0.0,
    )


def chunk_corpus(text: str, n_ctx: int, name: str = "chunks") -> tuple[Corpus, Positions]:
    """Documents and positions that score the tokens llama-perplexity scores on *text* with ``-c n_ctx``.

    Exact for a byte-level tokenizer with a BOS token (the tiny model's): token i + 1 of the file is byte i,
    so chunk j holds bytes ``j·n_ctx .. (j+1)·n_ctx − 2`` after its BOS.
    """
    data = text.encode()
    if not text.isascii():
        raise KldError("chunk_corpus needs ASCII text (one byte per token, no character split across chunks)")
    n_chunks = (len(data) + 1) // n_ctx
    if n_chunks < 1:
        raise KldError(f"{len(data)} bytes make no chunk of {n_ctx} tokens")
    docs = tuple(
        Document(f"chunk-{j:03d}", "chunk", text=data[j * n_ctx : (j + 1) * n_ctx - 1].decode(), source=name)
        for j in range(n_chunks)
    )
    return Corpus(name, docs), Positions(skip=n_ctx // 2)


def run(
    binary: Path,
    reference: Path,
    candidate: Path,
    text_file: Path,
    n_ctx: int,
    workdir: Path,
    *,
    threads: int = 2,
    timeout_s: float = 600,
) -> PerplexityKld:
    """Both passes of llama-perplexity: the reference's log-probabilities, then the candidate's KLD."""
    base = workdir / "kld-base.bin"
    common = ["-c", str(n_ctx), "--threads", str(threads), "--no-warmup"]

    def call(argv: list[str]) -> tuple[str, float]:
        started = time.perf_counter()
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise KldError(f"{' '.join(argv)} failed: {exc}") from None
        took = time.perf_counter() - started
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
            raise KldError(f"{' '.join(argv)} exited {proc.returncode}:\n{tail}")
        return proc.stdout + proc.stderr, took

    _, base_s = call(
        [str(binary), "-m", str(reference), "-f", str(text_file), *common, "--kl-divergence-base", str(base)]
    )
    out, kld_s = call(
        [str(binary), "-m", str(candidate), *common, "--kl-divergence-base", str(base), "--kl-divergence"]
    )
    figures = parse(out)
    return PerplexityKld(**{**{f: getattr(figures, f) for f in figures.__slots__}, "base_s": base_s, "kld_s": kld_s})


__all__ = ["PerplexityKld", "chunk_corpus", "parse", "run"]
