"""A spec validated in parts, so that one run reports every error it can.

When the whole document does not validate, the parts with schema errors (one topic, stream,
table, store or test case, or one top-level setting) are left out and the rest is validated
again: every part that is valid still gets its semantic checks. What was left out is kept as a
Damage, so that a check whose input was left out is skipped instead of reporting a consequence
of an error already shown (a topic whose definition is wrong is not also an unknown topic
wherever it is used). The steps of a stream or table that was left out are still checked one by
one, for what they say on their own (their expressions, their topics).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from kgen.spec.errors import Loc
from kgen.spec.models import REST_OF_DOCUMENT, Spec, Step

# Top-level tables and arrays whose entries are validated, and left out, one by one.
_KEYED = ("topics", "stores")
_LISTED = ("streams", "tables", "global_tables", "tests", "connectors", "mirrors")
_ENTRIES = ("streams", "tables", "global_tables")
# Entries whose strings, when they are left out, may be the reader or writer of a topic.
_MENTIONING = (*_ENTRIES, "connectors")
# A valid stand-in for an app name that is wrong: the checks skip what depends on it.
_NO_APP = "app"

_STEP: TypeAdapter[Any] = TypeAdapter(Step)


@dataclass(frozen=True)
class Damage:
    """The parts of a spec left out because they did not validate."""

    # ('app',), ('topics', 'orders'), ('streams', 2), ...: where each part is in the file.
    parts: frozenset[Loc] = frozenset()
    # Every string written in a left-out stream, table or connector, or in an unknown top-level
    # field (a misspelled [[stream]]): names they may read, write or define.
    mentioned: frozenset[str] = frozenset()
    # The modules of `imports` when it was left out.
    imports: frozenset[str] = frozenset()
    # For each array some entries were left out of: the file's index of each entry kept.
    indexes: dict[str, list[int]] = field(default_factory=dict)

    def broken(self, *loc: str | int) -> bool:
        """Whether `loc`, or a part holding it, was left out."""
        return any(loc[:n] in self.parts for n in range(1, len(loc) + 1))

    def mentions(self, name: str) -> bool:
        """Whether a left-out stream or table may read, write or define `name`."""
        return name in self.mentioned or name.split(".", maxsplit=1)[0] in self.mentioned

    def names(self, collection: str) -> list[str]:
        """The names of the left-out entries of a keyed table: the topics that did not
        validate."""
        return sorted(str(p[1]) for p in self.parts if len(p) == 2 and p[0] == collection)


@dataclass(frozen=True)
class Leftover:
    """What can still be checked of a stream or table left out: its input topics and its
    steps that validate on their own, each with where it is."""

    topics: tuple[tuple[Loc, str], ...]
    steps: tuple[tuple[Loc, Any], ...]


@dataclass(frozen=True)
class Parts:
    """The valid rest of a document: None when nothing is left to check (the document as a
    whole is wrong)."""

    spec: Spec | None
    damage: Damage
    leftovers: tuple[Leftover, ...]
    # Errors of the rest that the first validation could not show: a spec with nothing to run.
    errors: tuple[ErrorDetails, ...]


def part_of(loc: Loc) -> Loc:
    """The part an error at `loc` is in: ('streams', 2, 'steps', 0) -> ('streams', 2)."""
    if len(loc) >= 2 and loc[0] in (*_KEYED, *_LISTED):
        return loc[:2]
    return loc[:1]


def validate_rest(data: dict[str, Any], errors: Sequence[ErrorDetails]) -> Parts:
    """Leave out of `data` the parts `errors` are in, and validate what remains."""
    parts = frozenset(part_of(tuple(e["loc"])) for e in errors)
    if () in parts:
        return Parts(None, Damage(parts), (), ())  # the document as a whole is wrong
    rest = dict(data)
    indexes: dict[str, list[int]] = {}
    for name in {str(p[0]) for p in parts}:
        value = data.get(name)
        if (name,) in parts:
            rest.pop(name, None)
        elif name in _KEYED and isinstance(value, dict):
            rest[name] = {k: v for k, v in value.items() if (name, k) not in parts}
        elif name in _LISTED and isinstance(value, list):
            indexes[name] = [i for i in range(len(value)) if (name, i) not in parts]
            rest[name] = [value[i] for i in indexes[name]]
    if ("app",) in parts:
        rest["app"] = _NO_APP
    mentioned = {
        text
        for p in parts
        if p[0] in _MENTIONING or p[0] not in Spec.model_fields
        for text in _strings(_at(data, p))
    }
    # A connector names its topics in comma-separated lists ("topics" = "a,b").
    mentioned |= {
        name.strip()
        for p in parts
        if p[0] == "connectors"
        for text in _strings(_at(data, p))
        for name in text.split(",")
    }
    imports = _at(data, ("imports",)) if ("imports",) in parts else None
    damage = Damage(
        parts,
        frozenset(mentioned),
        frozenset(m for m in imports if isinstance(m, str))
        if isinstance(imports, list)
        else frozenset(),
        indexes,
    )
    # Leaving parts out adds no error, except that nothing may be left to run when the streams
    # and tables were left out: that is a consequence of their errors, so the rule is skipped.
    # The rule's own error shows here when nothing was left out that could be a stream.
    entries_left_out = any(p[0] in _ENTRIES or p[0] not in Spec.model_fields for p in parts)
    context = {REST_OF_DOCUMENT: True} if entries_left_out else None
    try:
        spec = Spec.model_validate(rest, strict=True, context=context)
    except ValidationError as exc:
        return Parts(None, damage, (), tuple(exc.errors()))
    leftovers = tuple(_leftover(p, _at(data, p)) for p in sorted(parts, key=str) if _entry(p))
    return Parts(spec, damage, leftovers, ())


def _entry(part: Loc) -> bool:
    return len(part) == 2 and part[0] in _ENTRIES


def _at(data: dict[str, Any], loc: Loc) -> Any:
    """The raw value at `loc`, or None where there is none (a missing field)."""
    value: Any = data
    for key in loc:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _leftover(base: Loc, raw: Any) -> Leftover:
    if not isinstance(raw, dict):
        return Leftover((), ())
    topics: list[tuple[Loc, str]] = []
    source = raw.get("from")
    if isinstance(source, str):
        topics.append(((*base, "from"), source))
    elif isinstance(source, list):
        topics += [((*base, "from", t), s) for t, s in enumerate(source) if isinstance(s, str)]
    steps: list[tuple[Loc, Any]] = []
    raw_steps = raw.get("steps")
    for j, raw_step in enumerate(raw_steps if isinstance(raw_steps, list) else []):
        try:
            step = _STEP.validate_python(raw_step, strict=True)
        except ValidationError:
            continue  # reported with the schema errors
        steps.append(((*base, "steps", j), step))
    return Leftover(tuple(topics), tuple(steps))
