"""Options and fixtures of the lane suite: the lengths and slot count, and the server as a lane sees it."""

from __future__ import annotations

import warnings

import pytest

from pytest_quantgate.client import Client
from pytest_quantgate.lanes import (
    DEFAULT_OUTPUT_TOKENS,
    DEFAULT_PROMPT_TOKENS,
    Fitted,
    LaneServer,
    LaneUnavailable,
    LaneWarning,
    Lengths,
    fit,
    probe,
)

OPT_PROMPT = "--lane-prompt-tokens"
OPT_OUTPUT = "--lane-output-tokens"
OPT_SLOTS = "--lane-slots"
_OPTIONS = (
    (OPT_PROMPT, "lane_prompt_tokens", DEFAULT_PROMPT_TOKENS, "Prompt tokens of the prefill and fixed requests"),
    (OPT_OUTPUT, "lane_output_tokens", DEFAULT_OUTPUT_TOKENS, "Generated tokens of the fixed and slot requests"),
    (OPT_SLOTS, "lane_slots", 0, "Concurrent streams of the N-slot figure (0: the preset's parallel)"),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("quantgate-lanes", "quantgate performance lanes")
    for flag, ini, default, help_text in _OPTIONS:
        help_full = f"{help_text} (default: ini {ini}, else {default})"
        group.addoption(flag, type=int, default=None, metavar="N", help=help_full)
        parser.addini(ini, f"{help_text} (default {default})", default=str(default))


def _option(config: pytest.Config, flag: str, ini: str, smallest: int) -> int:
    value = config.getoption(flag)
    where = flag
    if value is None:
        raw = config.getini(ini)
        where = f"ini {ini}"
        try:
            value = int(raw)
        except ValueError:
            raise pytest.UsageError(f"{where} = {raw!r} is not a whole number") from None
    if value < smallest:
        raise pytest.UsageError(f"{where} = {value} must be >= {smallest}")
    return int(value)


@pytest.fixture(scope="session")
def lane_client(quantgate_server, quantgate_preset):
    """A client for the lane's side requests (/props, /slots, /tokenize, /metrics), one per preset."""
    with Client(quantgate_server.base_url, api_key=quantgate_preset.api_key()) as client:
        yield client


@pytest.fixture(scope="session")
def lane_server(quantgate_preset, lane_client) -> LaneServer:
    """The server as the lanes see it: /props, /slots and /tokenize, read once per preset."""
    return probe(lane_client, quantgate_preset.id)


@pytest.fixture(scope="session")
def lane_lengths(request: pytest.FixtureRequest, quantgate_preset, lane_server: LaneServer) -> Fitted:
    """The fixed request's lengths, scaled down (with a warning) when a slot's context cannot hold them."""
    asked = Lengths(
        _option(request.config, OPT_PROMPT, "lane_prompt_tokens", 1),
        _option(request.config, OPT_OUTPUT, "lane_output_tokens", 1),
    )
    context = lane_server.context
    if context is None and quantgate_preset.context_size:
        context = quantgate_preset.context_size  # the server does not say: what the preset asked
    try:
        fitted = fit(asked, context, preset=quantgate_preset.id)
    except LaneUnavailable as exc:
        pytest.skip(str(exc))
    if fitted.note:
        warnings.warn(LaneWarning(fitted.note), stacklevel=1)
    return fitted


@pytest.fixture(scope="session")
def lane_slots(request: pytest.FixtureRequest, quantgate_preset) -> int:
    """Concurrent streams of the N-slot figure: --lane-slots, else the preset's parallel."""
    return _option(request.config, OPT_SLOTS, "lane_slots", 0) or quantgate_preset.parallel

