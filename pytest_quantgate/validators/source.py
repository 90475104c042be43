"""Look at the candidate's source with :mod:`ast`: classes, methods, calls, imports, references.

:func:`inspect_source` returns a :class:`SourceInfo`; the ``assert_*`` helpers take either source text or
a :class:`SourceInfo` and raise :class:`AssertionError` messages that say what was found instead. Nothing
here runs the code.

Called names are *dotted* (``heapq.heappush``, ``self._items.append``, ``super().__init__``) and resolved
through the module's imports, so ``from heapq import heappush as push; push(h, 1)`` counts as a call of
``heapq.heappush``. Matching accepts the full name or its tail: ``"heappush"`` matches ``heapq.heappush``.
"""

from __future__ import annotations

import ast
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = [
    "ClassInfo",
    "FunctionInfo",
    "SourceInfo",
    "UnparsableCode",
    "assert_calls",
    "assert_defines_class",
    "assert_defines_function",
    "assert_imports",
    "assert_not_calls",
    "assert_not_imports",
    "assert_uses",
    "inspect_source",
]


class UnparsableCode(AssertionError):
    """The candidate's code is not valid Python (a wrong answer, so an :class:`AssertionError`)."""


@dataclass(frozen=True, slots=True)
class FunctionInfo:
    """A function or method: its parameters, decorators, and the dotted names it calls and references."""

    name: str
    args: tuple[str, ...]
    decorators: tuple[str, ...]
    calls: frozenset[str]
    references: frozenset[str]
    is_async: bool
    line: int


@dataclass(frozen=True, slots=True)
class ClassInfo:
    """A class: its bases, methods, decorators, and what its whole body calls and references."""

    name: str
    bases: tuple[str, ...]
    methods: dict[str, FunctionInfo]
    decorators: tuple[str, ...]
    calls: frozenset[str]
    references: frozenset[str]
    line: int


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What a module defines and uses. ``classes``/``functions`` hold top-level definitions only."""

    classes: dict[str, ClassInfo]
    functions: dict[str, FunctionInfo]
    calls: frozenset[str]
    imports: frozenset[str]
    references: frozenset[str]
    aliases: dict[str, str] = field(default_factory=dict)


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return f"{_dotted(node.func)}()"
    if isinstance(node, ast.Subscript):
        return f"{_dotted(node.value)}[]"
    return "?"


def _resolve(name: str, aliases: dict[str, str]) -> str:
    head, dot, rest = name.partition(".")
    target = aliases.get(head)
    return f"{target}{dot}{rest}" if target else name


def _calls_and_references(nodes: Iterable[ast.AST], aliases: dict[str, str]) -> tuple[frozenset[str], frozenset[str]]:
    calls: set[str] = set()
    references: set[str] = set()
    for root in nodes:
        for node in ast.walk(root):
            if isinstance(node, ast.Call):
                raw = _dotted(node.func)
                calls.update({raw, _resolve(raw, aliases)})
            elif isinstance(node, ast.Name):
                references.update({node.id, _resolve(node.id, aliases)})
            elif isinstance(node, ast.Attribute):
                raw = _dotted(node)
                references.update({node.attr, raw, _resolve(raw, aliases)})
    return frozenset(calls), frozenset(references)


def _decorators(
    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, aliases: dict[str, str]
) -> tuple[str, ...]:
    return tuple(_resolve(_dotted(d.func if isinstance(d, ast.Call) else d), aliases) for d in node.decorator_list)


def _function(node: ast.FunctionDef | ast.AsyncFunctionDef, aliases: dict[str, str]) -> FunctionInfo:
    arguments = node.args
    args = [a.arg for a in (*arguments.posonlyargs, *arguments.args)]
    if arguments.vararg:
        args.append("*" + arguments.vararg.arg)
    args += [a.arg for a in arguments.kwonlyargs]
    if arguments.kwarg:
        args.append("**" + arguments.kwarg.arg)
    calls, references = _calls_and_references([node], aliases)
    return FunctionInfo(
        name=node.name,
        args=tuple(args),
        decorators=_decorators(node, aliases),
        calls=calls,
        references=references,
        is_async=isinstance(node, ast.AsyncFunctionDef),
        line=node.lineno,
    )


def _class(node: ast.ClassDef, aliases: dict[str, str]) -> ClassInfo:
    methods = {
        item.name: _function(item, aliases)
        for item in node.body
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    calls, references = _calls_and_references([node], aliases)
    return ClassInfo(
        name=node.name,
        bases=tuple(_resolve(_dotted(base), aliases) for base in node.bases),
        methods=methods,
        decorators=_decorators(node, aliases),
        calls=calls,
        references=references,
        line=node.lineno,
    )


def inspect_source(code: str) -> SourceInfo:
    """Parse ``code`` and describe it; raise :class:`UnparsableCode` when it is not valid Python."""
    __tracebackhide__ = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences and the like: not our concern
            tree = ast.parse(code)
    except SyntaxError as exc:
        raise UnparsableCode(f"the code does not parse: {exc.msg} at line {exc.lineno}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise UnparsableCode(f"the code does not parse: {exc}") from None
    aliases: dict[str, str] = {}
    imports: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                imports.add(alias.name)
                local = alias.asname or alias.name.split(".", 1)[0]
                aliases[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            imports.add(module)
            for alias in node.names:
                full = f"{module}.{alias.name}" if module and not module.endswith(".") else module + alias.name
                imports.add(full)
                aliases[alias.asname or alias.name] = full
    classes = {node.name: _class(node, aliases) for node in tree.body if isinstance(node, ast.ClassDef)}
    functions = {
        node.name: _function(node, aliases)
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    calls, references = _calls_and_references([tree], aliases)
    return SourceInfo(classes, functions, calls, frozenset(imports), references, aliases)


def _info(code: str | SourceInfo) -> SourceInfo:
    return code if isinstance(code, SourceInfo) else inspect_source(code)


def _matches(wanted: str, names: Iterable[str]) -> bool:
    return any(name == wanted or name.endswith("." + wanted) for name in names)


def _listing(names: Iterable[str], limit: int = 12) -> str:
    shown = sorted(names)
    if not shown:
        return "none"
    more = f", ... ({len(shown) - limit} more)" if len(shown) > limit else ""
    return ", ".join(shown[:limit]) + more


def _all_methods(info: SourceInfo, cls: ClassInfo, seen: frozenset[str] = frozenset()) -> dict[str, FunctionInfo]:
    """Methods of ``cls`` including those inherited from classes defined in the same source."""
    methods: dict[str, FunctionInfo] = {}
    for base in cls.bases:
        parent = info.classes.get(base.rsplit(".", 1)[-1])
        if parent is not None and parent.name not in seen:
            methods.update(_all_methods(info, parent, seen | {cls.name}))
    methods.update(cls.methods)
    return methods


def assert_defines_class(
    code: str | SourceInfo, name: str, *, methods: Sequence[str] = (), bases: Sequence[str] = ()
) -> ClassInfo:
    """Assert a top-level class ``name`` exists, with ``methods`` (own or inherited) and ``bases``."""
    __tracebackhide__ = True
    info = _info(code)
    cls = info.classes.get(name)
    if cls is None:
        raise AssertionError(f"class {name!r} is not defined; classes defined: {_listing(info.classes)}")
    available = _all_methods(info, cls)
    missing = [method for method in methods if method not in available]
    if missing:
        raise AssertionError(
            f"class {name!r} lacks method(s) {', '.join(map(repr, missing))}; it has: {_listing(available)}"
        )
    missing_bases = [base for base in bases if not _matches(base, cls.bases)]
    if missing_bases:
        raise AssertionError(
            f"class {name!r} does not derive from {', '.join(map(repr, missing_bases))}; "
            f"its bases: {_listing(cls.bases)}"
        )
    return cls


def assert_defines_function(code: str | SourceInfo, name: str, *, args: Sequence[str] | None = None) -> FunctionInfo:
    """Assert a top-level function ``name`` exists; with ``args``, that its parameters are exactly those."""
    __tracebackhide__ = True
    info = _info(code)
    function = info.functions.get(name)
    if function is None:
        raise AssertionError(f"function {name!r} is not defined; functions defined: {_listing(info.functions)}")
    if args is not None and tuple(args) != function.args:
        raise AssertionError(f"function {name!r} takes ({', '.join(function.args)}), expected ({', '.join(args)})")
    return function


def _scope(info: SourceInfo, within: str | None) -> tuple[str, frozenset[str], frozenset[str]]:
    """(description, calls, references) of the module, a class, a function or ``Class.method``."""
    if within is None:
        return "the code", info.calls, info.references
    owner, _, member = within.partition(".")
    if member:
        cls = info.classes.get(owner)
        method = _all_methods(info, cls).get(member) if cls else None
        if method is None:
            raise AssertionError(f"method {within!r} is not defined")
        return f"{within}()", method.calls, method.references
    if within in info.classes:
        cls = info.classes[within]
        return f"class {within!r}", cls.calls, cls.references
    if within in info.functions:
        function = info.functions[within]
        return f"{within}()", function.calls, function.references
    raise AssertionError(
        f"{within!r} is neither a class nor a function of the code; "
        f"classes: {_listing(info.classes)}; functions: {_listing(info.functions)}"
    )


def assert_calls(code: str | SourceInfo, name: str, *, within: str | None = None) -> None:
    """Assert the code (or ``within``: a class, function or ``Class.method``) calls ``name``."""
    __tracebackhide__ = True
    where, calls, _ = _scope(_info(code), within)
    if not _matches(name, calls):
        raise AssertionError(f"{where} does not call {name!r}; it calls: {_listing(calls)}")


def assert_not_calls(code: str | SourceInfo, name: str, *, within: str | None = None) -> None:
    """Assert the code (or ``within``) never calls ``name`` (e.g. a level that forbids ``sorted``)."""
    __tracebackhide__ = True
    where, calls, _ = _scope(_info(code), within)
    found = sorted(call for call in calls if call == name or call.endswith("." + name))
    if found:
        raise AssertionError(f"{where} calls {name!r} ({', '.join(found)}), which the level forbids")


def assert_imports(code: str | SourceInfo, module: str) -> None:
    """Assert the code imports ``module`` (``import m``, ``import m.sub``, ``from m import x``)."""
    __tracebackhide__ = True
    imports = _info(code).imports
    if not any(name == module or name.startswith(module + ".") for name in imports):
        raise AssertionError(f"the code does not import {module!r}; it imports: {_listing(imports)}")


def assert_not_imports(code: str | SourceInfo, module: str) -> None:
    """Assert the code does not import ``module`` or anything under it."""
    __tracebackhide__ = True
    found = sorted(name for name in _info(code).imports if name == module or name.startswith(module + "."))
    if found:
        raise AssertionError(f"the code imports {', '.join(found)}, which the level forbids")


def assert_uses(code: str | SourceInfo, class_name: str, other_name: str) -> None:
    """Assert the source of class ``class_name`` references ``other_name`` (a base, call, name, attribute)."""
    __tracebackhide__ = True
    info = _info(code)
    cls = info.classes.get(class_name)
    if cls is None:
        raise AssertionError(f"class {class_name!r} is not defined; classes defined: {_listing(info.classes)}")
    if not _matches(other_name, cls.references) and not _matches(other_name, cls.bases):
        raise AssertionError(
            f"class {class_name!r} does not reference {other_name!r}; it references: "
            f"{_listing(name for name in cls.references if '.' not in name)}"
        )
