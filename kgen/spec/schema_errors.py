"""The shape of the document: pydantic's validation errors as messages in the user's terms.

Pydantic reports a location in its own terms (union members, model labels); each error is read
against the spec's models to get the field path as the user writes it, the model that owns the
field and the type expected there, and then described with a hint where one helps.
"""

from __future__ import annotations

import datetime
import difflib
import re
import types
from dataclasses import dataclass, replace
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, Tag
from pydantic_core import ErrorDetails

from kgen.spec.errors import Loc, SpecError
from kgen.spec.locator import Locator
from kgen.spec.models import APP_NAME, FORMATS, STEP_TYPES, Spec, Topic, step_operations


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


def describe_errors(errors: list[ErrorDetails], where: Locator) -> list[SpecError]:
    """One located SpecError per mistake among pydantic's `errors` (of validating a Spec)."""
    issues = _settle_unions([_read_loc(err) for err in errors])
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
    **{
        (window, "grace"): "a window has no default grace (as in Kafka Streams 3.0+): say how "
        "long it takes late records, e.g. grace = '10s', or grace = '0s' for none"
        for window in ("Tumbling", "Hopping", "Sliding", "Session")
    },
    ("Hopping", "advance"): "say how often a window starts, e.g. advance = '1m' (at most the size)",
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
    named = step_operations(value)
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
