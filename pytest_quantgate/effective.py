"""The configuration a server really runs with, as it reports it (llama-server's ``/props`` and ``/slots``).

llama-server's ``--fit`` (on by default) may lower the context or GPU layers a preset asked for, and ``-np``
may be chosen automatically: what a result measured is what the server took, not what the preset said. It
is read once when a run starts using a server (:func:`read`), kept beside the run's other files
(:func:`save`, :func:`load`) and recorded in the result's provenance (``preset.effective``); the report
shows it and a comparison lists every difference (:func:`differences`, :func:`asked_vs_took`) as a caveat.
Another OpenAI-compatible server has neither endpoint: then nothing is recorded, and nothing is guessed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_quantgate.errors import ClientError

if TYPE_CHECKING:
    from pytest_quantgate.client import Client
    from pytest_quantgate.results import PresetRecord

FILE_NAME = "effective.json"
# The default sampler fields worth recording (llama-server reports ~40; these are the ones presets set).
SAMPLER_FIELDS = ("temperature", "top_k", "top_p", "min_p", "repeat_penalty", "seed")
# What a difference is called, in the order caveats list them.
LABELS = {
    "total_slots": "slots",
    "n_ctx_per_slot": "context per slot",
    "model_path": "model path",
    "build_info": "server build",
    "chat_template_sha256": "chat template",
    "speculative": "speculative decoding",
    "sampler": "server default sampler",
}


def read(client: Client) -> dict[str, Any] | None:
    """The effective configuration of *client*'s server, None when it has no ``/props``."""
    try:
        props = client.props()
    except ClientError:
        return None
    try:
        slots: list[dict[str, Any]] | None = client.slots()
    except ClientError:  # llama-server without --slots, or a build that hides them
        slots = None
    return from_props(props, slots)


def from_props(props: dict[str, Any], slots: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The fields a result records, from ``/props`` (and ``/slots``); absent ones are left out."""
    found = props.get("default_generation_settings")
    settings: dict[str, Any] = found if isinstance(found, dict) else {}
    found = settings.get("params")
    params: dict[str, Any] = found if isinstance(found, dict) else {}
    out: dict[str, Any] = {}
    if isinstance(props.get("total_slots"), int):
        out["total_slots"] = props["total_slots"]
    n_ctx = [whole_number(slot.get("n_ctx")) for slot in slots or ()]
    if n_ctx and all(n is not None for n in n_ctx):
        out["n_ctx_per_slot"] = n_ctx[0] if len(set(n_ctx)) == 1 else n_ctx
    elif isinstance(settings.get("n_ctx"), int):
        out["n_ctx_per_slot"] = settings["n_ctx"]
    for key in ("model_path", "build_info"):
        if isinstance(props.get(key), str):
            out[key] = props[key]
    template = props.get("chat_template")
    if isinstance(template, str) and template:
        out["chat_template_sha256"] = hashlib.sha256(template.encode()).hexdigest()[:16]
        out["chat_template_start"] = template[:80]
    speculative = [slot.get("speculative") for slot in slots or () if isinstance(slot.get("speculative"), bool)]
    types = params.get("speculative.types")
    if speculative:
        out["speculative"] = any(speculative)
    elif isinstance(types, str):
        out["speculative"] = types.strip().lower() not in ("", "none")
    sampler = {k: params[k] for k in SAMPLER_FIELDS if isinstance(params.get(k), int | float)}
    if sampler:
        out["sampler"] = {k: round(v, 6) if isinstance(v, float) else v for k, v in sampler.items()}
    return out


def save(effective: dict[str, Any] | None, directory: Path) -> None:
    """Write *effective* beside the run's other files for this preset (once: the first writer wins)."""
    if effective is None:
        return
    path = directory / FILE_NAME
    if path.exists():
        return
    directory.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(effective, indent=1, sort_keys=True))
    tmp.replace(path)


def load(directory: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((directory / FILE_NAME).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def differences(a: dict[str, Any] | None, b: dict[str, Any] | None, names: tuple[str, str]) -> list[str]:
    """Every recorded field in which two servers' effective configurations differ, one line each."""
    if a is None or b is None:
        if a is None and b is None:
            return []
        missing = names[0] if a is None else names[1]
        return [
            f"effective configuration: recorded for one run only ({missing} has none: no /props, or an older result)"
        ]
    out = []
    for key, label in LABELS.items():
        if key in a and key in b and a[key] != b[key]:
            out.append(f"effective {label}: {_show(key, a[key])} ({names[0]}) vs {_show(key, b[key])} ({names[1]})")
    return out


def asked_vs_took(record: PresetRecord) -> list[str]:
    """Where the server did not take what the preset asked: slots, context, model, speculation."""
    took = record.effective
    if not took:
        return []
    out = []
    who = f"preset {record.id}"
    slots = took.get("total_slots")
    if isinstance(slots, int) and slots != record.parallel:
        out.append(f"{who} asked for {record.parallel} slot(s); the server runs {slots}")
    per_slot = took.get("n_ctx_per_slot")
    context = record.context_size
    if context and isinstance(per_slot, int) and isinstance(slots, int) and context not in (per_slot, per_slot * slots):
        out.append(
            f"{who} asked for a context of {context} tokens; the server runs {per_slot} per slot "
            f"× {slots} slot(s) (--fit or a minimum may have changed it)"
        )
    path = took.get("model_path")
    if record.model and isinstance(path, str) and Path(path).name != Path(record.model).name:
        out.append(f"{who} asked for model {Path(record.model).name}; the server loaded {Path(path).name}")
    if record.draft is not None and took.get("speculative") is False:
        out.append(f"{who} describes a draft ({record.draft.get('spec_type')}); the server does not draft")
    return out


def describe(effective: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) rows for a report."""
    rows = []
    for key, label in LABELS.items():
        if key in effective:
            rows.append((label, _show(key, effective[key])))
    return rows


def _show(key: str, value: Any) -> str:
    if key == "sampler" and isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    if key == "model_path" and isinstance(value, str):
        return Path(value).name
    return str(value)


def whole_number(value: object) -> int | None:
    """A count as a server reports it (an int, or digits in a string); None for anything else, bools too."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


__all__ = ["asked_vs_took", "describe", "differences", "from_props", "load", "read", "save", "whole_number"]
