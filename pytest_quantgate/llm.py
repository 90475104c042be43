"""``Llm``: what a level test uses to ask the model (the ``llm`` fixture). Records every exchange."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from pytest_quantgate.errors import ClientError, ClientTimeoutError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from pytest_quantgate.client import Client
    from pytest_quantgate.completion import Completion, Message
    from pytest_quantgate.presets import Preset


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request as sent and its answer, kept for the iteration's artifact."""

    kind: str  # "chat" or "complete"
    prompt: str | Sequence[Message] | Sequence[int]
    params: dict[str, Any]
    completion: Completion


class Llm:
    """Ask the preset's model. ``llm.chat("...")`` or ``llm.complete("...")`` return a Completion whose
    ``content`` (and ``reasoning``) the test validates."""

    def __init__(
        self,
        client: Client,
        preset: Preset,
        *,
        iteration: int,
        max_tokens: int | None = None,
        timeout_s: float | None = None,
        before_request: Callable[[], None] | None = None,
        after_timeout: Callable[[float], None] | None = None,
    ) -> None:
        """*before_request* runs before every request and may raise to fail it unsent (a dead server).
        *after_timeout* runs when a request timed out, with the time it was sent (seconds since the
        epoch), and may raise to say why (a server that stopped answering)."""
        self.preset = preset
        self.iteration = iteration
        self.exchanges: list[Exchange] = []
        self._client = client
        self._max_tokens = max_tokens
        self._timeout_s = timeout_s
        self._before = before_request
        self._after_timeout = after_timeout

    @property
    def base_url(self) -> str:
        return self._client.base_url

    def chat(self, prompt: str | Sequence[Message], **params: Any) -> Completion:
        """Chat completion; keyword arguments go into the request body (max_tokens, temperature, ...)."""
        __tracebackhide__ = True
        return self._ask("chat", prompt, params)

    def complete(self, prompt: str | Sequence[int], **params: Any) -> Completion:
        """Raw completion (no chat template), for base models and the tiny presets; a list of token ids
        is sent as it is (an exact prompt length)."""
        __tracebackhide__ = True
        return self._ask("complete", prompt, params)

    def _ask(self, kind: str, prompt: str | Sequence[Message] | Sequence[int], params: dict[str, Any]) -> Completion:
        __tracebackhide__ = True
        if self._before is not None:
            self._before()
        params.setdefault("max_tokens", self._max_tokens)
        if self._timeout_s is not None:
            params.setdefault("timeout_s", self._timeout_s)
        sent_at = time.time()
        try:
            if kind == "chat":
                completion = self._client.chat(prompt, **params)  # type: ignore[arg-type]
            else:
                assert not _messages(prompt), "complete() takes a prompt string or token ids; use chat() for messages"
                completion = self._client.complete(prompt, **params)  # type: ignore[arg-type]
        except ClientError as exc:
            if self._after_timeout is not None and timed_out(exc):
                self._after_timeout(sent_at)
            raise
        self.exchanges.append(Exchange(kind, prompt, dict(params), completion))
        return completion


def _messages(prompt: object) -> bool:
    return not isinstance(prompt, str) and any(not isinstance(part, int) for part in prompt)  # type: ignore[attr-defined]


def timed_out(exc: ClientError) -> bool:
    """Whether *exc* says that the request ran out of time (its whole-request deadline, or a read)."""
    return isinstance(exc, ClientTimeoutError) or isinstance(exc.__cause__, httpx.TimeoutException)
