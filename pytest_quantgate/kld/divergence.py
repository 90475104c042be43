"""Per-position figures of a candidate's next-token distribution against a reference's, from top-K lists.

The server gives, at every position, the K most likely next tokens with their log-probabilities
(:class:`TopK`: ids and log-probabilities, best first). From a reference's and a candidate's lists at the
same positions, :func:`score_positions` computes per position:

* **KL(reference ‖ candidate)** over a partition of the vocabulary that both lists determine exactly: one
  cell per token in *both* lists, and one "other" cell for everything else (its mass is 1 minus the listed
  mass on either side). Coarsening never raises a divergence (log-sum inequality), so this is a lower bound
  of the true KL, exact when both lists hold the whole vocabulary; see docs/statistics.md for its bias;
* **top-1 agreement**: the two lists start with the same token;
* **Δp of the reference's top token**: candidate probability minus reference probability of the token the
  reference ranks first (0 for the candidate when the token is outside its list: off by at most the
  candidate's smallest listed probability);
* **Δp of the text's next token** when the caller knows it (llama-perplexity's "RMS Δp" is over these),
  NaN when that token is outside either list.

numpy only, vectorised: 5,000 positions × K = 40 take a few milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pytest_quantgate.errors import SpecError

if TYPE_CHECKING:
    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float64]
    IntArray = npt.NDArray[np.int64]
    BoolArray = npt.NDArray[np.bool_]

# Listed probability mass may exceed 1 by rounding (float32 log-probabilities summed over up to the whole
# vocabulary); an "other" cell below this is rounding, not mass.
TAIL_TOLERANCE = 1e-6


@dataclass(frozen=True, slots=True, eq=False)
class TopK:
    """The top-K next-token lists of one model at *n* positions: ``ids[i]`` and ``logprobs[i]`` best first.

    ``full`` says the lists hold the whole vocabulary (the server returned fewer entries than asked), so
    nothing lies outside them. Rows shorter than K (a vocabulary smaller than K) are padded with id -1 and
    log-probability -inf.
    """

    ids: IntArray  # (n, K)
    logprobs: FloatArray  # (n, K)
    full: bool = False

    def __post_init__(self) -> None:
        if self.ids.ndim != 2 or self.ids.shape != self.logprobs.shape:
            raise SpecError(
                f"top-K ids {self.ids.shape} and log-probabilities {self.logprobs.shape} must be (n, K) alike"
            )
        if self.ids.shape[1] < 1 and self.ids.shape[0] > 0:
            raise SpecError("top-K lists need at least one entry per position (K >= 1)")

    @property
    def n(self) -> int:
        return int(self.ids.shape[0])

    @property
    def k(self) -> int:
        return int(self.ids.shape[1])

    @classmethod
    def from_rows(cls, rows: list[list[tuple[int, float]]], *, full: bool = False) -> TopK:
        """From per-position ``[(id, logprob), ...]`` lists (any order; sorted best first here)."""
        k = max((len(r) for r in rows), default=1)
        ids = np.full((len(rows), k), -1, dtype=np.int64)
        lps = np.full((len(rows), k), -np.inf, dtype=np.float64)
        for i, row in enumerate(rows):
            ordered = sorted(row, key=lambda e: -e[1])
            if ordered:
                ids[i, : len(ordered)] = [e[0] for e in ordered]
                lps[i, : len(ordered)] = [e[1] for e in ordered]
        return cls(ids, lps, full)

    def rows(self, start: int, stop: int) -> TopK:
        return TopK(self.ids[start:stop], self.logprobs[start:stop], self.full)


@dataclass(frozen=True, slots=True, eq=False)
class PositionScores:
    """Per-position figures (arrays of length n) of one candidate against one reference."""

    kld: FloatArray
    top1: BoolArray
    dp_top: FloatArray  # candidate minus reference probability of the reference's top token
    dp_next: FloatArray  # the same for the text's next token; NaN where unknown

    @property
    def n(self) -> int:
        return int(self.kld.shape[0])

    @staticmethod
    def concat(parts: list[PositionScores]) -> PositionScores:
        if not parts:
            empty = np.zeros(0)
            return PositionScores(empty, np.zeros(0, dtype=bool), empty, empty)
        return PositionScores(
            np.concatenate([p.kld for p in parts]),
            np.concatenate([p.top1 for p in parts]),
            np.concatenate([p.dp_top for p in parts]),
            np.concatenate([p.dp_next for p in parts]),
        )


def _lookup(ids: IntArray, values: FloatArray, wanted: IntArray) -> tuple[FloatArray, BoolArray]:
    """For each row i and each wanted[i, j], the value of that id in row i of *ids* (and whether found).

    Rows are made disjoint by an offset of row × (largest id + 2), so one global sort and one
    searchsorted serve every row at once.
    """
    n = ids.shape[0]
    if n == 0:
        return np.zeros(wanted.shape), np.zeros(wanted.shape, dtype=bool)
    span = int(max(ids.max(initial=0), wanted.max(initial=0))) + 2
    offset = (np.arange(n, dtype=np.int64) * span)[:, None]
    flat = (ids + 1 + offset).ravel()  # +1: padding id -1 becomes 0, never a wanted id + 1 >= 1
    order = np.argsort(flat, kind="stable")
    keys = flat[order]
    query = (wanted + 1 + offset).ravel()
    at = np.searchsorted(keys, query)
    at_clipped = np.minimum(at, keys.size - 1)
    found = (keys[at_clipped] == query) & (wanted.ravel() >= 0)
    vals = np.where(found, values.ravel()[order[at_clipped]], -np.inf)
    return vals.reshape(wanted.shape), found.reshape(wanted.shape)


def score_positions(reference: TopK, candidate: TopK, next_ids: IntArray | None = None) -> PositionScores:
    """Per-position KL(reference ‖ candidate), top-1 agreement and Δp (see the module docstring)."""
    if reference.n != candidate.n:
        raise SpecError(f"reference has {reference.n} positions and candidate {candidate.n}: they must be the same")
    ref_lp = reference.logprobs
    cand_lp_at_ref, matched = _lookup(candidate.ids, candidate.logprobs, reference.ids)
    matched &= reference.ids >= 0
    with np.errstate(invalid="ignore", over="ignore"):
        p = np.exp(ref_lp)
        q = np.where(matched, np.exp(cand_lp_at_ref), 0.0)
        live = matched & (p > 0)  # a zero-probability reference token adds nothing (0 · log 0 = 0)
        core = np.where(live, p * (ref_lp - np.where(live, cand_lp_at_ref, 0.0)), 0.0).sum(axis=1)
    p_other = 1.0 - np.where(matched, p, 0.0).sum(axis=1)
    q_other = 1.0 - q.sum(axis=1)
    if reference.full and candidate.full:
        tail = np.zeros_like(core)
    else:
        p_o = np.where(p_other > TAIL_TOLERANCE, p_other, 0.0)
        q_o = np.maximum(q_other, TAIL_TOLERANCE)
        with np.errstate(divide="ignore", invalid="ignore"):
            tail = np.where(p_o > 0, p_o * (np.log(np.maximum(p_o, TAIL_TOLERANCE)) - np.log(q_o)), 0.0)
    kld = core + tail
    top1 = reference.ids[:, 0] == candidate.ids[:, 0] if reference.n else np.zeros(0, dtype=bool)
    dp_top = q[:, 0] - p[:, 0] if reference.n else np.zeros(0)
    if next_ids is None:
        dp_next = np.full(reference.n, np.nan)
    else:
        wanted = np.asarray(next_ids, dtype=np.int64).reshape(-1, 1)
        ref_next, ref_found = _lookup(reference.ids, ref_lp, wanted)
        cand_next, cand_found = _lookup(candidate.ids, candidate.logprobs, wanted)
        found = (ref_found & cand_found)[:, 0]
        with np.errstate(invalid="ignore"):
            dp_next = np.where(found, np.exp(cand_next[:, 0]) - np.exp(ref_next[:, 0]), np.nan)
    return PositionScores(kld.astype(np.float64), np.asarray(top1, dtype=bool), dp_top, dp_next)


__all__ = ["TAIL_TOLERANCE", "PositionScores", "TopK", "score_positions"]
