"""The text a KL divergence is measured on: documents with a category, from user files or shipped corpora.

A user's corpus is any mix of

* **plain text files** (``.txt``, ``.md`` or any other suffix but ``.jsonl``): one document each, its
  category ``text``, its id the file name;
* **JSONL files** (``.jsonl``): one object per non-blank line, ``{"text": "...", "category": "code"}`` or a
  chat ``{"messages": [{"role": "user", "content": "..."}, ...], "category": "chat"}`` (rendered with the
  model's own chat template by the server), with an optional ``"id"`` (default ``FILE:LINE``);
* directories of such files (their ``*.txt`` and ``*.jsonl``, sorted by name).

Two corpora ship with the package: :func:`default_corpus` (written for this project, in the field's
categories: code, science, chat, tool calls, a long document) and :func:`tiny_corpus` (lines of the tiny
model's own tasks, the only text it knows). Parsing never reads a server; :class:`CorpusError` names the file
and line at fault.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_quantgate.errors import KldError

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

TEXT_CATEGORY = "text"
ROLES = ("system", "user", "assistant", "tool")
MAX_FIELD = 80  # id and category length
DATA = Path(__file__).parent / "data"
DEFAULT_CORPUS_FILE = DATA / "default.jsonl"


class CorpusError(KldError):
    """A corpus file that cannot be used: missing, empty, not UTF-8, malformed JSONL."""


@dataclass(frozen=True, slots=True)
class Document:
    """One text: plain (``text``) or a chat (``messages``, rendered with the model's template)."""

    id: str
    category: str
    text: str = ""
    messages: tuple[tuple[str, str], ...] = ()
    source: str = ""  # where it came from, for messages: "corpus.jsonl:12"

    @property
    def is_chat(self) -> bool:
        return bool(self.messages)

    def canonical(self) -> dict[str, object]:
        """What identifies the document's content (the source is not part of it)."""
        if self.messages:
            return {"id": self.id, "category": self.category, "messages": [list(m) for m in self.messages]}
        return {"id": self.id, "category": self.category, "text": self.text}


@dataclass(frozen=True, slots=True)
class Corpus:
    """Documents in order, with a content hash for cache keys."""

    name: str
    documents: tuple[Document, ...]

    def digest(self) -> str:
        h = hashlib.sha256()
        for doc in self.documents:
            h.update(json.dumps(doc.canonical(), sort_keys=True, ensure_ascii=False).encode())
            h.update(b"\n")
        return h.hexdigest()

    @property
    def categories(self) -> list[str]:
        return list(dict.fromkeys(d.category for d in self.documents))


def _check_label(value: object, what: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_FIELD or "\n" in value:
        raise CorpusError(
            f"{where}: {what} {value!r} must be a non-empty one-line string of at most {MAX_FIELD} characters"
        )
    return value.strip()


def _decode(content: bytes, name: str) -> str:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"corpus file {name} is not UTF-8 (byte {exc.start}: {content[exc.start : exc.start + 4]!r}); "
            "save it as UTF-8"
        ) from None
    return text.removeprefix("\ufeff")


def parse_text(content: bytes, name: str) -> Document:
    """A plain text file as one document of category ``text``."""
    text = _decode(content, name)
    if not text.strip():
        raise CorpusError(f"corpus file {name} is empty: give it some text, or remove it from the corpus")
    return Document(id=name, category=TEXT_CATEGORY, text=text, source=name)


def _messages(value: object, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list) or not value:
        raise CorpusError(f"{where}: 'messages' must be a non-empty list of {{'role': ..., 'content': ...}} objects")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or set(m) - {"role", "content"} or "role" not in m or "content" not in m:
            raise CorpusError(f"{where}: message {i} must be an object with exactly 'role' and 'content', got {m!r}")
        role, content = m["role"], m["content"]
        if role not in ROLES:
            raise CorpusError(f"{where}: message {i} has role {role!r}; known roles: {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise CorpusError(f"{where}: message {i} content must be a string, got {type(content).__name__}")
        out.append((role, content))
    return tuple(out)


def parse_jsonl(content: bytes, name: str) -> list[Document]:
    """A JSONL corpus file: one document per non-blank line (see the module docstring)."""
    text = _decode(content, name)
    docs: list[Document] = []
    seen: dict[str, int] = {}
    # Split on "\n" only: str.splitlines() also splits at U+0085 and U+2028, which JSON strings may hold raw.
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        where = f"{name}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{where}: not a JSON object ({exc.msg} at column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise CorpusError(f"{where}: each line must be a JSON object with 'text' or 'messages', got {obj!r:.60}")
        unknown = set(obj) - {"id", "category", "text", "messages"}
        if unknown:
            raise CorpusError(f"{where}: unknown key(s) {sorted(unknown)}; known: id, category, text, messages")
        if ("text" in obj) == ("messages" in obj):
            raise CorpusError(f"{where}: give exactly one of 'text' (plain) or 'messages' (a chat)")
        doc_id = _check_label(obj.get("id", where), "id", where)
        category = _check_label(obj.get("category", TEXT_CATEGORY), "category", where)
        if doc_id in seen:
            raise CorpusError(f"{where}: id {doc_id!r} was already used on line {seen[doc_id]}; ids name one document")
        seen[doc_id] = lineno
        if "text" in obj:
            body = obj["text"]
            if not isinstance(body, str) or not body.strip():
                raise CorpusError(f"{where}: 'text' must be a non-empty string")
            docs.append(Document(doc_id, category, text=body, source=where))
        else:
            docs.append(Document(doc_id, category, messages=_messages(obj["messages"], where), source=where))
    if not docs:
        raise CorpusError(f"corpus file {name} holds no documents: give one JSON object per line")
    return docs


def load_files(paths: Iterable[Path | str], name: str | None = None) -> Corpus:
    """A corpus from files and directories (see the module docstring); ids must be unique across files."""
    docs: list[Document] = []
    files: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in (".txt", ".jsonl") and p.is_file())
            if not found:
                raise CorpusError(f"corpus directory {path} holds no .txt or .jsonl files")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise CorpusError(f"corpus file {path} does not exist")
    for path in files:
        content = path.read_bytes()
        if path.suffix == ".jsonl":
            docs += parse_jsonl(content, str(path))
        else:
            docs.append(parse_text(content, path.name))
    ids: dict[str, str] = {}
    for doc in docs:
        if doc.id in ids:
            raise CorpusError(f"document id {doc.id!r} appears in {ids[doc.id]} and {doc.source}; make ids unique")
        ids[doc.id] = doc.source
    if not docs:
        raise CorpusError("the corpus is empty: name at least one file")
    return Corpus(name or ",".join(p.name for p in files), tuple(docs))


def default_corpus() -> Corpus:
    """The shipped corpus (code, science, chat, tool_call, long_doc), written for this project."""
    return Corpus("default", tuple(parse_jsonl(DEFAULT_CORPUS_FILE.read_bytes(), DEFAULT_CORPUS_FILE.name)))


def tiny_corpus(documents_per_task: int = 72, lines_per_document: int = 1, seed: int = 0) -> Corpus:
    """Documents of the tiny model's own task lines (``add2 47+85=132``), held-out items only, one category
    per task. By default one line per document, as the model was trained (``BOS prompt answer``): about
    4,700 positions in all. Deterministic for a seed."""
    from pytest_quantgate.tinymodel import tasks

    rng = random.Random(seed)
    docs = []
    for task in tasks.TASKS:
        items = tasks.held_out_items(task, documents_per_task * lines_per_document, seed=seed)
        rng.shuffle(items)
        for d in range(documents_per_task):
            chunk = items[d * lines_per_document : (d + 1) * lines_per_document]
            if not chunk:
                break
            text = "\n".join(tasks.prompt(task, item) + tasks.answer(task, item) for item in chunk)
            docs.append(Document(f"{task}-{d:02d}", task, text=text, source="tiny"))
    return Corpus("tiny", tuple(docs))


def select(corpus: Corpus, categories: Sequence[str]) -> Corpus:
    """Only the documents of *categories* (all when empty); an unknown category is an error naming the known."""
    if not categories:
        return corpus
    unknown = [c for c in categories if c not in corpus.categories]
    if unknown:
        raise CorpusError(
            f"categories {unknown} are not in corpus {corpus.name}; it has {', '.join(corpus.categories)}"
        )
    return Corpus(corpus.name, tuple(d for d in corpus.documents if d.category in categories))


__all__ = [
    "Corpus",
    "CorpusError",
    "Document",
    "default_corpus",
    "load_files",
    "parse_jsonl",
    "parse_text",
    "select",
    "tiny_corpus",
]
