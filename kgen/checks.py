"""Semantic checks over a whole spec: references, names, cycles, expressions, test cases.

Every check appends a located SpecError and goes on, so the user sees all problems at once; a
mistake that another check already reports (a misspelled stream name also leaves the stream it
meant unread) is reported once.
"""

from __future__ import annotations

import difflib
import keyword
import re
import sys
from typing import TYPE_CHECKING, Any

from kgen import expr, graph
from kgen.errors import Loc, SpecError
from kgen.flow import AGGREGATIONS, ALLOWED, Flow, after, flows, is_terminal, step_allowed
from kgen.spec import (
    Aggregate,
    BranchStep,
    DynamicTo,
    FunctionRef,
    GroupBy,
    GroupByKey,
    Logic,
    Merge,
    Reduce,
    Spec,
    StepBase,
    Stream,
    Table,
    To,
    ToStream,
)

if TYPE_CHECKING:
    from kgen.load import Locator

_KAFKA_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
# Packages the generated app imports besides the stdlib: its own name must not hide them.
_DEPENDENCIES = {"confluent_kafka", "rocksdict", "pytest", "tests"}


def package_name(app: str) -> str:
    return app.replace("-", "_")


__all__ = ["check", "is_terminal", "package_name"]


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
    return readers


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


def check(spec: Spec, where: Locator) -> list[SpecError]:
    return _Checker(spec, where).run()


def _did_you_mean(name: str, known: list[str]) -> str:
    # High enough that 'orders-apac' does not suggest 'orders': a new name is no typo.
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
    if not close and len(name) >= 4:
        # A shortened name: 'large' for 'large-orders'.
        close = [k for k in known if k.startswith(name) or k.endswith(name)]
    return f"did you mean {close[0]!r}?" if len(close) == 1 else ""


def _listing(names: list[str] | set[str]) -> str:
    return ", ".join(repr(n) for n in sorted(names)) or "none"


class _Checker:
    def __init__(self, spec: Spec, where: Locator) -> None:
        self.spec = spec
        self.where = where
        self.problems: list[SpecError] = []
        self.modules = frozenset(spec.imports)

    def error(self, loc: Loc, message: str, hint: str = "", at: Loc | None = None) -> None:
        self.problems.append(self.where.error(loc, message, hint, at=at))

    def warn(self, loc: Loc, message: str, hint: str = "") -> None:
        self.problems.append(self.where.error(loc, message, hint, warning=True))

    def line(self, loc: Loc) -> int:
        return self.where.position(loc)[0]

    def run(self) -> list[SpecError]:
        self.check_app()
        self.check_topics()
        self.check_streams()
        self.check_tables()
        self.check_stores()
        self.check_graph()
        self.check_tests()
        if not any(not p.warning for p in self.problems):
            # The graph is only built from a spec without other errors.
            self.check_internal_topics()
        return self.problems

    def check_app(self) -> None:
        spec = self.spec
        pkg = package_name(spec.app)
        if keyword.iskeyword(pkg):
            self.error(
                ("app",),
                f"{pkg!r} is a Python keyword and cannot name the app's package",
                f"pick another app name, e.g. '{spec.app}-app'",
            )
        elif pkg in sys.stdlib_module_names or pkg in _DEPENDENCIES:
            what = "standard library module" if pkg in sys.stdlib_module_names else "package"
            self.error(
                ("app",),
                f"app {spec.app!r} would name its Python package {pkg!r}, which hides the {what} "
                "of that name",
                f"pick another app name, e.g. '{spec.app}-app'",
            )
        if spec.on_error == "dead_letter" and spec.dead_letter_topic is None:
            topic = f"{spec.app}-dlq"
            self.error(
                ("on_error",),
                "on_error = 'dead_letter' needs a dead_letter_topic",
                f"add dead_letter_topic = '{topic}' and declare [topics.{_toml_key(topic)}] with "
                "key = 'bytes' and value = 'bytes'",
            )
        if spec.dead_letter_topic is not None:
            self.topic_ref(("dead_letter_topic",), spec.dead_letter_topic)
            if spec.on_error != "dead_letter":
                self.warn(
                    ("dead_letter_topic",),
                    f"unused: on_error is {spec.on_error!r}",
                    "set on_error = 'dead_letter' to use it",
                )
        for i, mod in enumerate(spec.imports):
            if mod.split(".")[0] in expr.RECORD_NAMES:
                self.error(
                    ("imports", i), f"module {mod!r} would hide the record field of that name"
                )

    def check_topics(self) -> None:
        for name in self.spec.topics:
            if not _KAFKA_TOPIC.match(name):
                self.warn(
                    ("topics", name),
                    f"{name!r} is not a legal Kafka topic name",
                    "Kafka allows 1-249 characters of letters, digits, '.', '_' and '-'",
                )

    def topic_ref(self, loc: Loc, topic: str) -> None:
        if topic not in self.spec.topics:
            declared = list(self.spec.topics)
            declare = f"declare it: [topics.{_toml_key(topic)}] with key and value formats"
            close = _did_you_mean(topic, declared)
            hint = f"{close} If not, {declare}" if close else declare
            self.error(loc, f"unknown topic {topic!r} (declared: {_listing(declared)})", hint)

    def logic(self, loc: Loc, logic: Logic, agg: bool = False) -> None:
        if isinstance(logic, FunctionRef):
            return
        try:
            expr.parse(logic, self.modules, agg=agg)
        except expr.ExpressionError as exc:
            self.expression_error(loc, logic, exc, agg)

    def expression_error(
        self, loc: Loc, source: str, exc: expr.ExpressionError, agg: bool = False
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
            hint = self.unknown_name_hint(name.group(1), loc, agg) or hint
            if agg and hint == exc.hint:
                hint = (
                    "an aggregation's expression can use agg (the aggregate so far), key, value, "
                    "timestamp, headers, builtins and the modules listed in `imports`"
                )
        written = self.where.string_value(loc)
        if offset is not None and written and written[2] == source:
            line, col, _ = written
            lead = len(source) - len(source.lstrip())
            self.problems.append(self.where.error_at(loc, line, col + lead + offset, message, hint))
            return
        if offset is not None:
            message += f" (at column {offset + 1} of the expression)"
        self.error(loc, message, hint)

    def unknown_name_hint(self, name: str, loc: Loc = (), agg: bool = False) -> str:
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
        if name in ("true", "false", "null", "none", "nil"):
            python = {"true": "True", "false": "False"}.get(name, "None")
            return f"expressions are Python: write {python}"
        if name in sys.stdlib_module_names:
            modules = [*self.spec.imports, name]
            return f"add the module to the spec's imports: imports = {modules!r}"
        known = [*expr.RECORD_NAMES, *([expr.AGG] if agg else []), *self.spec.imports]
        close = _did_you_mean(name, known)
        if close:
            return close
        return ""

    def check_streams(self) -> None:
        seen: dict[str, int] = {}
        for i, stream in enumerate(self.spec.streams):
            if stream.name in seen:
                first = seen[stream.name]
                self.error(
                    ("streams", i, "name"),
                    f"duplicate stream name {stream.name!r}",
                    f"the stream at line {self.line(('streams', first, 'name'))} has it already; "
                    "stream names must be unique",
                )
            seen.setdefault(stream.name, i)
            for t, topic in enumerate(stream.from_topics):
                loc: Loc = (
                    ("streams", i, "from")
                    if isinstance(stream.from_, str)
                    else ("streams", i, "from", t)
                )
                self.topic_ref(loc, topic)
            self.check_steps(i, stream)

    def check_tables(self) -> None:
        names: dict[str, Loc] = {
            s.name: ("streams", i, "name") for i, s in enumerate(self.spec.streams)
        }
        for i, table in enumerate(self.spec.tables):
            loc: Loc = ("tables", i, "name")
            if table.name in names:
                other = names[table.name]
                self.error(
                    loc,
                    f"duplicate name {table.name!r}",
                    f"the {str(other[0])[:-1]} at line {self.line(other)} has it already; streams "
                    "and tables share their names, which must be unique: rename one",
                )
            names.setdefault(table.name, loc)
            self.topic_ref(("tables", i, "from"), table.from_)
            self.check_steps(i, table, "tables")
            final = flows("table", table.steps)[-1]
            if final == "stream" and not any(is_terminal(s) for s in table.steps):
                self.error(
                    ("tables", i, "steps", len(table.steps) - 1),
                    f"table {table.name!r} turns into a stream that goes nowhere",
                    "end it with { to = '<topic>' }",
                )

    def store_writers(self) -> dict[str, list[Loc]]:
        """Every store, with the places that write it: tables and aggregations."""
        writers: dict[str, list[Loc]] = {}
        for i, table in enumerate(self.spec.tables):
            writers.setdefault(table.store, []).append(("tables", i, "store"))
        for base, entry in entries(self.spec):
            for j, step in enumerate(entry.steps):
                if isinstance(step, AGGREGATIONS):
                    writers.setdefault(step.store, []).append((*base, "steps", j, "store"))
        return writers

    def writer(self, loc: Loc) -> str:
        """What writes a store, from where store_writers found it: 'table 'users'' or 'the
        count of stream 'words''."""
        kind, i = loc[0], loc[1]
        assert isinstance(i, int)
        entry = self.spec.streams[i] if kind == "streams" else self.spec.tables[i]
        if len(loc) == 3:
            return f"table {entry.name!r}"
        j = loc[3]
        assert isinstance(j, int)
        return f"the {_operation(entry.steps[j])} of {str(kind)[:-1]} {entry.name!r}"

    def check_stores(self) -> None:
        writers = self.store_writers()
        for name, locs in writers.items():
            first, *others = sorted(locs, key=self.where.position)
            for loc in others:
                self.error(
                    loc,
                    f"store {name!r} is written by two operations",
                    f"{self.writer(first)} at line {self.line(first)} writes it already; "
                    "every table and aggregation needs a store of its own: rename this one",
                )
        for name in self.spec.stores:
            if name not in writers:
                self.error(
                    ("stores", name),
                    f"unknown store {name!r}: no table or aggregation writes it "
                    f"(stores: {_listing(list(writers))})",
                    _did_you_mean(name, list(writers))
                    or "a store is named by a table's or an aggregation's store = '...'",
                )

    def check_internal_topics(self) -> None:
        """The topics the app creates for itself (repartition and changelog topics) are named
        after steps and stores: two of them, or one and a declared topic, must not meet."""
        steps: dict[int, Loc] = {}
        for base, entry in entries(self.spec):
            for j, step in enumerate(entry.steps):
                steps[id(step)] = (*base, "steps", j)
        internal: dict[str, tuple[Loc, str]] = {}
        for node in graph.build(self.spec).walk():
            if node.kind != "repartition" or node.step is None:
                continue
            loc = steps[id(node.step)]
            topic = node.topics[0]
            what = f"the repartition topic of the {_operation(node.step)} at line {self.line(loc)}"
            if topic in internal:
                self.error(
                    loc,
                    f"this step's repartition topic {topic!r} is already {internal[topic][1]}",
                    "give one of the steps another name = '...': a grouping step's "
                    "repartition topic is '<app>-<name>-repartition', and without a name the "
                    "store it feeds names it",
                )
            internal.setdefault(topic, (loc, what))
        for store, locs in self.store_writers().items():
            loc = min(locs, key=self.where.position)
            what = f"the changelog topic of store {store!r}"
            internal.setdefault(graph.changelog_topic(self.spec.app, store), (loc, what))
        for topic, (_, what) in internal.items():
            if topic in self.spec.topics:
                self.error(
                    ("topics", topic),
                    f"topic {topic!r} is {what}, which the app creates and owns",
                    "rename the topic: the app's internal topics are '<app>-<step name or "
                    "store>-repartition' and '<app>-<store>-changelog'",
                )

    def check_steps(self, i: int, stream: Stream | Table, kind: str = "streams") -> None:
        names: dict[str, int] = {}
        start: Flow = "table" if kind == "tables" else "stream"
        # The flow before each step, going on as if a misplaced step had run (a count on an
        # ungrouped stream still makes a table), so one mistake is reported once.
        before: list[Flow] = [start]
        # What made the current table, for messages: a table entry or an aggregation.
        maker = f"table {stream.name!r}" if kind == "tables" else ""
        # Set while the flow is stuck grouped after a misplaced step: the steps that follow
        # and the grouped end are the same mistake.
        stuck = False
        grouping = "group_by"  # the last grouping step's operation, for messages
        for j, step in enumerate(stream.steps):
            base: Loc = (kind, i, "steps", j)
            flow = before[j]
            allowed = step_allowed(flow, step)
            if not allowed and not stuck:
                self.flow_error(base, flow, step, maker, grouping)
            stuck = not allowed and flow in ("grouped", "grouped_table")
            before.append(after(flow, step))
            if isinstance(step, (GroupBy, GroupByKey)):
                grouping = _operation(step)
            if isinstance(step, AGGREGATIONS):
                maker = f"the table of the {_operation(step)} at line {self.line(base)}"
            if (
                j > 0
                and is_terminal(stream.steps[j - 1])
                and not any(is_terminal(s) for s in stream.steps[: j - 1])
            ):
                # Reported once, at the first step that cannot run.
                ender = "to" if isinstance(stream.steps[j - 1], To) else "branch"
                self.error(
                    base,
                    f"this step never runs: the '{ender}' step before it ends the stream",
                    f"move it before the '{ender}', or drop the '{ender}' and continue in another "
                    f"[[streams]] entry with from_stream = {stream.name!r}",
                )
            if step.name is not None:
                if step.name in names:
                    first = self.line((kind, i, "steps", names[step.name], "name"))
                    self.error(
                        (*base, "name"),
                        f"duplicate step name {step.name!r} in stream {stream.name!r}",
                        f"the step at line {first} has it already",
                    )
                names.setdefault(step.name, j)
            if isinstance(step, (GroupBy, GroupByKey, ToStream, *AGGREGATIONS)):
                self.check_stateful(base, step, before[j])
            elif isinstance(step, To):
                if isinstance(step.to, DynamicTo):
                    self.logic((*base, "to", "topic"), step.to.topic)
                    for t, topic in enumerate(step.to.topics):
                        self.topic_ref((*base, "to", "topics", t), topic)
                else:
                    self.topic_ref((*base, "to"), step.to)
            elif isinstance(step, BranchStep):
                self.check_branch(base, step)
            elif isinstance(step, Merge):
                pass  # references are checked with the graph
            else:
                self.logic((*base, _operation(step)), getattr(step, _operation(step)))
        if before[-1] in ("grouped", "grouped_table") and not stuck:
            self.error(
                (kind, i, "steps", len(stream.steps) - 1),
                f"{kind[:-1]} {stream.name!r} ends grouped: nothing aggregates the groups of its "
                f"{grouping}",
                "add count, reduce or aggregate after it, e.g. "
                f"{{ count = true, store = '{stream.name}-counts' }}",
            )

    def flow_error(self, loc: Loc, flow: Flow, step: StepBase, maker: str, grouping: str) -> None:
        op = _operation(step)
        if flow == "stream" and isinstance(step, AGGREGATIONS):
            self.error(
                loc,
                f"{op} needs a grouped stream",
                "add { group_by_key = true } (or a group_by) before it",
            )
        elif flow == "stream":
            self.error(
                loc,
                "to_stream turns a table into a stream; this is a stream already",
                "drop it: to_stream follows count, reduce, aggregate or a [[tables]] entry",
            )
        elif flow in ("grouped", "grouped_table"):
            what = "table" if flow == "grouped_table" else "stream"
            self.error(
                loc,
                f"a grouped {what} goes on with {ALLOWED[flow]}, not {op}",
                f"move {op} before the {grouping}, or after an aggregation and "
                "{ to_stream = true }",
            )
        elif isinstance(step, AGGREGATIONS):
            self.error(
                loc,
                f"{op} needs a grouped table, and {maker} is not grouped",
                "add { group_by = '<expression>' } before it: it gives each row its group "
                "(group_by = 'key' keeps the table's key)",
            )
        elif isinstance(step, GroupByKey):
            self.error(
                loc,
                f"group_by_key does not apply to {maker}: a table is regrouped with group_by",
                "write { group_by = 'key' } to keep its key, or group by another expression",
            )
        else:
            self.error(
                loc,
                f"{op} does not apply to {maker}; a table goes on with {ALLOWED['table']}",
                "add { to_stream = true } before it to work on the table's updates as a stream",
            )

    def check_stateful(self, base: Loc, step: StepBase, flow: Flow) -> None:
        if isinstance(step, GroupBy):
            self.logic((*base, "group_by"), step.group_by)
        if isinstance(step, GroupByKey) and flow == "table":
            return  # reported by the flow check
        if isinstance(step, (Reduce, Aggregate)):
            op = "reduce" if isinstance(step, Reduce) else "aggregate"
            self.logic((*base, op), getattr(step, op), agg=True)
            if isinstance(step, Aggregate):
                self.logic((*base, "init"), step.init)
            if step.subtract is not None:
                self.logic((*base, "subtract"), step.subtract, agg=True)
                if flow == "grouped":
                    self.error(
                        (*base, "subtract"),
                        "subtract is only for grouped tables: a stream's records are never "
                        "taken back",
                        "drop subtract: a grouped stream's aggregate only adds",
                    )
            elif flow == "grouped_table":
                self.error(
                    base,
                    f"{op} on a grouped table needs subtract",
                    "a table's update first takes the old value out of its group: add "
                    "subtract = '<expression over agg and value>'",
                )

    def check_branch(self, base: Loc, step: BranchStep) -> None:
        names: dict[str, int] = {}
        for b, branch in enumerate(step.branch):
            loc: Loc = (*base, "branch", b)
            if branch.name in names:
                first = self.line((*base, "branch", names[branch.name], "name"))
                self.error(
                    (*loc, "name"),
                    f"duplicate branch name {branch.name!r}",
                    f"the branch at line {first} has it already; a branch step's names must be "
                    "unique",
                )
            names.setdefault(branch.name, b)
            if branch.when is None and b != len(step.branch) - 1:
                self.error(
                    loc,
                    f"branch {branch.name!r} has no 'when', but only the last branch may be the "
                    "default",
                    "add when = '<expression>', or move it to the end",
                )
            if branch.when is not None:
                self.logic((*loc, "when"), branch.when)
            if branch.to is not None:
                self.topic_ref((*loc, "to"), branch.to)

    def check_graph(self) -> None:
        outputs = stream_outputs(self.spec)
        readers = stream_readers(self.spec)
        unknown = [name for name in readers if name not in outputs]
        for name in unknown:
            message, hint = self.unreadable(name, list(outputs))
            for loc in readers[name]:
                self.error(loc, message, hint)
        for name, loc in outputs.items():
            if name in readers:
                continue
            # An unknown name close to this one already reports the mistake.
            if _did_you_mean(name, unknown):
                continue
            if "." in name:
                self.error(
                    loc,
                    f"branch {name!r} goes nowhere",
                    f"add to = '<topic>' to the branch, or read it with from_stream = {name!r}",
                )
            else:
                self.error(
                    loc,
                    f"stream {name!r} goes nowhere: it does not end with 'to' or 'branch', and "
                    "no stream reads it",
                    f"end it with {{ to = '<topic>' }}, or read it with from_stream = {name!r}",
                )
        self.check_cycles(readers)

    def unreadable(self, name: str, outputs: list[str]) -> tuple[str, str]:
        """Why a from_stream or merge name cannot be read, and what to do instead."""
        streams = {s.name: s for s in self.spec.streams}
        if name in {t.name for t in self.spec.tables} and name not in streams:
            return (
                f"{name!r} is a table: from_stream and merge read streams",
                "give the table the steps { to_stream = true } and { to = '<topic>' }, and read "
                "that topic with from = '<topic>'",
            )
        stream_name, _, branch_name = name.partition(".")
        stream = streams.get(stream_name)
        if stream is not None and not branch_name and not ends_as_stream(stream):
            return (
                f"stream {name!r} ends as a table and cannot be read as a stream",
                "add { to_stream = true } as its last step",
            )
        if stream is not None and not branch_name:
            ends = next((s for s in stream.steps if is_terminal(s)), None)
            if isinstance(ends, To):
                topics = ends.to.topics if isinstance(ends.to, DynamicTo) else [ends.to]
                return (
                    f"stream {name!r} ends with 'to' and cannot be read",
                    f"read its topic instead: from = {topics[0]!r}, or drop its 'to' step",
                )
            if isinstance(ends, BranchStep):
                readable = [o for o in outputs if o.startswith(f"{name}.")]
                return (
                    f"stream {name!r} ends with 'branch' and cannot be read as a whole",
                    f"read one of its branches: {_listing(readable)}"
                    if readable
                    else "all of its branches write to topics: read one of those",
                )
        if stream is not None:
            for step in stream.steps:
                if isinstance(step, BranchStep):
                    branch = next((b for b in step.branch if b.name == branch_name), None)
                    if branch is not None and branch.to is not None:
                        return (
                            f"branch {name!r} writes to topic {branch.to!r} and cannot be read",
                            f"read the topic instead: from = {branch.to!r}, or drop the "
                            "branch's 'to'",
                        )
        hint = _did_you_mean(name, outputs) or (
            "a stream is readable when it does not end with 'to' or 'branch'; a branch without "
            "'to' is read as '<stream>.<branch>'"
        )
        return f"unknown stream {name!r} (readable: {_listing(outputs)})", hint

    def check_cycles(self, readers: dict[str, list[Loc]]) -> None:
        # Edge: the stream producing an output -> the stream reading it, with where it reads it.
        index = {s.name: i for i, s in enumerate(self.spec.streams)}
        outputs = stream_outputs(self.spec)
        edges: dict[int, dict[int, Loc]] = {}
        for name, locs in readers.items():
            src = index.get(name.split(".")[0])
            if src is None or name not in outputs:
                continue  # reported as unreadable
            for loc in locs:
                reader = loc[1]
                assert isinstance(reader, int)
                edges.setdefault(src, {}).setdefault(reader, loc)
        state: dict[int, int] = {}  # 1 = on the DFS stack, 2 = done

        def visit(node: int, path: list[int]) -> None:
            state[node] = 1
            for nxt, loc in sorted(edges.get(node, {}).items()):
                if state.get(nxt) == 1:
                    # Reported once, where the stream that closes the cycle reads.
                    cycle = [*path[path.index(nxt) :], nxt]
                    names = " -> ".join(self.spec.streams[c].name for c in cycle)
                    self.error(
                        loc,
                        f"streams form a cycle: {names}",
                        "a topology is a DAG; to loop records back, write them to a topic "
                        "and read it",
                    )
                elif nxt not in state:
                    visit(nxt, [*path, nxt])
            state[node] = 2

        for start in range(len(self.spec.streams)):
            if start not in state:
                visit(start, [start])

    def check_tests(self) -> None:
        declared = set(self.spec.topics)
        sources = {t for _, s in entries(self.spec) for t in s.from_topics}
        stores = self.store_writers()
        # A stream reading an undeclared topic is already reported; a test feeding the topic
        # it probably meant is not a second mistake.
        broken_source = bool(sources - declared)
        written = written_topics(self.spec)
        for c, case in enumerate(self.spec.tests):
            for r, record in enumerate(case.input):
                loc: Loc = ("tests", c, "input", r)
                if record.topic in sources and record.topic not in declared:
                    continue  # the stream reading it reports the undeclared topic
                if record.topic not in sources:
                    if record.topic in declared and broken_source:
                        continue
                    read = sorted(sources & declared)
                    self.error(
                        (*loc, "topic"),
                        f"test input goes to {record.topic!r}, but no stream reads it "
                        f"(source topics: {_listing(read)})",
                        _did_you_mean(record.topic, read)
                        or "input records go to source topics; list what the app writes "
                        "under expect",
                    )
                    continue
                self.check_record(loc, record.topic, record.key, record.value, expect=False)
                if record.timestamp is not None and record.timestamp < 0:
                    self.error(
                        (*loc, "timestamp"),
                        "timestamps are >= 0 (Kafka treats negative ones as invalid)",
                    )
            for r, record in enumerate(case.expect):
                loc = ("tests", c, "expect", r)
                if record.topic not in declared:
                    self.topic_ref((*loc, "topic"), record.topic)
                    continue
                if record.topic not in written:
                    self.error(
                        (*loc, "topic"),
                        f"the app never writes to {record.topic!r}, so this record cannot arrive",
                        f"the app writes to: {_listing(written)}",
                    )
                    continue
                self.check_record(loc, record.topic, record.key, record.value, expect=True)
            for name, content in case.stores.items():
                if name not in stores:
                    self.error(
                        ("tests", c, "stores", name),
                        f"unknown store {name!r} (stores: {_listing(list(stores))})",
                        _did_you_mean(name, list(stores))
                        or "a test checks the stores its tables and aggregations name with "
                        "store = '...'",
                    )
                    continue
                for e, entry in enumerate(content):
                    if isinstance(entry.key, (dict, list)) or entry.key is None:
                        self.error(
                            ("tests", c, "stores", name, e, "key"),
                            "a store key in a test is a string or a number",
                        )

    def check_record(self, loc: Loc, topic: str, key: Any, value: Any, expect: bool) -> None:
        formats = self.spec.topics[topic]
        # Dead letters carry the raw bytes of the failed record, whatever the topic's format.
        dead_letter = expect and topic == self.spec.dead_letter_topic
        for field, declared, data in (("key", formats.key, key), ("value", formats.value, value)):
            fmt = "bytes" if dead_letter else declared
            problem = _format_mismatch(fmt, data)
            if problem:
                self.error(
                    (*loc, field),
                    f"{_describe_value(data)} does not fit topic {topic!r}, whose {field} "
                    f"format is {fmt!r}",
                    problem,
                )


def _operation(step: StepBase) -> str:
    """The operation key of a step: 'filter', 'count', ..."""
    return next(k for k in type(step).model_fields if k != "name")


def _describe_value(value: Any) -> str:
    kinds = {
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        dict: "a table",
        list: "an array",
    }
    kind = kinds.get(type(value), f"a {type(value).__name__}")
    text = repr(value)
    return f"{kind} ({text})" if len(text) < 40 else kind


def _json_able(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_json_able(v) for v in value.values())
    if isinstance(value, list):
        return all(_json_able(v) for v in value)
    return isinstance(value, (str, int, float, bool))


def _format_mismatch(fmt: str, value: Any) -> str:
    """'' when `value` can be written in format `fmt`, else a hint how to write it."""
    if value is None:
        return ""
    if fmt == "json":
        ok = _json_able(value)
        return "" if ok else "dates and times have no JSON form: write them as strings"
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if fmt in ("string", "bytes"):
        if isinstance(value, str):
            return ""
        if fmt == "bytes":
            return "bytes are written as a UTF-8 string"
        return f'write it as a string: "{value}"' if number else "write it as a string"
    if fmt == "double":
        if number:
            return ""
        if isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value):
            return f"write it as a number, without quotes: {value}"
        return "write it as a number"
    bits = 32 if fmt == "int" else 64
    if isinstance(value, int) and not isinstance(value, bool):
        if -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
            return ""
        return f"an {fmt!r} is a {bits}-bit signed integer"
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return f"write it as a number, without quotes: {value}"
    return "write it as a whole number"


def _toml_key(name: str) -> str:
    return (
        name
        if re.match(r"^[A-Za-z0-9_-]+$", name)
        else '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    )
