"""Reading one preset file: its YAML mapping, which of the three formats it is, and errors that name the
file, the line and the key."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from pytest_quantgate.errors import PresetError
from pytest_quantgate.presets.gpumod import GpumodPresetModel, _from_gpumod
from pytest_quantgate.presets.llamaswap import LlamaSwapConfig, _from_llama_swap
from pytest_quantgate.presets.own import PresetModel, _from_own

if TYPE_CHECKING:
    from pathlib import Path

    from pytest_quantgate.presets.model import Preset


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
