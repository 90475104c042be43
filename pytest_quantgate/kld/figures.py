"""Figures of one candidate against a reference, and decisions between candidates, clustered by document.

Tokens of one text are not independent (a model that misreads a paragraph misreads many of its tokens), so
every interval here treats the **document** as the unit: the mean over positions is a ratio estimator
Σ_d y_d / Σ_d n_d, and its variance the cluster-robust one over documents (docs/statistics.md, "KL
divergence against a reference"). What a document contributes is a :class:`DocTotals` (its position count
and the sums of its per-position figures): that is all an interval or a comparison needs, so a stored result
can be compared next week without its per-position arrays.

* :func:`figures`: mean KLD with its clustered interval, median, p99, max, top-1 agreement with its
  interval, RMS Δp — per preset, and :func:`by_category` per category;
* :func:`paired`: two candidates against the same reference on the same positions: which is closer, with
  an interval on the difference;
* :func:`noninferiority`: a candidate against a baseline (both against the same reference): non-inferior
  within a KLD margin and a top-1 margin, inferior, or not settled yet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from pytest_quantgate.errors import SpecError
from pytest_quantgate.stats import Interval, normal_isf, t_quantile, wilson_bounds

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from pytest_quantgate.kld.divergence import PositionScores

ALL = "all"


@dataclass(frozen=True, slots=True)
class DocTotals:
    """One document's share of a figure: its positions and the sums of its per-position values."""

    doc_id: str
    category: str
    n: int
    kld_sum: float
    top1_sum: int
    dp2_sum: float  # Σ Δp² of the reference's top token

    @classmethod
    def of(cls, doc_id: str, category: str, scores: PositionScores) -> DocTotals:
        return cls(
            doc_id,
            category,
            scores.n,
            float(np.sum(scores.kld)),
            int(np.sum(scores.top1)),
            float(np.sum(scores.dp_top**2)),
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "doc_id": self.doc_id,
            "category": self.category,
            "n": self.n,
            "kld_sum": self.kld_sum,
            "top1_sum": self.top1_sum,
            "dp2_sum": self.dp2_sum,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object], where: str) -> DocTotals:
        try:
            return cls(
                str(data["doc_id"]),
                str(data["category"]),
                int(data["n"]),  # type: ignore[call-overload]
                float(data["kld_sum"]),  # type: ignore[arg-type]
                int(data["top1_sum"]),  # type: ignore[call-overload]
                float(data["dp2_sum"]),  # type: ignore[arg-type]
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SpecError(f"{where}: a per-document KLD entry is malformed ({exc!r}): {data!r}") from None


@dataclass(frozen=True, slots=True)
class Figures:
    """What llama-perplexity's ``--kl-divergence`` prints, plus intervals clustered by document."""

    label: str  # "all" or a category
    n_positions: int
    n_documents: int
    kld_mean: float
    kld_ci: Interval | None  # None with fewer than 2 documents (no spread between documents to use)
    kld_median: float
    kld_p99: float
    kld_max: float
    top1: float  # fraction in [0, 1]
    top1_ci: Interval
    rms_dp: float  # of the reference's top token, in probability (0-1)
    rms_dp_next: float  # of the text's next token (llama-perplexity's RMS Δp); NaN where unknown


def cluster_ratio(sums: Sequence[float], counts: Sequence[float], confidence: float = 0.95) -> Interval | None:
    """Σ sums / Σ counts with a Student-t interval from the cluster-robust (linearised) variance.

    Degrees of freedom G − 1 for G clusters, and the small-sample factor G / (G − 1). None for G < 2: one
    document says nothing about how documents vary.
    """
    y = np.asarray(sums, dtype=np.float64)
    m = np.asarray(counts, dtype=np.float64)
    total = float(m.sum())
    if total <= 0:
        raise SpecError("no positions to average over: every document is empty")
    mean = float(y.sum()) / total
    g = int(y.size)
    if g < 2:
        return None
    resid = y - mean * m
    var = g / (g - 1) * float(np.sum(resid**2)) / total**2
    half = t_quantile(0.5 + confidence / 2, g - 1) * math.sqrt(var)
    return Interval(mean, mean - half, mean + half, confidence, f"cluster-robust t, {g} documents")


def cluster_proportion(hits: Sequence[float], counts: Sequence[float], confidence: float = 0.95) -> Interval:
    """A proportion of positions with a Wilson interval at the **effective** number of positions.

    n_eff = N / deff, deff = clustered variance / binomial variance (at least 1): documents whose positions
    agree or disagree together count as fewer independent positions. Wilson rather than Wald keeps the
    interval sensible at 100 % agreement, where the clustered variance is 0.
    """
    h = np.asarray(hits, dtype=np.float64)
    m = np.asarray(counts, dtype=np.float64)
    n = float(m.sum())
    if n <= 0:
        raise SpecError("no positions to count: every document is empty")
    rate = float(h.sum()) / n
    g = int(h.size)
    deff = 1.0
    binomial = rate * (1 - rate) / n
    if g >= 2 and binomial > 0:
        resid = h - rate * m
        clustered = g / (g - 1) * float(np.sum(resid**2)) / n**2
        deff = max(1.0, clustered / binomial)
    n_eff = n / deff
    z = np.asarray(normal_isf((1 - confidence) / 2))
    lo, hi = wilson_bounds(np.asarray(rate * n_eff), np.asarray(n_eff), z)
    return Interval(rate, float(lo), float(hi), confidence, f"Wilson, effective n {n_eff:.0f} of {n:.0f}")


def figures(label: str, docs: Sequence[tuple[DocTotals, PositionScores]], confidence: float = 0.95) -> Figures:
    """The figures over *docs* (each document's totals and its per-position scores)."""
    if not docs or sum(t.n for t, _ in docs) == 0:
        raise SpecError(f"{label}: no scored positions (the corpus is empty or every document is one token)")
    totals = [t for t, _ in docs]
    kld = np.concatenate([s.kld for _, s in docs])
    dp_next = np.concatenate([s.dp_next for _, s in docs])
    counts = [t.n for t in totals]
    n = int(sum(counts))
    known = dp_next[np.isfinite(dp_next)]
    return Figures(
        label=label,
        n_positions=n,
        n_documents=len(totals),
        kld_mean=float(sum(t.kld_sum for t in totals)) / n,
        kld_ci=cluster_ratio([t.kld_sum for t in totals], counts, confidence),
        kld_median=float(np.median(kld)),
        kld_p99=float(np.percentile(kld, 99)),
        kld_max=float(np.max(kld)),
        top1=sum(t.top1_sum for t in totals) / n,
        top1_ci=cluster_proportion([t.top1_sum for t in totals], counts, confidence),
        rms_dp=math.sqrt(sum(t.dp2_sum for t in totals) / n),
        rms_dp_next=float(np.sqrt(np.mean(known**2))) if known.size else math.nan,
    )


def by_category(docs: Sequence[tuple[DocTotals, PositionScores]], confidence: float = 0.95) -> list[Figures]:
    """:func:`figures` over all documents first, then per category in first-seen order."""
    out = [figures(ALL, docs, confidence)]
    categories = list(dict.fromkeys(t.category for t, _ in docs))
    for category in categories:
        chosen = [(t, s) for t, s in docs if t.category == category and t.n > 0]
        if chosen:
            out.append(figures(category, chosen, confidence))
    return out


def _pairs(a: Iterable[DocTotals], b: Iterable[DocTotals], what: str) -> list[tuple[DocTotals, DocTotals]]:
    by_id = {t.doc_id: t for t in b}
    pairs = []
    for t in a:
        other = by_id.pop(t.doc_id, None)
        if other is None or other.n != t.n:
            found = "missing" if other is None else f"{other.n} positions, not {t.n}"
            raise SpecError(
                f"{what}: document {t.doc_id!r} is {found} on the other side; both must be scored on the same "
                "corpus, tokens and reference (same --reference, corpus and K)"
            )
        pairs.append((t, other))
    if by_id:
        raise SpecError(f"{what}: documents {sorted(by_id)[:5]} are on one side only; score both on the same corpus")
    if not pairs:
        raise SpecError(f"{what}: no documents to compare")
    return pairs


@dataclass(frozen=True, slots=True)
class Difference:
    """A paired difference first − second, clustered by document: KLD in nats, top-1 in points."""

    kld: Interval | None
    top1_points: Interval | None
    n_positions: int
    n_documents: int


def _difference(pairs: list[tuple[DocTotals, DocTotals]], confidence: float) -> Difference:
    counts = [a.n for a, _ in pairs]
    kld = cluster_ratio([a.kld_sum - b.kld_sum for a, b in pairs], counts, confidence)
    top1 = cluster_ratio([100.0 * (a.top1_sum - b.top1_sum) for a, b in pairs], counts, confidence)
    return Difference(kld, top1, int(sum(counts)), len(pairs))


@dataclass(frozen=True, slots=True)
class Paired:
    """Two candidates against one reference: which is closer to it (``first``, ``second`` or ``neither``
    when the interval on the KLD difference contains 0, or there are fewer than 2 documents)."""

    first: str
    second: str
    difference: Difference  # first − second
    closer: Literal["first", "second", "neither"]

    def describe(self) -> str:
        d = self.difference.kld
        if d is None:
            return f"{self.first} vs {self.second}: fewer than 2 documents, no interval"
        who = {"first": self.first, "second": self.second, "neither": "neither shown closer"}[self.closer]
        return (
            f"KLD {self.first} − {self.second} = {d.estimate:+.4g} nats, {100 * d.confidence:.0f}% CI "
            f"[{d.lower:+.4g}, {d.upper:+.4g}] over {self.difference.n_documents} documents: {who}"
        )


def paired(first: str, a: Sequence[DocTotals], second: str, b: Sequence[DocTotals], confidence: float = 0.95) -> Paired:
    """Which of two candidates scored against the same reference on the same positions is closer to it."""
    diff = _difference(_pairs(a, b, f"{first} vs {second}"), confidence)
    closer: Literal["first", "second", "neither"] = "neither"
    if diff.kld is not None and diff.kld.upper < 0:
        closer = "first"
    elif diff.kld is not None and diff.kld.lower > 0:
        closer = "second"
    return Paired(first, second, diff, closer)


Decision = Literal["non-inferior", "inferior", "inconclusive"]


@dataclass(frozen=True, slots=True)
class NonInferiority:
    """Candidate vs baseline, both against the same reference, paired by document."""

    decision: Decision
    difference: Difference  # candidate − baseline
    kld_margin: float
    top1_margin: float  # points
    reasons: tuple[str, ...]


def noninferiority(
    candidate: Sequence[DocTotals],
    baseline: Sequence[DocTotals],
    *,
    kld_margin: float,
    top1_margin: float,
    confidence: float = 0.95,
) -> NonInferiority:
    """Non-inferior when the candidate's mean KLD is at most *kld_margin* nats above the baseline's and its
    top-1 agreement at most *top1_margin* points below, both shown by the one-sided bounds of a
    *confidence* two-sided interval; inferior when either is shown beyond its margin; else inconclusive.
    """
    for value, name in ((kld_margin, "kld_margin"), (top1_margin, "top1_margin")):
        if not (math.isfinite(value) and value >= 0):
            raise SpecError(f"{name}={value!r} must be a finite number >= 0 (e.g. kld_margin 0.01, top1_margin 1)")
    diff = _difference(_pairs(candidate, baseline, "candidate vs baseline"), confidence)
    if diff.kld is None or diff.top1_points is None:
        reason = "fewer than 2 documents: no interval, so no decision (use a corpus of several documents)"
        return NonInferiority("inconclusive", diff, kld_margin, top1_margin, (reason,))
    k, t = diff.kld, diff.top1_points
    reasons = []
    inferior = False
    settled = True
    if k.lower > kld_margin:
        inferior = True
        reasons.append(f"mean KLD is higher by {k.estimate:.4g} nats, CI low {k.lower:.4g} > margin {kld_margin:g}")
    elif k.upper >= kld_margin:
        settled = False
        reasons.append(f"mean KLD difference CI [{k.lower:.4g}, {k.upper:.4g}] reaches the margin {kld_margin:g}")
    if t.upper < -top1_margin:
        inferior = True
        reasons.append(f"top-1 lower by {-t.estimate:.2f} points, CI high {t.upper:.2f} < −{top1_margin:g}")
    elif t.lower <= -top1_margin:
        settled = False
        reasons.append(f"top-1 difference CI [{t.lower:.2f}, {t.upper:.2f}] points reaches −{top1_margin:g}")
    decision: Decision = "inferior" if inferior else "non-inferior" if settled else "inconclusive"
    return NonInferiority(decision, diff, kld_margin, top1_margin, tuple(reasons))


__all__ = [
    "ALL",
    "Decision",
    "Difference",
    "DocTotals",
    "Figures",
    "NonInferiority",
    "Paired",
    "by_category",
    "cluster_proportion",
    "cluster_ratio",
    "figures",
    "noninferiority",
    "paired",
]
