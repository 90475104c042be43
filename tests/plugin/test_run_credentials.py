"""No credential of a preset reaches a file of the run or the terminal: the plugin as users drive it, against
the real llama-server and the tiny model."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.usefixtures("llama_server_bin")

KEY, TOKEN, LITERAL = "sk-plugin-6d2f8a", "tok-plugin-e40b17", "hf_literal_plugin_93c5"

LEVELS = """
import httpx
import pytest

@pytest.mark.level(points=10)
def test_copy(llm):
    assert llm.complete("copy abc=").content is not None

@pytest.mark.level(points=10)
def test_the_server_wants_the_key(quantgate_server):
    response = httpx.post(quantgate_server.base_url + "/completion", json={"prompt": "a", "n_predict": 1})
    assert response.status_code == 401, response.text

@pytest.mark.level(points=10)
def test_a_miss(llm):
    answer = llm.complete("copy abc=").content
    assert answer == "never", f"got {answer!r}"
"""


def keyed_preset(directory: Path, model: Path) -> Path:
    """A preset with a key on the command line, a literal token, and a *TOKEN* variable inside an argument."""
    preset = directory / "keyed.yaml"
    preset.write_text(
        "id: keyed\n"
        f"model: {model}\n"
        "startup_timeout: 60\n"
        "api_key_env: QG_PLUGIN_API_KEY\n"
        f"extra_args: [--api-key, '${{QG_PLUGIN_API_KEY}}', --hf-token, {LITERAL},\n"
        '  --chat-template-kwargs, \'{"note": "${QG_PLUGIN_HUB_TOKEN}"}\']\n'
    )
    return preset


def hits(root: Path, text: str) -> list[str]:
    """Where any of the credentials appears: in *text*, or in a file under *root*."""
    found = [f"terminal: {s}" for s in (KEY, TOKEN, LITERAL) if s in text]
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        content = path.read_bytes()
        found += [f"{path}: {s}" for s in (KEY, TOKEN, LITERAL) if s.encode() in content]
    return found


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QG_PLUGIN_API_KEY", KEY)
    monkeypatch.setenv("QG_PLUGIN_HUB_TOKEN", TOKEN)


@pytest.mark.usefixtures("credentials")
def test_a_run_writes_and_prints_no_credential(pytester: pytest.Pytester, tiny_models: Path) -> None:
    pytester.makepyfile(test_keyed_levels=LEVELS)
    preset = keyed_preset(pytester.path, tiny_models / "tiny-f16.gguf")
    result = pytester.runpytest("--preset", str(preset), "--iterations", "2", "-v", "-l", "--gate", "score_mean>=0")
    assert result.ret == pytest.ExitCode.OK  # the gate passes; the misses are misses
    result.stdout.fnmatch_lines(["*test_the_server_wants_the_key PASSED*", "*test_copy?iter-02? PASSED*"])
    out = result.stdout.str() + result.stderr.str()
    run_dir = pytester.path / ".quantgate"
    written = {p.name for p in run_dir.rglob("*") if p.is_file()}
    assert {"result.json", "result.jsonl", "server.json", "server.log", "iter-01.jsonl"} <= written
    assert hits(run_dir, out) == []
    [stored] = (run_dir / "results" / "keyed").glob("*.json")  # the preset's latest result for this suite
    assert '"***"' in stored.read_text()  # the argv is there, redacted


@pytest.mark.usefixtures("credentials")
def test_a_failed_start_prints_no_credential(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(test_keyed_levels=LEVELS)
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    preset = keyed_preset(pytester.path, bad)
    result = pytester.runpytest("--preset", str(preset), "--iterations", "1")
    out = result.stdout.str() + result.stderr.str()
    assert "the server exited with code" in out
    assert "--api-key '***' --hf-token '***'" in out
    assert hits(pytester.path / ".quantgate", out) == []
