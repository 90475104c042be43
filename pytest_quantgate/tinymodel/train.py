"""Train the tiny llama-architecture model on CPU with torch.

The network computes exactly what llama.cpp's ``llama`` architecture computes, so the weights export to
GGUF unchanged: pre-norm RMSNorm blocks, rotary position embedding in ggml's "normal" mode (it rotates
ADJACENT pairs ``(x[2i], x[2i+1])``, unlike Hugging Face's rotate-half, so no q/k permutation is needed at
export), SwiGLU feed-forward, no biases, and the output projection tied to the token embedding.

torch is imported inside the functions of this module and nowhere else in the package: evaluating the
committed model files must not need it.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_quantgate.tinymodel import tasks, vocab

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class TinyConfig:
    """Architecture, optimisation and data-mix settings of one training run."""

    n_embd: int = 64
    n_layer: int = 2
    n_head: int = 4
    n_ff: int = 192
    # Written to GGUF as llama.context_length. Training sequences are ~20 tokens; the figure only has
    # to cover the server's -c so llama.cpp does not warn about exceeding the training context.
    context_length: int = 256
    steps: int = 5000
    batch: int = 128
    lr: float = 3e-3
    min_lr_ratio: float = 0.05
    warmup: int = 100
    weight_decay: float = 0.0
    seed: int = 1
    rms_eps: float = 1e-5
    rope_base: float = 10000.0
    # Relative sampling weight of each task; the hard ones get more of the batch.
    task_weights: tuple[tuple[str, float], ...] = (
        ("copy", 1.0),
        ("reverse", 1.5),
        ("inc", 1.0),
        ("add2", 2.0),
        ("add3", 4.0),
    )
    threads: int = 2

    @property
    def head_dim(self) -> int:
        """Width of one attention head (also the RoPE dimension count)."""
        return self.n_embd // self.n_head

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly view (task weights as a mapping)."""
        data = asdict(self)
        data["task_weights"] = dict(self.task_weights)
        return data


DEFAULT_CONFIG = TinyConfig()
"""The configuration the committed model files were built with."""
MICRO_CONFIG = TinyConfig(n_embd=32, n_layer=1, n_head=2, n_ff=64, steps=5, batch=8)
"""A few steps, for smoke tests of the pipeline: the answers are nonsense."""


@dataclass(slots=True)
class TrainedModel:
    """Weights under their GGUF tensor names (float32 numpy arrays) plus what the run measured."""

    config: TinyConfig
    tensors: dict[str, npt.NDArray[np.float32]]
    train_seconds: float
    n_params: int
    final_loss: float
    history: list[tuple[int, float]] = field(default_factory=list)


def build_batch(config: TinyConfig, rng: random.Random, size: int) -> tuple[list[list[int]], list[int]]:
    """*size* training sequences ``BOS prompt answer EOS`` and, per sequence, where the answer starts.

    Pure Python so the data order depends only on *rng* (and hence on the seed), not on torch.
    """
    names = [name for name, _ in config.task_weights]
    weights = [w for _, w in config.task_weights]
    seqs: list[list[int]] = []
    starts: list[int] = []
    for name in rng.choices(names, weights=weights, k=size):
        item = tasks.sample_training_item(name, rng)
        head = vocab.encode(tasks.prompt(name, item))
        tail = [*vocab.encode(tasks.answer(name, item), bos=False), vocab.EOT_ID]
        seqs.append(head + tail)
        starts.append(len(head))
    return seqs, starts


def _torch() -> Any:
    import torch

    return torch


_MATRICES = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


class TinyNet:
    """The network as plain tensors keyed by their GGUF names, with a functional forward pass.

    No ``nn.Module`` subclass on purpose: parameters named exactly as llama.cpp names them make export a
    copy, and the code type-checks the same whether or not torch is installed.
    """

    def __init__(self, config: TinyConfig) -> None:
        torch = _torch()
        self.config = config
        d, f = config.n_embd, config.n_ff
        p: dict[str, Any] = {}
        p["token_embd.weight"] = torch.randn(vocab.VOCAB_SIZE, d) * (0.02 * math.sqrt(768 / d) / 4)
        for i in range(config.n_layer):
            shapes = {
                "attn_q": (d, d),
                "attn_k": (d, d),
                "attn_v": (d, d),
                "attn_output": (d, d),
                "ffn_gate": (f, d),
                "ffn_up": (f, d),
                "ffn_down": (d, f),
            }
            p[f"blk.{i}.attn_norm.weight"] = torch.ones(d)
            for name in _MATRICES:
                out_dim, in_dim = shapes[name]
                if name in ("attn_output", "ffn_down"):
                    # GPT-2's residual scaling keeps the stream's variance flat across depth.
                    w = torch.randn(out_dim, in_dim) * (0.02 / math.sqrt(2 * config.n_layer))
                else:
                    # torch.nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
                    w = (torch.rand(out_dim, in_dim) * 2 - 1) / math.sqrt(in_dim)
                p[f"blk.{i}.{name}.weight"] = w
            p[f"blk.{i}.ffn_norm.weight"] = torch.ones(d)
        p["output_norm.weight"] = torch.ones(d)
        self.params = {k: v.requires_grad_(True) for k, v in p.items()}

    def parameters(self) -> list[Any]:
        """All trainable tensors."""
        return list(self.params.values())

    def _norm(self, x: Any, name: str) -> Any:
        # ggml_rms_norm: x / sqrt(mean(x^2) + eps), then the learned per-channel scale.
        torch = _torch()
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.config.rms_eps) * self.params[name]

    def __call__(self, ids: Any) -> Any:
        """Logits (batch, time, vocab) for token ids (batch, time)."""
        torch = _torch()
        functional = torch.nn.functional
        cfg, p = self.config, self.params
        b, t = ids.shape
        h, hd = cfg.n_head, cfg.head_dim
        inv = cfg.rope_base ** (-torch.arange(0, hd, 2).float() / hd)
        ang = torch.arange(t).float()[:, None] * inv[None, :]
        # Broadcast against (batch, time, head, head_dim/2).
        cos, sin = ang.cos()[None, :, None, :], ang.sin()[None, :, None, :]

        def rope(x: Any) -> Any:
            # ggml rope "normal" mode rotates ADJACENT pairs (x[2i], x[2i+1]) by pos * base^(-2i/hd).
            x0, x1 = x[..., 0::2], x[..., 1::2]
            return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).reshape(x.shape)

        # functional.embedding, not p[...][ids]: the backward of plain indexing accumulates with a
        # parallel index_put_ whose summation order varies run to run, which made training irreproducible.
        x = functional.embedding(ids, p["token_embd.weight"])
        for i in range(cfg.n_layer):
            w = {name: p[f"blk.{i}.{name}.weight"] for name in _MATRICES}
            y = self._norm(x, f"blk.{i}.attn_norm.weight")
            q = rope((y @ w["attn_q"].T).view(b, t, h, hd)).transpose(1, 2)
            k = rope((y @ w["attn_k"].T).view(b, t, h, hd)).transpose(1, 2)
            v = (y @ w["attn_v"].T).view(b, t, h, hd).transpose(1, 2)
            # The default scale 1/sqrt(head_dim) is llama.cpp's kq_scale for this architecture.
            att = functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + att.transpose(1, 2).reshape(b, t, cfg.n_embd) @ w["attn_output"].T
            y = self._norm(x, f"blk.{i}.ffn_norm.weight")
            x = x + (functional.silu(y @ w["ffn_gate"].T) * (y @ w["ffn_up"].T)) @ w["ffn_down"].T
        # Tied embeddings: the output projection is the token embedding (no output.weight in the GGUF).
        return self._norm(x, "output_norm.weight") @ p["token_embd.weight"].T


def make_model(config: TinyConfig) -> TinyNet:
    """A freshly initialised network for *config* (seed torch first for a reproducible one)."""
    return TinyNet(config)


def export_tensors(model: TinyNet) -> dict[str, npt.NDArray[np.float32]]:
    """The weights as float32 numpy arrays under llama.cpp's tensor names ((out, in) layout, as GGUF wants)."""
    return {name: t.detach().float().cpu().numpy() for name, t in model.params.items()}


def train(config: TinyConfig, progress: Callable[[int, float], None] | None = None) -> TrainedModel:
    """Train a model for *config* and return its weights; *progress(step, loss)* is called every 50 steps.

    Reproducible for a given config on a given torch build: torch and the data stream are both seeded
    from ``config.seed``, and the data order is generated in pure Python.
    """
    model, seconds, history = train_module(config, progress)
    return TrainedModel(
        config=config,
        tensors=export_tensors(model),
        train_seconds=seconds,
        n_params=sum(int(p.numel()) for p in model.parameters()),
        final_loss=history[-1][1] if history else float("nan"),
        history=history,
    )


def train_module(
    config: TinyConfig, progress: Callable[[int, float], None] | None = None
) -> tuple[TinyNet, float, list[tuple[int, float]]]:
    """Like :func:`train` but returns the network itself, the seconds spent and the loss history."""
    torch = _torch()
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = random.Random(f"tinymodel-train|{config.seed}")
    model = make_model(config)
    # Weight decay (if any) only on matrices; norm scales are left alone, as is customary.
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        betas=(0.9, 0.98),
    )

    def lr_at(step: int) -> float:
        if step < config.warmup:
            return config.lr * (step + 1) / config.warmup
        frac = (step - config.warmup) / max(1, config.steps - config.warmup)
        cos = 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))
        return config.lr * (config.min_lr_ratio + (1 - config.min_lr_ratio) * cos)

    history: list[tuple[int, float]] = []
    loss_value = float("nan")
    started = time.perf_counter()
    for step in range(config.steps):
        seqs, starts = build_batch(config, rng, config.batch)
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), vocab.EOT_ID, dtype=torch.long)
        # -100 is cross_entropy's ignore_index: only answer tokens and the closing EOS are learned, since
        # the prompt's letters and digits are random and predicting them is pure noise.
        targets = torch.full((len(seqs), width), -100, dtype=torch.long)
        for row, (seq, start) in enumerate(zip(seqs, starts, strict=True)):
            ids[row, : len(seq)] = torch.tensor(seq)
            targets[row, start - 1 : len(seq) - 1] = torch.tensor(seq[start:])
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        logits = model(ids)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == config.steps - 1:
            loss_value = float(loss.item())
            history.append((step, loss_value))
            if progress is not None:
                progress(step, loss_value)
    seconds = time.perf_counter() - started
    return model, seconds, history
