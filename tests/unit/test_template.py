"""record_chat_template: a server that says nothing about its template gets no file and no error."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_quantgate.template import FILE, record_chat_template

if TYPE_CHECKING:
    from pathlib import Path

    from peers.broken_server import BrokenPeer


def test_a_server_without_props_gets_no_file_and_no_error(broken_peer: BrokenPeer, tmp_path: Path) -> None:
    assert record_chat_template(broken_peer.url("status-500"), tmp_path) is None
    assert not (tmp_path / FILE).exists()
    assert [path for _mode, path, _body in broken_peer.requests if "apply-template" in path] == []  # no POST


def test_nothing_listens_there(tmp_path: Path) -> None:
    assert record_chat_template("http://127.0.0.1:9", tmp_path) is None


def test_an_existing_record_is_kept(tmp_path: Path) -> None:
    (tmp_path / FILE).write_text("{}")
    assert record_chat_template("http://127.0.0.1:9", tmp_path) == tmp_path / FILE
    assert (tmp_path / FILE).read_text() == "{}"
