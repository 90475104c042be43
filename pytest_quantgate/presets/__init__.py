"""Presets: how to start one model. Our own YAML, gpumod preset files and llama-swap configs.

Files are parsed into pydantic models that reject unknown keys (a typo is an error naming the file, the
line and the key), then turned into the frozen :class:`Preset` the rest of the package uses.

The modules, in the order a preset passes through them: :mod:`.search` (the search path, the
:class:`Catalogue` of what is on it, :func:`resolve` by id or file), :mod:`.files` (one file read:
YAML, which format it is, :func:`load_file`), one module per format with its file models and their
conversion (:mod:`.own`, :mod:`.gpumod`, :mod:`.llamaswap`), :mod:`.values` (a file's strings made
values: :func:`expand`, shell lines split, paths resolved) and :mod:`.model` (:class:`Preset` and
:class:`Sampler`). Names with a leading underscore are shared between these modules only.
"""

from __future__ import annotations

from pytest_quantgate.presets.files import load_file
from pytest_quantgate.presets.gpumod import GpumodPresetModel, GpumodUnitVars
from pytest_quantgate.presets.llamaswap import LlamaSwapConfig, LlamaSwapModel
from pytest_quantgate.presets.model import Driver, Preset, Sampler
from pytest_quantgate.presets.own import PresetModel, RequestModel, SamplerModel
from pytest_quantgate.presets.search import (
    BUILTIN_DIR_NAME,
    Catalogue,
    PresetWarning,
    builtin_dir,
    catalogue,
    resolve,
    search_path,
)
from pytest_quantgate.presets.values import expand

__all__ = [
    "BUILTIN_DIR_NAME",
    "Catalogue",
    "Driver",
    "GpumodPresetModel",
    "GpumodUnitVars",
    "LlamaSwapConfig",
    "LlamaSwapModel",
    "Preset",
    "PresetModel",
    "PresetWarning",
    "RequestModel",
    "Sampler",
    "SamplerModel",
    "builtin_dir",
    "catalogue",
    "expand",
    "load_file",
    "resolve",
    "search_path",
]
