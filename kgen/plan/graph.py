"""The processor graph of a spec: streams and their steps wired into nodes, like Kafka Streams'
InternalTopologyBuilder, before any code is written."""

from __future__ import annotations

from dataclasses import dataclass, field

from kgen.plan.flow import AGGREGATIONS, WINDOWS, Flow, flows, is_terminal
from kgen.spec import (
    BranchStep,
    Count,
    DynamicTo,
    Filter,
    FilterNot,
    FlatMap,
    FlatMapValues,
    GlobalTable,
    GroupBy,
    GroupByKey,
    Join,
    Logic,
    Map,
    MapValues,
    Merge,
    Peek,
    Process,
    Reduce,
    SelectKey,
    Spec,
    Step,
    StepBase,
    Stream,
    Suppress,
    Table,
    To,
    ToStream,
    WindowBase,
    duration_ms,
)

# Records repartitioned before a join carry their value as JSON, whatever steps made it.
REPARTITION_VALUE_FORMAT = "json"
# Steps after which the key is not what the source partitioned by.
_KEY_CHANGERS = (Map, FlatMap, SelectKey, Process)

_KINDS: dict[type[StepBase], str] = {
    Filter: "filter",
    FilterNot: "filter_not",
    Map: "map",
    MapValues: "map_values",
    FlatMap: "flat_map",
    FlatMapValues: "flat_map_values",
    SelectKey: "select_key",
    Peek: "peek",
}


@dataclass(frozen=True)
class StreamJoinSide:
    """What one side's processor of a stream-stream join needs (Kafka Streams'
    KStreamKStreamJoin): `before`/`after` are seen from this side (the other side's are
    swapped), `outer` says whether its unmatched records are emitted."""

    this_store: str
    other_store: str
    # The records of a left or outer join still waiting for a partner; None for inner.
    shared_store: str | None
    left: bool
    before_ms: int
    after_ms: int
    grace_ms: int
    outer: bool
    # The format both sides' keys are written in to the stores.
    key_format: str


@dataclass(frozen=True)
class ForeignKeyJoin:
    """A table joined with a table by a foreign key (Kafka Streams' KIP-213): the left
    table's rows subscribe, through a topic keyed by foreign key, to the right table's row;
    the right side answers through a topic keyed by the left row's key, with a hash of the
    left value it answered, so that an answer to a value since replaced is dropped."""

    name: str
    left_topic: str
    right_topic: str
    right_table: str
    left_store: str
    right_store: str
    # (foreign key, left key) -> the subscription, in the right table's sub-topology.
    subscription_store: str
    subscription_topic: str
    response_topic: str
    left: bool


@dataclass(eq=False)
class Node:
    name: str
    # source, filter, filter_not, map, map_values, flat_map, flat_map_values, select_key, peek,
    # branch, branch_child, merge, passthrough, sink, dynamic_sink; stateful: table_source,
    # repartition (a sink to a repartition topic, keyed by `logic` if set), count, reduce,
    # aggregate, to_stream; process (a processor of the user's, its step a Process)
    kind: str
    logic: Logic | None = None
    topics: list[str] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)
    # For a branch node: (predicate or None for the default, the branch's child node).
    branches: list[tuple[Logic | None, Node]] = field(default_factory=list)
    # Tables and aggregations: the store they write; aggregations: their step.
    store: str | None = None
    step: StepBase | None = None
    # Repartition sinks and aggregations: the input is a table's updates (add and subtract).
    table: bool = False
    # Repartition sinks: the topic's key and value formats.
    formats: tuple[str, str] | None = None
    # Sources of repartition topics.
    internal: bool = False
    # Aggregations of a windowed stream: the window step.
    window: WindowBase | None = None
    # A table's source: the table's name. A join: the source of the table it looks up
    # (in its sub-topology, though no record flows from it to the join).
    entry: str | None = None
    peer: Node | None = None
    # A table's source: the table-table joins it is the right side of (its updates trigger
    # them too, though they are not its children).
    reverse: list[Node] = field(default_factory=list)
    # A join with a global table: the table (outside every sub-topology).
    glob: GlobalTable | None = None
    # One side of a stream-stream join: its window and stores.
    sjoin: StreamJoinSide | None = None
    # The parts of a foreign-key join (fk_subscribe, fk_subscription, fk_response).
    fk: ForeignKeyJoin | None = None
    # A repartition before a stream-stream join: the topics whose most partitions it takes
    # (both sides', so that they stay co-partitioned).
    partitions_from: tuple[str, ...] = ()

    def successors(self) -> list[Node]:
        return [child for _, child in self.branches] + self.children


@dataclass
class Graph:
    sources: list[Node]

    def walk(self) -> list[Node]:
        """Every node once, sources first, in a stable breadth-first order."""
        seen: set[int] = set()
        order: list[Node] = []
        queue = list(self.sources)
        while queue:
            node = queue.pop(0)
            if id(node) in seen:
                continue
            seen.add(id(node))
            order.append(node)
            queue.extend(node.successors())
        return order

    def components(self) -> list[list[Node]]:
        """Sub-topologies: nodes connected in either direction, in source order."""
        parent: dict[int, int] = {}

        def find(x: int) -> int:
            while parent.setdefault(x, x) != x:
                x = parent[x]
            return x

        nodes = self.walk()
        for node in nodes:
            for succ in node.successors():
                parent[find(id(succ))] = find(id(node))
            if node.peer is not None:
                parent[find(id(node.peer))] = find(id(node))
        groups: dict[int, list[Node]] = {}
        for node in nodes:
            groups.setdefault(find(id(node)), []).append(node)
        return list(groups.values())


class _Names:
    def __init__(self) -> None:
        self.used: set[str] = set()

    def new(self, base: str) -> str:
        name, n = base, 1
        while name in self.used:
            n += 1
            name = f"{base}-{n}"
        self.used.add(name)
        return name


def repartition_topic(app: str, name: str) -> str:
    return f"{app}-{name}-repartition"


def changelog_topic(app: str, store: str) -> str:
    return f"{app}-{store}-changelog"


class KeyChanges:
    """Whether the key of a stream output differs from how its source is partitioned, so that
    group_by_key must repartition (Kafka Streams' repartitionRequired)."""

    def __init__(self, spec: Spec) -> None:
        self.streams = {s.name: s for s in spec.streams}
        self.tables = {t.name for t in spec.tables}
        self.memo: dict[str, bool] = {}

    def output(self, name: str) -> bool:
        if name not in self.memo:
            self.memo[name] = False  # a cycle is a spec error reported elsewhere
            stream_name, _, branch = name.partition(".")
            stream = self.streams[stream_name]
            self.memo[name] = self.at(stream, stream.steps, branch or None)
        return self.memo[name]

    def start(self, stream: Stream | Table) -> bool:
        if isinstance(stream, Table) or stream.from_stream is None:
            return False
        return self.output(stream.from_stream)

    def at(self, stream: Stream, steps: list[Step], branch: str | None = None) -> bool:
        changed = self.start(stream)
        for step in steps:
            if isinstance(step, _KEY_CHANGERS):
                changed = True
            elif isinstance(step, (GroupBy, GroupByKey)):
                changed = False  # repartitioned, or not needed
            elif isinstance(step, Join) and (step.join in self.tables or step.windowed):
                changed = False  # a join repartitions a re-keyed stream first
            elif isinstance(step, Merge):
                changed = changed or any(self.output(m) for m in step.streams)
            elif isinstance(step, BranchStep) and branch is not None:
                return changed
        return changed


def build(spec: Spec) -> Graph:
    """Wire a checked spec into nodes; stream references become edges."""
    names = _Names()
    outputs: dict[str, Node] = {}
    pending: list[tuple[str, Node]] = []
    sources: list[Node] = []
    keys = KeyChanges(spec)
    for stream in spec.streams:
        _build_stream(
            spec, stream, names=names, outputs=outputs, pending=pending, sources=sources, keys=keys
        )
    for table in spec.tables:
        _build_stream(
            spec, table, names=names, outputs=outputs, pending=pending, sources=sources, keys=keys
        )
    for output, node in pending:
        outputs[output].children.append(node)
    tables = {s.entry: s for s in sources if s.kind == "table_source"}
    globs = {g.name: g for g in spec.global_tables}
    for node in Graph(sources).walk():
        if node.kind == "fk_subscription" and node.fk is not None:
            # The right table's updates answer the subscriptions too.
            node.peer = tables[node.fk.right_table]
            node.peer.reverse.append(node)
        elif node.kind == "join" and isinstance(node.step, Join) and node.step.join in globs:
            node.glob = globs[node.step.join]
            node.store = node.glob.store
        elif node.kind in ("join", "table_join") and isinstance(node.step, Join):
            node.peer = tables[node.step.join]
            node.store = node.peer.store
            if node.kind == "table_join":
                node.peer.reverse.append(node)
    return Graph(sources)


def _build_stream(
    spec: Spec,
    stream: Stream | Table,
    *,
    names: _Names,
    outputs: dict[str, Node],
    pending: list[tuple[str, Node]],
    sources: list[Node],
    keys: KeyChanges,
) -> None:
    prev: Node | None = None
    is_table = isinstance(stream, Table)
    if isinstance(stream, Table):
        prev = Node(
            names.new(f"{stream.name}-source"),
            "table_source",
            topics=stream.from_topics,
            store=stream.store,
            entry=stream.name,
        )
        sources.append(prev)
    elif stream.from_topics:
        # A source's logic is its timestamp extractor, if the stream has one.
        prev = Node(
            names.new(f"{stream.name}-source"),
            "source",
            stream.timestamp,
            topics=stream.from_topics,
        )
        sources.append(prev)
    window: WindowBase | None = None

    def attach(node: Node) -> None:
        nonlocal prev
        if prev is None:
            assert isinstance(stream, Stream) and stream.from_stream is not None
            pending.append((stream.from_stream, node))
        else:
            prev.children.append(node)
        prev = node

    def repartition(sink: Node, source_name: str) -> None:
        """Write to the repartition topic of `sink`; what follows reads it back."""
        nonlocal prev
        attach(sink)
        prev = _internal_source(names, source_name, sink.topics[0])
        sources.append(prev)

    for j, step in enumerate(stream.steps):
        base = f"{stream.name}-{step.name}" if step.name else None
        if isinstance(step, (GroupBy, GroupByKey)):
            needed = isinstance(step, GroupBy) or (
                isinstance(stream, Stream) and keys.at(stream, stream.steps[:j])
            )
            if not needed:
                continue  # the aggregation reads the records where they are
            # The aggregation it feeds (after a window step, if there is one).
            rest = [s for s in stream.steps[j + 1 : j + 3] if not isinstance(s, WINDOWS)]
            following = rest[0] if rest else None
            # Named like Kafka Streams does: after the step, else after the store it feeds.
            label = step.name or (following.store if isinstance(following, AGGREGATIONS) else "")
            topic = repartition_topic(spec.app, label or f"{stream.name}-group-by")
            sink = Node(
                names.new(base or f"{stream.name}-repartition"),
                "repartition",
                step.group_by if isinstance(step, GroupBy) else None,
                [topic],
                table=is_table,
                step=step,
                formats=(step.key, step.value),
            )
            repartition(sink, f"{stream.name}-repartition-source")
        elif isinstance(step, WINDOWS):
            window = step  # the aggregation after it is windowed
        elif isinstance(step, AGGREGATIONS):
            kind = (
                "count"
                if isinstance(step, Count)
                else ("reduce" if isinstance(step, Reduce) else "aggregate")
            )
            grouped_table = _from_table(stream, j)
            node = Node(
                names.new(base or f"{stream.name}-{kind}"),
                kind,
                store=step.store,
                step=step,
                table=grouped_table,
                window=window,
            )
            window = None
            attach(node)
        elif isinstance(step, ToStream):
            attach(Node(names.new(base or f"{stream.name}-to-stream"), "to_stream"))
        elif isinstance(step, Join) and step.foreign_key is not None and isinstance(stream, Table):
            left_source = prev
            assert left_source is not None
            fk = _foreign_key_join(spec, stream, step)
            label = fk.name
            attach(
                Node(
                    names.new(f"{label}-subscribe"),
                    "fk_subscribe",
                    step.foreign_key,
                    step=step,
                    fk=fk,
                )
            )
            subscription = Node(
                names.new(f"{label}-subscription"),
                "fk_subscription",
                step=step,
                store=fk.subscription_store,
                fk=fk,
            )
            sources.append(
                _internal_source(
                    names, f"{label}-subscription-source", fk.subscription_topic, subscription
                )
            )
            response = Node(
                names.new(f"{label}-response"),
                "fk_response",
                step.joiner,
                step=step,
                fk=fk,
                peer=left_source,
            )
            sources.append(
                _internal_source(names, f"{label}-response-source", fk.response_topic, response)
            )
            prev = response  # the join's result goes on from the answers
        elif isinstance(step, Join) and step.windowed and isinstance(stream, Stream):
            label = base or f"{stream.name}-join"
            parts = _stream_join(spec, stream, j, label=label, names=names, keys=keys)
            if parts.left_repartition is not None:
                repartition(parts.left_repartition, f"{label}-left-repartition-source")
            attach(parts.this)
            pending.append((step.join, parts.right_input))
            if parts.right_source is not None:
                sources.append(parts.right_source)
            prev = parts.merge  # what follows reads both sides' results
        elif isinstance(step, Join):
            kind = "table_join" if _flow_at(stream, j) == "table" else "join"
            table = next((t for t in spec.tables if t.name == step.join), None)
            if (
                kind == "join"
                and table is not None
                and isinstance(stream, Stream)
                and keys.at(stream, stream.steps[:j])
            ):
                # The key changed upstream: the records go through a repartition topic keyed
                # (and partitioned) like the table's, as Kafka Streams does before a join.
                topic = repartition_topic(spec.app, step.name or f"{stream.name}-join")
                label = base or f"{stream.name}-join"
                sink = Node(
                    names.new(f"{label}-repartition"),
                    "repartition",
                    topics=[topic],
                    step=step,
                    formats=(spec.topics[table.from_].key, REPARTITION_VALUE_FORMAT),
                )
                repartition(sink, f"{label}-repartition-source")
            attach(Node(names.new(base or f"{stream.name}-join"), kind, step.joiner, step=step))
        elif isinstance(step, Suppress):
            store = step.store_name(stream.name)
            name = names.new(base or f"{stream.name}-suppress")
            attach(Node(name, "suppress", store=store, step=step))
        elif isinstance(step, Process):
            # Its stores are its own; `store` stays None (it names what a step materializes).
            attach(Node(names.new(base or f"{stream.name}-process"), "process", step=step))
        elif isinstance(step, Merge):
            node = Node(names.new(base or f"{stream.name}-merge"), "merge")
            attach(node)
            pending.extend((other, node) for other in step.streams)
        elif isinstance(step, To):
            if isinstance(step.to, DynamicTo):
                node = Node(
                    names.new(base or f"{stream.name}-to"),
                    "dynamic_sink",
                    step.to.topic,
                    list(step.to.topics),
                )
            else:
                node = Node(names.new(base or f"{stream.name}-to"), "sink", topics=[step.to])
            attach(node)
        elif isinstance(step, BranchStep):
            node = Node(names.new(base or f"{stream.name}-branch"), "branch")
            attach(node)
            for branch in step.branch:
                child = Node(names.new(f"{stream.name}.{branch.name}"), "branch_child")
                node.branches.append((branch.when, child))
                if branch.to is not None:
                    child.children.append(
                        Node(
                            names.new(f"{stream.name}.{branch.name}-to"), "sink", topics=[branch.to]
                        )
                    )
                else:
                    outputs[f"{stream.name}.{branch.name}"] = child
        else:
            kind = _KINDS[type(step)]
            on_table = _flow_at(stream, j) == "table"
            node = Node(
                names.new(base or f"{stream.name}-{kind.replace('_', '-')}"),
                kind,
                getattr(step, kind),
                # filter, filter_not and map_values on a table work on its updates, and may
                # keep their result in a store.
                table=on_table,
                store=getattr(step, "store", None) if on_table else None,
            )
            attach(node)
    if prev is None:
        assert isinstance(stream, Stream)
        attach(Node(names.new(f"{stream.name}-passthrough"), "passthrough"))
    if not (stream.steps and is_terminal(stream.steps[-1])):
        assert prev is not None
        outputs[stream.name] = prev


@dataclass
class _StreamJoinNodes:
    this: Node  # the left side's processor; the right side's is reached from `right_input`
    merge: Node
    right_input: Node  # what the other stream's output feeds
    left_repartition: Node | None = None  # a sink to repartition this stream first
    right_source: Node | None = None  # the right side read back from its repartition topic


def _stream_join(
    spec: Spec, stream: Stream, j: int, *, label: str, names: _Names, keys: KeyChanges
) -> _StreamJoinNodes:
    """A stream joined with a stream (Kafka Streams' KStreamImplJoin): each side's records go
    to its own join processor, which looks the other side's window store up, then into its
    own; both processors' results go on through one merge. A side whose key changed upstream
    is repartitioned first, keyed in the join's key format, both sides to as many partitions."""
    step = stream.steps[j]
    assert isinstance(step, Join)
    this_store, other_store, *shared = step.store_names(stream.name)
    before, after = step.window_ms()
    grace = duration_ms(step.grace or "0ms")
    left_changed, right_changed = keys.at(stream, stream.steps[:j]), keys.output(step.join)
    left_format, right_format = _key_format(spec, stream.name), _key_format(spec, step.join)
    key_format = right_format if left_changed and not right_changed else left_format
    both = tuple(dict.fromkeys([*_topics_of(spec, stream.name), *_topics_of(spec, step.join)]))
    merge = Node(names.new(f"{label}-merge"), "merge")

    def side(this: str, other: str, left: bool) -> Node:
        return Node(
            names.new(f"{label}-{'this' if left else 'other'}"),
            "stream_join",
            step.joiner,
            children=[merge],
            store=this,
            step=step,
            sjoin=StreamJoinSide(
                this_store=this,
                other_store=other,
                shared_store=shared[0] if shared else None,
                left=left,
                before_ms=before if left else after,
                after_ms=after if left else before,
                grace_ms=grace,
                outer=step.how == "outer" or (left and step.how == "left"),
                key_format=key_format,
            ),
        )

    def sink(which: str) -> Node:
        return Node(
            names.new(f"{label}-{which}-repartition"),
            "repartition",
            topics=[repartition_topic(spec.app, f"{label}-{which}")],
            step=step,
            formats=(key_format, REPARTITION_VALUE_FORMAT),
            partitions_from=both,
        )

    this, other = side(this_store, other_store, True), side(other_store, this_store, False)
    nodes = _StreamJoinNodes(this, merge, other)
    if left_changed:
        nodes.left_repartition = sink("left")
    if right_changed:
        nodes.right_input = sink("right")
        topic = nodes.right_input.topics[0]
        nodes.right_source = _internal_source(
            names, f"{label}-right-repartition-source", topic, other
        )
    return nodes


def _internal_source(names: _Names, name: str, topic: str, *children: Node) -> Node:
    """A source reading an internal topic back: a repartition topic, or a foreign-key join's
    subscription or response topic."""
    return Node(names.new(name), "source", topics=[topic], internal=True, children=list(children))


def _foreign_key_join(spec: Spec, table: Table, step: Join) -> ForeignKeyJoin:
    """Named as Kafka Streams names them (TableJoined.as): after the step, else
    '<table>-fk-join'."""
    right = next(t for t in spec.tables if t.name == step.join)
    name = step.foreign_key_name(table.name)
    return ForeignKeyJoin(
        name=name,
        left_topic=table.from_,
        right_topic=right.from_,
        right_table=right.name,
        left_store=table.store,
        right_store=right.store,
        subscription_store=f"{name}-subscription-store",
        subscription_topic=f"{spec.app}-{name}-subscription-registration-topic",
        response_topic=f"{spec.app}-{name}-subscription-response-topic",
        left=step.how == "left",
    )


def _key_format(spec: Spec, name: str) -> str:
    """The key format of the topic a stream output is read from (its first source)."""
    topics = _topics_of(spec, name)
    return spec.topics[topics[0]].key if topics and topics[0] in spec.topics else "string"


def _topics_of(spec: Spec, name: str, seen: frozenset[str] = frozenset()) -> list[str]:
    """The source topics a stream output's records come from (through from_stream, merges)."""
    stream = next((s for s in spec.streams if s.name == name.partition(".")[0]), None)
    if stream is None or stream.name in seen:
        return []
    seen = seen | {stream.name}
    found = list(stream.from_topics)
    if stream.from_stream is not None:
        found += _topics_of(spec, stream.from_stream, seen)
    for step in stream.steps:
        if isinstance(step, Merge):
            for other in step.streams:
                found += _topics_of(spec, other, seen)
    return list(dict.fromkeys(found))


def _flow_at(entry: Stream | Table, j: int) -> Flow:
    start: Flow = "table" if isinstance(entry, Table) else "stream"
    return flows(start, entry.steps)[j]


def _from_table(entry: Stream | Table, j: int) -> bool:
    """Whether the aggregation at step j aggregates a grouped table."""
    start: Flow = "table" if isinstance(entry, Table) else "stream"
    return flows(start, entry.steps)[j] == "grouped_table"
