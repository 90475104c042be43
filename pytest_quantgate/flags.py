"""llama-server's command line: what an argv says about the settings a result records (model, context
size, slots, sampler, chat-template kwargs), read the way llama-server reads it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pytest_quantgate.errors import PresetError

if TYPE_CHECKING:
    from collections.abc import Sequence

# The llama-server flags behind the settings a result records, read as llama-server reads them.
_MODEL_FLAGS = frozenset({"-m", "--model"})
_CONTEXT_FLAGS = frozenset({"-c", "--ctx-size"})
_PARALLEL_FLAGS = frozenset({"-np", "--parallel"})
_ADDRESS_FLAGS = frozenset({"--host", "--port"})  # where it listens: chosen per run, not a setting
_TEMPLATE_KWARGS_FLAG = "--chat-template-kwargs"
# Sampler flags set the server's defaults for the request fields of the same meaning (named as requests
# name them, so that a preset's `sampler:` and a flag in its argv are recorded alike).
_SAMPLER_FLAGS: dict[str, tuple[str, type[int] | type[float]]] = {
    "--temp": ("temperature", float),
    "--temperature": ("temperature", float),
    "--top-p": ("top_p", float),
    "--top-k": ("top_k", int),
    "--min-p": ("min_p", float),
    "-s": ("seed", int),
    "--seed": ("seed", int),
    "--repeat-penalty": ("repeat_penalty", float),
    "--repeat-last-n": ("repeat_last_n", int),
    "--presence-penalty": ("presence_penalty", float),
    "--frequency-penalty": ("frequency_penalty", float),
    "--typical": ("typical_p", float),
    "--typical-p": ("typical_p", float),
    "--top-nsigma": ("top_n_sigma", float),
    "--top-n-sigma": ("top_n_sigma", float),
    "--xtc-probability": ("xtc_probability", float),
    "--xtc-threshold": ("xtc_threshold", float),
    "--dry-multiplier": ("dry_multiplier", float),
    "--dry-base": ("dry_base", float),
    "--dry-allowed-length": ("dry_allowed_length", int),
    "--dry-penalty-last-n": ("dry_penalty_last_n", int),
    "--mirostat": ("mirostat", int),
    "--mirostat-lr": ("mirostat_eta", float),
    "--mirostat-ent": ("mirostat_tau", float),
    "--dynatemp-range": ("dynatemp_range", float),
    "--dynatemp-exp": ("dynatemp_exponent", float),
}
_VALUED_FLAGS = (
    _MODEL_FLAGS | _CONTEXT_FLAGS | _PARALLEL_FLAGS | _ADDRESS_FLAGS | {_TEMPLATE_KWARGS_FLAG, *_SAMPLER_FLAGS}
)
_N = TypeVar("_N", int, float)
_NUMBER = {
    int: (re.compile(r"[+-]?[0-9]+"), "a whole number"),
    float: (re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"), "a number"),
}


@dataclass(frozen=True, slots=True)
class ServerArgs:
    """What a server's argv says about the settings a result records (None or empty: it does not say)."""

    binary: str | None = None
    model: str | None = None
    context_size: int | None = None
    parallel: int | None = None
    sampler: dict[str, int | float] = field(default_factory=dict)
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    rest: tuple[str, ...] = ()  # every other argument, in order (--host and --port left out)


def server_args(argv: Sequence[str], *, where: str, binary: bool = False) -> ServerArgs:
    """Read llama-server's *argv* (the program first when *binary*) as llama-server reads it: the last of a
    repeated flag wins and ``--a_b`` means ``--a-b``. Another program's arguments (``vllm``, ``python -c``)
    are not read, only kept in ``rest``.

    A flag recorded here whose value llama-server could not read either (``-np ²``, ``--temp hot``) is a
    :class:`PresetError` naming *where* it was written.
    """
    args = list(argv)
    exe = args.pop(0) if binary and args else None
    if exe is not None and not Path(exe).name.startswith("llama-server"):
        return ServerArgs(binary=exe, rest=tuple(args))
    model: str | None = None
    context: int | None = None
    parallel: int | None = None
    sampler: dict[str, int | float] = {}
    kwargs: dict[str, Any] = {}
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        flag = arg.replace("_", "-") if arg.startswith("--") else arg
        if flag not in _VALUED_FLAGS or i + 1 == len(args):
            rest.append(arg)
            i += 1
            continue
        value = args[i + 1]
        i += 2
        if flag in _MODEL_FLAGS:
            model = value
        elif flag in _CONTEXT_FLAGS:
            context = _number(int, arg, value, where)
        elif flag in _PARALLEL_FLAGS:
            parallel = _number(int, arg, value, where)
        elif flag in _SAMPLER_FLAGS:
            name, kind = _SAMPLER_FLAGS[flag]
            sampler[name] = _number(kind, arg, value, where)
        elif flag == _TEMPLATE_KWARGS_FLAG:
            kwargs = _json_object(arg, value, where)
    return ServerArgs(exe, model, context, parallel, sampler, kwargs, tuple(rest))


def _number(kind: type[_N], flag: str, value: str, where: str) -> _N:
    pattern, what = _NUMBER[kind]
    if not pattern.fullmatch(value):
        raise PresetError(f"{where}: {flag} {value!r} is not {what}")
    return kind(value)


def _json_object(flag: str, value: str, where: str) -> dict[str, Any]:
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise PresetError(f"{where}: {flag} {value!r} is not a JSON object")
    return parsed
