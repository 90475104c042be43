"""Our own preset format: its pydantic file model and the :class:`~pytest_quantgate.presets.Preset` it makes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pytest_quantgate.errors import PresetError
from pytest_quantgate.flags import server_args
from pytest_quantgate.packaged import PackagedModel, is_packaged
from pytest_quantgate.presets.draft import DraftModel, draft_from_model
from pytest_quantgate.presets.model import Driver, Preset, Sampler
from pytest_quantgate.presets.values import _binary, _path, _split, expand


# The base of the file models that reject unknown keys (gpumod's top level uses it too).
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
    # llama-server's prompt cache: unset sends `cache_prompt: false` to a llama-server (each iteration then
    # evaluates a prompt the same way; greedy answers repeat exactly) and nothing to other servers.
    cache_prompt: bool | None = None


class PresetModel(_Strict):
    """Our own preset file format."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
    name: str | None = None
    description: str | None = None
    driver: Driver = "llamacpp"
    binary: str | None = None
    model: str | None = None
    # With model: package:..., a llama-quantize type made from the packaged file (once, then cached).
    quantize: str | None = None
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
    devices: list[int] | int | str | None = None  # GPU indices into what the caller made visible: [0, 1], "0,1"
    share_devices: bool = False  # another preset of the run may be pinned to the same device
    api_key_env: str | None = None
    sampler: SamplerModel = Field(default_factory=SamplerModel)
    chat_template_kwargs: dict[str, Any] = Field(default_factory=dict)
    request: RequestModel = Field(default_factory=RequestModel)
    gates: list[str] = Field(default_factory=list)
    draft: DraftModel | None = None  # speculative decoding: a draft model (-md) or an n-gram --spec-type


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
    packaged = None
    if is_packaged(model.model):
        assert model.model is not None
        packaged = PackagedModel.parse(model.model, model.quantize, where=f"{path}: model")
    elif model.quantize is not None:
        raise PresetError(f"{path}: quantize applies to a packaged model (model: package:...), not {model.model!r}")
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
    draft = None
    if model.draft is not None:
        where = f"{path}: preset {model.id!r}"
        draft = draft_from_model(model.draft, lambda value: _path(value, base, x) or Path(value), extra, where)
        extra = [*extra, *draft.server_args()]
    return Preset(
        id=model.id,
        name=model.name or model.id,
        driver=model.driver,
        source=path,
        binary=_binary(model.binary, base, x),
        model=None if packaged else _path(model.model, base, x),
        packaged=packaged,
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
        devices=_devices(model.devices, path, model.id),
        share_devices=model.share_devices,
        api_key_env=model.api_key_env,
        sampler=Sampler(**model.sampler.model_dump()),
        chat_template_kwargs=tuple(sorted(model.chat_template_kwargs.items())),
        max_tokens=model.request.max_tokens,
        timeout_s=model.request.timeout_s,
        stream=model.request.stream,
        cache_prompt=model.request.cache_prompt,
        gates=tuple(model.gates),
        draft=draft,
        secrets=tuple(secrets),
    )


def _devices(value: list[int] | int | str | None, path: Path | None, preset_id: str) -> tuple[int, ...]:
    """``devices`` as indices: a list, one index, or a comma-separated string as CUDA_VISIBLE_DEVICES has it."""
    if value is None:
        return ()
    if isinstance(value, int):
        items: list[int | str] = [value]
    elif isinstance(value, str):
        items = [part.strip() for part in value.split(",") if part.strip()]
    else:
        items = list(value)
    found = []
    for item in items:
        try:
            index = int(item)
        except ValueError:
            index = -1
        if index < 0:
            raise PresetError(
                f"{path}: preset {preset_id!r}: devices {value!r}: {item!r} is not a device index (0, 1, ...: "
                "indices into the devices the caller made visible, as CUDA_VISIBLE_DEVICES counts them)"
            )
        found.append(index)
    return tuple(found)
