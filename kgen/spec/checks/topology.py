"""The whole topology: which stream reads which (nothing unread, unknown or cyclic), stores and
the internal topics named after steps and stores."""

from __future__ import annotations

from kgen.plan import graph
from kgen.plan.flow import is_terminal
from kgen.spec.checks.base import (
    Checks,
    did_you_mean,
    ends_as_stream,
    entries,
    listing,
    operation,
    stream_outputs,
    stream_readers,
)
from kgen.spec.errors import Loc
from kgen.spec.models import FORMATS, BranchStep, DynamicTo, StoreConfig, To, duration_ms


def check_graph(c: Checks) -> None:
    outputs = stream_outputs(c.spec)
    readers = stream_readers(c.spec)
    unknown = [name for name in readers if name not in outputs]
    for name in unknown:
        if c.damage.mentions(name):
            continue  # a stream or table left out of the spec may be the one meant
        message, hint = unreadable(c, name, list(outputs))
        for loc in readers[name]:
            c.error(loc, message, hint)
    for name, loc in outputs.items():
        if name in readers or c.damage.mentions(name):
            continue
        # An unknown name close to this one already reports the mistake.
        if did_you_mean(name, unknown):
            continue
        if "." in name:
            c.error(
                loc,
                f"branch {name!r} goes nowhere",
                f"add to = '<topic>' to the branch, or read it with from_stream = {name!r}",
            )
        else:
            c.error(
                loc,
                f"stream {name!r} goes nowhere: it does not end with 'to' or 'branch', and "
                "no stream reads it",
                f"end it with {{ to = '<topic>' }}, or read it with from_stream = {name!r}",
            )
    check_cycles(c, readers)


def unreadable(c: Checks, name: str, outputs: list[str]) -> tuple[str, str]:
    """Why a from_stream or merge name cannot be read, and what to do instead."""
    streams = {s.name: s for s in c.spec.streams}
    if name in {t.name for t in c.spec.tables} and name not in streams:
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
                f"read one of its branches: {listing(readable)}"
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
                        f"read the topic instead: from = {branch.to!r}, or drop the branch's 'to'",
                    )
    hint = did_you_mean(name, outputs) or (
        "a stream is readable when it does not end with 'to' or 'branch'; a branch without "
        "'to' is read as '<stream>.<branch>'"
    )
    return f"unknown stream {name!r} (readable: {listing(outputs)})", hint


def check_cycles(c: Checks, readers: dict[str, list[Loc]]) -> None:
    # Edge: the stream producing an output -> the stream reading it, with where it reads it.
    index = {s.name: i for i, s in enumerate(c.spec.streams)}
    outputs = stream_outputs(c.spec)
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
                names = " -> ".join(c.spec.streams[s].name for s in cycle)
                c.error(
                    loc,
                    f"streams form a cycle: {names}",
                    "a topology is a DAG; to loop records back, write them to a topic and read it",
                )
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in range(len(c.spec.streams)):
        if start not in state:
            visit(start, [start])


def check_stores(c: Checks) -> None:
    writers = c.store_writers()
    for name, locs in writers.items():
        first, *others = sorted(locs, key=c.where.position)
        for loc in others:
            c.error(
                loc,
                f"store {name!r} is written by two operations",
                f"{c.writer(first)} at line {c.line(first)} writes it already; "
                "every table and aggregation needs a store of its own: rename this one",
            )
    for name in c.spec.stores:
        if name not in writers and not c.damage.mentions(name):
            c.error(
                ("stores", name),
                f"unknown store {name!r}: no table or aggregation writes it "
                f"(stores: {listing(list(writers))})",
                did_you_mean(name, list(writers))
                or "a store is named by a table's or an aggregation's store = '...'",
            )
        elif name in writers and _processor_store(writers[name]):
            config = c.spec.stores[name]
            for part in ("key", "value"):
                if getattr(config, part) is None:
                    c.error(
                        ("stores", name),
                        f"store {name!r} of a processor has no {part} format",
                        f'add {part} = "<format>" (one of {", ".join(FORMATS)})',
                    )
            _check_processor_store_kind(c, name, config)
        elif name in writers and not _processor_store(writers[name]):
            config = c.spec.stores[name]
            writer = c.writer(writers[name][0])
            for part in ("key", "value"):
                if getattr(config, part) is not None:
                    c.error(
                        ("stores", name, part),
                        f"store {name!r} takes its {part} format from {writer}",
                        f"drop {part}: only the stores of process steps declare their formats",
                    )
            for part in ("kind", "window_size", "retention"):
                if part in config.model_fields_set:
                    c.error(
                        ("stores", name, part),
                        f"store {name!r} is made by {writer}, which decides its {part}",
                        f"drop {part}: it is for the stores of process steps (a window's "
                        "size and retention are the window step's)",
                    )


def _check_processor_store_kind(c: Checks, name: str, config: StoreConfig) -> None:
    """A window store has a window size and a retention that keeps at least one window; a
    session store, a retention; a key-value store, neither."""
    if config.kind == "key_value":
        for part in ("window_size", "retention"):
            if getattr(config, part) is not None:
                c.error(
                    ("stores", name, part),
                    f"store {name!r} is a key-value store: it has no {part}",
                    f'drop {part}, or make it a window or session store (kind = "window")',
                )
        return
    if config.kind == "window" and config.window_size is None:
        c.error(
            ("stores", name),
            f"window store {name!r} has no window_size",
            'add window_size = "<duration>" (e.g. "1m"): the size of its windows',
        )
    if config.kind == "session" and config.window_size is not None:
        c.error(
            ("stores", name, "window_size"),
            f"session store {name!r} has no window size: a session's length is its own",
            "drop window_size",
        )
    if config.retention is None:
        c.error(
            ("stores", name),
            f"{config.kind} store {name!r} has no retention",
            'add retention = "<duration>" (e.g. "1h"): how long it keeps a window after a '
            "later one is written",
        )
    elif config.window_size is not None and duration_ms(config.retention) < duration_ms(
        config.window_size
    ):
        c.error(
            ("stores", name, "retention"),
            f"window store {name!r} keeps windows {config.retention}, less than their size "
            f"({config.window_size})",
            f'make retention at least "{config.window_size}"',
        )


def _processor_store(locs: list[Loc]) -> bool:
    """Whether a store's writers (store_writers) are process steps."""
    return any(len(loc) == 6 and loc[4] == "stores" for loc in locs)


def check_internal_topics(c: Checks) -> None:
    """The topics the app creates for itself (repartition and changelog topics) are named
    after steps and stores: two of them, or one and a declared topic, must not meet."""
    steps: dict[int, Loc] = {}
    for base, entry in entries(c.spec):
        for j, step in enumerate(entry.steps):
            steps[id(step)] = (*base, "steps", j)
    internal: dict[str, tuple[Loc, str]] = {}
    for node in graph.build(c.spec).walk():
        if node.kind == "fk_subscribe" and node.fk is not None and node.step is not None:
            loc = steps[id(node.step)]
            what = f"an internal topic of the foreign-key join at line {c.line(loc)}"
            for topic in (node.fk.subscription_topic, node.fk.response_topic):
                if topic in internal:
                    c.error(
                        loc,
                        f"this join's internal topic {topic!r} is already {internal[topic][1]}",
                        "give one of the joins another name = '...': a foreign-key join's "
                        "topics are '<app>-<name>-subscription-registration-topic' and "
                        "'-subscription-response-topic'",
                    )
                internal.setdefault(topic, (loc, what))
            continue
        if node.kind != "repartition" or node.step is None:
            continue
        loc = steps[id(node.step)]
        topic = node.topics[0]
        what = f"the repartition topic of the {operation(node.step)} at line {c.line(loc)}"
        if topic in internal:
            c.error(
                loc,
                f"this step's repartition topic {topic!r} is already {internal[topic][1]}",
                "give one of the steps another name = '...': a grouping step's "
                "repartition topic is '<app>-<name>-repartition', and without a name the "
                "store it feeds names it",
            )
        internal.setdefault(topic, (loc, what))
    for store, locs in c.store_writers().items():
        loc = min(locs, key=c.where.position)
        what = f"the changelog topic of store {store!r}"
        internal.setdefault(graph.changelog_topic(c.spec.app, store), (loc, what))
    for topic, (_, what) in internal.items():
        if topic in c.spec.topics:
            c.error(
                ("topics", topic),
                f"topic {topic!r} is {what}, which the app creates and owns",
                "rename the topic: the app's internal topics are '<app>-<step name or "
                "store>-repartition', '<app>-<store>-changelog' and a foreign-key join's "
                "'<app>-<name>-subscription-registration-topic' / '-subscription-response-topic'",
            )


def check_copartitioning(c: Checks) -> None:
    """A join's topics whose partition counts the spec declares must agree: a record and the
    row or records it joins meet only in the same partition number (the app checks the
    topics it finds at start too, for counts the spec does not declare)."""
    steps: dict[int, Loc] = {}
    for base, entry in entries(c.spec):
        for j, step in enumerate(entry.steps):
            steps[id(step)] = (*base, "steps", j)
    reported: set[int] = set()
    for component in graph.build(c.spec).components():
        joins = [n for n in component if (n.kind == "join" and n.glob is None) or n.sjoin]
        if not joins or joins[0].step is None or id(joins[0].step) in reported:
            continue
        topics = sorted(
            {
                t
                for n in component
                if n.kind in ("source", "table_source") and not n.internal
                for t in n.topics
            }
        )
        counts = {t: c.spec.topics[t].partitions for t in topics if t in c.spec.topics}
        declared = {t: n for t, n in counts.items() if n is not None}
        if len(set(declared.values())) > 1:
            reported.add(id(joins[0].step))
            listed = ", ".join(f"{t!r} has {n}" for t, n in declared.items())
            c.error(
                steps[id(joins[0].step)],
                f"the joined topics must have as many partitions (co-partitioned): {listed}",
                "give them the same partitions; or re-key one side (select_key) so that the join "
                "repartitions it, or join a [[global_tables]] entry, which needs none",
            )
