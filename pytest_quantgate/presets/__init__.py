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
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pytest_quantgate.errors import PresetError
from pytest_quantgate.flags import server_args
from pytest_quantgate.presets.model import Driver, Preset, Sampler
from pytest_quantgate.presets.values import _binary, _path, _split, expand

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


# -- the file models (boundary) -----------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SamplerModel(_Strict):
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    seed: int | None = None


class RequestModel(_Strict):
    max_tokens: int = Field(default=512, gt=0)
    timeout_s: float = Field(default=900.0, gt=0)
    stream: bool = True


class PresetModel(_Strict):
    """Our own preset file format."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
    name: str | None = None
    description: str | None = None
    driver: Driver = "llamacpp"
    binary: str | None = None
    model: str | None = None
    mmproj: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    context_size: int | None = Field(default=None, gt=0)
    parallel: int = Field(default=1, ge=1)
    extra_args: list[str] | str = Field(default_factory=list)
    command: list[str] | str | None = None
    base_url: str | None = None
    health_endpoint: str = "/health"
    env: dict[str, str] = Field(default_factory=dict)
    startup_timeout: float = Field(default=120.0, gt=0)
    quiesce: float = Field(default=0.0, ge=0)
    memory_ceiling_mb: float | None = Field(default=None, gt=0)
    api_key_env: str | None = None
    sampler: SamplerModel = Field(default_factory=SamplerModel)
    chat_template_kwargs: dict[str, Any] = Field(default_factory=dict)
    request: RequestModel = Field(default_factory=RequestModel)
    gates: list[str] = Field(default_factory=list)


class GpumodUnitVars(BaseModel):
    # gpumod's unit_vars is an open mapping fed to systemd unit templates; keys we do not use are kept
    # for gpumod and ignored here rather than rejected, since the same file must serve both tools.
    model_config = ConfigDict(extra="allow", frozen=True)
    model_path: str | None = None
    context_size: int | None = None
    n_gpu_layers: int | None = None
    jinja: bool | None = None
    flash_attn: bool | None = None
    extra_args: str | None = None
    gpu_mem_util: float | None = None
    max_model_len: int | None = None
    max_num_seqs: int | None = None
    dtype: str | None = None
    enforce_eager: bool | None = None


class GpumodPresetModel(_Strict):
    """gpumod's preset file format, loaded as it is."""

    id: str
    name: str | None = None
    driver: str
    port: int
    vram_mb: float | None = None
    context_size: int | None = None
    kv_cache_per_1k: float | None = None
    model_id: str | None = None
    model_path: str | None = None
    health_endpoint: str = "/health"
    startup_timeout: float = 120.0
    supports_sleep: bool | None = None
    sleep_mode: str | None = None
    preflight_required: bool | None = None
    description: str | None = None
    unit_vars: GpumodUnitVars = Field(default_factory=GpumodUnitVars)


class LlamaSwapModel(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)  # llama-swap grows keys; we read these
    cmd: str
    env: list[str] = Field(default_factory=list)
    proxy: str | None = None
    checkEndpoint: str | None = None
    name: str | None = None
    description: str | None = None

    @field_validator("cmd")
    @classmethod
    def _cmd_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("cmd is empty")
        return value


class LlamaSwapConfig(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    models: dict[str, LlamaSwapModel]


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


def _from_own(model: PresetModel, path: Path | None) -> Preset:
    base = path.parent if path else None
    secrets: list[str] = []

    def x(value: str) -> str:
        return expand(value, secrets=secrets)

    if isinstance(model.extra_args, str):
        extra = _split(x(model.extra_args), "extra_args", model.extra_args)
    else:
        extra = [x(a) for a in model.extra_args]
    command = model.command
    if isinstance(command, str):
        command = _split(command, "command")
    command = [x(a) for a in command or ()]
    if model.driver == "llamacpp" and not model.model:
        raise PresetError(f"{path}: preset {model.id!r} uses driver llamacpp but sets no 'model' (a GGUF path)")
    if model.driver == "command" and not command:
        raise PresetError(f"{path}: preset {model.id!r} uses driver command but sets no 'command' (an argv)")
    if model.driver == "external" and not model.base_url:
        raise PresetError(f"{path}: preset {model.id!r} uses driver external but sets no 'base_url'")
    # A llama-server flag quantgate records must hold a value it can read.
    if model.driver == "command":
        server_args([*command, *extra], where="command and extra_args", binary=True)
    else:
        server_args(extra, where="extra_args")
    if model.api_key_env and (key := os.environ.get(model.api_key_env)):
        secrets.append(key)
    return Preset(
        id=model.id,
        name=model.name or model.id,
        driver=model.driver,
        source=path,
        binary=_binary(model.binary, base, x),
        model=_path(model.model, base, x),
        mmproj=_path(model.mmproj, base, x),
        host=model.host,
        port=model.port,
        context_size=model.context_size,
        parallel=model.parallel,
        extra_args=tuple(extra),
        command=tuple(command),
        base_url=model.base_url,
        health_endpoint=model.health_endpoint,
        env=tuple(sorted((k, x(v)) for k, v in model.env.items())),
        startup_timeout_s=model.startup_timeout,
        quiesce_s=model.quiesce,
        memory_ceiling_mb=model.memory_ceiling_mb,
        api_key_env=model.api_key_env,
        sampler=Sampler(**model.sampler.model_dump()),
        chat_template_kwargs=tuple(sorted(model.chat_template_kwargs.items())),
        max_tokens=model.request.max_tokens,
        timeout_s=model.request.timeout_s,
        stream=model.request.stream,
        gates=tuple(model.gates),
        secrets=tuple(secrets),
    )


def _from_gpumod(model: GpumodPresetModel, path: Path) -> Preset:
    uv = model.unit_vars
    secrets: list[str] = []

    def x(value: str) -> str:
        return expand(value, secrets=secrets)

    extra = _split(x(uv.extra_args), "unit_vars.extra_args", uv.extra_args) if uv.extra_args else []
    parallel = 1
    if model.driver == "llamacpp":
        parallel = server_args(extra, where="unit_vars.extra_args").parallel or 1
    common: dict[str, Any] = {
        "id": model.id,
        "name": model.name or model.id,
        "source": path,
        "port": model.port,
        "health_endpoint": model.health_endpoint,
        "startup_timeout_s": model.startup_timeout,
        "memory_ceiling_mb": model.vram_mb,
        "parallel": parallel,
        "origin": "gpumod",
    }
    if model.driver == "llamacpp":
        args = list(extra)
        if uv.n_gpu_layers is not None:
            args += ["-ngl", str(uv.n_gpu_layers)]
        if uv.jinja:
            args.append("--jinja")
        if uv.flash_attn:
            args += ["--flash-attn", "on"]
        gguf = uv.model_path or model.model_path
        if not gguf:
            raise PresetError(f"{path}: gpumod preset {model.id!r} has no model_path (top level or unit_vars)")
        gguf_path = _path(gguf, path.parent, x)
        return Preset(
            driver="llamacpp",
            model=gguf_path,
            context_size=uv.context_size or model.context_size,
            extra_args=tuple(args),
            secrets=tuple(secrets),
            **common,
        )
    if model.driver == "vllm":
        if not model.model_id:
            raise PresetError(f"{path}: gpumod vllm preset {model.id!r} has no model_id")
        argv = ["vllm", "serve", model.model_id, "--host", "{host}", "--port", "{port}"]
        for key, flag in (("gpu_mem_util", "--gpu-memory-utilization"), ("max_model_len", "--max-model-len"),
                          ("max_num_seqs", "--max-num-seqs"), ("dtype", "--dtype")):  # fmt: skip
            value = getattr(uv, key)
            if value is not None:
                argv += [flag, str(value)]
        if uv.enforce_eager:
            argv.append("--enforce-eager")
        return Preset(driver="command", command=tuple(argv + extra), secrets=tuple(secrets), **common)
    raise PresetError(
        f"{path}: gpumod driver {model.driver!r} of preset {model.id!r} cannot be started by quantgate "
        "(supported: llamacpp, vllm); attach to it instead with --base-url URL"
    )


def _from_llama_swap(config: LlamaSwapConfig, path: Path) -> list[Preset]:
    presets = []
    for name, entry in config.models.items():
        secrets: list[str] = []
        env = []
        for item in entry.env:
            key, sep, value = item.partition("=")
            if not sep:
                raise PresetError(f"{path}: models.{name}.env entry {item!r} is not KEY=VALUE")
            env.append((key, expand(value, secrets=secrets)))
        # llama-swap allows line continuations and comments inside cmd; shlex handles both once the
        # backslash-newlines are joined.
        cmd = _split(entry.cmd.replace("\\\n", " "), f"models.{name}.cmd", comments=True)
        argv = [a.replace("${PORT}", "{port}") for a in cmd]
        # A proxy URL with a fixed port (no ${PORT}) is where llama-swap reaches the model: so do we.
        host, port = "127.0.0.1", 0
        if entry.proxy and "${PORT}" not in entry.proxy:
            try:
                url = urlsplit(entry.proxy)
                host, port = url.hostname or host, url.port or 0
            except ValueError as exc:
                raise PresetError(f"{path}: models.{name}.proxy {entry.proxy!r} is not a URL: {exc}") from exc
        presets.append(
            Preset(
                id=name,
                name=entry.name or name,
                driver="command",
                source=path,
                host=host,
                port=port,
                command=tuple(argv),
                parallel=server_args(argv, where=f"models.{name}.cmd", binary=True).parallel or 1,
                health_endpoint=entry.checkEndpoint or "/health",
                env=tuple(sorted(env)),
                origin="llama-swap",
                secrets=tuple(secrets),
            )
        )
    return presets


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
