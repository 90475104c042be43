"""gpumod's preset files, read as they are: their pydantic file models and the
:class:`~pytest_quantgate.presets.Preset` each makes (llama-server directly, vLLM as a command)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from pytest_quantgate.errors import PresetError
from pytest_quantgate.flags import server_args
from pytest_quantgate.presets.draft import draft_from_args
from pytest_quantgate.presets.model import Preset
from pytest_quantgate.presets.own import _Strict
from pytest_quantgate.presets.values import _path, _split, expand

if TYPE_CHECKING:
    from pathlib import Path


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
            draft=draft_from_args(args),
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
