"""A preset's API key protects the llama-server it starts: given through the server's environment, so that it
is in no argv, and requests without it are refused."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from pytest_quantgate.client import Client
from pytest_quantgate.errors import ClientError
from pytest_quantgate.presets import Preset
from pytest_quantgate.server import ServerProcess, spec_for

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration

KEY = "sk-integration-2c8e41"


def test_api_key_env_makes_the_server_refuse_requests_without_the_key(
    llama_server_bin: Path, tiny_models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QG_INTEGRATION_API_KEY", KEY)
    preset = Preset(
        id="keyed", name="keyed", driver="llamacpp", source=None, model=tiny_models / "tiny-f16.gguf",
        binary=str(llama_server_bin), api_key_env="QG_INTEGRATION_API_KEY",
    )  # fmt: skip
    spec = spec_for(preset)
    assert KEY not in " ".join(spec.argv)
    body = {"prompt": "copy abc=", "n_predict": 2}
    with ServerProcess.start(spec, tmp_path / "server.log") as server:
        url = server.base_url + "/completion"
        assert httpx.post(url, json=body, timeout=30).status_code == 401
        wrong = httpx.post(url, json=body, headers={"Authorization": "Bearer sk-wrong"}, timeout=30)
        assert wrong.status_code == 401
        right = httpx.post(url, json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
        assert right.status_code == 200, right.text
        with Client(server.base_url, api_key=preset.api_key(), max_tokens=2) as client:
            assert client.complete("copy abc=").completion_tokens
        with Client(server.base_url, max_tokens=2) as client, pytest.raises(ClientError, match="401"):
            client.complete("copy abc=")
    log = (tmp_path / "server.log").read_text()
    assert "no API key is set" not in log
    assert KEY not in log
