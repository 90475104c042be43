"""Which chat template a server applies, kept with the run: ``<run>/<preset>/chat-template.json``.

A chat request is only as good as the template that renders it: a GGUF without one falls back to chatml,
``--no-jinja`` selects another renderer, and a wrong one silently hurts every chat answer. After a server
starts, llama-server's ``/props`` (the template's source) and ``/apply-template`` (a fixed example
conversation, rendered) are written to that file, so a user can check what the model saw. Servers that
have neither endpoint are left alone: the file is then not written.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from pathlib import Path

FILE = "chat-template.json"
TIMEOUT_S = 5.0  # both answers come without inference; a server that is slower here is not waited for
EXAMPLE = [
    {"role": "system", "content": "You are a careful assistant."},
    {"role": "user", "content": "What is 2 + 3?"},
]


def record_chat_template(base_url: str, directory: Path, *, api_key: str | None = None) -> Path | None:
    """Write what the server at *base_url* says about its chat template to ``directory/chat-template.json``
    (once per run and preset: an existing file is kept). Returns the file, or None when the server does not
    say (not a llama-server, or an error): recording it must never fail a run."""
    path = directory / FILE
    if path.exists():
        return path
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with httpx.Client(base_url=base_url, headers=headers, timeout=TIMEOUT_S) as http:
            props = http.get("/props")
            if props.status_code != 200 or not _is_object(props):
                return None  # not a llama-server: it is sent nothing else
            rendered = http.post("/apply-template", json={"messages": EXAMPLE})
    except httpx.HTTPError:
        return None
    template = props.json().get("chat_template")
    example = rendered.json().get("prompt") if rendered.status_code == 200 and _is_object(rendered) else None
    record: dict[str, Any] = {
        "chat_template_sha256": hashlib.sha256(template.encode()).hexdigest() if isinstance(template, str) else None,
        "chat_template": template,
        "example_messages": EXAMPLE,
        "example_rendered": example,
        "model_path": props.json().get("model_path"),
        "build_info": props.json().get("build_info"),
    }
    partial = path.with_name(f".{FILE}.{os.getpid()}.partial")  # xdist workers may write at once
    try:
        directory.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(record, indent=1, ensure_ascii=False), encoding="utf-8")
        partial.replace(path)
    except OSError:
        return None
    return path


def _is_object(response: httpx.Response) -> bool:
    try:
        return isinstance(response.json(), dict)
    except ValueError:
        return False
