"""Checks that a reference and a candidate can be compared at all, and hints that the reference is the wrong one.

* :func:`check_tokens`: the same text must give the same token ids on both sides, or position *i* of one is
  not position *i* of the other: an error before any position is scored;
* :func:`caveats`: GGUF metadata that suggests the wrong reference (a QAT candidate against a non-QAT
  reference, different base models, a reference smaller than the candidate): printed under the table, since
  a heuristic cannot be sure.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pytest_quantgate.errors import KldError

if TYPE_CHECKING:
    from pathlib import Path

    from pytest_quantgate.kld.fetch import Tokenized

_QAT = re.compile(r"(^|[^a-z])qat([^a-z]|$)", re.IGNORECASE)
_FIELDS = ("general.name", "general.basename", "general.finetune", "general.size_label", "general.file_type")


def check_tokens(reference: Tokenized, candidate: Tokenized, reference_label: str, candidate_label: str) -> None:
    """Raise :class:`KldError` at the first document whose token ids differ between the two sides."""
    if reference.doc_ids != candidate.doc_ids:
        raise KldError(
            f"the reference {reference_label} was measured on documents {list(reference.doc_ids)[:3]}..., the "
            f"candidate {candidate_label} on {list(candidate.doc_ids)[:3]}...: use the same corpus"
        )
    for doc_id, a, b in zip(reference.doc_ids, reference.tokens, candidate.tokens, strict=True):
        if a != b:
            at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
            raise KldError(
                f"tokenizer mismatch: document {doc_id!r} is {len(a)} tokens on the reference {reference_label} and "
                f"{len(b)} on the candidate {candidate_label}, first different at token {at} "
                f"({list(a[at : at + 3])} vs {list(b[at : at + 3])}): a KL divergence compares the same positions, "
                "so both models need the same tokenizer (and chat template); measure against a reference of the same "
                "model family"
            )


def gguf_metadata(path: Path) -> dict[str, object]:
    """The ``general.*`` fields that identify a model, {} when the file cannot be read as GGUF."""
    try:
        from gguf import GGUFReader

        reader = GGUFReader(str(path))
    except Exception:  # a file gguf cannot read gives no hints, not an error
        return {}
    out: dict[str, object] = {}
    for name in _FIELDS:
        field = reader.fields.get(name)
        if field is not None:
            try:
                out[name] = field.contents()
            except Exception:  # an odd field is skipped
                continue
    return out


def _is_qat(path: Path, meta: dict[str, object]) -> bool:
    texts = [path.name, *(str(meta.get(f, "")) for f in ("general.name", "general.basename", "general.finetune"))]
    return any(_QAT.search(t) for t in texts)


def caveats(reference: Path | None, candidate: Path | None) -> list[str]:
    """Lines to print under the table when the reference looks like the wrong one for *candidate*."""
    if reference is None or candidate is None or not reference.is_file() or not candidate.is_file():
        return []
    ref, cand = gguf_metadata(reference), gguf_metadata(candidate)
    out = []
    if _is_qat(candidate, cand) and not _is_qat(reference, ref):
        out.append(
            f"the candidate {candidate.name} looks quantization-aware-trained (QAT) and the reference {reference.name} "
            "does not: a QAT model should be measured against its own unquantized checkpoint, or the KLD mixes the "
            "training change with the quantization"
        )
    for name in ("general.basename", "general.size_label"):
        a, b = ref.get(name), cand.get(name)
        if a and b and str(a).lower() != str(b).lower():
            out.append(f"reference {name} is {a!r} and the candidate's {b!r}: are they the same model?")
    if reference.stat().st_size < candidate.stat().st_size:
        out.append(
            f"the reference {reference.name} ({reference.stat().st_size / 1e6:.1f} MB) is smaller than the candidate "
            f"{candidate.name} ({candidate.stat().st_size / 1e6:.1f} MB): a reference is usually the least quantized"
        )
    return out


__all__ = ["caveats", "check_tokens", "gguf_metadata"]
