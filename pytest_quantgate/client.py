"""An OpenAI-compatible client on httpx that measures what the field measures.

Per request: client-side TTFT (first streamed token), wall time, token counts, and llama-server's own
``timings`` when the server sends them. ``content`` and ``reasoning_content`` are kept apart.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

import httpx

from pytest_quantgate.errors import ClientError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from types import TracebackType

Message = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Timings:
    """llama-server's own account of a request (absent fields stay None)."""

    prompt_n: int | None = None
    prompt_ms: float | None = None
    prompt_per_second: float | None = None
    predicted_n: int | None = None
    predicted_ms: float | None = None
    predicted_per_second: float | None = None
    cache_n: int | None = None
    draft_n: int | None = None
    draft_n_accepted: int | None = None

    @classmethod
    def parse(cls, data: object) -> Timings | None:
        if not isinstance(data, dict):
            return None
        fields: dict[str, Any] = {}
        for name in cls.__slots__:
            value = data.get(name)
            fields[name] = value if isinstance(value, int | float) and not isinstance(value, bool) else None
        return cls(**fields)


@dataclass(frozen=True, slots=True)
class Completion:
    """One answered request."""

    content: str
    reasoning: str
    finish_reason: str | None
    wall_s: float
    ttft_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    timings: Timings | None = None
    endpoint: str = ""
    request: Mapping[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.content

    @property
    def tokens_per_s(self) -> float | None:
        """Decode rate: the server's own figure when it reports one, else measured client-side."""
        if self.timings and self.timings.predicted_per_second:
            return self.timings.predicted_per_second
        n = self.completion_tokens
        if n and self.ttft_s is not None and self.wall_s > self.ttft_s:
            return (n - 1) / (self.wall_s - self.ttft_s) if n > 1 else None
        return None


class Client:
    """Talks to one OpenAI-compatible server. Keyword-only configuration; one connection pool."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        defaults: Mapping[str, Any] | None = None,
        max_tokens: int = 512,
        timeout_s: float = 900.0,
        stream: bool = True,
        model: str | None = None,
        transport: httpx.BaseTransport | None = None,
        on_transport_error: Callable[[], None] | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.base_url = base_url.rstrip("/")
        self.defaults = dict(defaults or {})
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s
        self.stream = stream
        self.model = model
        # Called on a connection failure before raising: lets the owner turn "connection refused" into
        # "the server died" with its log tail.
        self._on_transport_error = on_transport_error
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=10.0),
            transport=transport,
        )

    # -- public API ------------------------------------------------------------------------------

    def chat(
        self,
        messages: str | Sequence[Message],
        *,
        system: str | None = None,
        max_tokens: int | None = None,
        stream: bool | None = None,
        timeout_s: float | None = None,
        **params: Any,
    ) -> Completion:
        """``POST /v1/chat/completions``. A string is sent as one user message."""
        if isinstance(messages, str):
            msgs: list[Message] = [{"role": "user", "content": messages}]
        else:
            msgs = list(messages)
        if system is not None:
            msgs.insert(0, {"role": "system", "content": system})
        body = self._body(max_tokens, params) | {"messages": msgs}
        return self._send("/v1/chat/completions", body, stream, timeout_s, chat=True)

    def complete(
        self,
        prompt: str,
        *,
        max_tokens: int | None = None,
        stream: bool | None = None,
        timeout_s: float | None = None,
        **params: Any,
    ) -> Completion:
        """``POST /v1/completions`` with a raw prompt (no chat template)."""
        body = self._body(max_tokens, params) | {"prompt": prompt}
        body.pop("chat_template_kwargs", None)
        return self._send("/v1/completions", body, stream, timeout_s, chat=False)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------------

    def _body(self, max_tokens: int | None, params: Mapping[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {**self.defaults, **params, "max_tokens": max_tokens or self.max_tokens}
        if self.model is not None:
            body.setdefault("model", self.model)
        return body

    def _send(
        self, path: str, body: dict[str, Any], stream: bool | None, timeout_s: float | None, *, chat: bool
    ) -> Completion:
        stream = self.stream if stream is None else stream
        timeout = httpx.Timeout(timeout_s or self.timeout_s, connect=10.0)
        try:
            return self._attempt(path, body, stream, timeout, chat=chat)
        except _NoResponse:
            # A kept-alive connection that llama-server closed before answering (seen intermittently after
            # streamed responses): nothing was generated for this request, so it goes once more, on a
            # fresh connection.
            pass
        try:
            return self._attempt(path, body, stream, timeout, chat=chat)
        except _NoResponse as exc:
            if self._on_transport_error is not None:
                self._on_transport_error()
            raise ClientError(
                f"{path} on {self.base_url}: the server closed the connection without answering, twice"
            ) from exc.__cause__

    def _attempt(
        self, path: str, body: dict[str, Any], stream: bool, timeout: httpx.Timeout, *, chat: bool
    ) -> Completion:
        started = time.perf_counter()
        try:
            if stream:
                body = body | {"stream": True, "stream_options": {"include_usage": True}}
                with self._http.stream("POST", path, json=body, timeout=timeout) as response:
                    self._raise_for_status(response, path)
                    return self._read_stream(response, started, path, body, chat=chat)
            response = self._http.post(path, json=body, timeout=timeout)
            self._raise_for_status(response, path)
            return self._read_whole(response, started, path, body, chat=chat)
        except httpx.TimeoutException as exc:
            raise ClientError(
                f"{path} timed out after {time.perf_counter() - started:.1f} s "
                f"(per-request timeout {timeout.read:g} s; raise request.timeout_s in the preset or the "
                f"level mark's timeout_s if the model needs longer) [{type(exc).__name__}]"
            ) from exc
        except httpx.RemoteProtocolError as exc:
            if "without sending a response" in str(exc):
                raise _NoResponse from exc
            if self._on_transport_error is not None:
                self._on_transport_error()
            raise ClientError(f"{path} on {self.base_url} failed: {exc!r}") from exc
        except httpx.TransportError as exc:
            if self._on_transport_error is not None:
                self._on_transport_error()
            raise ClientError(f"{path} on {self.base_url} failed: {exc!r}") from exc

    def _raise_for_status(self, response: httpx.Response, path: str) -> None:
        if response.status_code < 400:
            return
        response.read()
        excerpt = response.text[:500].strip()
        raise ClientError(f"{path} answered HTTP {response.status_code}: {excerpt or '(empty body)'}")

    def _read_whole(
        self, response: httpx.Response, started: float, path: str, body: dict[str, Any], *, chat: bool
    ) -> Completion:
        wall = time.perf_counter() - started
        try:
            data = response.json()
            choice = data["choices"][0]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ClientError(f"{path} returned a malformed response: {response.text[:300]!r}") from exc
        if chat:
            message = choice.get("message") or {}
            content = message.get("content") or ""
            reasoning = message.get("reasoning_content") or ""
        else:
            content, reasoning = choice.get("text") or "", ""
        usage = data.get("usage") or {}
        return Completion(
            content=content,
            reasoning=reasoning,
            finish_reason=choice.get("finish_reason"),
            wall_s=wall,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            timings=Timings.parse(data.get("timings")),
            endpoint=path,
            request=body,
        )

    def _read_stream(
        self, response: httpx.Response, started: float, path: str, body: dict[str, Any], *, chat: bool
    ) -> Completion:
        content: list[str] = []
        reasoning: list[str] = []
        ttft: float | None = None
        finish: str | None = None
        usage: Mapping[str, Any] = {}
        timings: Timings | None = None
        for event in _sse_events(response.iter_lines(), path):
            if "error" in event:
                raise ClientError(f"{path} streamed an error: {json.dumps(event['error'])[:300]}")
            for choice in event.get("choices") or ():
                if chat:
                    delta = choice.get("delta") or {}
                    piece, thought = delta.get("content"), delta.get("reasoning_content")
                else:
                    piece, thought = choice.get("text"), None
                if (piece or thought) and ttft is None:
                    ttft = time.perf_counter() - started
                if piece:
                    content.append(piece)
                if thought:
                    reasoning.append(thought)
                finish = choice.get("finish_reason") or finish
            if event.get("usage"):
                usage = event["usage"]
            if "timings" in event:
                timings = Timings.parse(event["timings"])
        return Completion(
            content="".join(content),
            reasoning="".join(reasoning),
            finish_reason=finish,
            wall_s=time.perf_counter() - started,
            ttft_s=ttft,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            timings=timings,
            endpoint=path,
            request=body,
        )


class _NoResponse(Exception):
    """The connection closed before any response arrived (internal: the request is retried once)."""


def _sse_events(lines: Iterator[str], path: str) -> Iterator[dict[str, Any]]:
    """Parse ``data: {...}`` lines until ``data: [DONE]`` (or the end of the body)."""
    for line in lines:
        if not line.startswith("data:"):
            continue  # comments, event names, keep-alives
        payload = line[5:].strip()
        if payload == "[DONE]":
            # Read the body to its end: a stream left unfinished is closed by the garbage collector's
            # finalizer, where a Ctrl-C that lands is dropped ("Exception ignored in ...") and the run goes
            # on; and its connection is closed instead of kept alive.
            for _ in lines:
                pass
            return
        try:
            event = json.loads(payload)
        except ValueError as exc:
            raise ClientError(f"{path} streamed a malformed event: {payload[:200]!r}") from exc
        if not isinstance(event, dict):
            raise ClientError(f"{path} streamed a non-object event: {payload[:200]!r}")
        yield event
