"""Constraints on prose answers: paragraphs, Markdown, length, phrases, openings and endings, JSON.

:func:`check_text` returns every violation as a short string; :func:`assert_text` raises one
:class:`AssertionError` that lists them all, e.g.::

    3 problems: 4 paragraphs (expected exactly 3); bullet list at line 5; banned phrase 'delve' at word 42

Phrase matching is forgiving of how models write the same words: case, curly quotes and apostrophes,
hyphen or space (``game-changer`` = ``game changer``), and a plural ``-s``/``-es`` on the last word
(``delve`` matches ``delves``).
"""

from __future__ import annotations

import bisect
import json
import re
import unicodedata
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import pydantic

from pytest_quantgate.errors import ValidationError
from pytest_quantgate.validators.extract import find_code_blocks

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["TextRules", "assert_text", "check_text", "count_words", "find_phrase", "paragraphs", "parse_json"]

_QUOTES = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u02bc": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2033": '"',
    }
)
# Hyphens and dashes of every kind count as a word gap, like a space.
_DASHES = re.compile(r"[\-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u00ad]")
_WORD = re.compile(r"\w+(?:['\u2019]\w+)*")
_BULLET = re.compile(r"^\s{0,8}[-*+\u2022\u25e6\u25aa\u2023]\s+\S")
_NUMBERED = re.compile(r"^\s{0,8}\d{1,3}[.)]\s+\S")
_HEADER = re.compile(r"^\s{0,3}#{1,6}(\s|$)")
_SETEXT = re.compile(r"^\s{0,3}(=+|-+)\s*$")
# The span is bounded so that a long line full of "**" costs linear, not quadratic, time.
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.{1,300}?)(?<=\S)\1")
_FENCE = re.compile(r"^\s*(```|~~~)")


@dataclass(frozen=True, slots=True)
class TextRules:
    """The constraints :func:`check_text` applies; every field is optional (None/False/empty = no check).

    ``paragraphs`` asks for exactly that many (blocks separated by blank lines). ``banned`` and
    ``required`` are phrases (a single string counts as one phrase). ``json_model`` is a pydantic model
    (or any type pydantic can validate, such as ``list[int]``) the text's JSON must fit.
    """

    paragraphs: int | None = None
    min_paragraphs: int | None = None
    max_paragraphs: int | None = None
    min_words: int | None = None
    max_words: int | None = None
    min_chars: int | None = None
    max_chars: int | None = None
    no_bullets: bool = False
    no_numbered_lists: bool = False
    no_bold: bool = False
    no_headers: bool = False
    banned: Sequence[str] = ()
    required: Sequence[str] = ()
    starts_with: str | None = None
    ends_with: str | None = None
    json_model: Any = None

    def __post_init__(self) -> None:
        for name in ("banned", "required"):
            value = getattr(self, name)
            phrases = (value,) if isinstance(value, str) else tuple(value)
            if not all(isinstance(p, str) and p.strip() for p in phrases):
                raise ValidationError(f"TextRules.{name} must hold non-empty strings, got {value!r}")
            object.__setattr__(self, name, phrases)
        for name in ("paragraphs", "min_paragraphs", "max_paragraphs", "min_words", "max_words"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValidationError(f"TextRules.{name} must be a non-negative integer or None, got {value!r}")

    @classmethod
    def from_kwargs(cls, **rules: Any) -> TextRules:
        """Build from keyword arguments, with a message naming the valid rules when one is unknown."""
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(rules) - valid)
        if unknown:
            raise ValidationError(f"unknown text rule(s) {', '.join(unknown)}; valid rules: {', '.join(sorted(valid))}")
        return cls(**rules)


def _normalize(text: str) -> str:
    """Lower case, straight quotes, dashes as spaces, one space between words (for phrase matching)."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES).lower()
    return re.sub(r"\s+", " ", _DASHES.sub(" ", text))


def _normalize_edges(text: str) -> str:
    """Like :func:`_normalize`, but a dash stays a (plain) dash: "— Bramble" must not match "Bramble"."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES).lower()
    return re.sub(r"\s+", " ", _DASHES.sub("-", text)).strip()


def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    words = _WORD.findall(_normalize(phrase))
    if not words:
        return re.compile(re.escape(_normalize(phrase).strip()))
    parts = [re.escape(word) for word in words]
    parts[-1] += "(?:s|es)?"
    return re.compile(r"(?<!\w)" + r"[\s\"'.,:;!?()]+".join(parts) + r"(?!\w)")


def find_phrase(text: str, phrase: str) -> list[int]:
    """1-based word positions where ``phrase`` occurs in ``text``, matched as described in the module."""
    normalized = _normalize(text)
    starts = [m.start() for m in _WORD.finditer(normalized)]
    return [bisect.bisect_left(starts, m.start()) + 1 for m in _phrase_pattern(phrase).finditer(normalized)]


def count_words(text: str) -> int:
    """Words as a reader counts them: ``don't`` and ``well-known`` are one word each."""
    return len(re.findall(r"\w+(?:['\u2019\-]\w+)*", text))


def paragraphs(text: str) -> list[str]:
    """The text's paragraphs: non-empty blocks separated by blank lines."""
    blocks = re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n").replace("\r", "\n"))
    return [block.strip() for block in blocks if block.strip()]


def _prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, where Markdown marks would be formatting."""
    result = []
    in_fence = False
    for number, line in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), start=1):
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            result.append((number, line))
    return result


def _lines_text(numbers: list[int]) -> str:
    shown = ", ".join(map(str, numbers[:5])) + (", ..." if len(numbers) > 5 else "")
    return f"line{'s' if len(numbers) > 1 else ''} {shown}"


def _json_candidates(text: str) -> list[str]:
    stripped = text.strip()
    candidates = [stripped]
    blocks = [b.code for b in find_code_blocks(text) if b.language in ("json", "jsonc", "")]
    candidates += blocks
    starts = [i for i in (stripped.find("{"), stripped.find("[")) if i >= 0]
    if starts:
        try:
            _, end = json.JSONDecoder().raw_decode(stripped, min(starts))
        except ValueError:
            pass
        else:
            candidates.append(stripped[min(starts) : end])
    return candidates


def parse_json(text: str, model: Any = None) -> Any:
    """The JSON value in ``text`` (bare, in a code fence, or after some prose), validated by ``model``.

    Raises :class:`AssertionError` saying what is wrong: no JSON, invalid JSON (with the position), or the
    fields that do not fit ``model``. Returns the model instance (or the plain value without a model).
    """
    __tracebackhide__ = True
    problem = _json_problem(text, model)
    if isinstance(problem, str):
        raise AssertionError(problem)
    return problem[0]


def _model_name(model: Any) -> str:
    return getattr(model, "__name__", None) or repr(model)


def _json_problem(text: str, model: Any) -> str | tuple[Any]:
    """A violation message, or a 1-tuple holding the parsed (and validated) value."""
    first_error: json.JSONDecodeError | None = None
    value: Any = None
    for candidate in _json_candidates(text):
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError as exc:
            first_error = first_error or exc
            continue
        break
    else:
        if not text.strip():
            return "no JSON: the answer is empty"
        assert first_error is not None
        return f"invalid JSON: {first_error.msg} at line {first_error.lineno} column {first_error.colno}"
    if model is None:
        return (value,)
    try:
        return (pydantic.TypeAdapter(model).validate_python(value),)
    except pydantic.ValidationError as exc:
        details = "; ".join(f"{'.'.join(map(str, err['loc'])) or '(root)'}: {err['msg']}" for err in exc.errors()[:5])
        more = f" (+{exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
        return f"JSON does not fit {_model_name(model)}: {details}{more}"
    except pydantic.PydanticSchemaGenerationError as exc:
        raise ValidationError(f"json_model {model!r} is not a type pydantic can validate: {exc}") from exc


def check_text(text: str, rules: TextRules | None = None, **kwargs: Any) -> list[str]:
    """Every way ``text`` breaks ``rules`` (or the rules given as keywords), in a fixed order; [] if none."""
    if rules is None:
        rules = TextRules.from_kwargs(**kwargs)
    elif kwargs:
        raise ValidationError("pass rules either as a TextRules or as keywords, not both")
    problems: list[str] = []

    count = len(paragraphs(text))
    if rules.paragraphs is not None and count != rules.paragraphs:
        problems.append(f"{count} paragraphs (expected exactly {rules.paragraphs})")
    if rules.min_paragraphs is not None and count < rules.min_paragraphs:
        problems.append(f"{count} paragraphs (expected at least {rules.min_paragraphs})")
    if rules.max_paragraphs is not None and count > rules.max_paragraphs:
        problems.append(f"{count} paragraphs (expected at most {rules.max_paragraphs})")

    lines = _prose_lines(text)
    markdown = (
        (rules.no_bullets, "bullet list", [n for n, line in lines if _BULLET.match(line)]),
        (rules.no_numbered_lists, "numbered list", [n for n, line in lines if _NUMBERED.match(line)]),
        (rules.no_headers, "header", _header_lines(lines)),
        (rules.no_bold, "bold text", [n for n, line in lines if _BOLD.search(line)]),
    )
    for wanted, what, found in markdown:
        if wanted and found:
            problems.append(f"{what} at {_lines_text(found)}")

    words = count_words(text)
    if rules.min_words is not None and words < rules.min_words:
        problems.append(f"{words} words (expected at least {rules.min_words})")
    if rules.max_words is not None and words > rules.max_words:
        problems.append(f"{words} words (expected at most {rules.max_words})")
    chars = len(text.strip())
    if rules.min_chars is not None and chars < rules.min_chars:
        problems.append(f"{chars} characters (expected at least {rules.min_chars})")
    if rules.max_chars is not None and chars > rules.max_chars:
        problems.append(f"{chars} characters (expected at most {rules.max_chars})")

    for phrase in rules.banned:
        positions = find_phrase(text, phrase)
        if positions:
            where = ", ".join(map(str, positions[:5])) + (", ..." if len(positions) > 5 else "")
            problems.append(f"banned phrase {phrase!r} at word{'s' if len(positions) > 1 else ''} {where}")
    for phrase in rules.required:
        if not find_phrase(text, phrase):
            problems.append(f"required phrase {phrase!r} is missing")

    # Openings and endings: case, quotes, dash kinds and spacing are forgiven, the words and marks are not.
    body = _normalize_edges(text).strip(" \"'`*")
    if rules.starts_with is not None and not body.startswith(_normalize_edges(rules.starts_with)):
        problems.append(f"does not start with {rules.starts_with!r} (starts with {text.strip()[:40]!r})")
    if rules.ends_with is not None and not body.endswith(_normalize_edges(rules.ends_with)):
        problems.append(f"does not end with {rules.ends_with!r} (ends with {text.strip()[-40:]!r})")

    if rules.json_model is not None:
        problem = _json_problem(text, rules.json_model)
        if isinstance(problem, str):
            problems.append(problem)
    return problems


def _header_lines(lines: list[tuple[int, str]]) -> list[int]:
    found = [n for n, line in lines if _HEADER.match(line)]
    previous = ""
    for n, line in lines:
        # "Title" over "=====" or "-----" is a header; "---" after a blank line is only a rule.
        if _SETEXT.match(line) and previous.strip() and not _BULLET.match(previous):
            found.append(n - 1)
        previous = line
    return sorted(found)


def assert_text(text: str, rules: TextRules | None = None, **kwargs: Any) -> None:
    """Raise one :class:`AssertionError` listing every rule ``text`` breaks (see :func:`check_text`)."""
    __tracebackhide__ = True
    problems = check_text(text, rules, **kwargs)
    if problems:
        noun = "problem" if len(problems) == 1 else "problems"
        raise AssertionError(f"{len(problems)} {noun}: " + "; ".join(problems))
