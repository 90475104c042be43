"""What one answered request is: the text, the client-side timings and llama-server's own ``timings``.

Plain data, shared by the client that fills it in (:mod:`pytest_quantgate.client`) and everything that reads
it (samples, lanes, artifacts).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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
    # Seconds from sending to each streamed event that carried text (empty when not streamed): the
    # inter-token latencies are the gaps between them.
    chunk_times_s: tuple[float, ...] = ()

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


__all__ = ["Completion", "Message", "Timings"]
