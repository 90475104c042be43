"""Train a micro model for a few steps, export it, and have the real llama-server load and run it.

The answers are nonsense after five steps; what is checked is the plumbing: the GGUF loads, the
server tokenizes prompts exactly as training did, its next-token distribution matches the torch
model's (same architecture, same RoPE pairing), quantized files load too, and completions come back
with timings.
"""

from __future__ import annotations

import math
import os
import subprocess

import httpx
import pytest

from pytest_quantgate.errors import InstallError
from pytest_quantgate.install import find_binary
from pytest_quantgate.tinymodel import tasks, vocab

pytestmark = pytest.mark.integration

if os.environ.get("QUANTGATE_REQUIRE_TORCH") == "1":
    import torch
else:
    torch = pytest.importorskip("torch")
pytest.importorskip("gguf")


def _binary(name):
    # QUANTGATE_LLAMA_SERVER / QUANTGATE_LLAMA_QUANTIZE, then PATH, then the install cache.
    try:
        return find_binary(name)
    except InstallError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    from pytest_quantgate.tinymodel import export
    from pytest_quantgate.tinymodel.train import MICRO_CONFIG, export_tensors, train_module

    model, _seconds, history = train_module(MICRO_CONFIG)
    assert len(history) >= 1 and all(math.isfinite(loss) for _, loss in history)
    out = tmp_path_factory.mktemp("micro")
    tensors = export_tensors(model)
    f32 = export.write_gguf(out / "micro-f32.gguf", MICRO_CONFIG, tensors, dtype="f32")
    f16 = export.write_gguf(out / "micro-f16.gguf", MICRO_CONFIG, tensors, dtype="f16")
    return model, f32, f16


def test_exported_gguf_has_the_keys_llama_cpp_needs(micro):
    import gguf

    _, _, f16 = micro
    reader = gguf.GGUFReader(str(f16))
    fields = reader.fields

    def scalar(key):
        field = fields[key]
        return field.contents()

    assert scalar("general.architecture") == "llama"
    assert scalar("tokenizer.ggml.model") == "gpt2"
    assert scalar("tokenizer.ggml.bos_token_id") == vocab.EOT_ID
    assert scalar("tokenizer.ggml.eos_token_id") == vocab.EOT_ID
    assert len(scalar("tokenizer.ggml.merges")) == 1
    assert scalar("tokenizer.ggml.tokens")[vocab.EOT_ID] == "<|endoftext|>"
    for key in (
        "llama.context_length",
        "llama.embedding_length",
        "llama.block_count",
        "llama.feed_forward_length",
        "llama.attention.head_count",
        "llama.attention.head_count_kv",
        "llama.attention.layer_norm_rms_epsilon",
        "llama.rope.dimension_count",
    ):
        assert key in fields, key
    names = {t.name for t in reader.tensors}
    assert "token_embd.weight" in names and "output.weight" not in names


def test_server_loads_the_micro_model_and_answers_with_timings(micro):
    from pytest_quantgate.tinymodel.evaluate import complete, running_server

    _, _, f16 = micro
    with running_server(f16, server_binary=_binary("llama-server")) as server:
        assert server.alive()
        with httpx.Client(timeout=30) as client:
            text = tasks.prompt("add2", "47+85")
            tokens = client.post(f"{server.base_url}/tokenize", json={"content": text, "add_special": True})
            tokens.raise_for_status()
            # One token per byte, BOS first: exactly the ids training used.
            assert tokens.json()["tokens"] == vocab.encode(text)
            got = complete(client, server.base_url, text, n_predict=4, extra={"ignore_eos": True})
    assert got.predicted_n == 4
    assert got.predicted_ms > 0 and got.predicted_per_second > 0
    assert server.returncode is not None  # stopped on leaving the context


def test_server_next_token_distribution_matches_torch(micro):
    from pytest_quantgate.tinymodel.evaluate import running_server

    model, f32, _ = micro
    text = tasks.prompt("reverse", "abcde")
    ids = torch.tensor([vocab.encode(text)])
    with torch.no_grad():
        probs = torch.softmax(model(ids)[0, -1].double(), -1)
    expected_top = torch.topk(probs, 5)
    with running_server(f32, server_binary=_binary("llama-server")) as server, httpx.Client(timeout=30) as c:
        resp = c.post(
            f"{server.base_url}/completion",
            json={"prompt": text, "n_predict": 1, "n_probs": 5, "temperature": 0, "top_k": 1, "cache_prompt": False},
        )
        resp.raise_for_status()
    top = resp.json()["completion_probabilities"][0]["top_logprobs"]
    got = {entry["id"]: math.exp(entry["logprob"]) for entry in top}
    for token_id, prob in zip(expected_top.indices.tolist(), expected_top.values.tolist(), strict=True):
        assert token_id in got, (token_id, got)
        assert got[token_id] == pytest.approx(prob, rel=1e-3)


@pytest.mark.parametrize("quant", ["q8_0", "q4_0"])
def test_quantized_micro_model_loads(micro, tmp_path, quant):
    from pytest_quantgate.tinymodel.evaluate import complete, running_server

    _, _, f16 = micro
    dest = tmp_path / f"micro-{quant}.gguf"
    proc = subprocess.run(
        [str(_binary("llama-quantize")), str(f16), str(dest), quant.upper()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert 0 < dest.stat().st_size < f16.stat().st_size
    with running_server(dest, server_binary=_binary("llama-server")) as server, httpx.Client(timeout=30) as c:
        got = complete(c, server.base_url, tasks.prompt("copy", "abc"), n_predict=3, extra={"ignore_eos": True})
    assert got.predicted_n == 3
