from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import scipy.stats  # noqa: F401

# ↑ pytester's in-process runs drop modules first imported inside them; numpy (under scipy) refuses to
# be imported a second time in one process, so it is imported once out here.

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(autouse=True)
def _server_for_pytester(llama_server_bin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # pytester points HOME at a temporary directory, where the per-user build cache is not.
    monkeypatch.setenv("QUANTGATE_LLAMA_SERVER", str(llama_server_bin))
    # Inner runs re-import hypothesis' plugin each time (~1.5 s); none of them uses it.
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:hypothesispytest")
