"""The fixtures a level uses: ``llm``, ``measure``, and the preset, server and iteration behind them."""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

import pytest

from pytest_quantgate.config import OPT_BASE_URL, OPT_PRESET
from pytest_quantgate.stash import CONFIG_KEY, LEVEL_KEY, LLM_KEY, MEASURE_KEY, SERVERS_KEY

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pytest_quantgate.llm import Llm
    from pytest_quantgate.measures import Measure
    from pytest_quantgate.presets import Preset
    from pytest_quantgate.sharing import Lease


@pytest.fixture(scope="session")
def quantgate_preset(request: pytest.FixtureRequest) -> Preset:
    """The preset under test (parametrized when several are given)."""
    run_config = request.config.stash[CONFIG_KEY]
    if not run_config.presets:
        pytest.fail(
            f"this is a quantgate level, and no model was given: run with {OPT_PRESET} NAME "
            f"(e.g. {OPT_PRESET} tiny-f16; `quantgate presets` lists them) or {OPT_BASE_URL} URL",
            pytrace=False,
        )
    preset_id = getattr(request, "param", run_config.presets[0].id)
    return run_config.preset(preset_id)


@pytest.fixture(scope="session")
def quantgate_server(request: pytest.FixtureRequest, quantgate_preset: Preset) -> Iterator[Lease]:
    """The preset's running server: booted on first use, shared by xdist workers, stopped at the end."""
    from pytest_quantgate.errors import QuantgateError

    servers = request.config.stash[SERVERS_KEY]
    try:
        lease = servers.lease(quantgate_preset)
    except QuantgateError as exc:
        failure, tail = str(exc), getattr(exc, "log_tail", None)
    else:
        failure = ""
    if failure:  # outside the except block: no "During handling..." repetition of the message
        _fail(failure, tail)
    try:
        yield lease
    finally:
        servers.release(quantgate_preset.id)


@pytest.fixture
def quantgate_iteration(request: pytest.FixtureRequest) -> int:
    """The iteration this level run belongs to (1-based)."""
    return int(getattr(request, "param", 1))


@pytest.fixture
def llm(
    request: pytest.FixtureRequest,
    quantgate_server: Lease,
    quantgate_preset: Preset,
    quantgate_iteration: int,
) -> Llm:
    """Ask the preset's model: ``llm.chat(prompt)`` / ``llm.complete(prompt)`` → Completion."""
    from pytest_quantgate.errors import QuantgateError
    from pytest_quantgate.llm import Llm

    try:
        quantgate_server.check_alive()
    except QuantgateError as exc:
        failure, tail = str(exc), getattr(exc, "log_tail", None)
    else:
        failure = ""
    if failure:
        _fail(failure, tail)
    servers = request.config.stash[SERVERS_KEY]
    info = request.node.stash.get(LEVEL_KEY, None)
    handle = Llm(
        servers.client(quantgate_preset),
        quantgate_preset,
        iteration=quantgate_iteration,
        max_tokens=info.spec.max_tokens if info else None,
        timeout_s=info.spec.timeout_s if info else None,
        before_request=quantgate_server.check_alive,
        after_timeout=quantgate_server.check_answering,
    )
    request.node.stash[LLM_KEY] = handle
    return handle


@pytest.fixture
def measure(request: pytest.FixtureRequest) -> Measure:
    """Record a named measurement in this level run: ``measure("chars_per_s", 41.5, unit="chars/s")``.

    Aggregated over iterations, gated as ``chars_per_s_mean >= 40`` and compared against a baseline.
    """
    from pytest_quantgate.measures import Measure

    recorder = Measure()
    request.node.stash[MEASURE_KEY] = recorder
    return recorder


def _fail(message: str, log_tail: str | None) -> NoReturn:
    """pytest.fail without a traceback, keeping the server log's tail for the report's section (the plugin
    adds one for an exception that carries ``log_tail``)."""
    failed = pytest.fail.Exception(message, pytrace=False)
    failed.log_tail = log_tail  # type: ignore[attr-defined]
    raise failed


__all__ = ["llm", "measure", "quantgate_iteration", "quantgate_preset", "quantgate_server"]
