"""Logic written inline: each expression parses and uses only the names it may."""

from __future__ import annotations

import re
import sys

from kgen.spec import expr
from kgen.spec.checks.base import Checks, did_you_mean
from kgen.spec.checks.imports import check_function
from kgen.spec.errors import Loc
from kgen.spec.models import FunctionRef, Logic


def logic(
    c: Checks,
    loc: Loc,
    logic: Logic,
    *,
    agg: bool = False,
    other: bool = False,
    other_key: bool = False,
) -> None:
    if isinstance(logic, FunctionRef):
        check_function(c, (*loc, "function"), logic.function)
        return
    try:
        expr.parse(logic, c.modules, agg=agg, other=other, other_key=other_key)
    except expr.ExpressionError as exc:
        unknown = re.match(r"unknown name '(\w+)'", str(exc))
        if unknown and unknown.group(1) in {m.split(".")[0] for m in c.damage.imports}:
            return  # a module of an `imports` that did not validate: reported there
        expression_error(c, loc, logic, exc, agg)


def expression_error(
    c: Checks, loc: Loc, source: str, exc: expr.ExpressionError, agg: bool = False
) -> None:
    """Report a bad expression at the offending character when the file shows the
    expression as it is (a one-line string without escapes), else at its key."""
    message = str(exc)
    syntax = message.startswith("not a Python expression: ")
    hint = exc.hint
    stripped = source.strip()
    offset = exc.offset
    if offset is not None and not syntax:
        # ast node columns count UTF-8 bytes, the file's columns count characters.
        offset = len(stripped.encode()[:offset].decode(errors="ignore"))
    if syntax:
        message = f"invalid expression {source!r}: " + message.split(": ", 1)[1]
        if offset is None:
            # Python gives no column for an expression that ends too early.
            offset = len(stripped)
            hint = hint or "the expression ends too early"
        if stripped[offset : offset + 1] == "=" and stripped[offset : offset + 2] != "==":
            hint = hint or "to compare, use '=='"
    elif stripped:
        message = f"{message} in {source!r}"
    else:
        hint = hint or "write a Python expression, e.g. value['amount'] > 100"
    name = re.match(r"unknown name '(\w+)'", str(exc))
    if name:
        hint = unknown_name_hint(c, name.group(1), loc, agg) or hint
        if agg and hint == exc.hint:
            hint = (
                "an aggregation's expression can use agg (the aggregate so far), key, value, "
                "timestamp, headers, builtins and the modules listed in `imports`"
            )
    written = c.where.string_value(loc)
    if offset is not None and written and written[2] == source:
        line, col, _ = written
        lead = len(source) - len(source.lstrip())
        c.problems.append(c.where.error_at(loc, line, col + lead + offset, message, hint))
        return
    if offset is not None:
        message += f" (at column {offset + 1} of the expression)"
    c.error(loc, message, hint)


def unknown_name_hint(c: Checks, name: str, loc: Loc = (), agg: bool = False) -> str:
    if name == expr.AGG and not agg:
        if loc[-1:] == ("init",):
            return (
                "init gives a new key's first aggregate, before there is an agg: write the "
                "starting value, e.g. init = '0'"
            )
        return (
            "agg is the aggregate so far: only the expressions of reduce, aggregate and "
            "subtract see it"
        )
    if name == expr.OTHER_KEY:
        return (
            "other_key is the lookup key of a join with a global table: only that join's "
            "joiner sees it"
        )
    if name in ("true", "false", "null", "none", "nil"):
        python = {"true": "True", "false": "False"}.get(name, "None")
        return f"expressions are Python: write {python}"
    if name in sys.stdlib_module_names:
        modules = [*c.spec.imports, name]
        return f"add the module to the spec's imports: imports = {modules!r}"
    known = [*expr.RECORD_NAMES, *([expr.AGG] if agg else []), *c.spec.imports]
    close = did_you_mean(name, known)
    if close:
        return close
    return ""
