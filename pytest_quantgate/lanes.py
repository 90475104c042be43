"""Performance lanes: the speed figures the field reports for one preset, as named measurements.

A *lane* is one preset (model, KV cache type, draft). Its figures, each a :class:`~pytest_quantgate.measures.
Measurement` gated and compared like any other (``decode_tps_mean >= 50``, ``draft_acceptance_mean >= 0.8``):

==========================  =========================================================================
``prefill_tps``             prompt tokens/s of an exact-length prompt, prompt cache off (server timings)
``decode_tps``              generated tokens/s of the fixed request (server timings)
``fixed_wall_s``            client-side wall time of the fixed request (default 1,150 in / 2,000 out)
``slots_aggregate_tps``     N concurrent streams: all generated tokens / wall from first send to last end
``slots_stream_tps``        the same streams: mean per-stream rate
``p50_ttft_ms`` …           TTFT percentiles p50/p95/p99 of the N streams (``vllm bench serve`` names;
                            GuideLLM's ``time_to_first_token_ms`` p50/p95/p99)
``p50_itl_ms`` …            inter-token latency percentiles (GuideLLM's ``inter_token_latency_ms``)
``draft_acceptance``        Σ ``draft_n_accepted`` / Σ ``draft_n`` (speculative decoding)
==========================  =========================================================================

Load-to-listening is the built-in ``load_s``. Nothing here imports pytest: the lane suite
(``example_suites/perf``) is a thin layer over these functions.
"""

from __future__ import annotations

import itertools
import math
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_quantgate.effective import whole_number
from pytest_quantgate.stats import percentile

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from pytest_quantgate.completion import Completion

DEFAULT_PROMPT_TOKENS = 1150  # the field's fixed request: 1,150 tokens in ...
DEFAULT_OUTPUT_TOKENS = 2000  # ... 2,000 tokens out
PERCENTILES = (50, 95, 99)
# Plain prose the prompt is cut from: any tokenizer splits it into many tokens, and its repeats give the
# n-gram drafters something to find, as a long real prompt does.
FILLER = (
    "The committee met on a grey morning to review the quarterly figures. Revenue had risen in the north "
    "and fallen in the south, and nobody could say why. 12 + 30 = 42, 7 * 8 = 56, 1024 / 4 = 256. "
    "A clerk read the minutes aloud while the rain tapped against the tall windows of the hall.\n"
)


class LaneWarning(UserWarning):
    """A lane figure that could not be measured, or was measured at other lengths than asked."""


class LaneUnavailable(Exception):
    """A figure this server cannot give; the message names the preset, the figure and why."""


@dataclass(frozen=True, slots=True)
class Lengths:
    """Prompt and output token counts of a lane request."""

    prompt: int
    output: int

    def __str__(self) -> str:
        return f"{self.prompt} in / {self.output} out"


@dataclass(frozen=True, slots=True)
class Fitted:
    """Lengths as asked and as they will be sent, with a note when they were scaled down."""

    asked: Lengths
    used: Lengths
    context: int | None
    note: str | None = None


def fit(asked: Lengths, context: int | None, *, preset: str) -> Fitted:
    """Scale *asked* down, keeping its proportion, when prompt + output do not fit a slot's *context*.

    The note says so, naming the preset, both lengths and the context: figures at other lengths are not
    comparable with the field's write-ups, and a reader must know.
    """
    if asked.prompt < 1 or asked.output < 1:
        raise ValueError(f"lane lengths must be >= 1 token each, got {asked}")
    if context is None or asked.prompt + asked.output <= context:
        return Fitted(asked, asked, context)
    if context < 2:
        raise LaneUnavailable(f"preset {preset}: a slot's context of {context} token(s) holds no lane request")
    factor = context / (asked.prompt + asked.output)
    prompt = max(1, math.floor(asked.prompt * factor))
    output = max(1, min(context - prompt, math.floor(asked.output * factor)))
    used = Lengths(prompt, output)
    note = (
        f"preset {preset}: {asked} does not fit a slot's context of {context} tokens; "
        f"scaled down to {used} (same proportion)"
    )
    return Fitted(asked, used, context, note)


def exact_prompt(filler_tokens: Sequence[int], n: int) -> list[int]:
    """*n* token ids: the filler's tokens repeated and cut at *n* (sent as ids, so exactly *n* on any
    tokenizer)."""
    if not filler_tokens:
        raise ValueError("the filler text tokenized to no tokens")
    repeats = -(-n // len(filler_tokens))
    return (list(filler_tokens) * repeats)[:n]


def context_per_slot(props: Mapping[str, Any] | None, slots: Sequence[Mapping[str, Any]] | None) -> int | None:
    """A slot's context as the server took it: ``/slots`` n_ctx, else ``/props`` default_generation_settings."""
    for slot in slots or ():
        value = whole_number(slot.get("n_ctx"))
        if value:
            return value
    if props:
        settings = props.get("default_generation_settings")
        if isinstance(settings, dict) and (value := whole_number(settings.get("n_ctx"))):
            return value
    return None


def total_slots(props: Mapping[str, Any] | None, slots: Sequence[Mapping[str, Any]] | None) -> int | None:
    if props and (value := whole_number(props.get("total_slots"))):
        return value
    return len(slots) if slots else None


def speculation(props: Mapping[str, Any] | None, slots: Sequence[Mapping[str, Any]] | None) -> bool | None:
    """Whether the server runs speculative decoding (None: it does not say)."""
    said: bool | None = None
    if props:
        settings = props.get("default_generation_settings")
        params = settings.get("params") if isinstance(settings, dict) else None
        types = params.get("speculative.types") if isinstance(params, dict) else None
        if isinstance(types, str):
            said = types.strip().lower() not in ("", "none")
    for slot in slots or ():
        flag = slot.get("speculative")
        if isinstance(flag, bool):
            said = bool(said) or flag
    return said


@dataclass(frozen=True, slots=True)
class LaneServer:
    """What a lane needs to know about the running server, read once per preset.

    Each of *props*, *slots* and *filler* is None when the server does not give it, with the reason in
    ``missing`` (keyed "props", "slots", "tokenize"): another OpenAI-compatible server has none of them.
    """

    preset: str
    props: Mapping[str, Any] | None
    slots: Sequence[Mapping[str, Any]] | None
    filler: Sequence[int] | None
    missing: Mapping[str, str]

    @property
    def context(self) -> int | None:
        return context_per_slot(self.props, self.slots)

    @property
    def total_slots(self) -> int | None:
        return total_slots(self.props, self.slots)

    @property
    def speculation(self) -> bool | None:
        return speculation(self.props, self.slots)

    def prompt(self, n: int, figure: str) -> list[int]:
        """*n* token ids for *figure*'s request; :class:`LaneUnavailable` when the server cannot tokenize."""
        if self.filler is None:
            raise LaneUnavailable(
                f"preset {self.preset}: {figure} cannot be measured: a prompt of exactly {n} tokens needs the "
                f"server's /tokenize, and {self.missing.get('tokenize', 'it has none')}"
            )
        return exact_prompt(self.filler, n)


def probe(client: Any, preset: str) -> LaneServer:
    """Read /props, /slots and the filler's tokens from *client*'s server (a :class:`~pytest_quantgate.
    client.Client`); whatever it lacks is recorded as missing, not raised."""
    from pytest_quantgate.errors import ClientError

    missing: dict[str, str] = {}
    props: Mapping[str, Any] | None = None
    slots: Sequence[Mapping[str, Any]] | None = None
    filler: Sequence[int] | None = None
    try:
        props = client.props()
    except ClientError as exc:
        missing["props"] = str(exc)
    try:
        slots = client.slots()
    except ClientError as exc:
        missing["slots"] = str(exc)
    try:
        filler = client.tokenize(FILLER) or None
    except ClientError as exc:
        missing["tokenize"] = str(exc)
    return LaneServer(preset, props, slots, filler, missing)


# -- figures -----------------------------------------------------------------------------------------


def prefill_tps(completion: Completion, *, preset: str) -> float:
    """Prompt tokens/s from the server's timings (``prompt_n / prompt_ms``)."""
    t = completion.timings
    if t is None or not t.prompt_n or not t.prompt_ms:
        raise LaneUnavailable(
            f"preset {preset}: prefill_tps cannot be measured: the answer carries no timings.prompt_n/prompt_ms"
        )
    return t.prompt_n / t.prompt_ms * 1000.0


def decode_tps(completion: Completion, *, preset: str) -> float:
    """Generated tokens/s from the server's timings (``predicted_n / predicted_ms``)."""
    t = completion.timings
    if t is None or not t.predicted_n or not t.predicted_ms:
        raise LaneUnavailable(
            f"preset {preset}: decode_tps cannot be measured: the answer carries no timings.predicted_n/predicted_ms"
        )
    return t.predicted_n / t.predicted_ms * 1000.0


def generated(completion: Completion) -> int:
    """Tokens generated: the usage count, else the server's timings, else the streamed text events."""
    if completion.completion_tokens is not None:
        return completion.completion_tokens
    if completion.timings is not None and completion.timings.predicted_n is not None:
        return completion.timings.predicted_n
    return len(completion.chunk_times_s)


def inter_token_latencies(completion: Completion) -> list[float]:
    """Seconds between consecutive streamed text events of one answer."""
    times = completion.chunk_times_s
    return [b - a for a, b in itertools.pairwise(times)]


@dataclass(frozen=True, slots=True)
class SlotsRun:
    """N concurrent streams: what each answered and when the first was sent and the last ended."""

    completions: tuple[Completion, ...]
    wall_s: float

    @property
    def aggregate_tps(self) -> float:
        return sum(generated(c) for c in self.completions) / self.wall_s

    @property
    def stream_tps(self) -> float:
        rates = [generated(c) / c.wall_s for c in self.completions if c.wall_s > 0]
        return math.fsum(rates) / len(rates)

    def ttft_ms(self) -> list[float]:
        return [c.ttft_s * 1000.0 for c in self.completions if c.ttft_s is not None]

    def itl_ms(self) -> list[float]:
        return [gap * 1000.0 for c in self.completions for gap in inter_token_latencies(c)]


def run_concurrently(ask: Callable[[int], Completion], n: int) -> SlotsRun:
    """Call ``ask(i)`` for i in 0..n-1 on n threads released together; the wall runs from the release to the
    last answer. The first error raised by any stream is raised here once all have ended."""
    start = threading.Barrier(n + 1)
    answers: list[Completion | None] = [None] * n
    errors: list[BaseException] = []

    def stream(i: int) -> None:
        start.wait()
        try:
            answers[i] = ask(i)
        except BaseException as exc:  # re-raised on the calling thread below
            errors.append(exc)

    threads = [threading.Thread(target=stream, args=(i,), name=f"lane-slot-{i}", daemon=True) for i in range(n)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    if errors:
        raise errors[0]
    return SlotsRun(tuple(a for a in answers if a is not None), wall)


def percentiles(values: Sequence[float], name: str) -> dict[str, float]:
    """``{"p50_<name>": ..., "p95_<name>": ..., "p99_<name>": ...}`` as ``vllm bench serve`` names them."""
    if not values:
        return {}
    return {f"p{q}_{name}": percentile(values, q) for q in PERCENTILES}


@dataclass(frozen=True, slots=True)
class Acceptance:
    """Draft tokens proposed and accepted over a lane's requests."""

    drafted: int
    accepted: int

    @property
    def rate(self) -> float | None:
        return self.accepted / self.drafted if self.drafted else None


def acceptance(completions: Sequence[Completion]) -> Acceptance:
    """Σ ``draft_n_accepted`` / Σ ``draft_n`` (llama-server sends the fields only when it drafted)."""
    drafted = accepted = 0
    for c in completions:
        if c.timings is not None and c.timings.draft_n:
            drafted += c.timings.draft_n
            accepted += c.timings.draft_n_accepted or 0
    return Acceptance(drafted, accepted)


_DRAFTED = ("spec_decode_num_draft_tokens_total", "n_draft_total")
_ACCEPTED = ("spec_decode_num_accepted_tokens_total", "n_draft_accepted_total")
_SAMPLE = re.compile(r"^(?:llamacpp:)?([A-Za-z_][A-Za-z0-9_]*)(\{[^}]*\})?\s+(\S+)")


def metrics_acceptance(text: str) -> Acceptance | None:
    """The draft counters of llama-server's ``/metrics`` (names differ between builds: read tolerantly)."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and not match[2]:
            try:
                values[match[1]] = float(match[3])
            except ValueError:
                continue
    drafted = next((values[n] for n in _DRAFTED if n in values), None)
    accepted = next((values[n] for n in _ACCEPTED if n in values), None)
    if drafted is None or accepted is None:
        return None
    return Acceptance(int(drafted), int(accepted))


__all__ = [
    "DEFAULT_OUTPUT_TOKENS",
    "DEFAULT_PROMPT_TOKENS",
    "FILLER",
    "Acceptance",
    "Fitted",
    "LaneServer",
    "LaneUnavailable",
    "LaneWarning",
    "Lengths",
    "SlotsRun",
    "acceptance",
    "context_per_slot",
    "decode_tps",
    "exact_prompt",
    "fit",
    "generated",
    "inter_token_latencies",
    "metrics_acceptance",
    "percentiles",
    "prefill_tps",
    "probe",
    "run_concurrently",
    "speculation",
    "total_slots",
]
