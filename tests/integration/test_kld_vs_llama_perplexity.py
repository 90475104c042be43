"""Our KLD against llama.cpp's own ``llama-perplexity --kl-divergence`` on the same tokens (tiny presets, K =
the whole vocabulary), and three runs of ours giving identical figures.

Tolerances, and why: llama-perplexity evaluates 16 chunks in one batch where the server evaluates one token at a
time, and the arithmetic differs; at the few positions where the quant is far off (KLD of several nats) that moves
a position's KLD by up to a few tenths, and a chunk's mean by up to 20 % (compared chunk by chunk). It also stores
the reference's log-probabilities in 16 bits and skips tokens below e⁻¹⁶ (errors below 10⁻³ nats a position).
So the mean KLD must agree within 5 % and within llama-perplexity's own standard error (measured on these 40
chunks: 0.04172 vs 0.04067, 2.6 %, a sixth of its ±0.0065; on 80 chunks of other lines 0.03878 vs 0.03897), RMS Δp
within 0.2 points, and top-1 agreement exactly except at positions whose two best tokens are nearly tied
(within 0.05 in log-probability on either side), where the order may flip (measured: 98.413 % vs 98.452 %,
one position of 2,520, where the candidate's two best tokens were 0.012 apart; 4 positions are that close).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

from pytest_quantgate.errors import InstallError
from pytest_quantgate.install import install_perplexity
from pytest_quantgate.kld import perplexity
from pytest_quantgate.kld.corpus import tiny_corpus
from pytest_quantgate.kld.fetch import KldServer, fetch, tokenize
from pytest_quantgate.kld.measure import Options, measure, preset_reference, reference_lists
from pytest_quantgate.presets import resolve
from pytest_quantgate.server import ServerProcess, spec_for

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration

N_CTX = 128  # the tiny presets' context
CHUNKS = 40  # 40 × 63 = 2,520 scored positions
TIE = 0.05  # log-probability gap between the two best tokens below which batch arithmetic may flip them


@pytest.fixture(scope="module")
def text() -> str:
    lines = "\n".join(d.text for d in tiny_corpus(documents_per_task=200).documents)
    return lines[: CHUNKS * N_CTX]


@pytest.fixture(scope="module")
def llama_perplexity(llama_server_bin: Path) -> Path:
    try:
        return install_perplexity()
    except InstallError as exc:
        pytest.skip(str(exc))


def _gap(lp: np.ndarray) -> np.ndarray:
    return lp[:, 0] - lp[:, 1]


def test_our_kld_matches_llama_perplexity_on_the_same_tokens(
    text: str, llama_perplexity: Path, tiny_models: Path, tmp_path: Path
) -> None:
    (tmp_path / "text.txt").write_text(text)
    theirs = perplexity.run(
        llama_perplexity, tiny_models / "tiny-f16.gguf", tiny_models / "tiny-q4_0.gguf", tmp_path / "text.txt",
        N_CTX, tmp_path,
    )  # fmt: skip
    corpus, positions = perplexity.chunk_corpus(text, N_CTX)
    options = Options(k=1000, positions=positions, use_cache=False)
    lists = reference_lists(preset_reference(resolve("tiny-f16"), tmp_path), corpus, options)
    preset = resolve("tiny-q4_0")
    with (
        ServerProcess.start(spec_for(preset), tmp_path / "q4.log") as process,
        KldServer(process.base_url, label=preset.id) as server,
    ):
        ours = measure(server, lists, corpus, options)
        cand = fetch(server, tokenize(server, corpus, positions), 1000)
    f = ours.overall
    assert lists.topk.full and f.n_positions == CHUNKS * (N_CTX - 1 - N_CTX // 2)
    assert f.kld_mean == pytest.approx(theirs.kld_mean, rel=0.05)
    assert abs(f.kld_mean - theirs.kld_mean) <= theirs.kld_mean_se
    assert 100 * f.rms_dp_next == pytest.approx(theirs.rms_dp_percent, abs=0.2)
    near_ties = int(np.sum((_gap(lists.topk.logprobs) < TIE) | (_gap(cand.logprobs) < TIE)))
    differ = abs(100 * f.top1 - theirs.same_top_percent) / 100 * f.n_positions
    assert differ <= near_ties + 0.5, (100 * f.top1, theirs.same_top_percent, near_ties)


def test_three_runs_give_identical_figures(text: str, tmp_path: Path) -> None:
    corpus, positions = perplexity.chunk_corpus(text[: 10 * N_CTX], N_CTX)
    options = Options(k=40, positions=positions, use_cache=False)  # the reference runs each time too
    reference = preset_reference(resolve("tiny-f16"), tmp_path)
    preset = resolve("tiny-q4_0")
    with (
        ServerProcess.start(spec_for(preset), tmp_path / "q4.log") as process,
        KldServer(process.base_url, label=preset.id) as server,
    ):
        runs = [measure(server, reference, corpus, options) for _ in range(3)]
    assert runs[0].overall.kld_mean > 0
    assert runs[0].figures == runs[1].figures == runs[2].figures


def test_parse_reads_the_summary_or_the_last_chunk_line_and_names_what_is_missing() -> None:
    chunk = (
        "  40    175725053928.2665 ± 18492332168.4407      10.11351 ±    0.09250       0.04067 ±    0.00647"
        "     2.350 ±  0.692 %    98.452 ±  0.246 %\n"
    )
    summary = (
        "Mean    KLD:   0.040666 ±   0.006471\nMaximum KLD:   6.949788\n99.0%   KLD:   1.107541\n"
        "Median  KLD:   0.000000\nRMS Δp    :  2.351 ± 0.692 %\nSame top p: 98.452 ± 0.246 %\n"
    )
    whole = perplexity.parse(chunk + summary)
    assert (whole.kld_mean, whole.kld_p99, whole.same_top_percent, whole.rms_dp_percent) == (
        0.040666,
        1.107541,
        98.452,
        2.351,
    )
    cut = perplexity.parse(chunk + summary[:60])  # the summary cut off, as llama.cpp's log thread sometimes leaves it
    assert (cut.kld_mean, cut.rms_dp_percent, cut.same_top_percent) == (0.040666, 2.35, 98.452)
    assert np.isnan(cut.kld_p99)
    from pytest_quantgate.errors import KldError

    with pytest.raises(KldError, match="no 'kld_mean' figure"):
        perplexity.parse("model loaded\n")
