"""A level whose request breaks off is an error of that level, never a miss, and the run fails.

Through pytester, attached (``--base-url``) to the deliberately broken loopback peer of tests/peers: a real
llama-server cannot be made to cut a stream mid-answer or to trickle keep-alives on demand.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from peers.broken_server import BrokenPeer

LEVEL = """
import pytest

@pytest.mark.level(points=1, timeout_s=1)
def test_hello(llm):
    assert llm.chat("hi").content == "Hello"
"""


@pytest.mark.parametrize(
    ("mode", "outcome", "says"),
    [
        ("http10", "passed", None),  # the control: this peer, this suite, a whole answer
        ("http10-cut", "error", "the stream ended before its end"),
        ("no-end", "error", "the stream ended before its end"),
        ("trickle", "error", "timeout_s 1 s bounds the whole request"),
    ],
)
def test_a_broken_off_request_is_a_level_error_not_a_miss(
    pytester: pytest.Pytester, broken_peer: BrokenPeer, mode: str, outcome: str, says: str | None
) -> None:
    pytester.makepyfile(test_broken_off_levels=LEVEL)
    started = time.monotonic()
    result = pytester.runpytest("--base-url", broken_peer.url(mode), "--iterations", "1")
    assert time.monotonic() - started < 20  # the trickle lasts 30 s unless the deadline ends it
    [stream] = pytester.path.glob(".quantgate/runs/*/*/result.jsonl")
    [sample] = [json.loads(line)["sample"] for line in stream.read_text().splitlines() if '"sample"' in line]
    assert sample["outcome"] == outcome
    if says is None:
        assert result.ret == pytest.ExitCode.OK
    else:
        assert says in sample["error"]
        assert result.ret == pytest.ExitCode.TESTS_FAILED
