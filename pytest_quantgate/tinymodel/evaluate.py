"""Held-out accuracy and decode speed of a tiny-model GGUF file, measured through the real llama-server.

Only the server's own answers count: prompts go to ``POST /completion`` as raw text (no chat template),
greedy (temperature 0, top-k 1), without prompt caching, and the completion must match exactly.
"""

from __future__ import annotations

import statistics
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from pytest_quantgate.install import find_binary
from pytest_quantgate.server import ServerProcess, ServerSpec, free_port
from pytest_quantgate.tinymodel import tasks

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

# The longest answer is 5 characters (one byte token each); a few spare tokens expose a model that
# keeps talking instead of emitting <|endoftext|>, which then fails the exact match.
N_PREDICT = 8
SERVER_CTX = 256
PROBE_TOKENS = 128


@dataclass(frozen=True, slots=True)
class Completion:
    """The parts of one ``/completion`` response the evaluation uses."""

    content: str
    stop_type: str
    predicted_n: int
    predicted_ms: float
    predicted_per_second: float


@dataclass(slots=True)
class TaskScore:
    """Greedy exact-match result of one task's held-out items."""

    n: int
    correct: int

    @property
    def accuracy(self) -> float:
        """Fraction of items answered exactly (0 when there were none)."""
        return self.correct / self.n if self.n else 0.0


@dataclass(slots=True)
class Evaluation:
    """Per-task scores plus decode-speed figures of one model file."""

    scores: dict[str, TaskScore] = field(default_factory=dict)
    # Aggregate over every evaluation request: sum(predicted_n) / sum(predicted_ms). The answers are
    # only 2-6 tokens long, so this includes a lot of per-request overhead...
    eval_tok_s: float = 0.0
    # ...which is why long fixed-length generations (ignore_eos) are timed as well: median over probes
    # of timings.predicted_per_second, the figure a user of the server sees.
    decode_tok_s: float = 0.0
    decode_tok_s_probes: list[float] = field(default_factory=list)

    def accuracy(self) -> dict[str, float]:
        """Accuracy per task, 0..1."""
        return {name: score.accuracy for name, score in self.scores.items()}

    def points(self) -> float:
        """Task points earned: each task's points weighted by its accuracy (100 = everything right)."""
        return sum(tasks.TASKS[name].points * score.accuracy for name, score in self.scores.items())


def complete(
    client: httpx.Client,
    base_url: str,
    prompt: str,
    *,
    n_predict: int = N_PREDICT,
    extra: dict[str, Any] | None = None,
) -> Completion:
    """One greedy raw-text completion."""
    body: dict[str, Any] = {
        "prompt": prompt,
        "n_predict": n_predict,
        "temperature": 0,
        "top_k": 1,
        "cache_prompt": False,
        **(extra or {}),
    }
    resp = client.post(f"{base_url}/completion", json=body)
    resp.raise_for_status()
    data = resp.json()
    timings = data.get("timings") or {}
    return Completion(
        content=str(data.get("content", "")),
        stop_type=str(data.get("stop_type", "")),
        predicted_n=int(timings.get("predicted_n", 0)),
        predicted_ms=float(timings.get("predicted_ms", 0.0)),
        predicted_per_second=float(timings.get("predicted_per_second", 0.0)),
    )


def evaluate_server(
    base_url: str,
    *,
    n_items: int = 200,
    seed: int = 0,
    task_names: Sequence[str] | None = None,
    probes: int = 5,
    timeout_s: float = 60.0,
) -> Evaluation:
    """Score a running server on *n_items* held-out items per task and time *probes* long generations."""
    result = Evaluation()
    total_n = 0
    total_ms = 0.0
    with httpx.Client(timeout=timeout_s) as client:
        for name in task_names or list(tasks.TASKS):
            items = tasks.held_out_items(name, n_items, seed)
            correct = 0
            for item in items:
                got = complete(client, base_url, tasks.prompt(name, item))
                correct += tasks.is_correct(name, item, got.content)
                total_n += got.predicted_n
                total_ms += got.predicted_ms
            result.scores[name] = TaskScore(n=len(items), correct=correct)
        for _ in range(probes):
            # ignore_eos forces exactly PROBE_TOKENS decode steps whatever the model says.
            got = complete(
                client,
                base_url,
                tasks.prompt("add3", "12+34+56"),
                n_predict=PROBE_TOKENS,
                extra={"ignore_eos": True},
            )
            result.decode_tok_s_probes.append(got.predicted_per_second)
    result.eval_tok_s = total_n / total_ms * 1000.0 if total_ms > 0 else 0.0
    if result.decode_tok_s_probes:
        result.decode_tok_s = statistics.median(result.decode_tok_s_probes)
    return result


def server_argv(server_binary: Path, model: Path, port: int, *, threads: int | None = None) -> list[str]:
    """The llama-server command line used for tiny-model evaluation."""
    argv = [
        str(server_binary),
        "-m",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "-c",
        str(SERVER_CTX),
        "-np",
        "1",
    ]
    if threads is not None:
        argv += ["-t", str(threads)]
    return argv


@contextmanager
def running_server(
    model: Path,
    *,
    server_binary: Path | None = None,
    log_path: Path | None = None,
    threads: int | None = None,
    startup_timeout_s: float = 120.0,
) -> Iterator[ServerProcess]:
    """Start llama-server on *model*, yield it once ``/health`` answers 200, and always stop it."""
    binary = server_binary or find_binary("llama-server")
    port = free_port()
    spec = ServerSpec(
        argv=tuple(server_argv(binary, model, port, threads=threads)),
        port=port,
        startup_timeout_s=startup_timeout_s,
    )
    with tempfile.TemporaryDirectory(prefix="quantgate-tiny-") as tmp:
        log = log_path or Path(tmp) / "server.log"
        server = ServerProcess.start(spec, log)
        try:
            yield server
        finally:
            server.stop()


def evaluate_file(
    model: Path,
    *,
    n_items: int = 200,
    seed: int = 0,
    server_binary: Path | None = None,
    threads: int | None = None,
    probes: int = 5,
    progress: Callable[[str], None] | None = None,
) -> Evaluation:
    """Start a server on *model*, evaluate it with :func:`evaluate_server`, stop the server."""
    with running_server(model, server_binary=server_binary, threads=threads) as server:
        if progress is not None:
            progress(f"{model.name}: server up on {server.base_url}, evaluating")
        return evaluate_server(server.base_url, n_items=n_items, seed=seed, probes=probes)
