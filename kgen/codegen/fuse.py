"""Fusing a source's processor chain into straight-line Python: no per-record dispatch.

Each path from a source to a sink becomes nested code in one loop body: a filter is an `if`, a
flat_map a `for`, a branch an `if/elif/else`, a merge is inlined into each of its inputs. Keys
and values stay raw bytes until an expression reads them, so a record that only passes through
is never decoded and re-encoded (the payments filter reads the key and never touches the value).
Every step gets fresh variable names, so sibling paths cannot see each other's values.
"""

from __future__ import annotations

from functools import partial

from kgen.codegen.fuse_base import Env, TopicFormats, Var, function_alias
from kgen.codegen.fuse_state import StatefulFuser
from kgen.plan.graph import REPARTITION_VALUE_FORMAT, Node
from kgen.spec import Join

__all__ = ["Fuser", "TopicFormats", "function_alias"]


class Fuser(StatefulFuser):
    """Emits the code of one source topic's records, given that topic's formats."""

    def fuse(self, sources: list[Node], topic: str) -> list[str]:
        """The code of one source topic's records, through every stream that reads it. Several
        streams on one topic are one source forked (Kafka Streams allows one source a topic):
        each gets the record, and a failure in one leaves the others theirs."""
        self.lines = []
        self.partition = "(msg.partition() or 0)"
        self.handler = "ctx.on_error(msg, exc, at)"
        self.origin = self.current = sources[0].name
        self.known, self.last_depth = None, 0
        self.fail, self.msg = "partial(ctx.on_error, msg)", "msg"
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
        # (A table's steps run from its store's updates, not here: they read nothing of it.)
        streams = [s for s in sources if s.kind != "table_source"]
        self.prepare_fields(self.reads([c for s in streams for c in s.successors()], env), env, 0)
        for source in sources:
            self.isolated(0, partial(self.source, source, dict(env), formats))
        return self.lines

    def source(self, source: Node, env: Env, formats: TopicFormats, depth: int) -> None:
        if source.kind == "table_source":
            self.table_source(source, env, formats, depth)
        else:
            if source.logic is not None:
                depth = self.event_time(source, env, depth)
            self.children(source, env, depth)
        group = self.task_of.get(source.name)
        if group is not None:
            # After the record, as Kafka Streams punctuates after processing one.
            timestamp = self.plain(env, "timestamp")
            self.emit(depth, f"ctx.advance({group}, {self.partition}, {timestamp})")

    def event_time(self, source: Node, env: Env, depth: int) -> int:
        """The stream's timestamp expression gives the record's timestamp (Kafka Streams'
        timestamp extractor): anything but an int fails the record by the error policy; a
        negative one drops it with a warning, as Kafka Streams does."""
        assert source.logic is not None
        self.at(source, depth)
        self.prepare([source.logic], env, depth)
        ts = self.fresh("ts")
        self.emit(depth, f"{ts} = {self.call(source.logic, env)}")
        self.emit(depth, f"if type({ts}) is not int:")
        problem = f"the timestamp expression gave {{{ts}!r}}, not an int (ms)"
        self.emit(depth + 1, f"raise TypeError(f{problem!r})")
        self.emit(depth, f"if {ts} < 0:")
        self.emit(depth + 1, f"ctx.drop_invalid_timestamp(msg, {ts})")
        self.emit(depth, "else:")
        env["timestamp"] = Var(ts)
        return depth + 1

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
        if kind == "join":
            self.join(node, env, depth)
            return
        if kind == "stream_join":
            self.stream_join(node, env, depth)
            return
        if kind == "fk_subscription":
            assert node.fk is not None
            self.emit(depth, f"fk_receive(ctx, {node.fk.name!r}, {self.partition}, msg)")
            return
        if kind == "fk_response":
            self.fk_response(node, env, depth)
            return
        if kind == "process":
            self.process(node, env, depth)
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

    def join(self, node: Node, env: Env, depth: int) -> None:
        """A stream-table join (Kafka Streams' KStreamKTableJoin): the table's row of the
        record's key, as the table is now (the task takes its topics in timestamp order).
        Records with a null value are dropped; a null key drops the record on an inner join
        and joins nothing on a left join; an inner join drops a record without a row."""
        step = node.step
        if node.glob is not None:
            self.global_join(node, env, depth)
            return
        assert isinstance(step, Join) and node.peer is not None and node.store is not None
        table = self.topics[node.peer.topics[0]]
        value = env["value"]
        kb, e, other = self.fresh("kb"), self.fresh("e"), self.fresh("o")
        self.emit(depth, f"{kb} = {self.encoded(env, 'key', table.key)}")
        guard = f"{value.name or value.raw} is not None"
        if step.how == "inner":
            guard = f"{kb} is not None and {guard}"
        self.emit(depth, f"if {guard}:")
        depth += 1
        store = f"ctx.store({node.store!r}, {self.partition})"
        # A table store's entry is (value bytes, timestamp).
        get = f"{store}.get({kb})"
        depth = self.lookup(
            step.how, get, kb=kb, e=e, other=other, fmt=table.value, item=0, depth=depth
        )
        self.joined(node, env, depth, other=other)

    def lookup(
        self,
        how: str,
        get: str,
        *,
        kb: str,
        e: str,
        other: str,
        fmt: str,
        item: int | None,
        depth: int,
    ) -> int:
        """Look the row up (`get`, of key bytes `kb`) and decode it into `other`: an inner
        join goes on only with a row (and a key), a left join with None for a missing one.
        `item`: where the row's bytes are in what `get` returns (None: it is the bytes)."""
        decode = f"deserialize_{fmt}"
        self.serde.add(decode)
        row = e if item is None else f"{e}[{item}]"
        if how == "inner":
            self.emit(depth, f"{e} = {get}")
            self.emit(depth, f"if {e} is not None:")
            self.emit(depth + 1, f"{other} = {decode}({row})")
            return depth + 1
        self.emit(depth, f"{e} = None if {kb} is None else {get}")
        # Every deserializer gives None for None, typed Any: a joiner may index `other`.
        held = e if item is None else f"None if {e} is None else {row}"
        self.emit(depth, f"{other} = {decode}({held})")
        return depth

    def joined(self, node: Node, env: Env, depth: int, **names: str) -> None:
        """The joiner's result becomes the value; the join's children go on with it."""
        step = node.step
        assert isinstance(step, Join)
        self.prepare([step.joiner], env, depth)
        joined = self.fresh("v")
        self.emit(depth, f"{joined} = {self.call(step.joiner, env, **names)}")
        env["value"] = Var(joined)
        self.children(node, env, depth)

    def global_join(self, node: Node, env: Env, depth: int) -> None:
        """A stream-global table join (Kafka Streams' KStreamGlobalKTableJoin): the row of the
        lookup key that `key` computes from the record, in the global table as this instance
        has read it so far. Records with a null value are dropped; a null lookup key drops the
        record on an inner join and joins nothing on a left join; an inner join drops a
        record without a row. The joiner sees the lookup key as `other_key`."""
        step, glob = node.step, node.glob
        assert isinstance(step, Join) and glob is not None and step.key is not None
        table = self.topics[glob.from_]
        value = env["value"]
        self.emit(depth, f"if {value.name or value.raw} is not None:")
        depth += 1
        self.prepare([step.key], env, depth)
        lookup, kb, e, other = self.fresh("lk"), self.fresh("kb"), self.fresh("e"), self.fresh("o")
        self.emit(depth, f"{lookup} = {self.call(step.key, env)}")
        self.serde.add(f"serialize_{table.key}")
        self.emit(depth, f"{kb} = serialize_{table.key}({lookup})")
        if step.how == "inner":
            self.emit(depth, f"if {kb} is not None:")
            depth += 1
        get = f"ctx.global_table({glob.name!r}).get({kb})"
        depth = self.lookup(
            step.how, get, kb=kb, e=e, other=other, fmt=table.value, item=None, depth=depth
        )
        self.joined(node, env, depth, other=other, other_key=lookup)

    def stream_join(self, node: Node, env: Env, depth: int) -> None:
        """One side of a stream-stream join (Kafka Streams' KStreamKStreamJoin, in the app's
        joins module): each result (the record with each partner in the window, or a record
        of a left or outer join whose window closed without one) runs the joiner, with
        `value` the left side's value and `other` the right side's (None when missing), and
        goes on under its own key and time. A result's failure is its own."""
        step, side = node.step, node.sjoin
        assert isinstance(step, Join) and side is not None
        # Kept as the source's format while no step changed the value (bytes stay bytes),
        # else as JSON.
        fmt = env["value"].fmt if env["value"].raw is not None else None
        values = fmt or REPARTITION_VALUE_FORMAT
        self.store_formats[side.this_store] = TopicFormats(side.key_format, values)
        if side.shared_store is not None:
            self.store_formats[side.shared_store] = TopicFormats("bytes", "bytes")
        kb = self.fresh("kb")
        self.emit(depth, f"{kb} = {self.encoded(env, 'key', side.key_format)}")
        decoded = self.decoded(env, "value", depth)
        timestamp = self.plain(env, "timestamp")
        k, left, right, ts = self.fresh("jk"), self.fresh("lv"), self.fresh("rv"), self.fresh("ts")
        self.emit(
            depth,
            f"for {k}, {left}, {right}, {ts} in stream_join(ctx, {node.name!r}, "
            f"{self.partition}, {kb}, {decoded}, {timestamp}):",
        )
        joined_env = {
            "key": Var(None, k, side.key_format),
            "value": Var(left),
            "timestamp": Var(ts),
            "headers": env["headers"],
        }

        def result(depth: int) -> None:
            self.prepare([step.joiner], joined_env, depth)
            joined = self.fresh("v")
            self.emit(depth, f"{joined} = {self.call(step.joiner, joined_env, other=right)}")
            joined_env["value"] = Var(joined)
            self.children(node, joined_env, depth)

        self.isolated(depth + 1, result)

    def fk_response(self, node: Node, env: Env, depth: int) -> None:
        """An answer of a foreign-key join, in the left row's partition: unless stale, the
        joiner's result (or a tombstone) is the join's update of that row, stamped with the
        answer's time (the later of the two rows' when it came from a subscription)."""
        step, fk = node.step, node.fk
        assert isinstance(step, Join) and fk is not None
        left, right = self.topics[fk.left_topic], self.topics[fk.right_topic]
        r, lv, rv, joined = self.fresh("r"), self.fresh("lv"), self.fresh("rv"), self.fresh("j")
        self.emit(depth, f"{r} = fk_resolve(ctx, {fk.name!r}, {self.partition}, msg)")
        self.emit(depth, f"if {r} is not None:")
        depth += 1
        self.emit(depth, f"{lv}, {rv} = {r}")
        self.emit(depth, f"{joined} = None")
        self.emit(depth, f"if {lv} is not None or {rv} is not None:")
        for fmt in (left.value, right.value):
            self.serde.add(f"deserialize_{fmt}")
        mine, theirs = self.fresh("v"), self.fresh("o")
        self.emit(depth + 1, f"{mine} = deserialize_{left.value}({lv})")
        self.emit(depth + 1, f"{theirs} = deserialize_{right.value}({rv})")
        joined_env = dict(env, key=Var(None, "msg.key()", left.key), value=Var(mine))
        self.prepare([step.joiner], joined_env, depth + 1)
        self.emit(depth + 1, f"{joined} = {self.call(step.joiner, joined_env, other=theirs)}")
        out = dict(joined_env, value=Var(joined))
        for child in node.children:
            if len(node.children) > 1:
                self.isolated(depth, partial(self.updates, child, dict(out), Var("None")))
            else:
                self.updates(child, dict(out), Var("None"), depth)

    def process(self, node: Node, env: Env, depth: int) -> None:
        """A processor of the user's: it gets the decoded record; what it forwards runs the
        steps after it (`forward_function`)."""
        key = self.decoded(env, "key", depth)
        value = self.decoded(env, "value", depth)
        timestamp, headers = self.plain(env, "timestamp"), self.plain(env, "headers")
        if node not in self.processors:
            self.processors.append(node)
        self.emit(
            depth,
            f"ctx.processor({node.name!r}, {self.partition}).process("
            f"{self.msg}, {key}, {value}, {timestamp}, {headers}, {self.fail})",
        )

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
