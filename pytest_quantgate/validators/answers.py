"""Short answers: a multiple-choice letter, a number, an exact string.

Each kind has an extractor that never raises (it returns ``None`` when it cannot tell) and an
``assert_*`` helper whose :class:`AssertionError` says what was answered and what was expected.
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import TYPE_CHECKING, Literal

from pytest_quantgate.errors import ValidationError

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "assert_choice",
    "assert_exact",
    "assert_number",
    "extract_choice",
    "extract_number",
    "normalize",
]

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2212": "-"})
_ANSWER_LEAD = (
    r"(?:(?:final|correct|right|best)\s+)?(?:answer|choice|option)s?"
    r"(?:\s++(?:is|would\s+be|will\s+be|should\s+be|must\s+be))?"
)
_LEAD_IN = re.compile(
    r"^\s*(?:(?:so|thus|therefore|hence),?\s+)?(?:the\s+)?(?:(?:final|correct)\s+)?answer\s*(?:is|:|=|-)\s*",
    re.IGNORECASE,
)


def _choice_class(choices: str) -> str:
    if not choices or not all(c.isalpha() for c in choices):
        raise ValidationError(f"choices must be letters such as 'ABCD', got {choices!r}")
    return "[" + re.escape(choices.upper() + choices.lower()) + "]"


def _option_line(letter: str) -> re.Pattern[str]:
    """A line that lists an option: ``A) text``, ``(A) text``, ``A. text``, ``A: text``, bulleted or in bold."""
    return re.compile(rf"(?:[-*+\u2022>]\s*)?[*_`]*(?:\(({letter})\)|({letter})[).:])[*_`]*(\s.*)?")


def _letter_only(letter: str) -> re.Pattern[str]:
    """A line that holds nothing but a letter: ``D``, ``**D**``, ``(D)``, ``D.``, ``D)``."""
    upper = letter.upper()  # a lone lower-case letter is too likely something else
    return re.compile(rf"(?:[-*+\u2022>]\s*)?[*_`]*(?:\(({upper})\)|({upper})[).:]?)[*_`]*")


def _listed_letters(lines: list[str], letter: str) -> list[str]:
    """The letters that ``lines`` list as options (option lines and lines holding only a letter), sorted."""
    option_line, letter_only = _option_line(letter), _letter_only(letter)
    listed = {
        next(group for group in match.groups()[:2] if group).upper()
        for line in lines
        if (match := option_line.fullmatch(line) or letter_only.fullmatch(line))
    }
    return sorted(listed)


def extract_choice(text: str, choices: str = "ABCD") -> str | None:
    """The multiple-choice letter the answer settles on, upper case; ``None`` when none or ambiguous.

    In order of trust: an explicit statement (``The answer is (C)``, ``Answer: C``, ``**Final answer:
    C**``, ``\\boxed{C}``; the last one wins, and ``A or C`` there is ambiguous); a last line that is only
    the letter (``C``, ``**C**``, ``C)``, ``C. Paris``); else letters marked as options anywhere
    (``(C)``, ``**C**``, ``C)``) when they all agree.

    An answer that *lists options* is no answer unless it states one. It lists options when its option
    lines (``A) Boron``, ``(B) Oxygen``, ``C. Nitrogen``, ``D: Carbon``, bulleted or in bold, or a line
    holding only a letter) name two or more letters: an echo of the question, or a walk through the
    options. Then only an explicit statement counts (not a lead-in that heads the list, as in
    ``Options:`` or ``Answer:`` followed by ``A) Boron``), or a last line holding nothing but the letter
    (``D``, ``**D**``, ``(D)``) when no other line holds only a letter. ``B) Oxygen`` alone is an answer.
    """
    letter = _choice_class(choices)
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    option_line, letter_only = _option_line(letter), _letter_only(letter)
    alone = [line for line in lines if letter_only.fullmatch(line)]
    lists_options = len(_listed_letters(lines, letter)) >= 2

    after = r"(?![A-Za-z0-9])"
    # One possessive run of marks between lead-in and letter: overlapping runs (\s* then [\s*]* ...) would
    # backtrack in cubic time on a long run of spaces.
    explicit = re.compile(
        rf"(?:{_ANSWER_LEAD}|\\boxed\{{(?:\s*+\\text\{{)?)[\s*_`\"'(\[{{:=\-]*+({letter}){after}", re.IGNORECASE
    )
    # A lower-case letter counts only when nothing follows it: "the answer is a bit tricky" is prose.
    nothing_after = re.compile(r"[\s*_`'\").\]]*+(?:$|\n)")
    found = [
        m
        for m in explicit.finditer(text)
        if (m.group(1).isupper() or nothing_after.match(text, m.end()))
        and not (lists_options and _heads_an_option_line(text, m.start(1), option_line))
    ]
    if found:
        last = found[-1]
        tail = text[last.end() : last.end() + 30]
        if re.match(rf"[\s*_)\]}}.]*(?:,|/|&|\bor\b|\band\b)\s*[(*]*{letter}{after}", tail, re.IGNORECASE):
            return None  # "the answer is A or C"
        return last.group(1).upper()

    if lists_options:
        # Options listed, none stated: only a lone letter on the last line settles it ("...\n\nD").
        lone = letter_only.fullmatch(lines[-1])
        return next(group for group in lone.groups() if group) if lone and len(alone) == 1 else None

    if lines:
        bullet = r"(?:[-*+\u2022>]\s+)?"
        final = re.fullmatch(rf"{bullet}[*_`(\[]*({letter})[*_`)\].:]*(?:\s+.{{0,80}})?", lines[-1])
        set_off = len(lines[-1]) <= 3 or re.match(rf"{bullet}[*_`(\[]*{letter}[*_`)\].:]", lines[-1])
        # "A) Rome B) Paris" lists options rather than picking one.
        lists_more = final and re.search(rf"(?<![\w(])\(?{letter}[).](?=\s|$)", lines[-1][final.end(1) :])
        if final and set_off and not lists_more and final.group(1).isupper():
            return final.group(1)

    # Letters set off as options: "(C)", "**C**", "C)", or "C." at a line start. A bare "A" is an article.
    marked = re.findall(
        rf"(?:\(({letter})\)|\*\*({letter})\*\*|^\s*({letter})[).:](?=\s|$)|(?<![\w(])({letter})\)(?=\s|$))",
        text,
        re.MULTILINE,
    )
    letters = {next(group for group in groups if group) for groups in marked}
    letters = {c for c in letters if c.isupper()}
    return letters.pop() if len(letters) == 1 else None


def _heads_an_option_line(text: str, position: int, option_line: re.Pattern[str]) -> bool:
    """Whether the letter at ``position`` begins a line that lists an option with its text (``A) Boron``)."""
    start = text.rfind("\n", 0, position) + 1
    end = text.find("\n", position)
    line = text[start : end if end >= 0 else len(text)].strip()
    match = option_line.fullmatch(line)
    has_text = match is not None and bool((match.group(3) or "").strip())
    return has_text and re.fullmatch(r"[-*+\u2022>\s_`(]*", text[start:position]) is not None


def assert_choice(text: str, expected: str, choices: str = "ABCD") -> None:
    """Assert the answer picks ``expected`` (see :func:`extract_choice`)."""
    __tracebackhide__ = True
    expected = expected.strip().upper()
    if len(expected) != 1 or expected not in choices.upper():
        raise ValidationError(f"expected choice {expected!r} is not one of {choices!r}; fix the level")
    got = extract_choice(text, choices)
    if got is None:
        ending = text.strip()[-80:]
        normalized = unicodedata.normalize("NFKC", text).translate(_QUOTES)
        listed = _listed_letters([line.strip() for line in normalized.splitlines()], _choice_class(choices))
        why = f"; it lists options {', '.join(listed)} without stating one" if len(listed) >= 2 else ""
        raise AssertionError(
            f"no single answer among {choices} found (expected {expected}){why}; answer ends: {ending!r}"
        )
    if got != expected:
        raise AssertionError(f"answered {got}, expected {expected}")


_NUMBER = re.compile(
    r"""
    \\frac\{\s*(?P<fnum>-?\d+)\s*\}\{\s*(?P<fden>\d+)\s*\}
    | (?<![\d/.])(?P<num>[-+]?\d+)\s*/\s*(?P<den>\d+)(?![\d/]|\.\d)
    | (?<![\w.])(?P<sign>[-+])?\$?(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?P<frac>\.\d+)?(?P<exp>[eE][-+]?\d+)?
    | (?<![\w.])(?P<sign2>[-+])?\$?(?P<bare>\.\d+)
    """,
    re.VERBOSE,
)
_EXPLICIT_NUMBER = re.compile(
    r"\\boxed\{(?P<boxed>[^{}]*(?:\{[^{}]*\}[^{}]*)*)\}|####\s*(?P<hash>[^\n]+)"
    r"|(?:final\s+)?answer\s*(?:is|:|=)\s*(?P<said>[^\n]{0,60})",
    re.IGNORECASE,
)


def _numbers(text: str) -> list[float]:
    values = []
    for match in _NUMBER.finditer(text):
        try:
            if match["fnum"] is not None:
                value = int(match["fnum"]) / int(match["fden"])
            elif match["num"] is not None:
                value = int(match["num"]) / int(match["den"])
            elif match["bare"] is not None:
                value = float(match["bare"]) * (-1 if match["sign2"] == "-" else 1)
            else:
                digits = match["int"].replace(",", "") + (match["frac"] or "") + (match["exp"] or "")
                value = float(digits) * (-1 if match["sign"] == "-" else 1)
        except (ZeroDivisionError, OverflowError, ValueError):
            continue
        if math.isfinite(value):
            values.append(value)
    return values


def extract_number(
    text: str, *, which: Literal["last", "first"] = "last", prefer_explicit: bool = True
) -> float | None:
    """The number the answer gives, or ``None`` if it has none.

    Understands ``-3``, ``1,234.5``, ``1.5e3``, ``$12``, ``3/4``, ``\\frac{3}{4}`` and the Unicode minus.
    With ``prefer_explicit`` a number marked as the answer (``\\boxed{42}``, ``#### 42``, ``answer: 42``;
    the last such mark) wins; otherwise ``which`` number of the text (the last by default).
    """
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    if prefer_explicit:
        for match in reversed(list(_EXPLICIT_NUMBER.finditer(text))):
            marked = _numbers(match["boxed"] or match["hash"] or match["said"] or "")
            if marked:
                return marked[0]
    values = _numbers(text)
    if not values:
        return None
    return values[-1] if which == "last" else values[0]


def assert_number(
    text: str,
    expected: float,
    *,
    rel_tol: float = 1e-9,
    abs_tol: float = 0.0,
    which: Literal["last", "first"] = "last",
    prefer_explicit: bool = True,
) -> None:
    """Assert the answer's number (see :func:`extract_number`) is ``expected`` within the tolerances."""
    __tracebackhide__ = True
    got = extract_number(text, which=which, prefer_explicit=prefer_explicit)
    if got is None:
        raise AssertionError(f"no number found in the answer (expected {expected:g}): {text.strip()[-80:]!r}")
    if not math.isclose(got, expected, rel_tol=rel_tol, abs_tol=abs_tol):
        raise AssertionError(f"answered {got:g}, expected {expected:g} (rel_tol={rel_tol:g}, abs_tol={abs_tol:g})")


def normalize(text: str) -> str:
    """Text for exact comparison: NFKC, case-folded, surrounding quotes/backticks/emphasis and punctuation
    between words dropped, whitespace collapsed. Punctuation inside a token stays (``3.14``, ``don't``)."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES).casefold()
    tokens = re.findall(r"\w+(?:[.,'\-/:+]\w+)*", text)
    return " ".join(tokens)


def assert_exact(text: str, expected: str | Sequence[str], *, strip_lead_in: bool = True) -> None:
    """Assert the answer equals ``expected`` (or one of several) after :func:`normalize`.

    With ``strip_lead_in`` an opening "The answer is" / "Answer:" is ignored, so that ``Answer: Paris.``
    matches ``paris``.
    """
    __tracebackhide__ = True
    accepted = [expected] if isinstance(expected, str) else list(expected)
    if not accepted:
        raise ValidationError("assert_exact needs at least one expected answer")
    answer = text.strip()
    if strip_lead_in:
        answer = _LEAD_IN.sub("", answer, count=1)
    got = normalize(answer)
    if got in {normalize(option) for option in accepted}:
        return
    shown = " or ".join(repr(option) for option in accepted[:5])
    raise AssertionError(f"answered {text.strip()[:80]!r}, expected {shown} (compared as {got[:80]!r})")
