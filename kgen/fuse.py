"""Fusing a source's processor chain into straight-line Python: no per-record dispatch.

Each path from a source to a sink becomes nested code in one loop body: a filter is an `if`, a
flat_map a `for`, a branch an `if/elif/else`, a merge is inlined into each of its inputs. Keys
and values stay raw bytes until an expression reads them, so a record that only passes through
is never decoded and re-encoded (the payments filter reads the key and never touches the value).
Every step gets fresh variable names, so sibling paths cannot see each other's values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from kgen import expr
from kgen.graph import Node
from kgen.spec import Aggregate, FunctionRef, Logic, Reduce

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


class Fuser:
    """Emits the code of one source topic's records, given that topic's formats."""

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

    def fuse(self, sources: list[Node], topic: str) -> list[str]:
        """The code of one source topic's records, through every stream that reads it. Several
        streams on one topic are one source forked (Kafka Streams allows one source a topic):
        each gets the record, and a failure in one leaves the others theirs."""
        self.lines = []
        self.partition = "(msg.partition() or 0)"
        self.handler = "ctx.on_error(msg, exc, at)"
        self.origin = self.current = sources[0].name
        self.known, self.last_depth = None, 0
        formats = self.topics[topic]
        # Every part of the record is read from the message where it is used, and only then:
        # a record a filter drops never has its timestamp or headers fetched.
        env = {
            "key": Var(None, "msg.key()", formats.key),
            "value": Var(None, "msg.value()", formats.value),
            "timestamp": Var(None, "msg.timestamp()[1]"),
            "headers": Var(None, "msg.headers()"),
        }
        if len(sources) == 1:
            self.source(sources[0], env, formats, 0)
            return self.lines
        self.prepare_fields(self.reads([c for s in sources for c in s.successors()], env), env, 0)
        for source in sources:
            self.isolated(0, partial(self.source, source, dict(env), formats))
        return self.lines

    def source(self, source: Node, env: Env, formats: TopicFormats, depth: int) -> None:
        if source.kind == "table_source":
            self.table_source(source, env, formats, depth)
        else:
            self.children(source, env, depth)

    def emit_function(self, node: Node) -> list[str]:
        """The body of `_emit_<store>(ctx, part, key, old, new, ts)`: what a store's updates
        go on to, run when the store's cache flushes. `key` is the store's key bytes; `old`
        and `new` are decoded aggregates, or for a table the values' bytes."""
        assert node.store is not None
        self.lines = []
        self.partition = "part"
        self.handler = f"ctx.on_update_error({node.store!r}, part, key, new, exc, at)"
        self.origin = self.current = node.name
        self.known, self.last_depth = None, 0
        formats = self.store_formats[node.store]
        raw_values = node.kind == "table_source"
        env = {
            "key": Var(None, "key", formats.key),
            "value": Var(None, "new", formats.value) if raw_values else Var("new"),
            "timestamp": Var("ts"),
            "headers": Var("None"),
        }
        old = Var(None, "old", formats.value) if raw_values else Var("old")
        self.emit(0, "produce = ctx.produce")
        self.emit(0, "try:")
        for child in node.children:
            if len(node.children) > 1:
                self.isolated(1, partial(self.updates, child, dict(env), old))
            else:
                self.updates(child, dict(env), old, 1)
        self.except_(0)
        return self.lines

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

    def updates(self, node: Node, env: Env, old: Var, depth: int) -> None:
        """Downstream of a table: `to`, `to_stream` and a table's group_by."""
        if node.kind == "to_stream":
            self.children(node, env, depth)
        elif node.kind == "sink":
            self.at(node, depth)
            self.produce(node.topics[0], env, depth, repr(node.topics[0]))
        elif node.kind == "repartition":
            self.at(node, depth)
            self.regroup(node, env, old, depth)
        else:  # pragma: no cover - the checks allow nothing else after a table
            raise AssertionError(node.kind)

    def table_source(self, node: Node, env: Env, formats: TopicFormats, depth: int) -> None:
        """A table's source record upserts its key (a null value deletes it); records without
        a key are dropped, as in Kafka Streams."""
        assert node.store is not None
        self.store_formats[node.store] = formats
        self.stateful.append(node)
        key = env["key"].raw
        self.emit(depth, f"if {key} is not None:")
        self.emit(
            depth + 1,
            f"ctx.store({node.store!r}, {self.partition}).put({key}, {env['value'].raw}, "
            f"{self.plain(env, 'timestamp')})",
        )

    # -- helpers -----------------------------------------------------------------------------

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
        return expr.parse(logic, self.modules, agg=True).uses

    def call(self, logic: Logic, env: Env, agg: str | None = None) -> str:
        """Code evaluating `logic` over the (already decoded) record in env; `agg` names the
        aggregate so far, for an aggregation's adder and subtractor."""
        if isinstance(logic, FunctionRef):
            alias = self.aliases.get(logic.function) or function_alias(logic)
            args = f"{env['key'].name}, {env['value'].name}"
            return f"{alias}({args}, {agg})" if agg else f"{alias}({args})"
        # Only what the expression reads is decoded (prepare); the rest is never named.
        names = {f: var.name for f, var in env.items() if var.name is not None}
        if agg is not None:
            names[expr.AGG] = agg
        return expr.parse(logic, self.modules, agg=agg is not None).render(names)

    def prepare(self, logics: list[Logic], env: Env, depth: int) -> None:
        needed = set().union(*(self.uses(lg) for lg in logics)) if logics else set()
        for field in ("key", "value", "timestamp", "headers"):
            if field in needed:
                self.decoded(env, field, depth)

    # -- nodes -------------------------------------------------------------------------------

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

    def node(self, node: Node, env: Env, depth: int) -> None:
        kind = node.kind
        if kind in ("merge", "passthrough", "branch_child"):
            self.children(node, env, depth)
            return
        self.at(node, depth)
        if kind == "repartition":
            self.repartition(node, env, depth)
            return
        if kind in ("count", "reduce", "aggregate"):
            self.aggregation(node, env, depth)
            return
        if kind == "sink":
            self.produce(node.topics[0], env, depth, repr(node.topics[0]))
            return
        if kind == "branch":
            self.branch(node, env, depth)
            return
        assert node.logic is not None
        if kind == "dynamic_sink":
            self.dynamic_sink(node, env, depth)
            return
        self.prepare([node.logic], env, depth)
        code = self.call(node.logic, env)
        if kind == "filter":
            self.emit(depth, f"if {code}:")
            self.children(node, env, depth + 1)
        elif kind == "filter_not":
            self.emit(depth, f"if not ({code}):")
            self.children(node, env, depth + 1)
        elif kind == "peek":
            self.emit(depth, code)
            self.children(node, env, depth)
        elif kind == "map":
            k, v = self.fresh("k"), self.fresh("v")
            self.emit(depth, f"{k}, {v} = {code}")
            env.update(key=Var(k), value=Var(v))
            self.children(node, env, depth)
        elif kind == "map_values":
            v = self.fresh("v")
            self.emit(depth, f"{v} = {code}")
            env["value"] = Var(v)
            self.children(node, env, depth)
        elif kind == "select_key":
            k = self.fresh("k")
            self.emit(depth, f"{k} = {code}")
            env["key"] = Var(k)
            self.children(node, env, depth)
        elif kind == "flat_map":
            k, v = self.fresh("k"), self.fresh("v")
            self.emit(depth, f"for {k}, {v} in {code}:")
            env.update(key=Var(k), value=Var(v))
            self.loop_body(node, env, depth + 1)
        elif kind == "flat_map_values":
            v = self.fresh("v")
            self.emit(depth, f"for {v} in {code}:")
            env["value"] = Var(v)
            self.loop_body(node, env, depth + 1)
        else:  # pragma: no cover - the graph only builds the kinds above
            raise AssertionError(kind)

    def branch(self, node: Node, env: Env, depth: int) -> None:
        # Decode everything any predicate reads first: nothing may stand between `elif`s.
        self.prepare([p for p, _ in node.branches if p is not None], env, depth)
        for i, (predicate, child) in enumerate(node.branches):
            if predicate is None and i == 0:
                # A lone default branch takes every record: there is no condition to test.
                self.node(child, dict(env), depth)
                continue
            if predicate is None:
                self.emit(depth, "else:")
            else:
                self.emit(depth, f"{'if' if i == 0 else 'elif'} {self.call(predicate, env)}:")
            self.node(child, dict(env), depth + 1)

    def dynamic_sink(self, node: Node, env: Env, depth: int) -> None:
        assert node.logic is not None
        self.prepare([node.logic], env, depth)
        target = self.fresh("t")
        self.emit(depth, f"{target} = {self.call(node.logic, env)}")
        groups: dict[TopicFormats, list[str]] = {}
        for topic in node.topics:
            groups.setdefault(self.topics[topic], []).append(topic)
        allowed = tuple(node.topics)
        for i, topics in enumerate(groups.values()):
            self.emit(depth, f"{'if' if i == 0 else 'elif'} {target} in {tuple(topics)!r}:")
            self.produce(topics[0], dict(env), depth + 1, target)
        self.emit(depth, "else:")
        self.emit(depth + 1, f"raise UnknownTopicError({target}, {allowed!r})")

    def produce(self, topic: str, env: Env, depth: int, topic_code: str) -> None:
        formats = self.topics[topic]
        key = self.encoded(env, "key", formats.key)
        value = self.encoded(env, "value", formats.value)
        # Output keeps the input record's timestamp and headers, as in Kafka Streams.
        timestamp, headers = self.plain(env, "timestamp"), self.plain(env, "headers")
        self.emit(
            depth,
            f"produce({topic_code}, {value}, {key}, timestamp={timestamp}, headers={headers})",
        )

    # -- stateful ----------------------------------------------------------------------------

    def repartition(self, node: Node, env: Env, depth: int) -> None:
        """group_by: write the record, keyed by the group, to the repartition topic; records
        whose group is null are dropped, as in Kafka Streams."""
        if node.logic is not None:
            self.prepare([node.logic], env, depth)
            k = self.fresh("k")
            self.emit(depth, f"{k} = {self.call(node.logic, env)}")
            env["key"] = Var(k)
        key = env["key"]
        self.emit(depth, f"if {key.name or key.raw} is not None:")
        self.produce(node.topics[0], env, depth + 1, repr(node.topics[0]))

    def regroup(self, node: Node, env: Env, old: Var, depth: int) -> None:
        """A table's group_by: the old value leaves its group, the new one joins its group; a
        row whose group stays the same sends one record with both (KIP-904)."""
        sides: dict[str, tuple[str, Env]] = {}
        for side, var in (("old", old), ("new", env["value"])):
            side_env = dict(env, value=var)
            group = self.fresh("k")
            if node.logic is None:
                group = str(env["key"].name or env["key"].raw)
            else:
                self.emit(depth, f"{group} = None")
                self.emit(depth, f"if {side} is not None:")
                self.prepare([node.logic], side_env, depth + 1)
                self.emit(depth + 1, f"{group} = {self.call(node.logic, side_env)}")
            if node.logic is not None:
                side_env["key"] = Var(group)
            sides[side] = (group, side_env)
        (k_old, old_env), (k_new, new_env) = sides["old"], sides["new"]
        topic = node.topics[0]
        old_bytes = self.encoded(old_env, "value", self.topics[topic].value)
        same = f"{k_old} is not None and {k_old} == {k_new}"
        self.emit(depth, f"if old is not None and new is not None and {same}:")
        both = f"[{REGROUP_HEADER}, ('kgen.old', {old_bytes})]"
        self.produce(topic, dict(new_env, headers=Var(both)), depth + 1, repr(topic))
        self.emit(depth, "else:")
        for side, (group, side_env), headers in (
            ("old", sides["old"], SUBTRACT_HEADERS),
            ("new", sides["new"], "None"),
        ):
            self.emit(depth + 1, f"if {side} is not None and {group} is not None:")
            self.produce(topic, dict(side_env, headers=Var(headers)), depth + 2, repr(topic))

    def aggregation(self, node: Node, env: Env, depth: int) -> None:
        """count, reduce, aggregate: fold the record into its key's aggregate in the store.
        Null keys and null values are dropped, as in Kafka Streams. The aggregate's timestamp
        is the latest of its records'."""
        assert node.store is not None and node.step is not None
        step = node.step
        key = env["key"]
        key_format = key.fmt or "string"
        value_format = COUNT_FORMAT if node.kind == "count" else AGGREGATE_FORMAT
        self.store_formats[node.store] = TopicFormats(key_format, value_format)
        self.stateful.append(node)
        kb = self.fresh("kb")
        self.emit(depth, f"{kb} = {self.encoded(env, 'key', key_format)}")
        value = env["value"]
        guard = f"{kb} is not None"
        if not node.table:
            guard += f" and {value.name or value.raw} is not None"
        self.emit(depth, f"if {guard}:")
        depth += 1
        logics: list[Logic] = []
        if isinstance(step, (Reduce, Aggregate)):
            logics.append(step.reduce if isinstance(step, Reduce) else step.aggregate)
            if step.subtract is not None:
                logics.append(step.subtract)
            if isinstance(step, Aggregate):
                logics.append(step.init)
        needed = set().union(*(self.uses(lg) for lg in logics)) if logics else set()
        if isinstance(step, Reduce):
            needed.add("value")  # a key's first value is its aggregate
        for field in ("key", "value", "timestamp", "headers"):
            if field in needed:
                self.decoded(env, field, depth)
        st, o, a = self.fresh("st"), self.fresh("o"), self.fresh("a")
        ts = self.decoded(env, "timestamp", depth)
        self.emit(depth, f"{st} = ctx.store({node.store!r}, {self.partition})")
        self.emit(depth, f"{o} = {st}.get({kb})")
        if node.table:
            headers = self.decoded(env, "headers", depth)
            self.emit(depth, f"if {headers} == {SUBTRACT_HEADERS}:")
            self.fold(node, env, depth + 1, o, a, subtract=True)
            self.emit(depth, f"elif {headers} and {headers}[0] == {REGROUP_HEADER}:")
            # The old value leaves and the new one joins: one update (KIP-904).
            old_env = dict(env, value=Var(None, f"{headers}[1][1]", env["value"].fmt))
            if "value" in needed:
                self.decoded(old_env, "value", depth + 1)
            between, mid = self.fresh("a"), self.fresh("o")
            self.fold(node, old_env, depth + 1, o, between, subtract=True)
            self.emit(depth + 1, f"{mid} = ({between}, 0)")
            self.fold(node, env, depth + 1, mid, a, subtract=False)
            self.emit(depth, "else:")
            self.fold(node, env, depth + 1, o, a, subtract=False)
        else:
            self.fold(node, env, depth, o, a, subtract=False)
        self.emit(depth, f"{st}.put({kb}, {a}, {ts} if {o} is None else max({o}[1], {ts}))")

    def fold(self, node: Node, env: Env, depth: int, o: str, a: str, *, subtract: bool) -> None:
        step = node.step
        value = env["value"].name
        if node.kind == "count":
            sign = "-" if subtract else "+"
            start = -1 if subtract else 1
            self.emit(depth, f"{a} = {start} if {o} is None else {o}[0] {sign} 1")
            return
        assert isinstance(step, (Reduce, Aggregate))
        adder = step.reduce if isinstance(step, Reduce) else step.aggregate
        logic = step.subtract if subtract else adder
        assert logic is not None
        agg = self.fresh("g")
        if isinstance(step, Aggregate):
            self.emit(depth, f"{agg} = {self.call(step.init, env)} if {o} is None else {o}[0]")
            self.emit(depth, f"{a} = {self.call(logic, env, agg)}")
        elif subtract:
            self.emit(depth, f"{agg} = None if {o} is None else {o}[0]")
            self.emit(depth, f"{a} = {self.call(logic, env, agg)}")
        else:
            self.emit(depth, f"if {o} is None:")
            self.emit(depth + 1, f"{a} = {value}")
            self.emit(depth, "else:")
            self.emit(depth + 1, f"{agg} = {o}[0]")
            self.emit(depth + 1, f"{a} = {self.call(logic, env, agg)}")
