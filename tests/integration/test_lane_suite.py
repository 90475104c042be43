"""The lane suite (example_suites/perf) end to end: on the real tiny llama-server every figure is measured,
and against a peer that lacks timings or /tokenize the figures it cannot give are named, not zero."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from peers.lane_peer import LanePeer

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

SUITE = str(Path(__file__).parents[2] / "example_suites" / "perf")
LENGTH_FIGURES = ("prefill_tps", "decode_tps", "fixed_wall_s", "slots_aggregate_tps", "slots_stream_tps")
LATENCIES = ("p50_ttft_ms", "p95_ttft_ms", "p99_ttft_ms", "p50_itl_ms", "p95_itl_ms", "p99_itl_ms")


def run_suite(tmp_path: Path, *args: str, server: Path | None = None) -> tuple[int, str, dict]:
    env = dict(os.environ)
    if server is not None:
        env["QUANTGATE_LLAMA_SERVER"] = str(server)
    argv = [sys.executable, "-m", "pytest", SUITE, "-p", "no:cacheprovider", "--iterations", "2",
            "--quantgate-dir", str(tmp_path), *args]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, check=False)
    results = sorted(tmp_path.glob("runs/*/*/result.json"))
    assert len(results) == 1, proc.stdout[-3000:]
    return proc.returncode, proc.stdout, json.loads(results[0].read_text())


def test_every_figure_is_measured_on_the_tiny_server(llama_server_bin: Path, tmp_path: Path) -> None:
    code, out, result = run_suite(tmp_path, "--preset", "tiny-f16", server=llama_server_bin)
    assert code == 0, out[-3000:]
    measures = result["summary"]["measures"]
    for name in (*LENGTH_FIGURES, *LATENCIES):
        assert name in measures, f"{name} missing: {sorted(measures)}"
        assert measures[name]["summary"]["n"] == 2
    assert all(v > 0 for _, v in measures["decode_tps"]["per_iteration"])
    assert all(v > 0 for _, v in measures["prefill_tps"]["per_iteration"])
    # 1,150 in / 2,000 out cannot fit the tiny model's context: scaled down, in proportion, and said so.
    prompt = measures["fixed_prompt_tokens"]["summary"]["mean"]
    output = measures["fixed_output_tokens"]["summary"]["mean"]
    assert prompt + output <= 256 and abs(prompt / output - 1150 / 2000) < 0.02
    assert "1150 in / 2000 out does not fit a slot's context of 256 tokens; scaled down to" in out
    # Speculation off: not applicable, and not a zero.
    assert "draft_acceptance" not in measures
    assert "preset tiny-f16: draft_acceptance is not applicable" in out
    assert result["server"]["load_s"] is not None
    # What the server took, from /props and /slots: one slot of 256 tokens where the preset asked for 128.
    took = result["preset"]["effective"]
    assert took["total_slots"] == 1 and took["n_ctx_per_slot"] == 256 and took["speculative"] is False
    assert took["model_path"].endswith("tiny-f16.gguf")
    result_file = next(tmp_path.glob("runs/*/*/result.json"))
    report = subprocess.run([sys.executable, "-m", "pytest_quantgate.cli", "report", str(result_file)],
                            capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    text = Path(report).read_text()
    assert "| server took: context per slot | `256` |" in text
    assert "preset tiny-f16 asked for a context of 128 tokens; the server runs 256 per slot" in text


def test_lengths_are_options_and_exact(llama_server_bin: Path, tmp_path: Path) -> None:
    code, out, result = run_suite(
        tmp_path, "--preset", "tiny-f16", "--lane-prompt-tokens", "40", "--lane-output-tokens", "30",
        "-k", "fixed or prefill", server=llama_server_bin,
    )  # fmt: skip
    assert code == 0, out[-3000:]
    measures = result["summary"]["measures"]
    assert measures["fixed_prompt_tokens"]["summary"]["mean"] == 40
    assert measures["fixed_output_tokens"]["summary"]["mean"] == 30
    assert "scaled down" not in out


def test_more_slots_than_the_server_runs_is_named_and_the_rest_runs(llama_server_bin: Path, tmp_path: Path) -> None:
    code, out, result = run_suite(tmp_path, "--preset", "tiny-f16", "--lane-slots", "3", server=llama_server_bin)
    assert code == 0, out[-3000:]
    assert "preset tiny-f16: slots_aggregate_tps cannot be measured with 3 streams: the server runs 1 slot(s)" in out
    measures = result["summary"]["measures"]
    assert "slots_aggregate_tps" not in measures
    assert "decode_tps" in measures and "prefill_tps" in measures


@pytest.fixture(scope="module")
def lane_peer() -> Iterator[LanePeer]:
    peer = LanePeer().start()
    yield peer
    peer.stop()


def test_a_server_without_timings_gives_what_it_can(lane_peer: LanePeer, tmp_path: Path) -> None:
    code, out, result = run_suite(tmp_path, "--base-url", lane_peer.url("no-timings"))
    assert code == 0, out[-3000:]
    measures = result["summary"]["measures"]
    assert "prefill_tps" not in measures and "decode_tps" not in measures
    assert "fixed_wall_s" in measures and "slots_aggregate_tps" in measures and "p99_itl_ms" in measures
    assert "prefill_tps cannot be measured: the answer carries no timings" in out
    assert "decode_tps cannot be measured: the answer carries no timings" in out
    assert result["preset"]["effective"]["build_info"] == "lane-peer"  # its /props, recorded


def test_a_server_without_tokenize_or_props_names_each_figure(lane_peer: LanePeer, tmp_path: Path) -> None:
    code, out, result = run_suite(tmp_path, "--base-url", lane_peer.url("openai-only"))
    assert code == 0, out[-3000:]
    assert "prefill_tps cannot be measured: a prompt of exactly 1150 tokens needs the server's /tokenize" in out
    assert "fixed_wall_s and decode_tps cannot be measured" in out
    assert "draft_acceptance is not applicable: the server does not say" in out
    assert not result["summary"]["measures"]
    assert result["preset"]["effective"] is None  # no /props: nothing recorded, nothing guessed


@pytest.mark.parametrize("preset", ["tiny-f16-spec", "tiny-f16-ngram"])
def test_draft_acceptance_is_measured_with_a_draft(llama_server_bin: Path, tmp_path: Path, preset: str) -> None:
    # tiny-q4_0 drafting for tiny-f16, and an n-gram drafter: both start with --metrics, so the suite also
    # checks the timings' sums against the server's spec_decode counters (it fails the level if they differ).
    code, out, result = run_suite(
        tmp_path, "--preset", preset, "-k", "speculative", "--gate", "draft_acceptance_mean >= 0.001",
        server=llama_server_bin,
    )  # fmt: skip
    assert code == 0, out[-3000:]
    gates = {g["id"]: g["passed"] for g in result["gates"]}
    assert gates.get("draft_acceptance_mean>=0.001") is True, result["gates"]
    series = result["summary"]["measures"]["draft_acceptance"]
    assert series["unit"] == "fraction"
    assert all(0 < v <= 1 for _, v in series["per_iteration"]), series
    assert result["preset"]["draft"]["spec_type"] in ("draft-simple", "ngram-simple")


def test_a_gate_on_acceptance_without_a_draft_fails_and_says_why(llama_server_bin: Path, tmp_path: Path) -> None:
    code, out, result = run_suite(
        tmp_path, "--preset", "tiny-f16", "-k", "speculative", "--gate", "draft_acceptance_mean >= 0.5",
        server=llama_server_bin,
    )  # fmt: skip
    assert code == 1, out[-3000:]
    assert "no level recorded a measurement named 'draft_acceptance'" in out
    assert "draft_acceptance" not in result["summary"]["measures"]
    assert {g["id"]: g["passed"] for g in result["gates"]}.get("draft_acceptance_mean>=0.5") is False
