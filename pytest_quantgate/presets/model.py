"""The runtime preset: :class:`Preset` and its :class:`Sampler`, frozen, with everything resolved."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pytest_quantgate.credentials import REDACTED, names_a_credential, redact
from pytest_quantgate.errors import PresetError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from pytest_quantgate.packaged import PackagedModel
    from pytest_quantgate.presets.draft import Draft

Driver = Literal["llamacpp", "command", "external"]


@dataclass(frozen=True, slots=True)
class Sampler:
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    seed: int | None = None

    def request_fields(self) -> dict[str, Any]:
        """The sampler as llama-server request fields (unset values are left to the server)."""
        fields = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "seed")
        return {key: getattr(self, key) for key in fields if getattr(self, key) is not None}


@dataclass(frozen=True, slots=True, repr=False)
class Preset:
    """How to start (or reach) one model, with everything resolved: paths expanded, args split."""

    id: str
    name: str
    driver: Driver
    source: Path | None
    binary: str | None = None
    model: Path | None = None
    # A model that ships in a Python package (``model: package:...``): ``model`` is set from it when a run
    # resolves the preset (pytest_quantgate.packaged.prepare), not when presets are listed.
    packaged: PackagedModel | None = None
    mmproj: Path | None = None
    host: str = "127.0.0.1"
    port: int = 0
    context_size: int | None = None
    parallel: int = 1
    extra_args: tuple[str, ...] = ()
    command: tuple[str, ...] = ()
    base_url: str | None = None
    health_endpoint: str = "/health"
    env: tuple[tuple[str, str], ...] = ()
    startup_timeout_s: float = 120.0
    quiesce_s: float = 0.0
    memory_ceiling_mb: float | None = None
    devices: tuple[int, ...] = ()  # GPUs the server may use, indices into what the caller made visible
    share_devices: bool = False  # another preset of the run may be pinned to one of them
    api_key_env: str | None = None
    sampler: Sampler = field(default_factory=Sampler)
    chat_template_kwargs: tuple[tuple[str, Any], ...] = ()
    max_tokens: int = 512
    timeout_s: float = 900.0
    stream: bool = True
    cache_prompt: bool | None = None  # request.cache_prompt; None: see request_defaults()
    gates: tuple[str, ...] = ()
    origin: Literal["quantgate", "gpumod", "llama-swap"] = "quantgate"
    draft: Draft | None = None  # speculative decoding; its flags are in extra_args (or the command) too
    # Credentials the file's values expanded to: never written or shown (see redact()).
    secrets: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def api_key(self) -> str | None:
        """The API key from the environment variable the preset names, if any."""
        if self.api_key_env is None:
            return None
        value = os.environ.get(self.api_key_env)
        if value is None:
            raise PresetError(
                f"preset {self.id!r} ({self.source}) reads its API key from ${self.api_key_env}, which is not set"
            )
        return value

    def prompt_cache(self) -> bool | None:
        """The ``cache_prompt`` every request sends: the preset's own value, else False for a llama-server
        and None (not sent) for another server, which may not know the field.

        Off by default because llama-server evaluates a prompt in one batch the first time and only its last
        token when the prompt is cached, and the arithmetic differs: with the cache on, iteration 1 of a
        greedy run is systematically unlike the others.
        """
        if self.cache_prompt is not None:
            return self.cache_prompt
        runs_llama_server = self.driver == "llamacpp" or (
            self.driver == "command" and bool(self.command) and Path(self.command[0]).name.startswith("llama-server")
        )
        return False if runs_llama_server else None

    def request_defaults(self) -> dict[str, Any]:
        """What every request of this preset carries unless a level says otherwise: the sampler, the chat
        template's kwargs and the prompt cache setting."""
        defaults: dict[str, Any] = self.sampler.request_fields()
        if self.chat_template_kwargs:
            defaults["chat_template_kwargs"] = dict(self.chat_template_kwargs)
        if (cache := self.prompt_cache()) is not None:
            defaults["cache_prompt"] = cache
        return defaults

    def redact(self, args: Iterable[str]) -> list[str]:
        """*args* fit to be written or shown: :func:`redact` with this preset's credentials."""
        return redact(args, self.secrets)

    def __repr__(self) -> str:  # a preset shown in a traceback shows no credential either
        env = tuple((k, REDACTED if names_a_credential(k) else self.redact([v])[0]) for k, v in self.env)
        shown = {
            "extra_args": tuple(self.redact(self.extra_args)),
            "command": tuple(self.redact(self.command)),
            "env": env,
        }
        fields = ", ".join(
            f"{f.name}={shown.get(f.name, getattr(self, f.name))!r}" for f in dataclasses.fields(self) if f.repr
        )
        return f"Preset({fields})"
