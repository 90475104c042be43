"""The client's one retry, on a kept-alive connection the server closed before answering, and only then.

A timeout or a Ctrl-C must never be retried: the first would double the wait on a server that stopped
answering, the second would swallow the user's interrupt for as long as the request takes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from pytest_quantgate.client import Client
from pytest_quantgate.errors import ClientError

if TYPE_CHECKING:
    from collections.abc import Callable

ANSWER = {"choices": [{"index": 0, "text": "abc", "finish_reason": "stop"}]}


def client_failing_with(first: Callable[[httpx.Request], BaseException], calls: list[int]) -> Client:
    """A client whose first request fails with *first*'s exception and whose later ones are answered."""

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            raise first(request)
        return httpx.Response(200, json=ANSWER)

    return Client("http://model.test", transport=httpx.MockTransport(handle), stream=False)


def test_a_connection_closed_without_an_answer_is_retried_once() -> None:
    calls: list[int] = []

    def closed(request: httpx.Request) -> BaseException:
        return httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)

    assert client_failing_with(closed, calls).complete("copy abc=").content == "abc"
    assert len(calls) == 2


@pytest.mark.parametrize("exc", [httpx.ReadTimeout, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.WriteTimeout])
def test_a_timeout_is_not_retried(exc: type[httpx.TimeoutException]) -> None:
    calls: list[int] = []
    with pytest.raises(ClientError, match="timed out"):
        client_failing_with(lambda r: exc("timed out", request=r), calls).complete("copy abc=")
    assert len(calls) == 1


def test_a_keyboard_interrupt_is_not_retried_nor_wrapped() -> None:
    calls: list[int] = []
    with pytest.raises(KeyboardInterrupt):
        client_failing_with(lambda r: KeyboardInterrupt(), calls).complete("copy abc=")
    assert len(calls) == 1


def test_a_keyboard_interrupt_during_the_retry_is_not_swallowed() -> None:
    calls: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        raise KeyboardInterrupt

    client = Client("http://model.test", transport=httpx.MockTransport(handle), stream=False)
    with pytest.raises(KeyboardInterrupt):
        client.complete("copy abc=")
    assert len(calls) == 2
