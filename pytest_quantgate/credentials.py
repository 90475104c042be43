"""Credentials in a server's argv: kept out of everything quantgate writes or prints."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

REDACTED = "***"
_SECRET_VARIABLE = re.compile(r"KEY|TOKEN|SECRET|PASSW(?:OR)?D", re.IGNORECASE)
_SECRET_FLAG = re.compile(r"--?[a-z0-9-]*(?:key|token|secret|passw(?:or)?d)|-hft", re.IGNORECASE)


def redact(args: Iterable[str], secrets: Iterable[str] = ()) -> list[str]:
    """*args* fit to be written to a file or shown: the value of a flag named like a credential
    (``--api-key``, ``--hf-token``, ``--db-password=...``) and every occurrence of *secrets* (what variables
    named like a credential expanded to, see :func:`pytest_quantgate.presets.expand`) become ``***``.

    Every place that writes or prints an argv or a preset's arguments goes through here.
    """
    hidden = sorted({s for s in secrets if s}, key=len, reverse=True)  # a secret holding another goes first
    out: list[str] = []
    value_of_flag = False
    for arg in args:
        if value_of_flag:
            out.append(REDACTED)
            value_of_flag = False
            continue
        name, eq, _ = arg.partition("=")
        if _SECRET_FLAG.fullmatch(name.replace("_", "-")):
            out.append(f"{name}={REDACTED}" if eq else arg)
            value_of_flag = not eq
            continue
        for secret in hidden:
            arg = arg.replace(secret, REDACTED)
        out.append(arg)
    return out


def names_a_credential(variable: str) -> bool:
    """Whether an environment variable's name says it holds a credential (``*KEY*``, ``*TOKEN*``,
    ``*SECRET*``, ``*PASSWORD*``)."""
    return _SECRET_VARIABLE.search(variable) is not None
