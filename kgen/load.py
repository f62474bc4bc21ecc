"""Reading a spec file: TOML -> pydantic models -> semantic checks, with every error located.

Each stage reports every problem it finds, as `file:LINE:COL: field.path: message`. A later stage
runs only when the earlier ones found nothing: checking references in a document whose shape is
wrong would report the same mistake twice.
"""

from __future__ import annotations

import ast
import datetime
import difflib
import hashlib
import re
import tomllib
import types
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, Tag, ValidationError
from pydantic_core import ErrorDetails

from kgen import checks
from kgen.errors import Loc, SpecError, SpecInvalid, format_path
from kgen.locate import locate, nearest
from kgen.spec import APP_NAME, FORMATS, STEP_TYPES, Spec, Topic


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
        # Only LF ends a line in TOML, as in kgen.locate.
        self._lines = text.split("\n")

    def position(self, loc: Loc) -> tuple[int, int]:
        """Where `loc` is written; a field that is not written (a missing one) is reported at
        its parent."""
        return nearest(self.positions, loc)

    def error(
        self,
        loc: Loc,
        message: str,
        hint: str = "",
        warning: bool = False,
        at: Loc | None = None,
    ) -> SpecError:
        """A problem with the field at `loc`, positioned at `at` when that is more precise
        (e.g. the offending key inside it)."""
        line, col = self.position(loc if at is None else at)
        return SpecError(self.file, line, col, format_path(loc), message, hint, warning)

    def error_at(self, loc: Loc, line: int, col: int, message: str, hint: str = "") -> SpecError:
        return SpecError(self.file, line, col, format_path(loc), message, hint)

    def string_value(self, loc: Loc) -> tuple[int, int, str] | None:
        """The line, column and text of the one-line string written as `key = "..."` at `loc`,
        when its text maps column for column onto the value (no escapes); else None."""
        if loc not in self.positions:
            return None
        line, col = self.positions[loc]
        text = self._lines[line - 1]
        key = re.compile(r"""\s*("[^"\n]*"|'[^'\n]*'|[A-Za-z0-9_-]+)\s*=\s*""")
        m = key.match(text, col - 1)
        if not m:
            return None
        start = m.end()
        quote = text[start : start + 1]
        if quote not in ('"', "'") or text.startswith(quote * 3, start):
            return None
        end = text.find(quote, start + 1)
        body = text[start + 1 : end]
        if end < 0 or (quote == '"' and "\\" in body):
            return None
        return line, start + 2, body


def load_spec(path: Path, display_path: str | None = None) -> LoadedSpec:
    """Load and check one spec; raise SpecInvalid with all of its errors."""
    display = display_path or _display(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecInvalid(
            [SpecError(display, 1, 1, "", f"cannot read the file: {exc.strerror}")]
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecInvalid([_not_utf8(display, raw, exc)]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecInvalid([_toml_error(display, text, str(exc))]) from None

    where = Locator(display, text)
    try:
        # Strict: TOML values are typed, so partitions = "3" or partitions = true is a mistake,
        # not something to convert.
        spec = Spec.model_validate(data, strict=True)
    except ValidationError as exc:
        raise SpecInvalid(_pydantic_errors(exc, where)) from None

    problems = checks.check(spec, where)
    if any(not p.warning for p in problems):
        raise SpecInvalid(problems)
    digest = hashlib.sha256(raw).hexdigest()
    return LoadedSpec(spec, display, digest, tuple(sorted(problems)))


def _display(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.name


# Words people coming from elsewhere use for a field of the spec.
_SYNONYMS = {"if": "when", "condition": "when", "predicate": "when", "where": "filter"}


def _close(word: str, choices: list[str]) -> str | None:
    """The choice `word` probably meant: Kafka Streams' camelCase ('mapValues'), a synonym, or
    a near miss."""
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", word).lower()
    for guess in (snake, _SYNONYMS.get(snake)):
        if guess in choices and guess != word:
            return guess
    found = difflib.get_close_matches(word, choices, n=1, cutoff=0.7)
    return found[0] if found else None


# --- the file and its TOML -------------------------------------------------------------------


def _not_utf8(display: str, raw: bytes, exc: UnicodeDecodeError) -> SpecError:
    before = raw[: exc.start]
    line_start = before.rfind(b"\n") + 1
    # Everything before the first bad byte decodes: count the columns in characters.
    col = len(raw[line_start : exc.start].decode("utf-8")) + 1
    return SpecError(
        display,
        before.count(b"\n") + 1,
        col,
        "",
        f"the file is not UTF-8: byte 0x{raw[exc.start]:02x} ({exc.reason})",
        "save the spec as UTF-8, the only encoding TOML allows",
    )


def _toml_error(display: str, text: str, message: str) -> SpecError:
    # tomllib reads CRLF as LF and reports positions in that text.
    src = text.replace("\r\n", "\n")
    m = re.fullmatch(r"(.*) \(at (?:line (\d+), column (\d+)|end of document)\)", message, re.S)
    what = m.group(1) if m else message
    offset = len(src)
    if m and m.group(2):
        line, col = int(m.group(2)), int(m.group(3))
        offset = sum(len(x) + 1 for x in src.split("\n")[: line - 1]) + col - 1
    offset, what, hint = _explain_toml(src, offset, what)
    line, col = _line_col(src, offset)
    return SpecError(display, line, col, "", f"invalid TOML: {what}", hint)


def _line_col(src: str, offset: int) -> tuple[int, int]:
    return src.count("\n", 0, offset) + 1, offset - src.rfind("\n", 0, offset)


def _explain_toml(src: str, offset: int, what: str) -> tuple[int, str, str]:
    """Reword tomllib's message for a spec author and move it to the offending place:
    (offset, message, hint)."""
    if src.startswith("\ufeff"):
        return 0, "the file starts with a byte-order mark", "save it as UTF-8 without a BOM"
    opened, statement, string = _toml_context(src, offset)
    rest = src[offset:]
    if what in _UNCLOSED_STRING or (
        what.startswith(("Illegal character", "Found invalid character")) and rest[:1] == "\n"
    ):
        at = string if string >= 0 else offset
        triple = src[at : at + 3] in ('"""', "'''")
        return (
            at,
            "this string is never closed",
            f"end it with {src[at : at + 3]}"
            if triple
            else "end it with the quote it starts with, on the same line; only strings in "
            'triple quotes (""") span lines',
        )
    if opened and not rest.strip():
        closer = "]" if src[opened[-1]] == "[" else "}"
        kind = "array" if closer == "]" else "inline table"
        return opened[-1], f"this {kind} is never closed", f"add '{closer}' after its last element"
    if opened:
        line, col = _line_col(src, opened[-1])
        if src[opened[-1]] == "{" and rest.startswith("\n"):
            return (
                offset,
                "an inline table must end on the line it starts on",
                f"close the table opened at line {line}, column {col} with '}}' on that line, "
                "or write it as a [table]",
            )
        if what in ("Unclosed array", "Unclosed inline table"):
            closer, kind = ("]", "array") if what == "Unclosed array" else ("}", "inline table")
            return (
                offset,
                f"expected ',' or '{closer}' after an element of the {kind}",
                f"separate the elements with ',' (the {kind} opened at line {line}, column {col})",
            )
        if what == "Invalid initial character for a key part" and rest.startswith("}"):
            return offset, "a ',' before '}' in an inline table", "remove the trailing ','"
    if what == "Invalid value":
        word = re.match(r"[A-Za-z_][A-Za-z0-9_.-]*", rest)
        if word and word.group() in ("True", "False"):
            return offset, "invalid value", "TOML booleans are lower case: true, false"
        if word:
            return offset, "invalid value", f'a string needs quotes: "{word.group()}"'
        if not rest.split("\n", 1)[0].strip():
            return offset, "a value is missing after '='", ""
        return offset, "invalid value", ""
    if what == "Cannot overwrite a value" and not opened:
        return _explain_duplicate_key(src, statement)
    declared = re.fullmatch(r"Cannot declare (\(.*\)) twice", what)
    if declared:
        try:
            name = format_path(tuple(ast.literal_eval(declared.group(1))))
        except (ValueError, SyntaxError):
            name = declared.group(1)
        return statement, f"table [{name}] is declared twice", "merge the two tables into one"
    duplicate = re.fullmatch(r"Duplicate inline table key '(.*)'", what)
    if duplicate:
        key = duplicate.group(1)
        keys = list(re.finditer(rf"(?<![\w-]){re.escape(key)}\s*=", src[:offset]))
        return keys[-1].start() if keys else offset, f"{key!r} is set twice in this table", ""
    reworded = {
        "Expected newline or end of document after a statement": (
            "unexpected text after the value",
            "each key = value goes on a line of its own",
        ),
        "Expected '=' after a key in a key/value pair": (
            "expected '=' after the key",
            "TOML uses '=', not ':'" if rest.startswith(":") else "",
        ),
        "Invalid statement": ("expected a key = value or a [table] header", ""),
    }
    message, hint = reworded.get(what, (what[:1].lower() + what[1:], ""))
    return offset, message, hint


def _explain_duplicate_key(src: str, statement: int) -> tuple[int, str, str]:
    key = re.match(r"[^=\n]*", src[statement:])
    name = key.group().strip() if key else ""
    if name.startswith("["):
        return statement, f"table {name} redefines a key set earlier", ""
    # The first setting is in the same table: after the last header before this statement.
    table = max(0, src.rfind("\n[", 0, statement))
    first = re.search(rf"^[ \t]*{re.escape(name)}[ \t]*=", src[table:statement], re.M)
    hint = "a key can be set only once per table"
    if first:
        hint += f"; line {_line_col(src, table + first.start())[0]} sets it already"
    return statement, f"{name!r} is already set", hint


# tomllib's messages for a string that does not end (basic, literal, multi-line literal).
_UNCLOSED_STRING = ("Unterminated string", 'Expected "\'"', "Expected \"'''\"")


def _toml_context(src: str, offset: int) -> tuple[list[int], int, int]:
    """The offsets of the arrays and inline tables still open at `offset`, of the start of the
    statement holding `offset`, and of the last string begun before it (or -1). Only called on
    text tomllib rejected, so it is lenient."""
    opened: list[int] = []
    statement = 0
    string = -1
    line_start = True
    i = 0
    while i < offset:
        char = src[i]
        if char == "\n":
            line_start = True
            i += 1
            continue
        if char in " \t\r":
            i += 1
            continue
        if line_start and not opened and char != "#":
            statement = i
            if char == "[":  # a table header: no values in it
                newline = src.find("\n", i)
                i = offset if newline < 0 else min(newline, offset)
                continue
        line_start = False
        if char == "#":
            newline = src.find("\n", i)
            i = offset if newline < 0 else newline
        elif char in "\"'":
            string = i
            i = _skip_string(src, i)
        elif char in "[{":
            opened.append(i)
            i += 1
        elif char in "]}":
            if opened:
                opened.pop()
            i += 1
        else:
            i += 1
    return opened, statement, string


def _skip_string(src: str, i: int) -> int:
    quote = src[i]
    delimiter = quote * 3 if src.startswith(quote * 3, i) else quote
    j = i + len(delimiter)
    while j < len(src):
        if quote == '"' and src[j] == "\\":
            j += 2
        elif src.startswith(delimiter, j):
            return j + len(delimiter)
        elif src[j] == "\n" and len(delimiter) == 1:
            return j
        else:
            j += 1
    return len(src)


# --- the shape of the document (pydantic) ----------------------------------------------------


@dataclass(frozen=True)
class _Issue:
    """One pydantic error, with its location read against the spec's models."""

    err: ErrorDetails
    # The field path as the user writes it: pydantic's union member labels removed.
    loc: Loc
    # For every plain union on the way (e.g. an expression string or { function = ... }): the
    # length of `loc` at the union and the label of the member this error is about.
    unions: tuple[tuple[int, str], ...]
    # The model whose field is the last part of `loc`, and the type expected at `loc`.
    owner: type[BaseModel] | None
    expected: Any
    # When no member of a union accepted the value: the labels of all members.
    members: tuple[str, ...] = ()


def _pydantic_errors(exc: ValidationError, where: Locator) -> list[SpecError]:
    issues = _settle_unions([_read_loc(err) for err in exc.errors()])
    # A misspelled field is unknown and leaves the field it meant missing: report it once.
    unknown = {(i.loc[:-1], str(i.loc[-1])) for i in issues if i.err["type"] == "extra_forbidden"}
    issues = [
        i
        for i in issues
        if not (
            i.err["type"] == "missing"
            and _close(str(i.loc[-1]), [name for parent, name in unknown if parent == i.loc[:-1]])
        )
    ]
    return [_describe(issue, where) for issue in issues]


def _unwrap(tp: Any) -> Any:
    """Strip Annotated[...] and Optional[...] down to the type that validates the value."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif _is_union(tp) and type(None) in get_args(tp):
            rest = tuple(a for a in get_args(tp) if a is not type(None))
            tp = rest[0] if len(rest) == 1 else Union[rest]  # noqa: UP007
        else:
            return tp


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _union_members(tp: Any) -> tuple[dict[str, Any], bool]:
    """The members of a union by the label pydantic gives them in error locations, and whether
    the union is tagged (a discriminated union names its member, it does not try them all)."""
    members: dict[str, Any] = {}
    tagged = False
    for member in get_args(tp):
        label = None
        if get_origin(member) is Annotated:
            label = next((m.tag for m in member.__metadata__ if isinstance(m, Tag)), None)
            tagged = tagged or label is not None
            member = get_args(member)[0]  # noqa: PLW2901
        plain = isinstance(member, type) and get_origin(member) is None
        members[label or (member.__name__ if plain else str(member))] = member
    return members, tagged


def _read_loc(err: ErrorDetails) -> _Issue:
    """Walk pydantic's error location along the spec's types."""
    tp: Any = Spec
    loc: list[str | int] = []
    unions: list[tuple[int, str]] = []
    owner: type[BaseModel] | None = None
    for part in err["loc"]:
        tp = _unwrap(tp)
        if _is_union(tp):
            members, tagged = _union_members(tp)
            if isinstance(part, str) and part in members:
                if not tagged:
                    unions.append((len(loc), part))
                tp = members[part]
                continue
        owner = None
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            owner = tp
            fields = {f.alias or name: f.annotation for name, f in tp.model_fields.items()}
            tp = fields.get(str(part), Any)
        elif get_origin(tp) in (list, dict):
            tp = get_args(tp)[-1]
        else:
            tp = Any
        loc.append(part)
    return _Issue(err, tuple(loc), tuple(unions), owner, _unwrap(tp))


_WRONG_SHAPE = {"string_type", "model_type", "list_type", "dict_type", "int_type", "bool_type"}


def _settle_unions(issues: list[_Issue]) -> list[_Issue]:
    """A value that fails a union gets an error per member. Keep the errors of the members the
    value looks like (a table for { function = ... }); when it looks like none, one error."""
    out = [i for i in issues if not i.unions]
    sites: dict[Loc, dict[str, list[_Issue]]] = {}
    for issue in issues:
        if issue.unions:
            size, label = issue.unions[0]
            sites.setdefault(issue.loc[:size], {}).setdefault(label, []).append(issue)
    for site, members in sites.items():
        fitting = [
            replace(i, unions=i.unions[1:])
            for errs in members.values()
            if not all(i.loc == site and i.err["type"] in _WRONG_SHAPE for i in errs)
            for i in errs
        ]
        if fitting:
            out.extend(_settle_unions(fitting))
        else:
            first = next(iter(members.values()))[0]
            out.append(replace(first, loc=site, unions=(), members=tuple(members)))
    return out


def _describe(issue: _Issue, where: Locator) -> SpecError:
    """The message for one issue: what is wrong, in the user's terms, at the offending key."""
    err, loc = issue.err, issue.loc
    kind, value = err["type"], err["input"]
    field = str(loc[-1]) if loc else ""
    if issue.members:
        return where.error(
            loc, f"expected {_members_phrase(issue.members)}, got {_type_name(value)}"
        )
    if kind == "extra_forbidden":
        owner = issue.owner
        known = [f.alias or name for name, f in owner.model_fields.items()] if owner else []
        close = _close(field, known)
        hints = [f"did you mean {close!r}?"] if close else []
        if known:
            hints.append("known fields: " + ", ".join(known))
        if owner is Topic and not close:
            hints[-1] += '; Kafka topic settings go in config = { "retention.ms" = "..." }'
        return where.error(loc, f"unknown field {field!r}", " ".join(hints))
    if kind == "missing":
        model = issue.owner.__name__ if issue.owner else ""
        hint = _MISSING_HINTS.get((model, field), "")
        return where.error(loc, f"missing required field {field!r}", hint)
    if kind == "step_kind":
        return _describe_step(loc, value, where)
    if kind == "literal_error":
        return _describe_choice(issue, where)
    if kind == "too_short":
        return where.error(loc, f"{field!r} must not be empty", _EMPTY_HINTS.get(field, ""))
    if kind == "greater_than_equal":
        ctx = err.get("ctx") or {}
        return where.error(loc, f"must be at least {ctx.get('ge')}, got {value!r}")
    if kind == "value_error":
        return _describe_value_error(issue, where)
    expected = _EXPECTED.get(kind)
    if expected:
        hint = ""
        if expected == "a string" and len(loc) > 1 and loc[-2] in ("config", "headers"):
            hint = f'write it in quotes: "{value}"'
        elif expected == "an integer" and isinstance(value, str) and value.strip().isdigit():
            hint = f"write it without quotes: {value.strip()}"
        elif expected == "an array" and isinstance(value, str):
            hint = f'write it as an array: ["{value}"]'
        return where.error(loc, f"expected {expected}, got {_type_name(value)}", hint)
    return where.error(loc, err["msg"].replace("Input should be", "expected"))


_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "a boolean (true or false)",
    "bool_parsing": "a boolean (true or false)",
    "list_type": "an array",
    "dict_type": "a table",
    "model_type": "a table",
}
_MISSING_HINTS = {
    ("Spec", "app"): "start the file with app = '<name>'",
    ("Spec", "streams"): "add a [[streams]] table with name, from and steps",
    ("DynamicTo", "topics"): "list the topics the expression may choose: topics = ['<topic>', ...]",
    ("DynamicTo", "topic"): "add topic = '<expression>' that returns one of its topics",
    ("Branch", "name"): "name the branch; a stream without 'to' is read as '<stream>.<branch>'",
}
_EMPTY_HINTS = {
    "streams": "add a [[streams]] table with name, from and steps",
    "input": "a test needs at least one input record: { topic = '<source topic>', value = ... }",
    "branch": "a branch step needs at least one { name = ..., when = ... }",
    "topics": "list every topic the expression may choose",
}


def _members_phrase(members: tuple[str, ...]) -> str:
    phrases = {
        "str": (
            "an expression string"
            if "FunctionRef" in members
            else "a topic name"
            if "DynamicTo" in members
            else "a string"
        ),
        "list[str]": "an array of strings",
        "FunctionRef": "a table { function = 'module:function' }",
        "DynamicTo": "a table { topic = '<expression>', topics = ['<topic>', ...] }",
    }
    return " or ".join(phrases.get(m, m) for m in members)


def _describe_step(loc: Loc, value: Any, where: Locator) -> SpecError:
    operations = ", ".join(STEP_TYPES)
    if not isinstance(value, dict):
        return where.error(
            loc,
            f"expected a step table such as {{ filter = '<expression>' }}, got {_type_name(value)}",
            f"steps: {operations}",
        )
    named = [k for k in value if k in STEP_TYPES]
    if len(named) > 1:
        return where.error(
            loc,
            f"a step does one operation; this one names {len(named)}: {', '.join(named)}",
            "split it into one step per operation, in the order they should run",
        )
    others = [k for k in value if k != "name"]
    if not others:
        return where.error(loc, "this step names no operation", f"steps: {operations}")
    close = _close(others[0], list(STEP_TYPES))
    hint = (f"did you mean {close!r}? " if close else "") + f"steps: {operations}"
    return where.error(loc, f"unknown step {others[0]!r}", hint, at=(*loc, others[0]))


def _describe_choice(issue: _Issue, where: Locator) -> SpecError:
    value = issue.err["input"]
    choices = [str(c) for c in get_args(issue.expected)]
    allowed = ", ".join(repr(c) for c in choices)
    close = _close(str(value).lower().replace("-", "_"), choices)
    hint = f"did you mean {close!r}?" if close else ""
    if set(choices) == set(FORMATS):
        if not close:
            hint = (
                "for another encoding use 'bytes' and decode it in a step, "
                "e.g. { map_values = { function = 'mypkg.codecs:decode' } }"
            )
        return where.error(issue.loc, f"unsupported format {value!r} (formats: {allowed})", hint)
    return where.error(issue.loc, f"{value!r} is not allowed here (allowed: {allowed})", hint)


def _describe_value_error(issue: _Issue, where: Locator) -> SpecError:
    """Errors of the spec's own validators, which pydantic reports at the model's location."""
    loc, value = issue.loc, issue.err["input"]
    message = issue.err["msg"].removeprefix("Value error, ")
    if loc == ("app",) and isinstance(value, str):
        name = re.sub(r"[^a-z0-9_-]+", "-", value.lower()).strip("-_")
        name = re.sub(r"^[^a-z]+", "", name)
        hint = f"try app = {name!r}" if APP_NAME.match(name) else ""
        return where.error(loc, message, hint)
    if len(loc) == 2 and loc[0] == "streams" and isinstance(value, dict):
        # Stream's only model-level rule: exactly one input.
        if "from" in value and "from_stream" in value:
            return where.error(
                (*loc, "from_stream"),
                "a stream reads topics ('from') or another stream ('from_stream'), not both",
                "keep one of them",
            )
        return where.error(
            loc,
            "a stream needs an input",
            "add from = '<topic>' to read topics, or from_stream = '<stream>' to read another "
            "stream",
        )
    if len(loc) == 2 and loc[0] == "topics" and isinstance(value, dict):
        # Topic's only model-level rule: replication_factor needs partitions.
        return where.error((*loc, "replication_factor"), message)
    if not loc and isinstance(value, dict):
        # Spec's only model-level rule: something to run.
        return where.error(
            loc,
            message,
            "add a [[streams]] table with name, from and steps, or a [[tables]] table with "
            "name, from and store",
        )
    if loc and loc[-1] == "function":
        return where.error(loc, message, "e.g. { function = 'payments.rules:is_large' }")
    return where.error(loc, message)


def _type_name(value: Any) -> str:
    name = {
        dict: "a table",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        datetime.datetime: "a date-time",
        datetime.date: "a date",
        datetime.time: "a time",
    }.get(type(value), type(value).__name__)
    if isinstance(value, bool):
        name += f" ({str(value).lower()})"
    elif isinstance(value, (int, float, str)) and len(repr(value)) < 40:
        name += f" ({value!r})"
    return name
