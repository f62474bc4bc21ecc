"""Streams and tables one at a time: their inputs, and the steps in order (what each step may
follow, names, the logic and topics of each), also of a stream or table left out of the spec
because it did not validate."""

from __future__ import annotations

from kgen.plan.flow import (
    AGGREGATIONS,
    ALLOWED,
    WINDOWS,
    Flow,
    after,
    flows,
    is_terminal,
    step_allowed,
)
from kgen.spec.checks.base import (
    Checks,
    did_you_mean,
    entries,
    is_stream_join,
    operation,
    stream_outputs,
    toml_key,
)
from kgen.spec.checks.expressions import logic
from kgen.spec.checks.imports import check_class
from kgen.spec.errors import Loc
from kgen.spec.models import (
    Aggregate,
    BranchStep,
    Count,
    DynamicTo,
    GroupBy,
    GroupByKey,
    Join,
    Merge,
    Process,
    Reduce,
    Session,
    Sliding,
    StepBase,
    Stream,
    Suppress,
    Table,
    To,
    ToStream,
    WindowBase,
    duration_ms,
)


def check_streams(c: Checks) -> None:
    seen: dict[str, int] = {}
    for i, stream in enumerate(c.spec.streams):
        if stream.name in seen:
            first = seen[stream.name]
            c.error(
                ("streams", i, "name"),
                f"duplicate stream name {stream.name!r}",
                f"the stream at line {c.line(('streams', first, 'name'))} has it already; "
                "stream names must be unique",
            )
        seen.setdefault(stream.name, i)
        for t, topic in enumerate(stream.from_topics):
            loc: Loc = (
                ("streams", i, "from")
                if isinstance(stream.from_, str)
                else ("streams", i, "from", t)
            )
            c.topic_ref(loc, topic)
        if stream.timestamp is not None:
            logic(c, ("streams", i, "timestamp"), stream.timestamp)
        check_steps(c, i, stream)


def check_tables(c: Checks) -> None:
    names: dict[str, Loc] = {s.name: ("streams", i, "name") for i, s in enumerate(c.spec.streams)}
    for i, table in enumerate(c.spec.tables):
        loc: Loc = ("tables", i, "name")
        _unique_name(c, names, loc, table.name, "streams and tables share their names")
        c.topic_ref(("tables", i, "from"), table.from_)
        check_steps(c, i, table, "tables")
        final = flows("table", table.steps)[-1]
        if final == "stream" and not any(is_terminal(s) for s in table.steps):
            c.error(
                ("tables", i, "steps", len(table.steps) - 1),
                f"table {table.name!r} turns into a stream that goes nowhere",
                "end it with { to = '<topic>' }",
            )


def _unique_name(c: Checks, names: dict[str, Loc], loc: Loc, name: str, shared: str) -> None:
    """Report `name` at `loc` if an earlier entry in `names` has it; then record it."""
    if name in names:
        other = names[name]
        c.error(
            loc,
            f"duplicate name {name!r}",
            f"the {str(other[0])[:-1].replace('_', ' ')} at line {c.line(other)} has it "
            f"already; {shared}, which must be unique: rename one",
        )
    names.setdefault(name, loc)


def check_global_tables(c: Checks) -> None:
    """Global tables: unique names, declared topics that no stream or table also reads (a
    topic has one reader in Kafka Streams' topology, and a global one is read by every
    instance in full)."""
    names: dict[str, Loc] = {s.name: ("streams", i, "name") for i, s in enumerate(c.spec.streams)}
    names.update({t.name: ("tables", i, "name") for i, t in enumerate(c.spec.tables)})
    readers = {t: loc for loc, e in entries(c.spec) for t in e.from_topics}
    for i, glob in enumerate(c.spec.global_tables):
        loc: Loc = ("global_tables", i, "name")
        _unique_name(
            c, names, loc, glob.name, "streams, tables and global tables share their names"
        )
        c.topic_ref(("global_tables", i, "from"), glob.from_)
        reader = readers.get(glob.from_)
        if reader is not None:
            c.error(
                ("global_tables", i, "from"),
                f"topic {glob.from_!r} is read by the {str(reader[0])[:-1]} at line "
                f"{c.line((*reader, 'name'))} too: a global table's topic is read by the global "
                "table only",
                "read the topic in one place: as a global table (streams join it), or as a "
                "[[tables]] or [[streams]] entry",
            )
        readers.setdefault(glob.from_, ("global_tables", i))


def check_steps(c: Checks, i: int, stream: Stream | Table, kind: str = "streams") -> None:
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
    window: WindowBase | None = None  # the window the next aggregation aggregates
    for j, step in enumerate(stream.steps):
        base: Loc = (kind, i, "steps", j)
        flow = before[j]
        allowed = step_allowed(flow, step)
        if not allowed and not stuck:
            flow_error(c, base, flow, step, maker=maker, grouping=grouping)
        elif (
            flow == "stream"
            and getattr(step, "store", None) is not None
            and not isinstance(step, AGGREGATIONS)
        ):
            c.error(
                (*base, "store"),
                f"{operation(step)} keeps no store on a stream: a store materializes a table's "
                f"{operation(step)}",
                "drop store, or apply the step to a table (before its to_stream)",
            )
        stuck = not allowed and flow in ("grouped", "grouped_table")
        before.append(after(flow, step))
        if isinstance(step, (GroupBy, GroupByKey)):
            grouping = operation(step)
        if isinstance(step, AGGREGATIONS):
            maker = f"the table of the {operation(step)} at line {c.line(base)}"
        if (
            j > 0
            and is_terminal(stream.steps[j - 1])
            and not any(is_terminal(s) for s in stream.steps[: j - 1])
        ):
            # Reported once, at the first step that cannot run.
            ender = "to" if isinstance(stream.steps[j - 1], To) else "branch"
            c.error(
                base,
                f"this step never runs: the '{ender}' step before it ends the stream",
                f"move it before the '{ender}', or drop the '{ender}' and continue in another "
                f"[[streams]] entry with from_stream = {stream.name!r}",
            )
        if step.name is not None:
            if step.name in names:
                first = c.line((kind, i, "steps", names[step.name], "name"))
                c.error(
                    (*base, "name"),
                    f"duplicate step name {step.name!r} in stream {stream.name!r}",
                    f"the step at line {first} has it already",
                )
            names.setdefault(step.name, j)
        check_step(c, base, step)
        if isinstance(step, Join) and allowed:
            check_join_sides(c, base, stream, j, flow)
        if isinstance(step, (Reduce, Aggregate)):
            check_subtract(c, base, step, before[j])
        if isinstance(step, Aggregate):
            check_merge(c, base, step, window)
        if isinstance(step, WindowBase):
            window = step
        elif isinstance(step, AGGREGATIONS):
            window = None
    if before[-1] in ("grouped", "grouped_table", "windowed") and not stuck:
        c.error(
            (kind, i, "steps", len(stream.steps) - 1),
            f"{kind[:-1]} {stream.name!r} ends grouped: nothing aggregates the groups of its "
            f"{grouping}",
            "add count, reduce or aggregate after it, e.g. "
            f"{{ count = true, store = '{stream.name}-counts' }}",
        )


def flow_error(
    c: Checks, loc: Loc, flow: Flow, step: StepBase, *, maker: str, grouping: str
) -> None:
    op = operation(step)
    if isinstance(step, WINDOWS) and flow in ("stream", "grouped_table", "windowed"):
        c.error(
            loc,
            {
                "stream": f"a {op} window needs a grouped stream",
                "grouped_table": f"a grouped table has no windows ({op}): Kafka Streams "
                "windows grouped streams only",
                "windowed": "this stream is windowed already",
            }[flow],
            {
                "stream": "add { group_by_key = true } (or a group_by) before it",
                "grouped_table": "window a stream: group the stream before it becomes a table",
                "windowed": "keep one window step before the aggregation",
            }[flow],
        )
    elif flow == "windowed":
        c.error(
            loc,
            f"a windowed stream goes on with {ALLOWED[flow]}, not {op}",
            "aggregate the windows first, e.g. { count = true, store = '<name>' }",
        )
    elif flow == "windowed_table":
        c.error(
            loc,
            f"a windowed aggregation's table goes on with {ALLOWED[flow]}, not {op}",
            "add { to_stream = true } before it: its updates are a stream with windowed keys",
        )
    elif flow == "stream" and isinstance(step, AGGREGATIONS):
        c.error(
            loc,
            f"{op} needs a grouped stream",
            "add { group_by_key = true } (or a group_by) before it",
        )
    elif flow == "stream":
        c.error(
            loc,
            "to_stream turns a table into a stream; this is a stream already",
            "drop it: to_stream follows count, reduce, aggregate or a [[tables]] entry",
        )
    elif flow in ("grouped", "grouped_table"):
        what = "table" if flow == "grouped_table" else "stream"
        c.error(
            loc,
            f"a grouped {what} goes on with {ALLOWED[flow]}, not {op}",
            f"move {op} before the {grouping}, or after an aggregation and {{ to_stream = true }}",
        )
    elif isinstance(step, AGGREGATIONS):
        c.error(
            loc,
            f"{op} needs a grouped table, and {maker} is not grouped",
            "add { group_by = '<expression>' } before it: it gives each row its group "
            "(group_by = 'key' keeps the table's key)",
        )
    elif isinstance(step, GroupByKey):
        c.error(
            loc,
            f"group_by_key does not apply to {maker}: a table is regrouped with group_by",
            "write { group_by = 'key' } to keep its key, or group by another expression",
        )
    else:
        c.error(
            loc,
            f"{op} does not apply to {maker}; a table goes on with {ALLOWED['table']}",
            "add { to_stream = true } before it to work on the table's updates as a stream",
        )


def check_step(c: Checks, base: Loc, step: StepBase) -> None:
    """What a step says on its own, wherever it is: its logic, its topics, its branches."""
    if isinstance(step, (Reduce, Aggregate)):
        op = "reduce" if isinstance(step, Reduce) else "aggregate"
        logic(c, (*base, op), getattr(step, op), agg=True)
        if isinstance(step, Aggregate):
            logic(c, (*base, "init"), step.init)
        if step.subtract is not None:
            logic(c, (*base, "subtract"), step.subtract, agg=True)
        if isinstance(step, Aggregate) and step.merge is not None:
            logic(c, (*base, "merge"), step.merge, agg=True)
    elif isinstance(step, To):
        if isinstance(step.to, DynamicTo):
            logic(c, (*base, "to", "topic"), step.to.topic)
            for t, topic in enumerate(step.to.topics):
                c.topic_ref((*base, "to", "topics", t), topic)
        else:
            c.topic_ref((*base, "to"), step.to)
    elif isinstance(step, BranchStep):
        check_branch(c, base, step)
    elif isinstance(step, WindowBase):
        check_window(c, base, step)
    elif isinstance(step, Join):
        check_join(c, base, step)
    elif isinstance(step, Process):
        check_process(c, base, step)
    elif isinstance(step, (Merge, GroupByKey, ToStream, Count, Suppress)):
        pass  # no logic; merge's references are checked with the graph
    else:
        logic(c, (*base, operation(step)), getattr(step, operation(step)))


def check_process(c: Checks, base: Loc, step: Process) -> None:
    """The class can be made; its stores are declared (their formats are checked with the
    stores)."""
    check_class(c, (*base, "process"), step.process)
    for k, name in enumerate(step.stores):
        if name not in c.spec.stores:
            if not c.damage.broken("stores"):
                c.error(
                    (*base, "stores", k),
                    f"store {name!r} is not declared: a processor's store is declared with "
                    "its formats",
                    f'add [stores.{toml_key(name)}] with key = "string" and value = "json" '
                    "(or the formats it keeps)",
                )
            continue


def check_join(c: Checks, base: Loc, step: Join) -> None:
    """The other side exists; a global table is looked up by a key of the stream's choosing,
    a table by the record's own key, a stream within a join window."""
    glob = step.join in {g.name for g in c.spec.global_tables}
    logic(c, (*base, "joiner"), step.joiner, other=True, other_key=glob)
    if step.key is not None:
        logic(c, (*base, "key"), step.key)
    if step.foreign_key is not None:
        logic(c, (*base, "foreign_key"), step.foreign_key)
    tables = [t.name for t in c.spec.tables] + [g.name for g in c.spec.global_tables]
    if is_stream_join(c.spec, step):
        check_stream_join(c, base, step)
        return
    for field in ("within", "before", "after", "grace", "store"):
        if step.join in tables and getattr(step, field) is not None:
            c.error(
                (*base, field),
                f"{field} is for a join with a stream: {step.join!r} is a table, joined as it "
                "is when each record comes",
                f"drop {field}",
            )
    if step.join not in tables:
        if not c.damage.mentions(step.join):
            streams = list(stream_outputs(c.spec))
            c.error(
                (*base, "join"),
                f"unknown table or stream {step.join!r}"
                + (f" (tables: {', '.join(map(repr, tables))})" if tables else ""),
                did_you_mean(step.join, tables + streams)
                or "join a [[tables]] or [[global_tables]] entry (add one with name, from and "
                "store), or a stream within a window (within = '10m', grace = '1m')",
            )
    elif glob and step.key is None:
        c.error(
            base,
            f"a join with global table {step.join!r} needs key: the lookup key, from the "
            "stream's record",
            "add key = '<expression>', e.g. key = \"value['currency']\" (key = 'key' looks the "
            "record's own key up)",
        )
    elif not glob and step.key is not None:
        c.error(
            (*base, "key"),
            f"{step.join!r} is a table: a stream joins it on the record's key, in the partition "
            "both are read from",
            "drop key; to look rows up by another key, make the table a [[global_tables]] entry",
        )


def check_stream_join(c: Checks, base: Loc, step: Join) -> None:
    """A stream joins a stream within a join window, with a grace of its own choosing."""
    if not step.windowed:
        c.error(
            base,
            f"{step.join!r} is a stream: a stream joins another within a join window",
            "add within = '<duration>' (records at most that far apart join) and grace = "
            "'<duration>' (how late a record may come), e.g. within = '10m', grace = '1m'",
        )
    elif step.grace is None:
        c.error(
            base,
            "a stream-stream join needs grace: how long after its window a late record still "
            "joins (no default, as in Kafka Streams 3.0+)",
            "add grace = '0s' to take no late records, or e.g. grace = '1m'",
        )
    if step.key is not None:
        c.error(
            (*base, "key"),
            f"{step.join!r} is a stream: records join on their keys",
            "drop key; to join on another field, select_key first (the join repartitions)",
        )


def check_subtract(c: Checks, base: Loc, step: Reduce | Aggregate, flow: Flow) -> None:
    """A grouped table's aggregation takes values back with subtract; a grouped stream's never
    does."""
    op = operation(step)
    if step.subtract is not None and flow in ("grouped", "windowed"):
        c.error(
            (*base, "subtract"),
            "subtract is only for grouped tables: a stream's records are never taken back",
            "drop subtract: a grouped stream's aggregate only adds",
        )
    elif step.subtract is None and flow == "grouped_table":
        c.error(
            base,
            f"{op} on a grouped table needs subtract",
            "a table's update first takes the old value out of its group: add "
            "subtract = '<expression over agg and value>'",
        )


def check_join_sides(c: Checks, base: Loc, entry: Stream | Table, j: int, flow: Flow) -> None:
    """Outer joins are for two tables; a table joins another as read from its topic."""
    step = entry.steps[j]
    assert isinstance(step, Join)
    globs = {g.name for g in c.spec.global_tables}
    if step.foreign_key is not None and (
        flow != "table" or is_stream_join(c.spec, step) or step.join in globs
    ):
        c.error(
            (*base, "foreign_key"),
            "foreign_key joins a table with a [[tables]] entry: streams join on the record's key "
            "(or a global table's lookup key)",
            "drop foreign_key, or join two [[tables]] entries",
        )
        return
    if is_stream_join(c.spec, step):
        if flow != "stream":
            c.error(
                (*base, "join"),
                f"{step.join!r} is a stream: only a stream joins a stream",
                "join it from a stream (to_stream first), or join a table",
            )
        return
    if step.join in {g.name for g in c.spec.global_tables}:
        if flow == "stream" and step.how == "outer":
            c.error(
                (*base, "how"),
                "a stream joins a global table inner or left (as in Kafka Streams)",
                "use how = 'left' to keep records without a row",
            )
        elif flow == "table":
            c.error(
                (*base, "join"),
                f"{step.join!r} is a global table: only streams join global tables (Kafka "
                "Streams has no table-global table join)",
                "join a [[tables]] entry, or join the global table from the table's to_stream",
            )
        return
    if flow == "stream" and step.how == "outer":
        c.error(
            (*base, "how"),
            "a stream joins a table inner or left: only a table joined with a table is outer "
            "(as in Kafka Streams)",
            "use how = 'left' to keep records without a row",
        )
    if step.foreign_key is not None and step.how == "outer" and flow == "table":
        c.error(
            (*base, "how"),
            "a foreign-key join is inner or left (as in Kafka Streams)",
            "use how = 'left' to keep rows whose foreign key has no row",
        )
    if flow == "table" and (not isinstance(entry, Table) or j != 0):
        c.error(
            base,
            "a table joins another table as it is read from its topic: the join must be the "
            "first step of a [[tables]] entry",
            "move the join to the start of the [[tables]] entry's steps",
        )
    if isinstance(entry, Table) and step.join == entry.name:
        c.error((*base, "join"), f"table {entry.name!r} joins itself", "join another table")


def check_merge(c: Checks, base: Loc, step: Aggregate, window: WindowBase | None) -> None:
    """Sessions merge: an aggregate of session windows says how; no other aggregate may."""
    if isinstance(window, Session) and step.merge is None:
        c.error(
            base,
            "an aggregate of session windows needs merge: a record between two sessions "
            "joins them into one",
            "add merge = '<expression>' combining agg with another session's aggregate "
            '(value), e.g. merge = "agg + value"',
        )
    elif step.merge is not None and not isinstance(window, Session):
        c.error(
            (*base, "merge"),
            "merge is only for aggregates of session windows",
            "drop merge, or aggregate { session = '<gap>', grace = '<grace>' } windows",
        )


def check_window(c: Checks, base: Loc, step: WindowBase) -> None:
    """A store keeps a window at least until it closes (Kafka Streams' minimum retention)."""
    span = duration_ms(getattr(step, operation(step)))
    grace = duration_ms(step.grace)
    least, what = span + grace, "size plus its grace"
    if isinstance(step, Sliding):
        least, what = 2 * span + grace, "twice its time difference plus its grace"
    elif isinstance(step, Session):
        what = "inactivity gap plus its grace"
    if step.retention is not None and duration_ms(step.retention) < least:
        c.error(
            (*base, "retention"),
            f"retention {step.retention} is shorter than the window's {what} ({least} ms): "
            "a window would leave the store before it closes",
            f"drop retention (the default is that least) or make it at least {least}ms",
        )


def check_branch(c: Checks, base: Loc, step: BranchStep) -> None:
    names: dict[str, int] = {}
    for b, branch in enumerate(step.branch):
        loc: Loc = (*base, "branch", b)
        if branch.name in names:
            first = c.line((*base, "branch", names[branch.name], "name"))
            c.error(
                (*loc, "name"),
                f"duplicate branch name {branch.name!r}",
                f"the branch at line {first} has it already; a branch step's names must be unique",
            )
        names.setdefault(branch.name, b)
        if branch.when is None and b != len(step.branch) - 1:
            c.error(
                loc,
                f"branch {branch.name!r} has no 'when', but only the last branch may be the "
                "default",
                "add when = '<expression>', or move it to the end",
            )
        if branch.when is not None:
            logic(c, (*loc, "when"), branch.when)
        if branch.to is not None:
            c.topic_ref((*loc, "to"), branch.to)
