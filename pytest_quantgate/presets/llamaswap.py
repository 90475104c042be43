"""llama-swap configs: their pydantic file models and one :class:`~pytest_quantgate.presets.Preset` per
model entry."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pytest_quantgate.errors import PresetError
from pytest_quantgate.flags import server_args
from pytest_quantgate.presets.draft import draft_from_args
from pytest_quantgate.presets.model import Preset
from pytest_quantgate.presets.values import _split, expand

if TYPE_CHECKING:
    from pathlib import Path


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
                draft=draft_from_args(argv[1:]),
                secrets=tuple(secrets),
            )
        )
    return presets
