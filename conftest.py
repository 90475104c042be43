"""Repository-wide test fixtures: the real llama-server and the tiny model the project ships.

Integration tests need a real llama-server. Locally they skip when none is found; with
QUANTGATE_REQUIRE_SERVER=1 (set by `make test`, hence CI) a missing server fails them instead, so a broken
install can never pass as "skipped".
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_quantgate.errors import InstallError
from pytest_quantgate.install import find_binary

MODELS = Path(__file__).parent / "pytest_quantgate" / "models"


@pytest.fixture(scope="session")
def llama_server_bin() -> Path:
    try:
        return find_binary("llama-server")
    except InstallError as exc:
        if os.environ.get("QUANTGATE_REQUIRE_SERVER"):
            pytest.fail(f"QUANTGATE_REQUIRE_SERVER is set and {exc}", pytrace=False)
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def llama_quantize_bin(llama_server_bin: Path) -> Path:
    return find_binary("llama-quantize")


@pytest.fixture(scope="session")
def tiny_models() -> Path:
    """The directory holding tiny-f16.gguf, tiny-q8_0.gguf, tiny-q4_0.gguf and manifest.json."""
    if not (MODELS / "manifest.json").is_file():
        pytest.fail(f"the tiny model files are missing from {MODELS}; rebuild them with "
                    "`python -m pytest_quantgate.tinymodel build`", pytrace=False)
    return MODELS
