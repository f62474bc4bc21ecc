"""The shared part of fusing: the emitted lines, fresh names, decoding and encoding of keys
and values, expressions, isolation of failures, and which node a failure belongs to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from kgen.plan.graph import Node
from kgen.spec import Aggregate, FunctionRef, Logic, Reduce, expr

# The header that marks a grouped table's repartition record as taking a value out of its
# group (the record with the value to add has none).
SUBTRACT_HEADERS = '[("kgen.change", b"-")]'
# A row updated within its group: one record with the new value, and the old one in a header
# (Kafka Streams' KIP-904), so the aggregate changes once, with no visible intermediate.
REGROUP_HEADER = '("kgen.change", b"=")'
# Value formats of aggregation stores.
COUNT_FORMAT = "long"
AGGREGATE_FORMAT = "json"


@dataclass(frozen=True)
class Var:
    """Where a record's key or value is: decoded in `name`, and/or still as the source's bytes
    in `raw` (of format `fmt`) while no step has changed it."""

    name: str | None
    raw: str | None = None
    fmt: str | None = None


Env = dict[str, Var]


@dataclass(frozen=True)
class TopicFormats:
    key: str
    value: str


def function_alias(ref: FunctionRef) -> str:
    module, function = ref.function.split(":")
    return f"_{module.replace('.', '_')}_{function}"


class FuserBase:
    """State and helpers of a Fuser; the node kinds are emitted by its subclasses."""

    def __init__(
        self,
        topics: dict[str, TopicFormats],
        modules: frozenset[str],
        aliases: dict[str, str] | None = None,
    ) -> None:
        self.topics = topics
        self.modules = modules
        # 'module:function' -> the name it is imported as, when the plan had to disambiguate.
        self.aliases = aliases or {}
        self.lines: list[str] = []
        self.counter = 0
        self.serde: set[str] = set()
        # Where the current code finds the record's partition (the store's partition).
        self.partition = "(msg.partition() or 0)"
        # Store name -> (key format, value format), as the code that writes it found them.
        self.store_formats: dict[str, TopicFormats] = {}
        # Stores that keep a topic's value bytes (tables), not decoded objects.
        self.raw_stores: set[str] = set()
        # Stateful nodes whose updates run downstream code: emitted as functions of their own.
        self.stateful: list[Node] = []
        # Failures name their node (Kafka Streams' processor node id): `at` holds the name of
        # the node running, `origin` the node whose bytes are decoded (the source, a store).
        self.origin = ""
        self.current = ""
        # `at` is assigned lazily: before the next line that can fail, when it is not known
        # to hold that name already on every way to that line.
        self.known: str | None = None
        self.last_depth = 0
        # What a failure inside a fork calls: the error policy, with the record or update.
        self.handler = "ctx.on_error(msg, exc, at)"
        # What a processor's forwards hand their failures to (see processors.py), and the
        # message its record came from (None where there is none: a store's update).
        self.fail = "partial(ctx.on_error, msg)"
        self.msg = "msg"
        # Sources in a sub-topology with processors -> its task group: their records move
        # the task's stream time on (stream-time punctuation).
        self.task_of: dict[str, int] = {}
        # process nodes reached: each gets a function its forwards run.
        self.processors: list[Node] = []

    def isolated(self, depth: int, emit: Callable[[int], None]) -> None:
        """Code whose failure stays its own: the record still reaches the code after it (a
        sibling path, the next item of a flat_map), as in Kafka Streams, where the node that
        fails hands the record to the error handler and its parent forwards on (KIP-1033)."""
        self.emit(depth, "try:")
        emit(depth + 1)
        self.except_(depth)

    def except_(self, depth: int) -> None:
        self.emit(depth, "except Exception as exc:  # the spec's error policy decides")
        self.emit(depth + 1, self.handler, flush=False)

    def at(self, node: Node, depth: int) -> None:
        """From here on, failures are `node`'s."""
        self.current = node.name

    def emit(self, depth: int, text: str, *, flush: bool = True) -> None:
        clause = text.startswith(("else:", "elif ", "except ", "try:"))
        if depth < self.last_depth or clause:
            # Out of a block, or into another arm of one: `at` may hold any name here.
            self.known = None
        if flush and not clause and self.known != self.current:
            self.lines.append("    " * depth + f"at = {self.current!r}")
            self.known = self.current
        self.lines.append("    " * depth + text)
        self.last_depth = depth

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def decoded(self, env: Env, field: str, depth: int) -> str:
        """The name of a decoded key/value, decoding the raw bytes here if not done yet."""
        var = env[field]
        if var.name is not None:
            return var.name
        assert var.raw is not None
        name = self.fresh({"timestamp": "ts", "headers": "hd"}.get(field, field[0]))
        if var.fmt is None:  # timestamp, headers: no format, just a name for expressions
            self.emit(depth, f"{name} = {var.raw}")
        else:
            # Bytes that cannot be read are the source's (or store's) failure, as Kafka
            # Streams' deserialization errors are, whichever step reads them first.
            fn = f"deserialize_{var.fmt}"
            self.serde.add(fn)
            current, self.current = self.current, self.origin
            self.emit(depth, f"{name} = {fn}({var.raw})")
            self.current = current
        env[field] = Var(name, var.raw, var.fmt)
        return name

    def plain(self, env: Env, field: str) -> str:
        """Timestamp or headers for a produced record: the name if there is one, else a read."""
        var = env[field]
        return var.name or str(var.raw)

    def encoded(self, env: Env, field: str, fmt: str) -> str:
        var = env[field]
        if var.raw is not None and var.fmt == fmt:
            return var.raw  # unchanged bytes in the sink's own format: pass them through
        value = var.name
        if value is None:
            self.serde.add(f"deserialize_{var.fmt}")
            value = f"deserialize_{var.fmt}({var.raw})"
        self.serde.add(f"serialize_{fmt}")
        return f"serialize_{fmt}({value})"

    def uses(self, logic: Logic) -> frozenset[str]:
        if isinstance(logic, FunctionRef):
            return frozenset({"key", "value"})
        return expr.parse(logic, self.modules, agg=True, other=True, other_key=True).uses

    def call(
        self,
        logic: Logic,
        env: Env,
        agg: str | None = None,
        other: str | None = None,
        other_key: str | None = None,
    ) -> str:
        """Code evaluating `logic` over the (already decoded) record in env; `agg` names the
        aggregate so far, for an aggregation's adder and subtractor; `other` the other side's
        value, for a joiner."""
        extra = agg or other
        if isinstance(logic, FunctionRef):
            alias = self.aliases.get(logic.function) or function_alias(logic)
            args = f"{env['key'].name}, {env['value'].name}"
            return f"{alias}({args}, {extra})" if extra else f"{alias}({args})"
        # Only what the expression reads is decoded (prepare); the rest is never named.
        names = {f: var.name for f, var in env.items() if var.name is not None}
        if agg is not None:
            names[expr.AGG] = agg
        if other is not None:
            names[expr.OTHER] = other
        if other_key is not None:
            names[expr.OTHER_KEY] = other_key
        parsed = expr.parse(
            logic,
            self.modules,
            agg=agg is not None,
            other=other is not None,
            other_key=other_key is not None,
        )
        return parsed.render(names)

    def prepare(self, logics: list[Logic], env: Env, depth: int) -> None:
        needed = set().union(*(self.uses(lg) for lg in logics)) if logics else set()
        for field in ("key", "value", "timestamp", "headers"):
            if field in needed:
                self.decoded(env, field, depth)

    def children(self, node: Node, env: Env, depth: int) -> None:
        if len(node.children) < 2:
            for child in node.children:
                self.node(child, dict(env), depth)
            return
        # A fork: fields every path reads are read once, before it, so a record that cannot
        # be read fails once, at its origin, rather than once per path.
        self.prepare_fields(self.reads(node.children, env), env, depth)
        for child in node.children:
            self.isolated(depth, partial(self.node, child, dict(env)))

    def loop_body(self, node: Node, env: Env, depth: int) -> None:
        """The children of a flat_map, run once per item: a failure skips that item only."""
        self.isolated(depth, partial(self.children, node, env))

    def reads(self, nodes: list[Node], env: Env) -> set[str]:
        """Which of the record's still undecoded key and value some node below reads
        (over-approximated: a field replaced on the way counts too)."""
        raw = {f for f in ("key", "value") if env[f].name is None and env[f].fmt is not None}
        found: set[str] = set()
        todo = list(nodes)
        while todo and found != raw:
            node = todo.pop()
            if node.kind not in ("count", "reduce", "aggregate"):
                # (What follows an aggregation runs on the store's updates, not this record.)
                todo.extend(node.successors())
            logics = [node.logic] if node.logic is not None else []
            logics += [p for p, _ in node.branches if p is not None]
            step = node.step
            if isinstance(step, (Reduce, Aggregate)):
                logics.append(step.reduce if isinstance(step, Reduce) else step.aggregate)
                if isinstance(step, Reduce):
                    found.add("value")
            for logic in logics:
                found |= self.uses(logic)
            sinks = node.topics if node.kind in ("sink", "dynamic_sink", "repartition") else []
            for formats in filter(None, map(self.topics.get, sinks)):
                # A sink of another format re-encodes: it reads the field.
                found |= {f for f in ("key", "value") if env[f].fmt != getattr(formats, f)}
        return found & raw

    def prepare_fields(self, fields: set[str], env: Env, depth: int) -> None:
        for field in ("key", "value"):
            if field in fields:
                self.decoded(env, field, depth)

    def produce(self, topic: str, env: Env, depth: int, topic_code: str) -> None:
        formats = self.topics[topic]
        key = self.encoded(env, "key", formats.key)
        value = self.encoded(env, "value", formats.value)
        # Output keeps the input record's timestamp and headers, as in Kafka Streams.
        timestamp, headers = self.plain(env, "timestamp"), self.plain(env, "headers")
        partition = "-1"  # the producer's partitioner: murmur2 of the key, as Kafka Streams'
        if formats.key.startswith(("windowed_", "session_")):
            # Kafka Streams' WindowedStreamPartitioner: by the plain key, not the window.
            times = 16 if formats.key.startswith("session_") else 8
            if not key.isidentifier():
                kb = self.fresh("kb")
                self.emit(depth, f"{kb} = {key}")
                key = kb
            partition = f"ctx.partition_of({topic_code}, {key}[:-{times}])"
        # Positional (topic, value, key, partition, callback, on_delivery, timestamp, headers):
        # confluent-kafka parses keyword arguments ~250 ns a call slower.
        self.emit(
            depth,
            f"produce({topic_code}, {value}, {key}, {partition}, None, None, {timestamp}, "
            f"{headers})",
        )

    def node(self, node: Node, env: Env, depth: int) -> None:
        raise NotImplementedError
