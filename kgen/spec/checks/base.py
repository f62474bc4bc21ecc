"""What every check shares: the spec being checked, where its fields are, the problems found so
far, and the questions several checks ask of the spec (which streams are readable, which topics
the app writes, which steps write a store)."""

from __future__ import annotations

import difflib
import re

from kgen.plan.flow import flows, is_terminal
from kgen.spec.errors import Loc, SpecError
from kgen.spec.locator import Locator
from kgen.spec.models import (
    STEP_TYPES,
    BranchStep,
    DynamicTo,
    Join,
    Merge,
    Process,
    Spec,
    StepBase,
    Stream,
    Suppress,
    Table,
    To,
    WindowBase,
)
from kgen.spec.modules import ModuleLookup
from kgen.spec.parts import Damage


def entries(spec: Spec) -> list[tuple[Loc, Stream | Table]]:
    """Streams and tables with where they are declared."""
    out: list[tuple[Loc, Stream | Table]] = [
        (("streams", i), s) for i, s in enumerate(spec.streams)
    ]
    out += [(("tables", i), t) for i, t in enumerate(spec.tables)]
    return out


def ends_as_stream(stream: Stream) -> bool:
    return flows("stream", stream.steps)[-1] == "stream"


def stream_outputs(spec: Spec) -> dict[str, Loc]:
    """Every name a stream can be read by: stream names and '<stream>.<branch>' for branches
    that do not write to a topic themselves; mapped to where they are declared. A stream with a
    'to' or 'branch' step has no output of its own, even if (wrongly) more steps follow."""
    out: dict[str, Loc] = {}
    for i, stream in enumerate(spec.streams):
        if not any(is_terminal(step) for step in stream.steps) and ends_as_stream(stream):
            out.setdefault(stream.name, ("streams", i, "name"))
        for j, step in enumerate(stream.steps):
            if isinstance(step, BranchStep):
                for b, branch in enumerate(step.branch):
                    if branch.to is None:
                        key = f"{stream.name}.{branch.name}"
                        out.setdefault(key, ("streams", i, "steps", j, "branch", b, "name"))
    return out


def stream_readers(spec: Spec) -> dict[str, list[Loc]]:
    """Which places read each stream output (from_stream and merge)."""
    readers: dict[str, list[Loc]] = {}
    for i, stream in enumerate(spec.streams):
        if stream.from_stream is not None:
            readers.setdefault(stream.from_stream, []).append(("streams", i, "from_stream"))
        for j, step in enumerate(stream.steps):
            if isinstance(step, Merge):
                merge: Loc = ("streams", i, "steps", j, "merge")
                for m, name in enumerate(step.streams):
                    loc = merge if isinstance(step.merge, str) else (*merge, m)
                    readers.setdefault(name, []).append(loc)
            elif isinstance(step, Join) and is_stream_join(spec, step):
                readers.setdefault(step.join, []).append(("streams", i, "steps", j, "join"))
    return readers


def is_stream_join(spec: Spec, step: Join) -> bool:
    """A join whose other side is a stream: it has a window, or names no table."""
    tables = {t.name for t in spec.tables} | {g.name for g in spec.global_tables}
    return step.join not in tables and (step.windowed or step.join in stream_outputs(spec))


def written_topics(spec: Spec) -> set[str]:
    """The topics the app writes to: sinks, branch topics and the dead-letter topic."""
    out = set()
    for _, stream in entries(spec):
        for step in stream.steps:
            if isinstance(step, To):
                out.update(step.to.topics if isinstance(step.to, DynamicTo) else [step.to])
            elif isinstance(step, BranchStep):
                out.update(b.to for b in step.branch if b.to is not None)
    if spec.on_error == "dead_letter" and spec.dead_letter_topic is not None:
        out.add(spec.dead_letter_topic)
    return out


def did_you_mean(name: str, known: list[str]) -> str:
    # High enough that 'orders-apac' does not suggest 'orders': a new name is no typo.
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
    if not close and len(name) >= 4:
        # A shortened name: 'large' for 'large-orders'.
        close = [k for k in known if k.startswith(name) or k.endswith(name)]
    return f"did you mean {close[0]!r}?" if len(close) == 1 else ""


def listing(names: list[str] | set[str]) -> str:
    return ", ".join(repr(n) for n in sorted(names)) or "none"


def operation(step: StepBase) -> str:
    """The operation key of a step: 'filter', 'count', 'tumbling', ..."""
    return next(k for k, t in STEP_TYPES.items() if type(step) is t)


def toml_key(name: str) -> str:
    return (
        name
        if re.match(r"^[A-Za-z0-9_-]+$", name)
        else '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    )


class Checks:
    """The state of one run of the checks: each check appends located problems and goes on."""

    def __init__(
        self, spec: Spec, where: Locator, damage: Damage, modules: ModuleLookup | None
    ) -> None:
        self.spec = spec
        self.where = where
        # The parts of the document that did not validate: checks that need them are skipped.
        self.damage = damage
        self.problems: list[SpecError] = []
        self.modules = frozenset(spec.imports)
        # Finds the modules of imports and function references; None: not checked.
        self.lookup = modules

    def error(self, loc: Loc, message: str, hint: str = "", at: Loc | None = None) -> None:
        self.problems.append(self.where.error(loc, message, hint, at=at))

    def warn(self, loc: Loc, message: str, hint: str = "") -> None:
        self.problems.append(self.where.error(loc, message, hint, warning=True))

    def line(self, loc: Loc) -> int:
        return self.where.position(loc)[0]

    def topic_ref(self, loc: Loc, topic: str) -> None:
        if topic not in self.spec.topics and not self.damage.broken("topics", topic):
            declared = [*self.spec.topics, *self.damage.names("topics")]
            declare = f"declare it: [topics.{toml_key(topic)}] with key and value formats"
            close = did_you_mean(topic, declared)
            hint = f"{close} If not, {declare}" if close else declare
            self.error(loc, f"unknown topic {topic!r} (declared: {listing(declared)})", hint)

    def store_writers(self) -> dict[str, list[Loc]]:
        """Every store, with the places that write it: tables and aggregations."""
        writers: dict[str, list[Loc]] = {}
        for i, table in enumerate(self.spec.tables):
            writers.setdefault(table.store, []).append(("tables", i, "store"))
        for i, glob in enumerate(self.spec.global_tables):
            writers.setdefault(glob.store, []).append(("global_tables", i, "store"))
        for base, entry in entries(self.spec):
            final = False  # the last window step emits final results
            for j, step in enumerate(entry.steps):
                # Aggregations, and a table's filter or map_values kept in a store.
                store = getattr(step, "store", None)
                if isinstance(step, Suppress):
                    store = step.store_name(entry.name)
                if isinstance(step, Join) and step.foreign_key is not None:
                    name = f"{step.foreign_key_name(entry.name)}-subscription-store"
                    writers.setdefault(name, []).append((*base, "steps", j))
                    continue
                if isinstance(step, Process):
                    for k, name in enumerate(step.stores):
                        writers.setdefault(name, []).append((*base, "steps", j, "stores", k))
                    continue
                if isinstance(step, Join) and step.windowed:
                    for name in step.store_names(entry.name):
                        writers.setdefault(name, []).append((*base, "steps", j))
                    continue
                if isinstance(store, str):
                    writers.setdefault(store, []).append((*base, "steps", j, "store"))
                    if final:  # its results wait in a buffer store of their own
                        writers.setdefault(f"{store}-final", []).append((*base, "steps", j - 1))
                final = isinstance(step, WindowBase) and step.emit == "final"
        return writers

    def writer(self, loc: Loc) -> str:
        """What writes a store, from where store_writers found it: 'table 'users'' or 'the
        count of stream 'words''."""
        kind, i = loc[0], loc[1]
        assert isinstance(i, int)
        if kind == "global_tables":
            return f"global table {self.spec.global_tables[i].name!r}"
        entry = self.spec.streams[i] if kind == "streams" else self.spec.tables[i]
        if len(loc) == 3:
            return f"table {entry.name!r}"
        j = loc[3]
        assert isinstance(j, int)
        if isinstance(entry.steps[j], Process):
            return f"the processor of {str(kind)[:-1]} {entry.name!r}"
        return f"the {operation(entry.steps[j])} of {str(kind)[:-1]} {entry.name!r}"
