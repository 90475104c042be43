"""The reference's top-K lists on disk, so a second candidate (or next week's CI run) never re-runs it.

A cache entry is keyed by everything that decides its content: the reference GGUF's SHA-256, the corpus'
hash, K, the tokenized corpus (tokenizer, chat template and positions scored) and the file format version.
One file per key under ``<cache root>/kld/``:

  magic ``QGKLD`` · format version (1 byte) · header length (u32) · header (JSON) · token ids (int32) ·
  top-K ids (int32) · log-probabilities (float32) · SHA-256 of everything before it

Writes go to a temporary file in the same directory and are renamed into place (atomic on POSIX), so a
reader sees a whole file or none; :func:`reference_lock` serialises the computation of one key across
processes (xdist workers, concurrent runs) so the reference runs once. A file that is truncated, from
another format version, or fails its checksum is reported as a miss with the reason and rebuilt, never
trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pytest_quantgate.errors import KldError
from pytest_quantgate.kld.divergence import TopK
from pytest_quantgate.kld.fetch import Tokenized

if TYPE_CHECKING:
    from filelock import FileLock

MAGIC = b"QGKLD"
# 2: lists from forced generation (fetch.py), whose context is evaluated in one batch; 1 asked prefix by prefix.
VERSION = 2
_DIGEST = 32


def cache_dir(root: Path | None = None) -> Path:
    """``<quantgate cache root>/kld`` (``$QUANTGATE_CACHE_DIR``, else ``~/.cache/pytest-quantgate``)."""
    from pytest_quantgate.install import cache_root

    return (root or cache_root()) / "kld"


def file_sha256(path: Path, memo_dir: Path | None = None) -> str:
    """SHA-256 of a (possibly multi-gigabyte) file, remembered by path, size and modification time."""
    path = path.resolve()
    st = path.stat()
    memo = (memo_dir or cache_dir()) / "hashes.json"
    stamp = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    try:
        known = json.loads(memo.read_text())
    except (OSError, ValueError):
        known = {}
    if isinstance(known, dict) and isinstance(known.get(stamp), str):
        return str(known[stamp])
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    digest = h.hexdigest()
    known = known if isinstance(known, dict) else {}
    known[stamp] = digest
    _atomic_write(memo, json.dumps(known, indent=0).encode())
    return digest


@dataclass(frozen=True, slots=True)
class CacheKey:
    reference_sha256: str
    corpus_digest: str
    k: int
    tokens_digest: str  # the tokenized corpus and its scored positions: tokenizer, template, positions

    def digest(self) -> str:
        fields = [VERSION, self.reference_sha256, self.corpus_digest, self.k, self.tokens_digest]
        return hashlib.sha256(json.dumps(fields).encode()).hexdigest()

    def path(self, directory: Path) -> Path:
        return directory / f"ref-{self.digest()[:32]}.qgkld"


@dataclass(frozen=True, slots=True, eq=False)
class Entry:
    """A cached reference: the tokenized corpus and the top-K lists at its scored positions."""

    corpus: Tokenized
    topk: TopK
    reference: str  # what the reference was (preset id, GGUF path), for messages


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(path: Path, key: CacheKey, entry: Entry) -> None:
    """Write *entry* under *key* atomically; a :class:`KldError` names the file when it cannot."""
    c = entry.corpus
    header = {
        "key": key.digest(),
        "reference": entry.reference,
        "doc_ids": list(c.doc_ids),
        "categories": list(c.categories),
        "n_tokens": [len(t) for t in c.tokens],
        "positions": [list(p) for p in c.positions],
        "shape": list(entry.topk.ids.shape),
        "full": entry.topk.full,
    }
    head = json.dumps(header).encode()
    tokens = np.asarray([t for doc in c.tokens for t in doc], dtype="<i4")
    body = b"".join(
        (
            MAGIC,
            bytes([VERSION]),
            struct.pack("<I", len(head)),
            head,
            tokens.tobytes(),
            entry.topk.ids.astype("<i4").tobytes(),
            entry.topk.logprobs.astype("<f4").tobytes(),
        )
    )
    try:
        _atomic_write(path, body + hashlib.sha256(body).digest())
    except OSError as exc:
        raise KldError(f"cannot write the reference cache {path}: {exc}; check the directory's permissions") from None


def load(path: Path, key: CacheKey) -> tuple[Entry | None, str]:
    """The entry at *path* and "" , or None and why it is not usable (missing, truncated, other version,
    checksum, another key). Never raises for a bad file: a bad file is rebuilt."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, "not cached yet"
    except OSError as exc:
        return None, f"unreadable ({exc})"
    if len(data) < len(MAGIC) + 5 + _DIGEST or not data.startswith(MAGIC):
        return None, "truncated or not a reference cache file"
    if data[len(MAGIC)] != VERSION:
        return None, f"written by format version {data[len(MAGIC)]}, this is {VERSION}"
    body, digest = data[:-_DIGEST], data[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        return None, "checksum mismatch (truncated or damaged)"
    try:
        (n_head,) = struct.unpack_from("<I", body, len(MAGIC) + 1)
        at = len(MAGIC) + 5
        header = json.loads(body[at : at + n_head])
        at += n_head
        if header["key"] != key.digest():
            return None, "written for another key"
        n_tok = sum(header["n_tokens"])
        rows, k = header["shape"]
        tokens = np.frombuffer(body, "<i4", n_tok, at)
        at += 4 * n_tok
        ids = np.frombuffer(body, "<i4", rows * k, at).reshape(rows, k).astype(np.int64)
        at += 4 * rows * k
        lps = np.frombuffer(body, "<f4", rows * k, at).reshape(rows, k).astype(np.float64)
        at += 4 * rows * k
        if at != len(body):
            return None, "size does not match its header"
        split = np.cumsum(header["n_tokens"])[:-1]
        corpus = Tokenized(
            tuple(header["doc_ids"]),
            tuple(header["categories"]),
            tuple(tuple(int(t) for t in part) for part in np.split(tokens, split)),
            tuple(tuple(p) for p in header["positions"]),
        )
    except (KeyError, ValueError, TypeError, struct.error) as exc:
        return None, f"malformed ({exc!r})"
    if corpus.n_positions != rows:
        return None, "position count does not match its header"
    return Entry(corpus, TopK(ids, lps, bool(header["full"])), str(header["reference"])), ""


def reference_lock(path: Path) -> FileLock:
    """A lock held while one process computes the reference for *path*; others wait, then read it."""
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path) + ".lock")


__all__ = ["CacheKey", "Entry", "cache_dir", "file_sha256", "load", "reference_lock", "save"]
