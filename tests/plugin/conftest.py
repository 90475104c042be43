from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _server_for_pytester(llama_server_bin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # pytester points HOME at a temporary directory, where the per-user build cache is not.
    monkeypatch.setenv("QUANTGATE_LLAMA_SERVER", str(llama_server_bin))
