"""A preset file's strings made values: variables and ``~`` expanded, shell lines split, paths resolved."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_quantgate.credentials import names_a_credential, redact
from pytest_quantgate.errors import PresetError

if TYPE_CHECKING:
    from collections.abc import Callable


def expand(value: str, base: Path | None = None, *, secrets: list[str] | None = None) -> str:
    """Expand ``~``, ``$VAR`` and ``${VAR}``; an unset variable is an error, not an empty string.

    What a variable named like a credential (``*KEY*``, ``*TOKEN*``, ``*SECRET*``, ``*PASSWORD*``) expands to
    is appended to *secrets*, for :func:`redact`.
    """

    def sub(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in os.environ:
            raise PresetError(f"${name} is not set (used in {value!r})")
        found = os.environ[name]
        if secrets is not None and found and names_a_credential(name):
            secrets.append(found)
        return found

    out = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", sub, value)
    if not out.startswith("~"):
        return out
    try:
        return str(Path(out).expanduser())
    except (RuntimeError, ValueError) as exc:  # ~name of a user this machine does not know; a NUL byte
        raise PresetError(f"cannot expand {out.partition('/')[0]!r} in {value!r}: {exc}") from None


def _split(text: str, key: str, shown: str | None = None, *, comments: bool = False) -> list[str]:
    """*text* split like a shell line; an unbalanced quote is an error naming *key* and the value as written
    (*shown*, before expansion: it may hold a credential once expanded)."""
    try:
        return shlex.split(text, comments=comments)
    except ValueError as exc:  # "No closing quotation", "No escaped character"
        written = " ".join(redact((text if shown is None else shown).split()))
        raise PresetError(
            f"{key}: {written!r} cannot be split like a shell line ({exc}); balance its quotes or give a list"
        ) from None


def _path(value: str | None, base: Path | None, x: Callable[[str], str] = expand) -> Path | None:
    if value is None:
        return None
    path = Path(x(value))
    if not path.is_absolute() and base is not None:
        path = base / path
    return path


def _binary(value: str | None, base: Path | None, x: Callable[[str], str] = expand) -> str | None:
    """A binary path; a relative one with a directory part is relative to the preset file, a bare name is
    looked up on PATH later."""
    if value is None:
        return None
    expanded = x(value)
    if "/" in expanded and base is not None and not Path(expanded).is_absolute():
        return str(base / expanded)
    return expanded
