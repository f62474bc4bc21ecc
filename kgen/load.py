"""Reading a spec file: TOML -> pydantic models -> semantic checks, with every error located."""

from __future__ import annotations

import difflib
import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from kgen import checks
from kgen.errors import Loc, SpecError, SpecInvalid, format_path
from kgen.locate import locate, nearest
from kgen.spec import STEP_TYPES, Spec


@dataclass(frozen=True)
class LoadedSpec:
    spec: Spec
    # The path as the user gave it (relative when possible): it lands in generated headers.
    display_path: str
    sha256: str
    warnings: tuple[SpecError, ...]


class Locator:
    """Turns a field path into a SpecError at the line and column of that field in the file."""

    def __init__(self, display_path: str, text: str) -> None:
        self.file = display_path
        self.positions = locate(text)

    def error(self, loc: Loc, message: str, hint: str = "", warning: bool = False) -> SpecError:
        line, col = nearest(self.positions, loc)
        return SpecError(self.file, line, col, format_path(loc), message, hint, warning)


def load_spec(path: Path, display_path: str | None = None) -> LoadedSpec:
    """Load and check one spec; raise SpecInvalid with all of its errors."""
    display = display_path or _display(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecInvalid(
            [SpecError(display, 1, 1, "(file)", f"cannot read: {exc.strerror}")]
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecInvalid(
            [SpecError(display, 1, 1, "(file)", f"not UTF-8: {exc.reason}")]
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line, col = _toml_position(str(exc))
        message = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)$", "", str(exc))
        raise SpecInvalid(
            [SpecError(display, line, col, "(toml)", f"invalid TOML: {message}")]
        ) from None

    where = Locator(display, text)
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecInvalid(_pydantic_errors(exc, data, where)) from None

    problems = checks.check(spec, where)
    errors = [p for p in problems if not p.warning]
    if errors:
        raise SpecInvalid(problems)
    digest = hashlib.sha256(raw).hexdigest()
    return LoadedSpec(spec, display, digest, tuple(sorted(problems)))


def _display(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.name


def _toml_position(message: str) -> tuple[int, int]:
    m = re.search(r"at line (\d+), column (\d+)", message)
    return (int(m.group(1)), int(m.group(2))) if m else (1, 1)


# Labels pydantic puts into error locations for union members and validators; not spec fields.
_UNION_LABELS = {"str", "int", "FunctionRef", "DynamicTo", "list[str]"}


def _clean_loc(loc: tuple[int | str, ...]) -> Loc:
    out: list[str | int] = []
    for i, part in enumerate(loc):
        if isinstance(part, str) and (part in _UNION_LABELS or "[" in part or "(" in part):
            continue
        # After steps[i] pydantic repeats the discriminator tag ('filter') before the field.
        if (
            isinstance(part, str)
            and i >= 2
            and loc[i - 2] == "steps"
            and isinstance(loc[i - 1], int)
        ):
            if part in STEP_TYPES:
                continue
        out.append(part)
    return tuple(out)


def _model_at(loc: Loc, data: Any) -> type[BaseModel] | None:
    """The model class that validates the value at `loc`, for 'did you mean' hints."""
    from kgen import spec as s

    model: type[BaseModel] | None = s.Spec
    node: Any = data
    i = 0
    while i < len(loc) and model is not None:
        part = loc[i]
        node = node.get(part) if isinstance(node, dict) else None
        if model is s.Spec and part == "topics":
            model, i, node = (
                s.Topic,
                i + 2,
                node.get(loc[i + 1]) if isinstance(node, dict) and i + 1 < len(loc) else None,
            )
            continue
        if part in ("streams", "tests", "input", "expect", "branch") and i + 1 < len(loc):
            index = loc[i + 1]
            item = (
                node[index]
                if isinstance(node, list) and isinstance(index, int) and index < len(node)
                else None
            )
            model = {"streams": s.Stream, "tests": s.TestCase, "branch": s.Branch}.get(
                str(part), s.TestRecord
            )
            if part == "steps":
                model = None
            node, i = item, i + 2
            continue
        if part == "steps" and i + 1 < len(loc):
            index = loc[i + 1]
            item = (
                node[index]
                if isinstance(node, list) and isinstance(index, int) and index < len(node)
                else None
            )
            kind = next((k for k in STEP_TYPES if isinstance(item, dict) and k in item), None)
            model = STEP_TYPES[kind] if kind else None
            node, i = item, i + 2
            continue
        if part == "to" and isinstance(node, dict):
            model, i = s.DynamicTo, i + 1
            continue
        if isinstance(node, dict) and "function" in node:
            model, i = s.FunctionRef, i + 1
            continue
        return model if i == len(loc) else None
    return model


def _fields(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _pydantic_errors(exc: ValidationError, data: Any, where: Locator) -> list[SpecError]:
    # A value that fails a union (expression string or {function=...}) gives one error per
    # member; group them by location so the user reads one message per field.
    grouped: dict[Loc, list[ErrorDetails]] = {}
    for err in exc.errors():
        grouped.setdefault(_clean_loc(err["loc"]), []).append(err)
    out = []
    for loc, errs in grouped.items():
        message, hint = _describe(loc, errs, data)
        out.append(where.error(loc, message, hint))
    return out


def _describe(loc: Loc, errs: list[ErrorDetails], data: Any) -> tuple[str, str]:
    err = errs[0]
    kind = err["type"]
    if kind == "extra_forbidden":
        field = str(loc[-1])
        model = _model_at(loc[:-1], data)
        known = _fields(model) if model else []
        close = difflib.get_close_matches(field, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else ""
        if known:
            hint = (hint + " " if hint else "") + "known fields: " + ", ".join(known)
        return f"unknown field {field!r}", hint
    if kind == "missing":
        return f"missing required field {str(loc[-1])!r}", ""
    if kind == "step_kind":
        given = list(err["input"]) if isinstance(err["input"], dict) else []
        ops = [k for k in given if k in STEP_TYPES]
        if len(ops) > 1:
            return f"a step names one operation, this one names {len(ops)}: {', '.join(ops)}", (
                "split it into several steps"
            )
        others = [k for k in given if k != "name"]
        close = difflib.get_close_matches(others[0], list(STEP_TYPES), n=1) if others else []
        hint = f"did you mean {close[0]!r}? " if close else ""
        what = f"unknown step {others[0]!r}" if others else "a step needs an operation"
        return what, hint + "steps: " + ", ".join(STEP_TYPES)
    if len(errs) > 1 and all(
        e["type"] in ("string_type", "model_type", "list_type", "dict_type") for e in errs
    ):
        return (
            f"expected an expression string or a table {{ function = 'module:function' }}, "
            f"got {_type_name(err['input'])}",
            "",
        )
    if kind == "literal_error":
        return (
            f"{err['input']!r} is not allowed: {err['msg'].replace('Input should be', 'use')}",
            "",
        )
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return (
            f"{err['msg'].replace('Input should be', 'expected')}, got {_type_name(err['input'])}",
            "",
        )
    msg = err["msg"].removeprefix("Value error, ")
    return msg, ""


def _type_name(value: Any) -> str:
    return {
        dict: "a table",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a float",
    }.get(type(value), type(value).__name__) + (
        f" ({value!r})" if isinstance(value, (int, float, str)) and len(repr(value)) < 40 else ""
    )
