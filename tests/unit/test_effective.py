"""The configuration a server reports it runs with: read from /props and /slots, compared, shown."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
from result_builders import base, cand

from pytest_quantgate import effective
from pytest_quantgate.client import Client
from pytest_quantgate.compare import compare
from pytest_quantgate.render.markdown import render_markdown
from pytest_quantgate.results import PresetRecord

if TYPE_CHECKING:
    from pathlib import Path

PROPS = {
    "total_slots": 2,
    "model_path": "/models/tiny-f16.gguf",
    "build_info": "b6000-abc",
    "chat_template": "{{ messages }}",
    "default_generation_settings": {
        "n_ctx": 4096,
        "params": {"temperature": 0.800000011920929, "top_k": 40, "speculative.types": "none", "n_probs": 0},
    },
}
SLOTS = [{"id": 0, "n_ctx": 2048, "speculative": True}, {"id": 1, "n_ctx": 2048, "speculative": True}]


def test_props_and_slots_give_the_recorded_fields() -> None:
    got = effective.from_props(PROPS, SLOTS)
    assert got["total_slots"] == 2
    assert got["n_ctx_per_slot"] == 2048  # /slots, what each slot really holds, over /props' figure
    assert got["model_path"] == "/models/tiny-f16.gguf"
    assert got["build_info"] == "b6000-abc"
    assert got["speculative"] is True  # the slots draft although the default params say "none"
    assert got["sampler"] == {"temperature": 0.8, "top_k": 40}
    assert len(got["chat_template_sha256"]) == 16
    assert effective.from_props(PROPS, None)["n_ctx_per_slot"] == 4096
    assert effective.from_props(PROPS, None)["speculative"] is False


def test_a_server_without_props_records_nothing() -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(404, text="not found"))
    with Client("http://peer.test", transport=transport) as client:
        assert effective.read(client) is None


def test_a_server_without_slots_still_records_props() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/props":
            return httpx.Response(200, json=PROPS)
        return httpx.Response(501, text="This server does not support slots endpoint.")

    with Client("http://peer.test", transport=httpx.MockTransport(answer)) as client:
        got = effective.read(client)
    assert got is not None and got["n_ctx_per_slot"] == 4096


def test_save_keeps_the_first_and_load_reads_it(tmp_path: Path) -> None:
    effective.save({"total_slots": 2}, tmp_path / "p")
    effective.save({"total_slots": 9}, tmp_path / "p")
    assert effective.load(tmp_path / "p") == {"total_slots": 2}
    assert effective.load(tmp_path / "absent") is None
    effective.save(None, tmp_path / "q")
    assert not (tmp_path / "q").exists()


def test_what_the_server_took_against_what_the_preset_asked() -> None:
    record = PresetRecord(
        id="lane", name="lane", driver="llamacpp", model="/m/big.gguf", context_size=128, parallel=4,
        draft={"spec_type": "draft-simple"},
        effective={"total_slots": 2, "n_ctx_per_slot": 256, "model_path": "/m/big.gguf", "speculative": False},
    )  # fmt: skip
    lines = effective.asked_vs_took(record)
    assert "preset lane asked for 4 slot(s); the server runs 2" in lines
    assert any("asked for a context of 128 tokens; the server runs 256 per slot × 2 slot(s)" in line for line in lines)
    assert "preset lane describes a draft (draft-simple); the server does not draft" in lines
    assert not any("model" in line for line in lines)
    same = PresetRecord(id="ok", name="ok", driver="llamacpp", context_size=512, parallel=2,
                        effective={"total_slots": 2, "n_ctx_per_slot": 256})  # fmt: skip
    assert effective.asked_vs_took(same) == []


def test_each_effective_difference_between_two_runs_is_a_caveat() -> None:
    took = effective.from_props(PROPS, SLOTS)
    fewer = {**took, "total_slots": 1, "n_ctx_per_slot": 1024, "build_info": "b6100-def"}
    caveats = compare(base(effective=took, parallel=2), cand(effective=fewer, parallel=2)).caveats
    assert "effective slots: 2 (baseline) vs 1 (candidate)" in caveats
    assert "effective context per slot: 2048 (baseline) vs 1024 (candidate)" in caveats
    assert "effective server build: b6000-abc (baseline) vs b6100-def (candidate)" in caveats
    # Asked 2 slots and a context of 4096, took 2 × 2048: nothing differs.
    assert compare(base(effective=took, parallel=2), cand(effective=took, parallel=2)).caveats == ()
    one_side = compare(base(parallel=2), cand(effective=took, parallel=2)).caveats
    assert any("recorded for one run only (baseline has none" in c for c in one_side)


def test_a_different_draft_is_a_caveat() -> None:
    draft = {"model": "/m/small.gguf", "spec_type": "draft-simple", "n_max": 3, "args": []}
    caveats = compare(base(), cand(draft=draft)).caveats
    assert any(c.startswith("speculative draft: none → draft-simple with small.gguf") for c in caveats), caveats


def test_the_report_shows_what_the_server_took_and_where_it_differs() -> None:
    result = cand(effective=effective.from_props(PROPS, SLOTS), parallel=4)
    from pytest_quantgate.compare import result_aggregate

    text = render_markdown(result, result_aggregate(result), None, [])
    assert "| server took: slots | `2` |" in text
    assert "| server took: context per slot | `2048` |" in text
    assert "- preset" in text and "asked for 4 slot(s); the server runs 2" in text
