"""What differs between the two runs besides the model, as read from their provenance."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from pytest_quantgate import effective
from pytest_quantgate.render.format import percent

if TYPE_CHECKING:
    from pytest_quantgate.compare.options import CompareOptions
    from pytest_quantgate.results import ResultFile


def _show(value: object) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return "(not recorded)"
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def _size(n: int | None) -> str:
    if n is None:
        return "size not recorded"
    if n >= 1024**3:
        return f"{n / 1024**3:.2f} GiB"
    if n >= 1024**2:
        return f"{n / 1024**2:.1f} MiB"
    return f"{n / 1024:.1f} KiB"


def _parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def provenance_caveats(b: ResultFile, c: ResultFile, options: CompareOptions) -> list[str]:
    out: list[str] = []
    pb, pc = b.preset, c.preset
    if pb.model_digest != pc.model_digest or pb.model != pc.model or pb.model_size_bytes != pc.model_size_bytes:
        name_b = pb.model.rsplit("/", 1)[-1] if pb.model else "(not recorded)"
        name_c = pc.model.rsplit("/", 1)[-1] if pc.model else "(not recorded)"
        change = ""
        if pb.model_size_bytes and pc.model_size_bytes:
            change = f", {percent(pc.model_size_bytes / pb.model_size_bytes - 1, 0)} size"
        if pb.model == pc.model and pb.model_digest != pc.model_digest:
            out.append(
                f"GGUF: same path {name_b} but different content (digest {pb.model_digest} → {pc.model_digest}): "
                "re-downloaded or re-quantised between the runs"
            )
        else:
            out.append(
                f"GGUF (expected): {name_b} ({_size(pb.model_size_bytes)}) → {name_c} "
                f"({_size(pc.model_size_bytes)}{change})"
            )
    if pb.driver != pc.driver:
        out.append(f"driver: {pb.driver} → {pc.driver}")
    if pb.binary != pc.binary:
        out.append(f"server binary path: {_show(pb.binary)} → {_show(pc.binary)}")
    if pb.binary_version != pc.binary_version:
        out.append(
            f"server binary version: {_show(pb.binary_version)} → {_show(pc.binary_version)}: speed and "
            "sampling may differ for reasons other than the model"
        )
    if pb.binary_sha256 != pc.binary_sha256:
        same = " with the same --version (a rebuilt binary?)" if pb.binary_version == pc.binary_version else ""
        out.append(f"server binary hash: {_show(pb.binary_sha256)} → {_show(pc.binary_sha256)}{same}")
    if pb.cache_prompt != pc.cache_prompt:
        out.append(
            f"prompt cache (cache_prompt): {_show(pb.cache_prompt)} → {_show(pc.cache_prompt)}: with the cache on, "
            "a prompt evaluated from the cache is computed differently from its first evaluation, so greedy "
            "answers may differ between iterations for that reason alone"
        )
    if pb.sampler != pc.sampler:
        keys = sorted(set(pb.sampler) | set(pc.sampler))
        changes = [
            f"{k} {pb.sampler.get(k, 'unset')} → {pc.sampler.get(k, 'unset')}"
            for k in keys
            if pb.sampler.get(k) != pc.sampler.get(k)
        ]
        out.append(f"sampler: {', '.join(changes)}: scores may differ because of sampling, not the model")
    if pb.extra_args != pc.extra_args:
        out.append(f"flags (extra_args): `{_show(pb.extra_args)}` → `{_show(pc.extra_args)}`")
    if pb.context_size != pc.context_size:
        out.append(f"context size: {_show(pb.context_size)} → {_show(pc.context_size)}")
    if pb.parallel != pc.parallel:
        out.append(f"parallel slots: {pb.parallel} → {pc.parallel}: per-request speed is not comparable")
    if pb.chat_template_kwargs != pc.chat_template_kwargs:
        out.append(f"chat template kwargs: {pb.chat_template_kwargs} → {pc.chat_template_kwargs}")
    if pb.max_tokens != pc.max_tokens:
        out.append(f"max_tokens: {_show(pb.max_tokens)} → {_show(pc.max_tokens)}")
    for key, label in (
        ("hostname", "host"),
        ("cpu", "host CPU"),
        ("cpu_count", "host CPU cores"),
        ("ram_mb", "host RAM (MB)"),
        ("gpu", "host GPU"),
        ("platform", "host OS"),
    ):
        vb, vc = b.host.get(key), c.host.get(key)
        if vb != vc:
            out.append(f"{label}: {_show(vb)} → {_show(vc)}")
    if b.plugin_version != c.plugin_version:
        out.append(f"pytest-quantgate version: {b.plugin_version} → {c.plugin_version}")
    if b.server.attached != c.server.attached:
        how = {True: "attached to a running server", False: "booted its server"}
        out.append(
            f"baseline {how[b.server.attached]}, candidate {how[c.server.attached]}: load time and memory "
            "are not measured the same way"
        )
    if b.server.memory_source and c.server.memory_source and b.server.memory_source != c.server.memory_source:
        out.append(
            f"memory measured differently: {b.server.memory_source} → {c.server.memory_source}; the memory rows "
            "compare different quantities"
        )
    tb, tc = _parse_time(b.started_at), _parse_time(c.started_at)
    if tb is not None and tc is not None:
        days = abs((tc - tb).total_seconds()) / 86400
        if days > options.max_age_days:
            out.append(
                f"runs {days:.1f} days apart ({b.started_at} → {c.started_at}), more than {options.max_age_days:g}: "
                "drivers, background load or the machine may have changed; re-run the baseline if speed matters"
            )
    out += _effective_caveats(b, c)
    for role, r in (("baseline", b), ("candidate", c)):
        if not r.complete:
            done = len({s.iteration for s in r.samples})
            planned = f" of {r.iterations_planned} planned" if r.iterations_planned else ""
            out.append(
                f"{role} incomplete (interrupted run {r.run_id}, or read from its result.jsonl): {done} "
                f"iteration(s){planned} recorded; compared as it stands"
            )
    return out


def _draft(draft: dict[str, object] | None) -> str:
    if not draft:
        return "none"
    model = draft.get("model")
    name = f" with {str(model).rsplit('/', 1)[-1]}" if model else ""
    return f"{draft.get('spec_type') or 'draft'}{name}"


def _effective_caveats(b: ResultFile, c: ResultFile) -> list[str]:
    """Speculative drafts, and what the servers really ran with (/props, /slots): between the two runs, and
    against what each preset asked."""
    out: list[str] = []
    if b.preset.draft != c.preset.draft:
        out.append(
            f"speculative draft: {_draft(b.preset.draft)} → {_draft(c.preset.draft)}: decode speed and "
            "draft acceptance differ by design"
        )
    out += effective.differences(b.preset.effective, c.preset.effective, ("baseline", "candidate"))
    for role, r in (("baseline", b), ("candidate", c)):
        out += [f"{role}: {line}" for line in effective.asked_vs_took(r.preset)]
    return out


__all__ = ["provenance_caveats"]
