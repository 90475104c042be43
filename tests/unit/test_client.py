"""Tests of pytest_quantgate.client: requests, SSE parsing and every error path.

Most tests answer through ``httpx.MockTransport``; the real-socket failures (a stalled or trickling stream,
a dropped or closed connection, a refused port) go through the deliberately broken loopback peer of
tests/peers.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_quantgate.client import Client
from pytest_quantgate.completion import Completion, Timings
from pytest_quantgate.errors import ClientError, ClientTimeoutError, ClientTransportError, QuantgateError
from pytest_quantgate.server import free_port

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from peers.broken_server import BrokenPeer

TIMINGS = {
    "prompt_n": 12, "prompt_ms": 40.5, "prompt_per_second": 296.3, "predicted_n": 5, "predicted_ms": 100.0,
    "predicted_per_second": 50.0, "cache_n": 0, "draft_n": 4, "draft_n_accepted": 3,
}  # fmt: skip


class Recorder:
    """A MockTransport handler that records requests and answers with a canned response."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response]) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(self.requests[-1].content)


def client_for(answer: Callable[[httpx.Request], httpx.Response], **kw: Any) -> tuple[Client, Recorder]:
    recorder = Recorder(answer)
    return Client("http://model.test/", transport=httpx.MockTransport(recorder), **kw), recorder


def sse(*events: object, done: bool = True) -> bytes:
    lines = [f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events]
    return ("".join(lines) + ("data: [DONE]\n\n" if done else "")).encode()


def stream_response(body: bytes | Iterator[bytes]) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


def delta(**fields: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": fields, "finish_reason": None}]}


# -- requests ---------------------------------------------------------------------------------------------


def test_chat_without_streaming_sends_the_request_and_reads_the_answer() -> None:
    answer = {
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "7", "reasoning_content": "3 + 4 = 7"}}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5},
        "timings": TIMINGS,
    }  # fmt: skip
    client, rec = client_for(lambda r: httpx.Response(200, json=answer), api_key="sk-1", model="m", stream=False)
    c = client.chat("What is 3 + 4?", system="Answer with a number.")
    request = rec.requests[0]
    assert (request.method, request.url.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == "Bearer sk-1"
    assert rec.body == {
        "messages": [{"role": "system", "content": "Answer with a number."},
                     {"role": "user", "content": "What is 3 + 4?"}],
        "max_tokens": 512,
        "model": "m",
    }  # fmt: skip
    assert (c.content, c.text, c.reasoning, c.finish_reason) == ("7", "7", "3 + 4 = 7", "stop")
    assert (c.prompt_tokens, c.completion_tokens) == (12, 5)
    assert c.timings == Timings(**TIMINGS)
    assert c.tokens_per_s == 50.0  # the server's own figure
    assert c.ttft_s is None  # no stream, no time to first token
    assert c.endpoint == "/v1/chat/completions"
    assert c.wall_s > 0


def test_completion_sends_a_raw_prompt_without_chat_template_kwargs() -> None:
    answer = {"choices": [{"index": 0, "text": " 42", "finish_reason": "length"}]}
    client, rec = client_for(
        lambda r: httpx.Response(200, json=answer),
        defaults={"temperature": 0.0, "chat_template_kwargs": {"enable_thinking": False}},
        stream=False,
    )
    c = client.complete("6 * 7 =", max_tokens=3)
    assert rec.requests[0].url.path == "/v1/completions"
    assert rec.body == {"prompt": "6 * 7 =", "temperature": 0.0, "max_tokens": 3}
    assert (c.content, c.reasoning, c.finish_reason, c.timings) == (" 42", "", "length", None)


def test_sampler_defaults_merge_with_per_call_parameters() -> None:
    ok = {"choices": [{"message": {"content": "x"}}]}
    client, rec = client_for(
        lambda r: httpx.Response(200, json=ok), defaults={"temperature": 0.6, "top_k": 20, "seed": 1}, max_tokens=64
    )
    client.chat([{"role": "user", "content": "hi"}], stream=False, temperature=0.0, min_p=0.1)
    assert rec.body == {
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.0, "top_k": 20, "seed": 1, "min_p": 0.1, "max_tokens": 64,
    }  # fmt: skip
    client.chat("again", stream=False, max_tokens=8)
    assert (rec.body["temperature"], rec.body["max_tokens"]) == (0.6, 8)  # the call's params did not stick


# -- streaming --------------------------------------------------------------------------------------------


def test_streamed_chat_keeps_content_and_reasoning_apart_and_reads_usage_and_timings() -> None:
    body = sse(
        delta(role="assistant"),
        delta(reasoning_content="Three plus "),
        delta(reasoning_content="four."),
        delta(content="7"),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 5}},
        {"choices": [], "timings": TIMINGS},
    )
    client, rec = client_for(lambda r: stream_response(body))
    c = client.chat("What is 3 + 4?")
    assert rec.body["stream"] is True
    assert rec.body["stream_options"] == {"include_usage": True}
    assert (c.content, c.reasoning, c.finish_reason) == ("7", "Three plus four.", "stop")
    assert (c.prompt_tokens, c.completion_tokens) == (12, 5)
    assert c.timings == Timings(**TIMINGS)
    assert c.ttft_s is not None and 0 < c.ttft_s <= c.wall_s


def test_ttft_is_taken_at_the_first_token_not_the_first_chunk() -> None:
    def chunks() -> Iterator[bytes]:
        yield sse(delta(role="assistant"), done=False)  # no token yet
        time.sleep(0.2)
        yield sse(delta(content="Hel"), done=False)
        time.sleep(0.2)
        yield sse(delta(content="lo"), {"choices": [], "usage": {"completion_tokens": 3}})

    client, _ = client_for(lambda r: stream_response(chunks()))
    c = client.chat("hi")
    assert c.content == "Hello"
    assert c.ttft_s is not None
    assert 0.2 <= c.ttft_s < 0.4
    assert c.wall_s >= c.ttft_s + 0.2
    assert c.timings is None
    # without server timings the rate is measured client-side: 2 tokens after the first, over wall - ttft
    assert c.tokens_per_s == pytest.approx(2 / (c.wall_s - c.ttft_s))


def test_reasoning_alone_starts_the_ttft_clock() -> None:
    client, _ = client_for(lambda r: stream_response(sse(delta(reasoning_content="hmm"), delta(content="ok"))))
    c = client.chat("hi")
    assert c.ttft_s is not None and (c.reasoning, c.content) == ("hmm", "ok")


def test_the_stream_ends_at_done_and_ignores_comments_and_event_names() -> None:
    body = (
        b": keep-alive\n\nevent: message\n" + sse(delta(content="a"), done=False) + b"\n"
        b"data: [DONE]\n\n" + sse(delta(content="IGNORED"))
    )
    client, _ = client_for(lambda r: stream_response(body))
    assert client.chat("hi").content == "a"


def test_a_stream_with_a_finish_reason_but_without_done_ends_with_the_body() -> None:
    last = {"choices": [{"index": 0, "delta": {"content": "b"}, "finish_reason": "length"}]}
    client, _ = client_for(lambda r: stream_response(sse(delta(content="a"), last, done=False)))
    c = client.chat("hi")
    assert (c.content, c.finish_reason) == ("ab", "length")


def test_a_stream_with_done_but_without_a_finish_reason_is_an_answer() -> None:
    client, _ = client_for(lambda r: stream_response(sse(delta(content="a"), delta(content="b"))))
    c = client.chat("hi")
    assert (c.content, c.finish_reason) == ("ab", None)


@pytest.mark.parametrize("chat", [True, False])
def test_a_stream_that_ends_with_neither_done_nor_a_finish_reason_is_a_transport_error(chat: bool) -> None:
    # The body ended mid-answer: "ab" is a fragment, not the model's answer, and must not be scored.
    events = [delta(content="a"), delta(content="b")] if chat else [{"choices": [{"text": "a"}]}] * 2
    called = []
    client, _ = client_for(
        lambda r: stream_response(sse(*events, done=False)), on_transport_error=lambda: called.append(1)
    )
    with pytest.raises(ClientTransportError) as info:
        client.chat("hi") if chat else client.complete("hi")
    message = str(info.value)
    assert "on http://model.test: the stream ended before its end (no `data: [DONE]`, no finish_reason)" in message
    assert "after 2 event(s) and 2 character(s) of content 'a" in message
    assert called == [1]  # the server may have died: its owner gets to say so


def test_an_empty_or_non_sse_stream_is_a_transport_error_quoting_the_last_line() -> None:
    client, _ = client_for(lambda r: stream_response(b"<html>Bad Gateway</html>\n"))
    with pytest.raises(ClientTransportError, match=r"after 0 event\(s\).*last line '<html>Bad Gateway</html>'"):
        client.chat("hi")
    client, _ = client_for(lambda r: stream_response(b""))
    with pytest.raises(ClientTransportError, match=r"after 0 event\(s\) and 0 character\(s\)"):
        client.chat("hi")


def test_line_separators_inside_a_token_do_not_split_its_event() -> None:
    # JSON may carry U+2028, U+2029 and U+0085 unescaped (llama-server writes UTF-8 as is); SSE lines end
    # only at CR, LF or CRLF, so the event stays whole. A CRLF cut between two reads is one line ending.
    token = "a\u2028b\u2029c\x85d\x1ce"
    event = f"data: {json.dumps(delta(content=token), ensure_ascii=False)}\r"
    chunks = [event.encode(), b"\n\r\n", sse({"choices": [{"delta": {"content": "!"}, "finish_reason": "stop"}]})]
    client, _ = client_for(lambda r: stream_response(iter(chunks)))
    assert client.chat("hi").content == token + "!"


def test_a_json_answer_to_a_streamed_request_is_read_whole() -> None:
    answer = {"choices": [{"message": {"content": "7"}, "finish_reason": "stop"}], "usage": {"completion_tokens": 1}}
    client, rec = client_for(lambda r: httpx.Response(200, json=answer))
    c = client.chat("hi")
    assert rec.body["stream"] is True
    assert (c.content, c.finish_reason, c.completion_tokens, c.ttft_s) == ("7", "stop", 1, None)


def test_streamed_completion_reads_text() -> None:
    first, last = {"index": 0, "text": " 4"}, {"index": 0, "text": "2", "finish_reason": "stop"}
    body = sse({"choices": [first]}, {"choices": [last]})
    client, rec = client_for(lambda r: stream_response(body))
    c = client.complete("6 * 7 =")
    assert rec.requests[0].url.path == "/v1/completions"
    assert (c.content, c.finish_reason, c.reasoning) == (" 42", "stop", "")


# -- errors (mocked) --------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_an_http_error_names_the_status_and_an_excerpt_of_the_body(stream: bool) -> None:
    body = {"error": {"code": 500, "message": "failed to load model", "type": "server_error"}}
    client, _ = client_for(lambda r: httpx.Response(500, json=body))
    with pytest.raises(ClientError) as info:
        client.chat("hi", stream=stream)
    message = str(info.value)
    assert message.startswith("/v1/chat/completions answered HTTP 500: ")
    assert "failed to load model" in message


def test_an_http_error_with_a_huge_or_empty_body() -> None:
    client, _ = client_for(lambda r: httpx.Response(503, text="x" * 5000))
    with pytest.raises(ClientError, match=r"HTTP 503: x+$") as info:
        client.chat("hi")
    assert len(str(info.value)) < 600
    client, _ = client_for(lambda r: httpx.Response(404))
    with pytest.raises(ClientError, match=r"HTTP 404: \(empty body\)"):
        client.complete("hi", stream=False)


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (b"<html>Bad Gateway</html>", "not JSON"),
        (b'{"choices": []}', "choices is [], not a list of at least one choice"),
        (b'{"object": "chat.completion"}', "choices is null, not a list of at least one choice"),
        (b'{"choices": {"message": {}}}', 'choices is {"message": {}}, not a list of at least one choice'),
        (b"[1, 2]", "a JSON list, not an object"),
        (b"null", "a JSON null, not an object"),
        (b'"7"', "a JSON string, not an object"),
        (b'{"choices": [1]}', "choices[0] is 1, not an object"),
        (b'{"choices": [{"text": "7"}]}', "choices[0].message is null, not an object"),
        (b'{"choices": [{"message": 3}]}', "choices[0].message is 3, not an object"),
        (b'{"choices": [{"message": "7"}]}', 'choices[0].message is "7", not an object'),
        (b'{"choices": [{"message": {"content": ["7"]}}]}', 'choices[0].message.content is ["7"], not a string'),
        (b'{"choices": [{"message": {"reasoning_content": 1}}]}', "reasoning_content is 1, not a string"),
        (b'{"choices": [{"message": {}, "finish_reason": 0}]}', "choices[0].finish_reason is 0, not a string"),
    ],
)
def test_a_malformed_answer_is_a_client_error_naming_the_url_and_what_is_wrong(body: bytes, what: str) -> None:
    client, _ = client_for(lambda r: httpx.Response(200, content=body))
    with pytest.raises(ClientError) as info:
        client.chat("hi", stream=False)
    message = str(info.value)
    assert message.startswith("/v1/chat/completions on http://model.test returned a malformed response (")
    assert what in message
    assert body.decode()[:20] in message
    assert not isinstance(info.value, ClientTransportError)  # the server answered: not a broken connection


@pytest.mark.parametrize(("choice", "what"), [({"text": 42}, "is 42"), ({"message": {"content": "7"}}, "is null")])
def test_a_completion_whose_text_is_not_a_string_is_a_client_error(choice: dict[str, Any], what: str) -> None:
    client, _ = client_for(lambda r: httpx.Response(200, json={"choices": [choice]}))
    with pytest.raises(ClientError, match=rf"/v1/completions on http://model\.test .*choices\[0\]\.text {what}, not a"):
        client.complete("hi", stream=False)


def test_an_error_object_with_status_200_is_a_client_error_quoting_it() -> None:
    client, _ = client_for(lambda r: httpx.Response(200, json={"error": {"message": "context full"}}))
    with pytest.raises(ClientError, match=r"on http://model\.test answered an error: .*context full"):
        client.chat("hi", stream=False)


def test_usage_that_is_not_a_count_reads_as_absent() -> None:
    answer = {"choices": [{"message": {"content": "7"}}], "usage": {"prompt_tokens": "12", "completion_tokens": True}}
    client, _ = client_for(lambda r: httpx.Response(200, json=answer), stream=False)
    assert (client.chat("hi").prompt_tokens, client.chat("hi").completion_tokens) == (None, None)
    client, _ = client_for(lambda r: httpx.Response(200, json=answer | {"usage": [3]}), stream=False)
    assert client.chat("hi").prompt_tokens is None


def test_a_malformed_sse_event_is_a_client_error_quoting_it() -> None:
    client, _ = client_for(lambda r: stream_response(sse(delta(content="a"), '{"choices": [{"delta": {"con')))
    with pytest.raises(ClientError, match=r"streamed a malformed event: '\{\"choices\": \[\{\"delta\": \{\"con'"):
        client.chat("hi")


@pytest.mark.parametrize(
    ("event", "what"),
    [
        ("[1, 2]", "a JSON list, not an object"),
        ("7", "a JSON number, not an object"),
        ('{"choices": 1}', "choices is 1, not a list"),
        ('{"choices": [1]}', "a choice is 1, not an object"),
        ('{"choices": [{"delta": 3}]}', "delta is 3, not an object"),
        ('{"choices": [{"delta": {"content": 5}}]}', "delta.content is 5, not a string"),
        ('{"choices": [{"delta": {"reasoning_content": {}}}]}', "delta.reasoning_content is {}, not a string"),
        ('{"choices": [{"delta": {}, "finish_reason": []}]}', "finish_reason is [], not a string"),
    ],
)
def test_a_sse_event_of_the_wrong_shape_is_a_client_error_naming_what_is_wrong(event: str, what: str) -> None:
    client, _ = client_for(lambda r: stream_response(sse(delta(content="a"), event)))
    with pytest.raises(ClientError) as info:
        client.chat("hi")
    message = str(info.value)
    assert message.startswith("/v1/chat/completions on http://model.test streamed an event of the wrong shape (")
    assert what in message
    assert repr(event) in message


def test_a_streamed_error_event_is_a_client_error() -> None:
    error = {"error": {"code": 400, "message": "the request exceeds the available context size", "type": "x"}}
    client, _ = client_for(lambda r: stream_response(sse(delta(content="a"), error)))
    with pytest.raises(
        ClientError,
        match=r"/v1/chat/completions on http://model\.test streamed an error: .*exceeds the available context",
    ):
        client.chat("hi")


@pytest.mark.parametrize("exc", [httpx.ReadTimeout, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.WriteTimeout])
def test_a_timeout_names_the_limit_and_what_to_raise(exc: type[httpx.TimeoutException]) -> None:
    called = []

    def boom(request: httpx.Request) -> httpx.Response:
        raise exc("timed out", request=request)

    client, _ = client_for(boom, timeout_s=30, on_transport_error=lambda: called.append(1))
    with pytest.raises(ClientTimeoutError) as info:
        client.chat("hi", timeout_s=5)
    message = str(info.value)
    assert message.startswith("/v1/chat/completions on http://model.test timed out after ")
    assert "timeout_s 5 s bounds the whole request" in message
    assert "raise request.timeout_s in the preset or the level mark's timeout_s" in message
    assert f"[{exc.__name__}]" in message
    assert called == []  # a slow server is not a dead one


def test_the_client_timeout_applies_when_the_call_sets_none() -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        assert 41 < request.extensions["timeout"]["read"] <= 42  # what is left of the request's 42 s
        raise httpx.ReadTimeout("slow", request=request)

    client, _ = client_for(boom, timeout_s=42)
    with pytest.raises(ClientTimeoutError, match="timeout_s 42 s bounds the whole request"):
        client.complete("hi")


def test_a_connection_error_calls_on_transport_error_then_raises() -> None:
    called = []

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    client, _ = client_for(refuse, on_transport_error=lambda: called.append("dead?"))
    with pytest.raises(ClientTransportError, match=r"/v1/chat/completions on http://model\.test failed: ConnectError"):
        client.chat("hi")
    assert called == ["dead?"]


def test_an_http_error_does_not_call_on_transport_error() -> None:
    called = []
    client, _ = client_for(lambda r: httpx.Response(500), on_transport_error=lambda: called.append(1))
    with pytest.raises(ClientError):
        client.chat("hi")
    assert called == []


# -- timings and rates ------------------------------------------------------------------------------------


def test_timings_parse_keeps_numbers_and_ignores_junk() -> None:
    junk = {"prompt_n": "12", "prompt_ms": True, "predicted_n": 7, "predicted_ms": 70.5, "cache_n": None,
            "draft_n": [1], "unknown": 3}  # fmt: skip
    assert Timings.parse(junk) == Timings(predicted_n=7, predicted_ms=70.5)
    assert Timings.parse(None) is None
    assert Timings.parse([TIMINGS]) is None
    assert Timings.parse("fast") is None
    assert Timings.parse({}) == Timings()


@pytest.mark.parametrize(
    ("kw", "rate"),
    [
        ({"timings": Timings(predicted_per_second=33.0), "completion_tokens": 5, "ttft_s": 0.5}, 33.0),
        ({"timings": Timings(predicted_per_second=0.0), "completion_tokens": 11, "ttft_s": 0.5}, 20.0),
        ({"completion_tokens": 11, "ttft_s": 0.5}, 20.0),
        ({"completion_tokens": 1, "ttft_s": 0.5}, None),
        ({"completion_tokens": 11}, None),
        ({"completion_tokens": 11, "ttft_s": 1.0}, None),
        ({"completion_tokens": None, "ttft_s": 0.5}, None),
    ],
)
def test_tokens_per_s_prefers_the_server_and_never_divides_by_zero(kw: dict[str, Any], rate: float | None) -> None:
    assert Completion("", "", None, wall_s=1.0, **kw).tokens_per_s == rate


def test_the_client_is_a_context_manager_that_closes() -> None:
    with client_for(lambda r: httpx.Response(200))[0] as client:
        pass
    assert client._http.is_closed


# -- real sockets: the deliberately broken peer ----------------------------------------------------------


def test_the_broken_peer_serves_well_formed_answers_in_mode_ok(broken_peer: BrokenPeer) -> None:
    # The control: the failures below come from the mode, not from talking to this peer at all.
    with Client(broken_peer.url("ok"), timeout_s=5) as client:
        streamed = client.chat("hi")
        whole = client.chat("hi", stream=False)
    assert (streamed.content, streamed.finish_reason) == ("Hello", "stop")
    assert streamed.ttft_s is not None
    assert (whole.content, whole.completion_tokens) == ("Hello", 2)
    assert httpx.get(broken_peer.root + "/health").status_code == 200


def test_a_real_http_500(broken_peer: BrokenPeer) -> None:
    with Client(broken_peer.url("status-500"), timeout_s=5) as client, pytest.raises(ClientError) as info:
        client.chat("hi")
    assert "answered HTTP 500" in str(info.value)
    assert "simulated failure" in str(info.value)


def test_a_real_malformed_body(broken_peer: BrokenPeer) -> None:
    with Client(broken_peer.url("malformed-json"), timeout_s=5) as client, pytest.raises(ClientError) as info:
        client.chat("hi", stream=False)
    assert "returned a malformed response" in str(info.value)


def test_a_real_malformed_event(broken_peer: BrokenPeer) -> None:
    with Client(broken_peer.url("malformed-event"), timeout_s=5) as client, pytest.raises(ClientError) as info:
        client.chat("hi")
    assert "streamed a malformed event" in str(info.value)


def test_a_stalled_stream_times_out_with_the_limit_named(broken_peer: BrokenPeer) -> None:
    called = []
    started = time.monotonic()
    with (
        Client(broken_peer.url("stall"), timeout_s=0.3, on_transport_error=lambda: called.append(1)) as client,
        pytest.raises(ClientError) as info,
    ):
        client.chat("hi")
    assert time.monotonic() - started < 3
    assert isinstance(info.value, ClientTimeoutError)
    message = str(info.value)
    assert f"on {broken_peer.url('stall')} timed out after" in message
    assert "timeout_s 0.3 s bounds the whole request" in message
    assert "[ReadTimeout]" in message
    assert called == []


def test_a_connection_dropped_mid_stream(broken_peer: BrokenPeer) -> None:
    called = []
    with (
        Client(broken_peer.url("drop"), timeout_s=5, on_transport_error=lambda: called.append(1)) as client,
        pytest.raises(ClientTransportError) as info,
    ):
        client.chat("hi")
    assert "failed: RemoteProtocolError" in str(info.value)
    assert called == [1]


@pytest.mark.parametrize("stream", [True, False])
def test_a_trickling_peer_cannot_hold_a_request_past_its_timeout(broken_peer: BrokenPeer, stream: bool) -> None:
    # Every read returns within TRICKLE_EVERY_S, so a per-read timeout never fires: only the deadline on
    # the whole request ends this. Without it the call lasts TRICKLE_LIMIT_S (30 s).
    called = []
    started = time.monotonic()
    with (
        Client(broken_peer.url("trickle"), timeout_s=1, on_transport_error=lambda: called.append(1)) as client,
        pytest.raises(ClientTimeoutError) as info,
    ):
        client.chat("hi", stream=stream)
    assert time.monotonic() - started < 20
    message = str(info.value)
    assert f"/v1/chat/completions on {broken_peer.url('trickle')} timed out after " in message
    assert "timeout_s 1 s bounds the whole request" in message
    assert ("still streaming" if stream else "still arriving") in message
    assert called == []  # a slow server is not a dead one


@pytest.mark.parametrize("mode", ["no-end", "http10-cut"])
def test_a_stream_closed_mid_answer_is_a_transport_error(broken_peer: BrokenPeer, mode: str) -> None:
    # To HTTP both bodies are complete (a final empty chunk; an HTTP/1.0 body ended by the close), yet the
    # stream stopped after "Hel": no finish_reason, no [DONE].
    called = []
    with (
        Client(broken_peer.url(mode), timeout_s=5, on_transport_error=lambda: called.append(1)) as client,
        pytest.raises(ClientTransportError) as info,
    ):
        client.chat("hi")
    message = str(info.value)
    assert f"/v1/chat/completions on {broken_peer.url(mode)}: the stream ended before its end" in message
    assert "after 1 event(s) and 3 character(s) of content 'Hel'" in message
    assert called == [1]


def test_a_whole_http10_stream_and_a_json_answer_to_a_stream_are_answers(broken_peer: BrokenPeer) -> None:
    # The controls: HTTP/1.0 and a plain JSON body are fine in themselves.
    with Client(broken_peer.url("http10"), timeout_s=5) as client:
        c = client.chat("hi")
    assert (c.content, c.finish_reason) == ("Hello", "stop")
    with Client(broken_peer.url("json-for-stream"), timeout_s=5) as client:
        c = client.chat("hi")
    assert (c.content, c.finish_reason, c.completion_tokens) == ("Hello", "stop", 2)
    assert broken_peer.requests[-1][2]["stream"] is True


def test_a_refused_connection_calls_on_transport_error() -> None:
    called = []
    port = free_port()  # nobody listens there
    with (
        Client(f"http://127.0.0.1:{port}", timeout_s=5, on_transport_error=lambda: called.append(1)) as client,
        pytest.raises(ClientError, match=rf"on http://127\.0\.0\.1:{port} failed: ConnectError"),
    ):
        client.chat("hi")
    assert called == [1]


def test_the_peer_received_what_the_client_sent(broken_peer: BrokenPeer) -> None:
    with Client(broken_peer.url("ok"), defaults={"temperature": 0.0}, max_tokens=8) as client:
        client.complete("2 + 2 =")
    mode, path, body = broken_peer.requests[-1]
    assert (mode, path) == ("ok", "/v1/completions")
    assert body == {"temperature": 0.0, "max_tokens": 8, "prompt": "2 + 2 =", "stream": True,
                    "stream_options": {"include_usage": True}}  # fmt: skip


# -- properties: any JSON from the server ends in an answer or in the project's own error ------------------

KEYS = st.sampled_from(
    ["choices", "message", "delta", "content", "reasoning_content", "text", "finish_reason", "usage",
     "prompt_tokens", "completion_tokens", "timings", "error", "index", "role"]
)  # fmt: skip
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS | st.text(max_size=3), inner, max_size=4),
    max_leaves=12,
)
# Near the expected shape too, so the deeper fields get their share of junk.
CHOICE = st.dictionaries(KEYS, JSON | st.dictionaries(KEYS, JSON, max_size=3), max_size=4)
ANSWER = JSON | st.dictionaries(KEYS, st.lists(CHOICE, max_size=2) | JSON, max_size=4)


def assert_well_typed(c: Completion) -> None:
    assert isinstance(c.content, str) and isinstance(c.reasoning, str)
    assert c.finish_reason is None or isinstance(c.finish_reason, str)
    for count in (c.prompt_tokens, c.completion_tokens):
        assert count is None or (isinstance(count, int) and not isinstance(count, bool))
    assert c.timings is None or isinstance(c.timings, Timings)


def ask(client: Client, chat: bool, stream: bool) -> None:
    try:
        c = client.chat("hi", stream=stream) if chat else client.complete("hi", stream=stream)
    except QuantgateError:
        return
    assert_well_typed(c)


@settings(max_examples=200, deadline=None)
@given(value=ANSWER, chat=st.booleans())
def test_any_json_body_is_an_answer_or_a_quantgate_error(value: object, chat: bool) -> None:
    body = json.dumps(value).encode()
    client, _ = client_for(lambda r: httpx.Response(200, headers={"content-type": "application/json"}, content=body))
    ask(client, chat, stream=False)
    ask(client, chat, stream=True)  # the same JSON answering a streamed request


@settings(max_examples=200, deadline=None)
@given(events=st.lists(ANSWER, max_size=4), done=st.booleans(), chat=st.booleans())
def test_any_json_events_are_an_answer_or_a_quantgate_error(events: list[object], done: bool, chat: bool) -> None:
    body = sse(*(json.dumps(e) for e in events), done=done)
    client, _ = client_for(lambda r: stream_response(body))
    ask(client, chat, stream=True)


# -- lane additions: chunk times, token-id prompts, /tokenize, /props, /slots -------------------------------


def test_every_text_event_is_timed_for_inter_token_latencies() -> None:
    def chunks() -> Iterator[bytes]:
        yield sse(delta(role="assistant"), done=False)  # no text: not a token
        yield sse(delta(content="a"), done=False)
        time.sleep(0.1)
        yield sse(delta(content="b"), delta(content="c"), {"choices": [], "usage": {"completion_tokens": 3}})

    client, _ = client_for(lambda r: stream_response(chunks()))
    c = client.chat("hi")
    assert len(c.chunk_times_s) == 3
    assert c.chunk_times_s[0] == c.ttft_s
    assert c.chunk_times_s[1] - c.chunk_times_s[0] >= 0.1  # the sleep lies between the first and second token
    assert list(c.chunk_times_s) == sorted(c.chunk_times_s)


def test_a_prompt_of_token_ids_is_sent_as_a_list() -> None:
    whole = {"choices": [{"text": "x", "finish_reason": "length"}]}
    client, rec = client_for(lambda r: httpx.Response(200, json=whole))
    client.complete((1, 2, 3), stream=False)
    assert rec.body["prompt"] == [1, 2, 3]


def test_tokenize_props_and_slots_read_llama_server_endpoints() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/tokenize":
            assert json.loads(request.content) == {"content": "hi"}
            return httpx.Response(200, json={"tokens": [104, 105]})
        if request.url.path == "/props":
            return httpx.Response(200, json={"total_slots": 2})
        if request.url.path == "/slots":
            return httpx.Response(200, json=[{"id": 0}, {"id": 1}])
        return httpx.Response(404, text="File Not Found")

    client, _ = client_for(answer)
    assert client.tokenize("hi") == [104, 105]
    assert client.props() == {"total_slots": 2}
    assert len(client.slots()) == 2
    with pytest.raises(ClientError, match=r"/metrics on http://model.test answered HTTP 404: File Not Found"):
        client.metrics()


def test_a_server_without_tokenize_is_a_client_error_naming_the_url() -> None:
    client, _ = client_for(lambda r: httpx.Response(404, json={"error": "not found"}))
    with pytest.raises(ClientError, match=r"/tokenize on http://model.test answered HTTP 404"):
        client.tokenize("hi")
    bad, _ = client_for(lambda r: httpx.Response(200, json={"tokens": "nope"}))
    with pytest.raises(ClientError, match="without a list of token ids"):
        bad.tokenize("hi")
