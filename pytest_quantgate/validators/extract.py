"""Pull the code out of a model's answer: fenced blocks, several of them, or code with no fences at all.

:func:`extract_code` is the one entry point. It raises :class:`NoCodeFound` (an :class:`AssertionError`,
so a level that got no code is a miss, not an error) with a reason that says what it saw instead, and it
never raises anything else, whatever the text.
"""

from __future__ import annotations

import ast
import re
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["CodeBlock", "NoCodeFound", "extract_code", "find_code_blocks"]

NoCodeKind = Literal["empty", "no-code", "wrong-language", "reasoning-only", "missing-names"]

# Info-string words that name the same language; the first of each tuple is the canonical name.
_ALIASES: tuple[tuple[str, ...], ...] = (
    ("python", "py", "python3", "py3", "ipython", "pycon", "python-repl", "sage"),
    ("javascript", "js", "node", "nodejs", "jsx", "mjs", "cjs"),
    ("typescript", "ts", "tsx"),
    ("bash", "sh", "shell", "zsh", "console", "shell-session"),
    ("c++", "cpp", "cxx", "cc", "hpp"),
    ("c#", "csharp", "cs"),
    ("rust", "rs"),
    ("go", "golang"),
    ("kotlin", "kt"),
    ("ruby", "rb"),
    ("yaml", "yml"),
    ("markdown", "md"),
    ("text", "txt", "plaintext", "plain"),
)
_CANONICAL = {alias: names[0] for names in _ALIASES for alias in names}

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_DEFINES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
# Statements that show a parsed text is code, not a stray word that happens to be a valid expression.
_CODE_NODES = (
    *_DEFINES,
    ast.Import,
    ast.ImportFrom,
    ast.Assign,
    ast.AugAssign,
    ast.AnnAssign,
    ast.For,
    ast.While,
    ast.If,
    ast.With,
    ast.Try,
    ast.Return,
    ast.Assert,
    ast.Raise,
)
_PY_LINE = re.compile(
    r"""^\s*(
        (async\s+)?def\s+\w+\s*\( | class\s+\w+\s*[(:] | import\s+[\w.]+ | from\s+[\w.]+\s+import\s |
        @[\w.]+ | return\b | yield\b | raise\b | (el)?if\s.*:\s*$ | else\s*:\s*$ | for\s.+\sin\s.+:\s*$ |
        while\s.+:\s*$ | with\s.+:\s*$ | try\s*:\s*$ | except\b.*:\s*$ | finally\s*:\s*$ | pass\s*$ |
        [A-Za-z_][\w.\[\]'"]*\s*(:[^=]+)?[+\-*/%|&]?=[^=] | [A-Za-z_][\w.]*\(.*\)\s*$ | \#
    )""",
    re.VERBOSE,
)
_C_LIKE_LINE = re.compile(
    r"""^\s*(\#include\b | (function|const|let|var|fn|func|pub|public|private|package|import|using)\b |
        .*[;{}]\s*$ | //)""",
    re.VERBOSE,
)
_PARSE_ERRORS = (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError)
# Longer lines are not taken for code by the line heuristics, whose patterns would cost quadratic time.
_MAX_HEURISTIC_LINE = 400
_MAX_TRIMS = 20


class NoCodeFound(AssertionError):
    """The answer holds no usable code; ``kind`` says which case and the message says what was seen.

    ``kind`` is one of ``empty``, ``no-code``, ``wrong-language``, ``reasoning-only``, ``missing-names``.
    """

    def __init__(self, message: str, kind: NoCodeKind) -> None:
        super().__init__(message)
        self.kind: NoCodeKind = kind


@dataclass(frozen=True, slots=True)
class CodeBlock:
    """One fenced block: its canonical language ("" when untagged), body, and whether its fence closed."""

    language: str
    code: str
    closed: bool
    line: int


def _canonical(info: str) -> str:
    word = info.strip().split(maxsplit=1)[0] if info.strip() else ""
    # Tags like ```python title="x.py" or ```{python} or ```py:solution.py
    word = word.strip("{}.").split(":", 1)[0].split(",", 1)[0].lower()
    return _CANONICAL.get(word, word)


def _dedent_by(line: str, indent: str) -> str:
    return line[len(indent) :] if line.startswith(indent) else line.lstrip(" \t")


def find_code_blocks(text: str) -> list[CodeBlock]:
    """Every fenced block in ``text`` (``` or ~~~, any indentation); an unclosed one runs to the end."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    blocks: list[CodeBlock] = []
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if match is None or (match["fence"][0] == "`" and "`" in match["info"]):
            index += 1
            continue
        indent, fence, start = match["indent"], match["fence"], index
        body: list[str] = []
        index += 1
        closed = False
        while index < len(lines):
            line = lines[index]
            stripped = line.strip()
            if stripped.startswith(fence[0] * len(fence)) and not stripped.strip(fence[0]):
                closed = True
                index += 1
                break
            body.append(_dedent_by(line, indent))
            index += 1
        blocks.append(CodeBlock(_canonical(match["info"]), "\n".join(body).strip("\n"), closed, start + 1))
    return blocks


def _parse(code: str) -> ast.Module | None:
    try:
        with warnings.catch_warnings():
            # Model code is full of invalid escape sequences; they are not our concern here.
            warnings.simplefilter("ignore")
            return ast.parse(code)
    except _PARSE_ERRORS:
        return None


def _looks_like_code(tree: ast.Module) -> bool:
    return any(isinstance(node, _CODE_NODES) for node in tree.body) or any(
        isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) for node in tree.body
    )


def _from_doctest(code: str) -> str:
    """Source lines of a ``>>>`` session, prompts removed (``pycon`` blocks)."""
    kept = [line[4:] for line in code.split("\n") if line.startswith((">>> ", "... ")) or line in (">>>", "...")]
    return "\n".join(kept)


def _defined_names(code: str, language: str) -> set[str]:
    if language == "python":
        tree = _parse(code)
        if tree is not None:
            names: set[str] = set()
            for node in tree.body:
                if isinstance(node, _DEFINES):
                    names.add(node.name)
                elif isinstance(node, ast.Assign):
                    names.update(t.id for t in node.targets if isinstance(t, ast.Name))
                elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                    names.add(node.target.id)
            return names
    pattern = r"\b(?:def|class|function|fn|func|struct|interface|type|const|let|var)\s+([A-Za-z_]\w*)"
    return set(re.findall(pattern, code))


def _python_ok(code: str) -> bool:
    tree = _parse(code)
    return tree is not None and _looks_like_code(tree)


def _import_lines(code: str) -> list[str]:
    tree = _parse(code)
    if tree is None:
        return []
    lines = code.split("\n")
    found = []
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom) and node.end_lineno is not None:
            found.append("\n".join(lines[node.lineno - 1 : node.end_lineno]))
    return found


def _choose(blocks: list[CodeBlock], language: str, names: Sequence[str]) -> str:
    codes = [block.code for block in blocks]
    if names:
        chosen: dict[int, None] = {}
        missing = []
        for name in names:
            defining = [i for i, code in enumerate(codes) if name in _defined_names(code, language)]
            if defining:
                chosen[defining[-1]] = None  # the last definition: models put revisions after drafts
            else:
                missing.append(name)
        if not chosen:
            what = ", ".join(repr(name) for name in missing)
            raise NoCodeFound(f"found {len(codes)} {language} block(s), but none defines {what}", "missing-names")
        selected = [codes[i] for i in sorted(chosen)]
        if language == "python":
            # Blocks left out may hold the imports the chosen ones rely on.
            present = set("\n".join(selected).split("\n"))
            extra = [
                line
                for i, code in enumerate(codes)
                if i not in chosen
                for line in _import_lines(code)
                if line not in present
            ]
            selected = ["\n".join(dict.fromkeys(extra)), *selected] if extra else selected
        return "\n\n".join(selected)
    if len(codes) == 1:
        return codes[0]
    if language == "python":
        parsing = [code for code in codes if _parse(code) is not None]
        codes = parsing or codes
    # Several blocks and no names: the longest is most often the solution (the rest: usage, tests).
    return max(codes, key=len)


def _unfenced_python(text: str) -> str | None:
    """Code from an answer without fences: the whole text, else the longest run of code-like lines."""
    stripped = text.strip("\n")
    if _python_ok(stripped):
        return stripped
    lines = text.split("\n")
    runs: list[tuple[int, int]] = []
    start: int | None = None
    for i, line in enumerate(lines):
        continuation = start is not None and (line[:1] in (" ", "\t") or not line.strip())
        if (len(line) <= _MAX_HEURISTIC_LINE and _PY_LINE.match(line)) or continuation:
            start = i if start is None else start
        elif start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(lines)))
    for first, end in sorted(runs, key=lambda run: run[0] - run[1]):
        chunk = lines[first:end]
        for _ in range(min(_MAX_TRIMS, len(chunk))):
            code = "\n".join(chunk).strip("\n")
            tree = _parse(code)
            if tree is not None and _looks_like_code(tree) and (len(tree.body) > 1 or _has_block(tree)):
                return code
            chunk = chunk[:-1]
    return None


def _has_block(tree: ast.Module) -> bool:
    return any(isinstance(node, (*_DEFINES, ast.For, ast.While, ast.If, ast.With, ast.Try)) for node in tree.body)


def _unfenced_other(text: str) -> str | None:
    best: list[str] = []
    run: list[str] = []
    for line in [*text.split("\n"), ""]:
        code_like = len(line) <= _MAX_HEURISTIC_LINE and _C_LIKE_LINE.match(line)
        if code_like or (run and line[:1] in (" ", "\t") and line.strip()):
            run.append(line)
            continue
        if len(run) > len(best):
            best = run
        run = []
    return "\n".join(best) if len(best) >= 2 else None


def _extract(text: str, language: str, names: Sequence[str]) -> str:
    """Code in ``language`` from ``text``, or :class:`NoCodeFound` saying why not."""
    if not text.strip():
        raise NoCodeFound("the answer is empty", "empty")
    blocks = find_code_blocks(text)
    if language == "python":
        blocks = [
            CodeBlock(b.language, _from_doctest(b.code), b.closed, b.line) if b.code.lstrip().startswith(">>>") else b
            for b in blocks
        ]
    tagged = [b for b in blocks if b.language == language and b.code.strip()]
    untagged = [b for b in blocks if b.language == "" and b.code.strip()]
    if language == "python":
        untagged = [b for b in untagged if _python_ok(b.code)]
    candidates = tagged or untagged
    if candidates:
        return _choose(candidates, language, names)
    others = sorted({b.language for b in blocks if b.language and b.code.strip()})
    if others:
        seen = ", ".join(f"```{lang}" for lang in others)
        raise NoCodeFound(f"found a {seen} block but no {language}", "wrong-language")
    if blocks:
        raise NoCodeFound(f"the answer's code blocks are empty or not {language}", "no-code")
    code = _unfenced_python(text) if language == "python" else _unfenced_other(text)
    if code is None:
        raise NoCodeFound(f"the answer has no {language} code (no fenced block, no code-like lines)", "no-code")
    if names:
        return _choose([CodeBlock(language, code, True, 1)], language, names)
    return code


def extract_code(
    answer: str,
    *,
    language: str = "python",
    names: Sequence[str] = (),
    reasoning: str | None = None,
    use_reasoning: bool = False,
) -> str:
    """The ``language`` code in ``answer``, ending with a newline.

    * Fenced blocks (``` or ~~~, tagged or not, CRLF or LF, indented in lists, unterminated when the
      answer was cut off) are preferred; blocks tagged with ``language`` beat untagged ones.
    * With several blocks: given ``names``, the blocks that define them are joined in order (the last
      definition of a name wins, and imports from the other blocks are kept); without names, the longest.
    * With no fences: the whole answer if it parses as Python, else the longest run of code-like lines.
    * ``reasoning`` (the message's ``reasoning_content``) is searched only with ``use_reasoning=True``,
      and only when the answer itself has no code; otherwise the failure message says code sits there.

    Raises :class:`NoCodeFound` (an ``AssertionError``) and nothing else.
    """
    __tracebackhide__ = True
    language = _CANONICAL.get(language.lower(), language.lower())
    try:
        code = _extract(answer, language, names)
    except NoCodeFound as exc:
        if not reasoning or not reasoning.strip():
            raise
        try:
            found = _extract(reasoning, language, names)
        except NoCodeFound:
            if use_reasoning:
                raise NoCodeFound(f"{exc}; the reasoning has no {language} code either", exc.kind) from None
            raise exc from None
        if not use_reasoning:
            raise NoCodeFound(
                f"{exc}; the reasoning_content has {language} code, but use_reasoning=False leaves it out",
                "reasoning-only",
            ) from None
        code = found
    return code.rstrip() + "\n"
