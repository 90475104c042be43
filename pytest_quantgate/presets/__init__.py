"""Presets: how to start one model. Our own YAML, gpumod preset files and llama-swap configs.

Files are parsed into pydantic models that reject unknown keys (a typo is an error naming the file, the
line and the key), then turned into the frozen :class:`Preset` the rest of the package uses.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pytest_quantgate.errors import PresetError
from pytest_quantgate.presets.gpumod import GpumodPresetModel, GpumodUnitVars, _from_gpumod
from pytest_quantgate.presets.llamaswap import LlamaSwapConfig, LlamaSwapModel, _from_llama_swap
from pytest_quantgate.presets.model import Driver, Preset, Sampler
from pytest_quantgate.presets.own import PresetModel, RequestModel, SamplerModel, _from_own
from pytest_quantgate.presets.values import expand

BUILTIN_DIR_NAME = "presets_data"
_YAML_SUFFIXES = (".yaml", ".yml")

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


# -- loading ------------------------------------------------------------------------------------------


def builtin_dir() -> Path:
    """The presets shipped inside the package (tiny-f16, tiny-q8_0, tiny-q4_0, ...)."""
    return Path(str(resources.files("pytest_quantgate") / BUILTIN_DIR_NAME))


def load_file(path: Path) -> list[Preset]:
    """Every preset one file defines: one for our format and gpumod's, several for a llama-swap config.

    Whatever the file holds, the only exception is :class:`PresetError`, naming the file and the problem.
    """
    data, node = _read_mapping(path)
    try:
        if "models" in data and "id" not in data:
            return _from_llama_swap(LlamaSwapConfig.model_validate(data), path)
        if "unit_vars" in data or "vram_mb" in data or "model_id" in data:
            return [_from_gpumod(GpumodPresetModel.model_validate(data), path)]
        return [_from_own(PresetModel.model_validate(data), path)]
    except ValidationError as exc:
        raise PresetError(_describe(exc, path, node)) from exc
    except PresetError as exc:  # from expand(): an unset variable, which does not know the file
        if str(exc).startswith(f"{path}:"):
            raise
        raise PresetError(f"{path}: {exc}") from exc


def _read_mapping(path: Path) -> tuple[dict[Any, Any], yaml.Node | None]:
    """The YAML mapping in *path* and its node tree (for line numbers)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PresetError(f"cannot read preset file {path}: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        lineno = raw[: exc.start].count(b"\n") + 1
        raise PresetError(
            f"{path}, line {lineno}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "save the file as UTF-8"
        ) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f", line {where.line + 1}" if where is not None else ""
        raise PresetError(f"{path}{line}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    except (ValueError, OverflowError) as exc:  # PyYAML's own crash on an escape such as "\U99999999"
        raise PresetError(f"{path}: not valid YAML: {exc}") from exc
    except RecursionError:
        raise PresetError(f"{path}: not valid YAML: nested too deeply") from None
    if not isinstance(data, dict):
        raise PresetError(f"{path}: a preset file must be a YAML mapping, got {type(data).__name__}")
    if isinstance(node, yaml.MappingNode):
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:str":
                # YAML 1.1 reads on/off/yes/no/null (and numbers) as other types: no preset key is one.
                read = yaml.safe_load(key_node.value) if key_node.value else None
                raise PresetError(
                    f"{path}, line {key_node.start_mark.line + 1}: unknown key {key_node.value!r} (YAML reads it as "
                    f"{read!r}, not a name; check the spelling, and quote a key that is meant as text)"
                )
    return data, node


def _describe(exc: ValidationError, path: Path, node: yaml.Node | None) -> str:
    lines = [f"{path}: {exc.error_count()} problem(s) in the preset"]
    for err in exc.errors():
        loc = [str(part) for part in err["loc"]]
        key = ".".join(loc) or "(top level)"
        line = _line_of(node, loc)
        where = f"line {line}: " if line else ""
        if err["type"] == "extra_forbidden":
            lines.append(f"  {where}unknown key {key!r} (check the spelling; see docs/presets.md for the keys)")
        else:
            lines.append(f"  {where}{key}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


def _line_of(node: yaml.Node | None, loc: list[str]) -> int | None:
    """1-based line of the YAML key at *loc*, walking the composed node tree."""
    line = None
    for part in loc:
        if not isinstance(node, yaml.MappingNode):
            break
        for key, value in node.value:
            if key.value == part:
                line = key.start_mark.line + 1
                node = value
                break
        else:
            break
    return line


# -- the search path ----------------------------------------------------------------------------------


class PresetWarning(UserWarning):
    """A file or directory on the preset search path that cannot be used; the other presets still can."""


@dataclass(frozen=True, slots=True)
class Catalogue:
    """Every preset found on a search path, and the files that could not be read."""

    presets: tuple[Preset, ...]
    problems: tuple[str, ...]
    # (id, problem) for each id a file that cannot be read seems to define, where no file before it on the
    # search path defines that id: asking for it is that file's error, not another file's preset.
    broken: tuple[tuple[str, str], ...] = ()

    def get(self, name: str) -> Preset:
        for claimed, problem in self.broken:
            if claimed == name:
                raise PresetError(f"preset {name!r} is in a file that cannot be used:\n  {problem}")
        for preset in self.presets:
            if preset.id == name:
                return preset
        known = ", ".join(sorted(p.id for p in self.presets)) or "none"
        hint = "" if not self.problems else "\nfiles that could not be read:\n  " + "\n  ".join(self.problems)
        raise PresetError(
            f"no preset named {name!r}. Known presets: {known}. Add a directory with --preset-dir DIR "
            f"(or quantgate_preset_dirs in the ini file), or pass the path of a preset file.{hint}"
        )


def search_path(dirs: list[Path] | tuple[Path, ...] = ()) -> list[Path]:
    """The directories searched, first match wins: given ones, $QUANTGATE_PRESET_PATH, the built-ins."""
    found = [_expanduser(Path(d)) for d in dirs]
    found += [_expanduser(Path(p)) for p in os.environ.get("QUANTGATE_PRESET_PATH", "").split(os.pathsep) if p]
    found.append(builtin_dir())
    return found


def _expanduser(path: Path) -> Path:
    try:
        return path.expanduser()
    except RuntimeError:  # ~name of an unknown user: left as it is, so it is reported as not found
        return path


def catalogue(dirs: list[Path] | tuple[Path, ...] = ()) -> Catalogue:
    """Every preset on the search path. A file that cannot be read is a problem of its own and hides only
    the presets it would have defined."""
    presets: list[Preset] = []
    problems: list[str] = []
    broken: list[tuple[str, str]] = []
    seen: set[str] = set()
    for directory in search_path(dirs):
        if not directory.is_dir():
            problems.append(f"{directory}: not a directory")
            continue
        for file in sorted(p for p in directory.rglob("*") if p.suffix in _YAML_SUFFIXES and p.is_file()):
            try:
                found = load_file(file)
            except PresetError as exc:
                problem = str(exc).replace("\n", "\n    ")
                problems.append(problem)
                claims = _claims(file)
                broken += [(claimed, problem) for claimed in claims if claimed not in seen]
                seen.update(claims)
                continue
            for preset in found:
                if preset.id not in seen:
                    seen.add(preset.id)
                    presets.append(preset)
    return Catalogue(presets=tuple(presets), problems=tuple(problems), broken=tuple(broken))


def _claims(path: Path) -> list[str]:
    """The ids a file that failed to load seems to define: its ``id``, its llama-swap model names, else its
    name without the suffix."""
    try:
        data, _node = _read_mapping(path)
    except PresetError:
        return [path.stem]
    models = data.get("models")
    if "id" not in data and isinstance(models, dict) and (names := [k for k in models if isinstance(k, str)]):
        return names
    if isinstance(data.get("id"), str):
        return [data["id"]]
    return [path.stem]


def resolve(name_or_path: str, dirs: list[Path] | tuple[Path, ...] = ()) -> Preset:
    """A preset by id (searched on the path), by file path, or ``FILE::ID`` for one model of a llama-swap
    config.

    Files on the search path that cannot be read are a :class:`PresetWarning` each, unless the preset asked
    for is in one of them: then that file's problem is the error.
    """
    file_part, _, wanted = name_or_path.partition("::")
    candidate = _expanduser(Path(file_part))
    if candidate.suffix in _YAML_SUFFIXES and candidate.is_file():
        found = load_file(candidate)
        if wanted:
            return Catalogue(tuple(found), ()).get(wanted)
        if len(found) > 1:
            ids = ", ".join(p.id for p in found)
            raise PresetError(f"{candidate} defines several presets ({ids}); pick one with {candidate}::ID")
        return found[0]
    # One scan in search-path order, so the first match is the same one `quantgate presets` lists.
    found_on_path = catalogue(dirs)
    preset = found_on_path.get(name_or_path)
    for problem in found_on_path.problems:
        warnings.warn(PresetWarning(f"skipped {problem}"), stacklevel=2)
    return preset
