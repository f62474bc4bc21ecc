"""Inline Python expressions of a spec: parsed with `ast` at build time, never at run time.

An expression sees `key`, `value`, `timestamp`, `headers`, the builtins and the modules the spec
lists under `imports`. Parsing here turns a typo into a located spec error, and re-printing the
parsed tree (`ast.unparse`) means whatever reaches the generated file is one well-formed
expression: a newline or a quote in the spec cannot smuggle in a statement.
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass

RECORD_NAMES = ("key", "value", "timestamp", "headers")
# An aggregation's adder and subtractor also see the aggregate so far.
AGG = "agg"
# A join's joiner also sees the other side's value.
OTHER = "other"
# A global table join's lookup key, in its joiner.
OTHER_KEY = "other_key"
_BUILTINS = frozenset(dir(builtins))


class ExpressionError(ValueError):
    """A bad expression; `offset` is the 0-based column inside the expression text, if known."""

    def __init__(self, message: str, offset: int | None = None, hint: str = "") -> None:
        super().__init__(message)
        self.offset = offset
        self.hint = hint


@dataclass(frozen=True)
class Expression:
    source: str
    tree: ast.expr
    # Which of key, value, timestamp, headers the expression reads.
    uses: frozenset[str]

    def render(self, names: dict[str, str]) -> str:
        """The expression as code, with record names replaced (e.g. value -> v1)."""
        tree = _Rename(names).visit(ast.parse(ast.unparse(self.tree), mode="eval")).body
        return ast.unparse(tree)


class _Rename(ast.NodeTransformer):
    def __init__(self, names: dict[str, str]) -> None:
        self.names = names

    def visit_Name(self, node: ast.Name) -> ast.Name:
        if node.id in self.names:
            return ast.copy_location(ast.Name(id=self.names[node.id], ctx=node.ctx), node)
        return node


def _bound_names(tree: ast.AST) -> set[str]:
    """Names an expression binds itself: comprehension targets, lambda args, walrus targets."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return bound


# Every step of a source runs in one generated function, so an expression must not bind or
# suspend in that function's scope: `x := ...` would rebind a local of the generated code (or
# make a module or builtin of that name local to the whole function), and `yield` would turn
# the whole topology into a generator that silently never runs.
_FORBIDDEN: dict[type[ast.AST], str] = {
    ast.NamedExpr: "assignment expressions (:=) are not allowed in a step",
    ast.Yield: "'yield' is not allowed in an expression",
    ast.YieldFrom: "'yield from' is not allowed in an expression",
    ast.Await: "'await' is not allowed in an expression",
}


def _check_scope(body: ast.expr, names: tuple[str, ...]) -> None:
    for node in ast.walk(body):
        message = _FORBIDDEN.get(type(node))
        if message is not None:
            raise ExpressionError(message, getattr(node, "col_offset", None))
        # A comprehension variable or lambda argument named like a record field would hide it.
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            name, offset = node.id, node.col_offset
        elif isinstance(node, ast.arg):
            name, offset = node.arg, node.col_offset
        else:
            continue
        if name in names:
            raise ExpressionError(
                f"{name!r} is the record's {name}: name the variable differently", offset
            )


def parse(
    source: str,
    modules: frozenset[str],
    agg: bool = False,
    other: bool = False,
    other_key: bool = False,
) -> Expression:
    """Parse one expression and check every free name it reads; `agg` allows the name
    `agg` (an aggregation's adder or subtractor), `other` the name `other` (a joiner),
    `other_key` the name `other_key` (a global table join's joiner)."""
    names = (
        *RECORD_NAMES,
        *((AGG,) if agg else ()),
        *((OTHER,) if other else ()),
        *((OTHER_KEY,) if other_key else ()),
    )
    if not source.strip():
        raise ExpressionError("empty expression")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        offset = (exc.offset - 1) if exc.offset else None
        raise ExpressionError(f"not a Python expression: {exc.msg}", offset) from None
    body = tree.body
    _check_scope(body, names)
    bound = _bound_names(body)
    roots = {m.split(".")[0] for m in modules}
    uses: set[str] = set()
    for node in ast.walk(body):
        if not (isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)):
            continue
        if node.id in names:
            uses.add(node.id)
        elif node.id in bound or node.id in roots:
            continue
        elif node.id in _BUILTINS and not node.id.startswith("_"):
            continue
        else:
            raise ExpressionError(
                f"unknown name {node.id!r}",
                node.col_offset,
                hint="an expression can use key, value, timestamp, headers, builtins and the "
                "modules listed in `imports`",
            )
    return Expression(source=source, tree=body, uses=frozenset(uses))
