"""pytest-quantgate: decide whether a new LLM quantization may replace the old one, as a pytest run."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
