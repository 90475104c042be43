"""The one exception hierarchy of pytest-quantgate.

Every error a user can meet derives from :class:`QuantgateError`, and its message names the value, the
file or key it came from, and what to do next.
"""

from __future__ import annotations


class QuantgateError(Exception):
    """Base class of every error pytest-quantgate raises on purpose."""


class PresetError(QuantgateError):
    """A preset file or name that cannot be used: unknown name, bad YAML, unknown or mistyped key."""


class InstallError(QuantgateError):
    """Building or finding llama-server failed (no compiler, no network, build error)."""


class ServerError(QuantgateError):
    """A server could not be started, stopped working, or is unreachable."""

    # The last lines of the server's log, when they belong with this error but not in its message: shown
    # once as a section of the failed level's report (pytest repeats a message in its summary under CI).
    log_tail: str | None = None


class ServerStartError(ServerError):
    """The server exited or never became ready during start-up."""


class ServerDiedError(ServerError):
    """The server process ended while the run still needed it."""


class ServerUnresponsiveError(ServerError):
    """The server process is still there but stopped answering (stopped, wedged, deadlocked)."""


class ClientError(QuantgateError):
    """A request failed: HTTP error status, a malformed answer or one of the wrong shape, or a
    :class:`ClientTransportError`."""


class ClientTransportError(ClientError):
    """The exchange with the server broke off, so there is no answer to judge: the connection was refused
    or dropped, or a stream ended before its end (no ``data: [DONE]`` and no ``finish_reason``)."""


class ClientTimeoutError(ClientTransportError):
    """A request ran past its ``timeout_s``, which bounds the whole request: connecting, waiting for the
    answer and reading all of it, streamed or not. The server may still be busy with it."""


class SpecError(QuantgateError):
    """A gate expression, mark argument or option value that cannot be understood."""


class ResultsError(QuantgateError):
    """A results or baseline file that cannot be read or does not fit the comparison asked for."""


class ValidationError(QuantgateError):
    """A validator could not judge an answer (not: the answer was wrong — that is an AssertionError)."""


class KldError(QuantgateError):
    """A KL-divergence measurement that cannot be made: a corpus file that cannot be read, a tokenizer that
    differs between reference and candidate, a server that returns no probabilities, a cache that cannot be
    written."""
