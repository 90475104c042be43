"""An OpenAI-compatible client on httpx that measures what the field measures.

Per request: client-side TTFT (first streamed token), wall time, token counts, and llama-server's own
``timings`` when the server sends them. ``content`` and ``reasoning_content`` are kept apart.
"""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Any, Self

import httpx

from pytest_quantgate import interrupts
from pytest_quantgate.completion import Completion, Timings
from pytest_quantgate.errors import ClientError, ClientTimeoutError, ClientTransportError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence
    from types import TracebackType

    from pytest_quantgate.completion import Message


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
        self._http_options: dict[str, Any] = {
            "base_url": self.base_url,
            "headers": headers,
            "timeout": httpx.Timeout(timeout_s, connect=10.0),
            "transport": transport,
            # llama-server (cpp-httplib) closes a connection idle for 5 s; reusing one near that age races
            # its close. Below it, an idle connection is dropped here first.
            "limits": httpx.Limits(keepalive_expiry=2.0),
        }
        self._http = httpx.Client(**self._http_options)

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
        prompt: str | Sequence[int],
        *,
        max_tokens: int | None = None,
        stream: bool | None = None,
        timeout_s: float | None = None,
        **params: Any,
    ) -> Completion:
        """``POST /v1/completions`` with a raw prompt (no chat template), text or token ids."""
        body = self._body(max_tokens, params) | {"prompt": prompt if isinstance(prompt, str) else list(prompt)}
        body.pop("chat_template_kwargs", None)
        return self._send("/v1/completions", body, stream, timeout_s, chat=False)

    def tokenize(self, text: str) -> list[int]:
        """``POST /tokenize`` (llama-server): the token ids of *text*, no BOS added.

        A server without the endpoint (another OpenAI-compatible server) raises :class:`ClientError`
        saying so.
        """
        data = self.get_json("/tokenize", body={"content": text})
        tokens = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(tokens, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in tokens):
            raise ClientError(
                f"/tokenize on {self.base_url} answered without a list of token ids: {_excerpt(data)}"
            )
        return tokens

    def props(self) -> dict[str, Any]:
        """``GET /props`` (llama-server): the settings the server runs with (slots, context, model, template)."""
        data = self.get_json("/props")
        if not isinstance(data, dict):
            raise ClientError(f"/props on {self.base_url} answered {_excerpt(data, 80)}, not a JSON object")
        return data

    def slots(self) -> list[dict[str, Any]]:
        """``GET /slots`` (llama-server): one object per slot."""
        data = self.get_json("/slots")
        if not isinstance(data, list) or not all(isinstance(slot, dict) for slot in data):
            raise ClientError(f"/slots on {self.base_url} answered {_excerpt(data, 80)}, not a list of objects")
        return data

    def metrics(self) -> str:
        """``GET /metrics`` (llama-server with ``--metrics``): the Prometheus text."""
        return self._get("/metrics").text

    def get_json(self, path: str, *, body: Mapping[str, Any] | None = None) -> Any:
        """GET *path* (POST *body* when given) and decode its JSON answer; any failure is a ClientError
        naming the URL and the HTTP status."""
        response = self._get(path, body=body)
        try:
            return response.json()
        except ValueError as exc:
            raise ClientError(
                f"{path} on {self.base_url} answered something that is not JSON: {response.text[:200]!r}"
            ) from exc

    def _get(self, path: str, *, body: Mapping[str, Any] | None = None) -> httpx.Response:
        try:
            if body is None:
                response = self._http.get(path, timeout=httpx.Timeout(10.0))
            else:
                response = self._http.post(path, json=dict(body), timeout=httpx.Timeout(10.0))
        except httpx.HTTPError as exc:
            raise ClientTransportError(f"{path} on {self.base_url} failed: {exc!r}") from exc
        if response.status_code >= 400:
            excerpt = response.text[:300].strip()
            raise ClientError(f"{path} on {self.base_url} answered HTTP {response.status_code}: {excerpt}")
        return response

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
        completion = self._send_once_or_twice(path, body, stream, timeout_s, chat=chat)
        interrupts.raise_if_dropped()  # a Ctrl-C lost in the clean-up of the stream
        return completion

    def _send_once_or_twice(
        self, path: str, body: dict[str, Any], stream: bool | None, timeout_s: float | None, *, chat: bool
    ) -> Completion:
        stream = self.stream if stream is None else stream
        limit = timeout_s or self.timeout_s
        deadline = time.perf_counter() + limit  # one deadline for the whole request, the retry included
        try:
            return self._attempt(path, body, stream, limit, deadline, chat=chat)
        except _NoResponse:
            # A kept-alive connection that llama-server closed before answering (seen intermittently after
            # streamed responses): nothing was generated for this request, so it goes once more, on a
            # fresh connection — a new pool, since the old one may hold more connections closed alike.
            self._http.close()
            self._http = httpx.Client(**self._http_options)
        try:
            return self._attempt(path, body, stream, limit, deadline, chat=chat)
        except _NoResponse as exc:
            if self._on_transport_error is not None:
                self._on_transport_error()
            raise ClientTransportError(
                f"{path} on {self.base_url}: the server closed the connection without answering, twice"
            ) from exc.__cause__

    def _attempt(
        self, path: str, body: dict[str, Any], stream: bool, limit: float, deadline: float, *, chat: bool
    ) -> Completion:
        started = time.perf_counter()
        remaining = deadline - started
        try:
            if remaining <= 0:
                raise _PastDeadline("before the request could be sent again")
            # httpx's timeouts bound each read, not the request: the deadline is also checked as the body
            # arrives, so a peer that keeps trickling bytes cannot hold the request open past it.
            timeout = httpx.Timeout(remaining, connect=min(10.0, remaining))
            if stream:
                body = body | {"stream": True, "stream_options": {"include_usage": True}}
            with self._http.stream("POST", path, json=body, timeout=timeout) as response:
                self._raise_for_status(response, path, deadline)
                if stream and not _is_json(response):
                    return self._read_stream(response, started, deadline, path, body, chat=chat)
                # A plain JSON answer to a streamed request is read as the whole answer it is.
                return self._read_whole(response, started, deadline, path, body, chat=chat)
        except _PastDeadline as exc:
            raise self._timed_out(path, limit, deadline, str(exc)) from None
        except httpx.TimeoutException as exc:
            raise self._timed_out(path, limit, deadline, type(exc).__name__) from exc
        except httpx.RemoteProtocolError as exc:
            if "without sending a response" in str(exc):
                raise _NoResponse from exc
            if self._on_transport_error is not None:
                self._on_transport_error()
            raise ClientTransportError(f"{path} on {self.base_url} failed: {exc!r}") from exc
        except httpx.TransportError as exc:
            if self._on_transport_error is not None:
                self._on_transport_error()
            raise ClientTransportError(f"{path} on {self.base_url} failed: {exc!r}") from exc
        except httpx.HTTPError as exc:  # a body that cannot be decoded, and the like: the answer is unusable
            raise ClientError(f"{path} on {self.base_url} failed: {exc!r}") from exc

    def _timed_out(self, path: str, limit: float, deadline: float, why: str) -> ClientTimeoutError:
        elapsed = time.perf_counter() - (deadline - limit)
        return ClientTimeoutError(
            f"{path} on {self.base_url} timed out after {elapsed:.1f} s (timeout_s {limit:g} s bounds the "
            f"whole request, the streamed answer included; raise request.timeout_s in the preset or the level "
            f"mark's timeout_s if the model needs longer) [{why}]"
        )

    def _raise_for_status(self, response: httpx.Response, path: str, deadline: float) -> None:
        if response.status_code < 400:
            return
        text = _read_body(response, deadline).decode(response.encoding or "utf-8", errors="replace")
        excerpt = text[:500].strip()
        raise ClientError(f"{path} answered HTTP {response.status_code}: {excerpt or '(empty body)'}")

    def _read_whole(
        self,
        response: httpx.Response,
        started: float,
        deadline: float,
        path: str,
        body: dict[str, Any],
        *,
        chat: bool,
    ) -> Completion:
        raw = _read_body(response, deadline)
        wall = time.perf_counter() - started
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise self._malformed(path, "not JSON", raw) from exc
        try:
            if not isinstance(data, dict):
                raise _Malformed(f"a JSON {_kind(data)}, not an object")
            if "error" in data:
                raise ClientError(f"{path} on {self.base_url} answered an error: {_excerpt(data['error'])}")
            choices = data.get("choices")
            if not isinstance(choices, list) or not choices:
                raise _Malformed(f"choices is {_excerpt(choices, 40)}, not a list of at least one choice")
            choice = _object(choices[0], "choices[0]")
            if chat:
                message = choice.get("message")
                if not isinstance(message, dict):
                    raise _Malformed(f"choices[0].message is {_excerpt(message, 40)}, not an object")
                content = _string(message.get("content"), "choices[0].message.content")  # null with tool calls
                reasoning = _string(message.get("reasoning_content"), "choices[0].message.reasoning_content")
            else:
                text = choice.get("text")
                if not isinstance(text, str):
                    raise _Malformed(f"choices[0].text is {_excerpt(text, 40)}, not a string")
                content, reasoning = text, ""
            finish = _string(choice.get("finish_reason"), "choices[0].finish_reason") or None
        except _Malformed as exc:
            raise self._malformed(path, str(exc), raw) from None
        usage = data.get("usage")
        return Completion(
            content=content,
            reasoning=reasoning,
            finish_reason=finish,
            wall_s=wall,
            prompt_tokens=_count(usage, "prompt_tokens"),
            completion_tokens=_count(usage, "completion_tokens"),
            timings=Timings.parse(data.get("timings")),
            endpoint=path,
            request=body,
        )

    def _malformed(self, path: str, what: str, raw: bytes) -> ClientError:
        text = raw[:300].decode("utf-8", errors="replace")
        return ClientError(f"{path} on {self.base_url} returned a malformed response ({what}): {text!r}")

    def _read_stream(
        self,
        response: httpx.Response,
        started: float,
        deadline: float,
        path: str,
        body: dict[str, Any],
        *,
        chat: bool,
    ) -> Completion:
        content: list[str] = []
        reasoning: list[str] = []
        ttft: float | None = None
        chunk_times: list[float] = []
        finish: str | None = None
        usage: object = None
        timings: Timings | None = None
        events = 0
        last = ""
        done = False
        lines = _lines(response, deadline)
        for line in lines:
            if not line.startswith("data:"):
                if line:
                    last = line
                continue  # blank lines, comments, event names, keep-alives
            last = line
            payload = line[5:].strip()
            if payload == "[DONE]":
                done = True
                # The rest of the body is not read: llama-server ends it ~1.3 ms later. The reading generators
                # are then closed when freed, where a Ctrl-C would be dropped: interrupts.py raises it again.
                break
            try:
                event = json.loads(payload)
            except (ValueError, RecursionError) as exc:
                raise ClientError(f"{path} on {self.base_url} streamed a malformed event: {payload[:200]!r}") from exc
            events += 1
            try:
                if not isinstance(event, dict):
                    raise _Malformed(f"a JSON {_kind(event)}, not an object")
                if "error" in event:
                    raise ClientError(f"{path} on {self.base_url} streamed an error: {_excerpt(event['error'])}")
                choices = event.get("choices")
                if choices is not None and not isinstance(choices, list):
                    raise _Malformed(f"choices is {_excerpt(choices, 40)}, not a list")
                for choice in choices or ():
                    if not isinstance(choice, dict):
                        raise _Malformed(f"a choice is {_excerpt(choice, 40)}, not an object")
                    if chat:
                        delta = _object(choice.get("delta"), "delta")
                        piece = _string(delta.get("content"), "delta.content")
                        thought = _string(delta.get("reasoning_content"), "delta.reasoning_content")
                    else:
                        piece, thought = _string(choice.get("text"), "text"), ""
                    if piece or thought:
                        chunk_times.append(time.perf_counter() - started)
                        if ttft is None:
                            ttft = chunk_times[-1]
                    if piece:
                        content.append(piece)
                    if thought:
                        reasoning.append(thought)
                    finish = _string(choice.get("finish_reason"), "finish_reason") or finish
            except _Malformed as exc:
                raise ClientError(
                    f"{path} on {self.base_url} streamed an event of the wrong shape ({exc}): {payload[:200]!r}"
                ) from None
            if event.get("usage"):
                usage = event["usage"]
            if "timings" in event:
                timings = Timings.parse(event["timings"])
        if not done and finish is None:
            # Neither `data: [DONE]` nor a finish_reason: the body ended mid-answer (a connection closed
            # under a close-delimited body), so what arrived is a fragment, not the model's answer.
            if self._on_transport_error is not None:
                self._on_transport_error()
            received = "".join(content)
            raise ClientTransportError(
                f"{path} on {self.base_url}: the stream ended before its end (no `data: [DONE]`, no "
                f"finish_reason) after {events} event(s) and {len(received)} character(s) of content "
                f"{received[:100]!r}; last line {last[:200]!r}. The connection was closed mid-answer: "
                f"see the server's log"
            )
        return Completion(
            content="".join(content),
            reasoning="".join(reasoning),
            finish_reason=finish,
            wall_s=time.perf_counter() - started,
            ttft_s=ttft,
            prompt_tokens=_count(usage, "prompt_tokens"),
            completion_tokens=_count(usage, "completion_tokens"),
            timings=timings,
            endpoint=path,
            request=body,
            chunk_times_s=tuple(chunk_times),
        )


class _NoResponse(Exception):
    """The connection closed before any response arrived (internal: the request is retried once)."""


class _PastDeadline(Exception):
    """The request's deadline passed while its answer was still arriving (internal: becomes a timeout)."""


class _Malformed(Exception):
    """An answer of the wrong shape; the message says what was wrong (internal: becomes a ClientError)."""


def _is_json(response: httpx.Response) -> bool:
    content_type: str = response.headers.get("content-type", "")
    return content_type.partition(";")[0].strip().lower() == "application/json"


def _read_body(response: httpx.Response, deadline: float) -> bytes:
    """The whole body, the deadline checked at every chunk."""
    parts: list[bytes] = []
    for chunk in response.iter_bytes():
        if time.perf_counter() > deadline:
            raise _PastDeadline(f"the answer was still arriving, {sum(len(part) for part in parts)} bytes so far")
        parts.append(chunk)
    return b"".join(parts)


_EOL = re.compile(r"\r\n|\r|\n")


def _lines(response: httpx.Response, deadline: float) -> Iterator[str]:
    """The body's lines as SSE defines them (ended by CRLF, LF or CR), the deadline checked at every chunk.

    Not ``Response.iter_lines``: it splits like ``str.splitlines``, also at U+2028, U+0085 and the like,
    which a JSON string may carry unescaped, and would cut such an event in two. A CRLF split between two
    chunks yields one extra blank line, which SSE ignores as the reader does.
    """
    pending = ""
    for chunk in response.iter_text():
        if time.perf_counter() > deadline:
            raise _PastDeadline("the answer was still streaming")
        if "\n" not in chunk and "\r" not in chunk:
            pending += chunk
            continue
        lines = _EOL.split(pending + chunk)
        pending = lines.pop()
        yield from lines
    if pending:
        yield pending


def _object(value: object, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Malformed(f"{where} is {_excerpt(value, 40)}, not an object")
    return value


def _string(value: object, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Malformed(f"{where} is {_excerpt(value, 40)}, not a string")
    return value


def _count(usage: object, name: str) -> int | None:
    """A token count from ``usage``; anything but a whole number reads as absent, as in Timings."""
    if not isinstance(usage, dict):
        return None
    value = usage.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _kind(value: object) -> str:
    return {list: "list", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def _excerpt(value: object, limit: int = 300) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
