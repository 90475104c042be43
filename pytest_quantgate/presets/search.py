"""Finding presets: the search path, the catalogue of everything on it, and a preset by name or file."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_quantgate.errors import PresetError
from pytest_quantgate.packaged import prepare
from pytest_quantgate.presets.files import _read_mapping, load_file

if TYPE_CHECKING:
    from pytest_quantgate.presets.model import Preset

BUILTIN_DIR_NAME = "presets_data"
_YAML_SUFFIXES = (".yaml", ".yml")


def builtin_dir() -> Path:
    """The presets shipped inside the package (tiny-f16, tiny-q8_0, tiny-q4_0, ...)."""
    return Path(str(resources.files("pytest_quantgate") / BUILTIN_DIR_NAME))


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
    config. A model that ships in a Python package is looked up now (and a quant of it made, once).

    Files on the search path that cannot be read are a :class:`PresetWarning` each, unless the preset asked
    for is in one of them: then that file's problem is the error.
    """
    file_part, _, wanted = name_or_path.partition("::")
    candidate = _expanduser(Path(file_part))
    if candidate.suffix in _YAML_SUFFIXES and candidate.is_file():
        found = load_file(candidate)
        if wanted:
            return prepare(Catalogue(tuple(found), ()).get(wanted))
        if len(found) > 1:
            ids = ", ".join(p.id for p in found)
            raise PresetError(f"{candidate} defines several presets ({ids}); pick one with {candidate}::ID")
        return prepare(found[0])
    # One scan in search-path order, so the first match is the same one `quantgate presets` lists.
    found_on_path = catalogue(dirs)
    preset = found_on_path.get(name_or_path)
    for problem in found_on_path.problems:
        warnings.warn(PresetWarning(f"skipped {problem}"), stacklevel=2)
    return prepare(preset)
