"""Writing preset files for the tests of pytest_quantgate.presets."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from pytest_quantgate.presets import load_file

if TYPE_CHECKING:
    from pathlib import Path


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def load_one(path: Path):
    (preset,) = load_file(path)
    return preset
