"""Credentials in presets: redacted wherever an argv or a preset is written or shown, and an API key reaches
llama-server through its environment, never its argv. The end-to-end check (every file of a run and the
terminal) is tests/plugin/test_run_credentials.py; the server's refusal without the key, tests/integration."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import pytest

from pytest_quantgate.credentials import redact
from pytest_quantgate.errors import ServerStartError
from pytest_quantgate.presets import expand, load_file
from pytest_quantgate.provenance import preset_record
from pytest_quantgate.server import ServerProcess, free_port, spec_for
from pytest_quantgate.sharing import acquire

if TYPE_CHECKING:
    from pathlib import Path

KEY, TOKEN, LITERAL = "sk-unit-5b7e0d", "tok-unit-91ac44", "hf_literal_unit_0c3f"


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QG_UNIT_API_KEY", KEY)
    monkeypatch.setenv("QG_UNIT_HUB_TOKEN", TOKEN)
    monkeypatch.setenv("QG_UNIT_THREADS", "4")


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["--api-key", "sk-1", "-c", "4"], ["--api-key", "***", "-c", "4"]),
        (["--api-key=sk-1"], ["--api-key=***"]),
        (["--hf-token", "hf_1", "-hft", "hf_2"], ["--hf-token", "***", "-hft", "***"]),
        (["--db_password", "pw", "--client-secret", "s"], ["--db_password", "***", "--client-secret", "***"]),
        (["--api-key", "--port"], ["--api-key", "***"]),  # llama-server would take "--port" as the key
        (["--api-key"], ["--api-key"]),
    ],
)
def test_the_value_of_a_flag_named_like_a_credential_is_redacted(args: list[str], shown: list[str]) -> None:
    assert redact(args) == shown
    assert redact(shown) == shown


def test_flags_that_only_mention_tokens_or_keys_are_left_alone() -> None:
    args = ["--image-max-tokens", "256", "--cache-type-k", "q8_0", "--api-key-file", "/etc/keys", "--keep", "8"]
    assert redact(args) == args


def test_known_secrets_are_redacted_wherever_they_appear() -> None:
    args = ["--header", "Authorization: Bearer tok-1", "tok-1", "--x", "tok-12"]
    assert redact(args, ["tok-1", "tok-12", ""]) == ["--header", "Authorization: Bearer ***", "***", "--x", "***"]


def test_expand_collects_what_credential_variables_expand_to() -> None:
    found: list[str] = []
    assert expand("$QG_UNIT_API_KEY/${QG_UNIT_HUB_TOKEN}/$QG_UNIT_THREADS", secrets=found) == f"{KEY}/{TOKEN}/4"
    assert found == [KEY, TOKEN]  # QG_UNIT_THREADS is no credential


def keyed_preset(tmp_path: Path, command: str | None = None):
    text = (
        "id: keyed\n"
        + (f"driver: command\ncommand: {command}\n" if command else f"model: {tmp_path / 'm.gguf'}\n")
        + "api_key_env: QG_UNIT_API_KEY\n"
        + f"extra_args: [--api-key, '${{QG_UNIT_API_KEY}}', --hf-token, {LITERAL}, --threads, '$QG_UNIT_THREADS',\n"
        + '  --chat-template-kwargs, \'{"note": "${QG_UNIT_HUB_TOKEN}"}\']\n'
        + "env: {HF_TOKEN: '${QG_UNIT_HUB_TOKEN}', OTHER: '$QG_UNIT_THREADS'}\n"
    )
    path = tmp_path / "keyed.yaml"
    path.write_text(text)
    (preset,) = load_file(path)
    return preset


def assert_hidden(text: str) -> None:
    __tracebackhide__ = True
    for secret in (KEY, TOKEN, LITERAL):
        assert secret not in text


def test_a_preset_redacts_its_own_arguments_and_its_repr(tmp_path: Path) -> None:
    preset = keyed_preset(tmp_path)
    assert preset.extra_args[1] == KEY  # the server still gets the real value
    shown = preset.redact(preset.extra_args)
    assert shown[:6] == ["--api-key", "***", "--hf-token", "***", "--threads", "4"]
    assert shown[7] == '{"note": "***"}'
    assert_hidden(repr(preset))
    assert "OTHER', '4'" in repr(preset)


def test_the_provenance_record_holds_no_credential(tmp_path: Path) -> None:
    record = preset_record(keyed_preset(tmp_path))
    assert record.chat_template_kwargs == {"note": "***"}
    assert record.extra_args == ["--api-key", "***", "--hf-token", "***", "--threads", "4"]
    assert_hidden(record.model_dump_json())


def test_the_api_key_reaches_the_server_through_its_environment_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv("QUANTGATE_LLAMA_SERVER", str(binary))
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    path = tmp_path / "plain.yaml"
    path.write_text(f"id: plain\nmodel: {tmp_path / 'm.gguf'}\napi_key_env: QG_UNIT_API_KEY\n")
    (preset,) = load_file(path)
    spec = spec_for(preset, port=1)
    assert spec.env["LLAMA_API_KEY"] == KEY
    assert spec.api_key == KEY  # the readiness probe and the client authenticate with it
    assert KEY not in " ".join(spec.argv)


def test_a_failed_start_quotes_the_command_without_credentials(tmp_path: Path) -> None:
    preset = keyed_preset(tmp_path, command=f"{sys.executable} -c 'import sys; sys.exit(3)'")
    state = tmp_path / "state"
    with pytest.raises(ServerStartError) as info:
        acquire(preset, state, shared=False)
    message = str(info.value)
    assert "exited with code 3" in message
    assert "--api-key '***' --hf-token '***'" in message
    assert_hidden(message)
    stored = json.loads((state / "server.json").read_text())  # what later workers of the run report
    assert "--api-key" in stored["error"]
    assert_hidden(stored["error"])


def test_a_started_server_state_holds_no_credential(tmp_path: Path) -> None:
    # The command ignores the flags the preset appends; it only has to answer /health to count as started.
    script = (
        "import http.server, sys\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')\n"
        "    def log_message(self, *a): pass\n"
        "http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n"
    )
    (tmp_path / "serve.py").write_text(script)
    preset = keyed_preset(tmp_path, command=f"{sys.executable} {tmp_path / 'serve.py'} {{port}}")
    lease = acquire(preset, tmp_path / "state", shared=False)
    try:
        text = (tmp_path / "state" / "server.json").read_text()
        assert "--api-key" in text
        assert_hidden(text)
        assert_hidden(" ".join(lease.info.argv))
    finally:
        lease.release()


def test_a_server_that_dies_is_reported_without_credentials(tmp_path: Path) -> None:
    argv = (sys.executable, "-c", "import time; time.sleep(60)", "--api-key", KEY)
    from pytest_quantgate.server import ServerSpec

    spec = ServerSpec(argv=argv, port=free_port(), startup_timeout_s=0.5, secrets=(KEY,))
    with pytest.raises(ServerStartError) as info:
        ServerProcess.start(spec, tmp_path / "s.log")
    assert "did not answer 200" in str(info.value)
    assert_hidden(str(info.value))
