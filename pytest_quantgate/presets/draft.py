"""A preset's draft for speculative decoding: a draft model (llama-server ``-md``) or an n-gram
``--spec-type`` that needs none, with its own flags.

Our format describes it under ``draft:``; gpumod and llama-swap files carry the flags in their argv, and
:func:`draft_from_args` reads them back into the same :class:`Draft`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from pytest_quantgate.errors import PresetError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

# llama-server's spellings of the flags a draft is made of (the newer --spec-* names first).
MODEL_FLAGS = ("--spec-draft-model", "-md", "--model-draft")
SPEC_TYPE_FLAG = "--spec-type"
N_MAX_FLAGS = ("--spec-draft-n-max",)
_OWN_FLAGS = frozenset((*MODEL_FLAGS, SPEC_TYPE_FLAG, *N_MAX_FLAGS))
# With only -md this build loads the draft model and does not draft (speculative types "none"): a draft
# model means the draft-model type unless the preset names another.
DEFAULT_MODEL_SPEC_TYPE = "draft-simple"


class DraftModel(BaseModel):
    """``draft:`` in our preset format (unknown keys rejected, like the rest of the file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = None  # a GGUF path, relative to the preset file
    spec_type: str | None = Field(default=None, min_length=1)  # llama-server --spec-type, e.g. ngram-simple
    n_max: int | None = Field(default=None, ge=1)  # --spec-draft-n-max: tokens drafted per step
    args: list[str] = Field(default_factory=list)  # any other draft flag, passed as it is


@dataclass(frozen=True, slots=True)
class Draft:
    """What the preset drafts with; :meth:`server_args` are the flags that start it."""

    model: Path | None = None
    spec_type: str | None = None
    n_max: int | None = None
    args: tuple[str, ...] = ()

    def server_args(self) -> list[str]:
        argv: list[str] = []
        if self.model is not None:
            argv += ["-md", str(self.model)]
        if self.spec_type is not None:
            argv += [SPEC_TYPE_FLAG, self.spec_type]
        if self.n_max is not None:
            argv += ["--spec-draft-n-max", str(self.n_max)]
        return argv + list(self.args)

    def describe(self) -> str:
        """One line for tables and messages: ``draft-simple with tiny-q4_0.gguf (n_max 3)``."""
        text = self.spec_type or "draft"
        if self.model is not None:
            text += f" with {self.model.name}"
        if self.n_max is not None:
            text += f" (n_max {self.n_max})"
        return text


def draft_from_model(model: DraftModel, resolve: Callable[[str], Path], extra_args: Sequence[str], where: str) -> Draft:
    """Our ``draft:`` block as a :class:`Draft`; the same flags also in *extra_args* is an error (which wins
    would be llama-server's choice, not the file's)."""
    if model.model is None and model.spec_type is None:
        raise PresetError(
            f"{where}: draft needs a model (a draft GGUF, llama-server -md) or a spec_type (e.g. ngram-simple, "
            "which needs no second model)"
        )
    twice = sorted(_OWN_FLAGS.intersection(a.replace("_", "-") for a in extra_args))
    if twice:
        raise PresetError(
            f"{where}: {', '.join(twice)} in extra_args and a draft: block; describe the draft in one place"
        )
    spec_type = model.spec_type or (DEFAULT_MODEL_SPEC_TYPE if model.model is not None else None)
    return Draft(
        model=resolve(model.model) if model.model is not None else None,
        spec_type=spec_type,
        n_max=model.n_max,
        args=tuple(model.args),
    )


def draft_from_args(argv: Sequence[str], base: Path | None = None) -> Draft | None:
    """The draft a llama-server argv describes (``-md FILE``, ``--spec-type T``, ``--spec-draft-n-max N``),
    None when it has none. The other ``--spec-*`` flags are kept as the draft's own args."""
    model: Path | None = None
    spec_type: str | None = None
    n_max: int | None = None
    rest: list[str] = []
    i = 0
    args = list(argv)
    while i < len(args):
        flag = args[i].replace("_", "-") if args[i].startswith("--") else args[i]
        value = args[i + 1] if i + 1 < len(args) else None
        if flag in MODEL_FLAGS and value is not None:
            model = _relative(value, base)
        elif flag == SPEC_TYPE_FLAG and value is not None:
            spec_type = value
        elif flag in N_MAX_FLAGS and value is not None and value.isdigit():
            n_max = int(value)
        elif flag.startswith("--spec-") and value is not None and not value.startswith("-"):
            rest += [args[i], value]
        else:
            i += 1
            continue
        i += 2
    if model is None and spec_type is None:
        return None
    if spec_type is not None and spec_type.strip().lower() == "none":
        return None
    return Draft(model, spec_type, n_max, tuple(rest))


def _relative(value: str, base: Path | None) -> Path:
    path = Path(value).expanduser()
    return base / path if base is not None and not path.is_absolute() else path


__all__ = ["Draft", "DraftModel", "draft_from_args", "draft_from_model"]
