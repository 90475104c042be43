"""Corpus files: plain text and JSONL parsers (property-tested), directories, the shipped corpora."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_quantgate.kld.corpus import (
    CorpusError,
    Document,
    default_corpus,
    load_files,
    parse_jsonl,
    parse_text,
    select,
    tiny_corpus,
)

if TYPE_CHECKING:
    from pathlib import Path

labels = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20).filter(
    lambda s: s.strip() == s and s
)
bodies = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=200).filter(str.strip)
messages = st.lists(
    st.tuples(st.sampled_from(["system", "user", "assistant", "tool"]), st.text(max_size=50)), min_size=1, max_size=4
)
entries = st.lists(st.tuples(labels, labels, st.one_of(bodies, messages)), max_size=8, unique_by=lambda e: e[0])


@settings(max_examples=150, deadline=None)
@given(entries.filter(bool))
def test_jsonl_round_trips_whatever_a_user_writes(docs: list[tuple[str, str, object]]) -> None:
    lines = []
    for doc_id, category, body in docs:
        obj: dict[str, object] = {"id": doc_id, "category": category}
        if isinstance(body, str):
            obj["text"] = body
        else:
            obj["messages"] = [{"role": r, "content": c} for r, c in body]
        lines.append(json.dumps(obj, ensure_ascii=False))
    parsed = parse_jsonl("\n\n".join(lines).encode(), "c.jsonl")
    assert [(d.id, d.category) for d in parsed] == [(i, c) for i, c, _ in docs]
    for d, (_, _, body) in zip(parsed, docs, strict=True):
        assert (d.text == body) if isinstance(body, str) else (list(d.messages) == body)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_a_corpus_error_naming_the_file(content: bytes) -> None:
    for parse in (parse_jsonl, parse_text):
        try:
            parse(content, "user.jsonl")
        except CorpusError as exc:
            assert "user.jsonl" in str(exc)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.none(),
            st.integers(),
            st.text(max_size=10),
            st.lists(st.integers(), max_size=2),
            st.dictionaries(
                st.sampled_from(["id", "category", "text", "messages", "x"]),
                st.one_of(
                    st.none(),
                    st.text(max_size=10),
                    st.integers(),
                    st.lists(st.dictionaries(st.sampled_from(["role", "content"]), st.text(max_size=8)), max_size=2),
                ),
            ),
        ),
        max_size=4,
    )
)
def test_any_json_lines_parse_or_raise_naming_the_line(values: list[object]) -> None:
    content = "\n".join(json.dumps(v) for v in values).encode()
    try:
        docs = parse_jsonl(content, "c.jsonl")
    except CorpusError as exc:
        assert "c.jsonl" in str(exc)
    else:
        assert docs and all(d.text.strip() or d.messages for d in docs)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "c.jsonl holds no documents"),
        (b"\xff\xfe", "c.jsonl is not UTF-8"),
        (b'{"text": "a"}\n[1]', "c.jsonl:2: each line must be a JSON object"),
        (b'{"text": "a", "messages": []}', "exactly one of 'text'"),
        (b'{"text": "a", "colour": 1}', "unknown key"),
        (b'{"id": "x", "text": "a"}\n{"id": "x", "text": "b"}', "already used on line 1"),
        (b'{"messages": [{"role": "robot", "content": "hi"}]}', "role 'robot'"),
        (b'{"text": "a", "category": ""}', "category ''"),
    ],
)
def test_bad_jsonl_names_file_line_and_fault(content: bytes, message: str) -> None:
    with pytest.raises(CorpusError, match=message.replace("[", r"\[")):
        parse_jsonl(content, "c.jsonl")


def test_plain_text_files_and_directories(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("first document")
    (tmp_path / "b.jsonl").write_text('{"text": "second", "category": "code"}\n')
    (tmp_path / "ignored.bin").write_bytes(b"\x00")
    corpus = load_files([tmp_path])
    assert [(d.id, d.category) for d in corpus.documents] == [("a.txt", "text"), (f"{tmp_path / 'b.jsonl'}:1", "code")]
    assert corpus.digest() == load_files([tmp_path]).digest()
    (tmp_path / "a.txt").write_text("first document, changed")
    assert corpus.digest() != load_files([tmp_path]).digest()
    with pytest.raises(CorpusError, match=r"empty\.txt is empty"):
        (tmp_path / "empty.txt").write_text("  \n")
        load_files([tmp_path])
    with pytest.raises(CorpusError, match="does not exist"):
        load_files([tmp_path / "missing.txt"])


def test_the_shipped_corpora() -> None:
    default = default_corpus()
    assert default.categories == ["code", "science", "chat", "tool_call", "long_doc"]
    assert any(d.is_chat for d in default.documents)
    tiny = tiny_corpus()
    assert tiny.categories == ["copy", "reverse", "inc", "add2", "add3"]
    assert 4500 <= sum(len(d.text) for d in tiny.documents) <= 6000
    assert tiny.digest() == tiny_corpus().digest()
    assert select(tiny, ["add2"]).categories == ["add2"]
    with pytest.raises(CorpusError, match="'poetry'"):
        select(tiny, ["poetry"])
    assert Document("a", "b", text="x").canonical() == {"id": "a", "category": "b", "text": "x"}
