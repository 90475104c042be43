"""A tiny llama-architecture model this project trains itself, so its quantizations differ for real.

``tasks`` and ``vocab`` are pure Python and safe to import anywhere; ``train`` (and the ``build`` command)
need torch, which nothing else in the package imports. See docs/tiny-model.md.
"""

from __future__ import annotations

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
"""Where the committed model files and their ``manifest.json`` live."""
