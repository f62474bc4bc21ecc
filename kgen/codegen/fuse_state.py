"""Fusing the stateful nodes: a table's source, group_by (repartition), a table's regrouping
(KIP-904), count/reduce/aggregate into a store, and the functions a store's updates run."""

from __future__ import annotations

from functools import partial

from kgen.codegen.fuse_base import (
    AGGREGATE_FORMAT,
    COUNT_FORMAT,
    REGROUP_HEADER,
    SUBTRACT_HEADERS,
    Env,
    FuserBase,
    TopicFormats,
    Var,
)
from kgen.plan import windows
from kgen.plan.graph import Node
from kgen.spec import Aggregate, Join, Logic, Reduce, Session, Sliding


class StatefulFuser(FuserBase):
    def emit_function(self, node: Node) -> list[str]:
        """The body of `_emit_<store>(ctx, part, key, old, new, ts)`: what a store's updates
        go on to, run when the store's cache flushes. `key` is the store's key bytes; `old`
        and `new` are decoded aggregates, or for a table the values' bytes."""
        assert node.store is not None
        self.lines = []
        if not node.children and not node.reverse:
            return self.lines  # a table only looked up (by a join): its updates go nowhere
        self.partition = "part"
        self.handler = f"ctx.on_update_error({node.store!r}, part, key, new, exc, at)"
        self.origin = self.current = node.name
        self.known, self.last_depth = None, 0
        self.fail, self.msg = "reraise", "None"
        formats = self.store_formats[node.store]
        raw_values = node.store in self.raw_stores
        env = {
            "key": Var(None, "key", formats.key),
            "value": Var(None, "new", formats.value) if raw_values else Var("new"),
            "timestamp": Var("ts"),
            "headers": Var("None"),
        }
        old = Var(None, "old", formats.value) if raw_values else Var("old")
        self.emit(0, "produce = ctx.produce")
        if node.kind in ("filter", "filter_not"):
            # A kept filter: a row that passed neither before nor now is not forwarded (a kept
            # map_values forwards even a null result: Kafka Streams does, the suite checks).
            self.emit(0, "if old is None and new is None:")
            self.emit(1, "return", flush=False)
        self.emit(0, "try:")
        # Its steps, and the table-table joins whose right side it is.
        paths = [partial(self.updates, child, dict(env), old) for child in node.children]
        for join in node.reverse:
            if join.kind == "fk_subscription":
                paths.append(partial(self.fk_foreign, join, dict(env)))
            else:
                paths.append(partial(self.table_join, join, dict(env), old, True))
        for path in paths:
            if len(paths) > 1:
                self.isolated(1, path)
            else:
                path(1)
        self.except_(0)
        if not any("produce(" in line for line in self.lines):
            self.lines.remove("produce = ctx.produce")  # a store that only feeds another
        return self.lines

    def forward_function(self, node: Node) -> list[str]:
        """The body of `_forward_<node>(ctx, part, key, value, ts, headers, child, fail)`: the
        steps after a processor, run by its `context.forward`; `child` (when not None) picks
        one of them, `fail` takes their failures (the record's error policy, or a stop)."""
        self.lines = []
        self.partition = "part"
        self.handler = "fail(exc, at)"
        self.fail, self.msg = "fail", "None"
        self.origin = self.current = node.name
        self.known, self.last_depth = None, 0
        env = {
            "key": Var("key"),
            "value": Var("value"),
            "timestamp": Var("ts"),
            "headers": Var("headers"),
        }
        self.emit(0, "produce = ctx.produce")
        self.emit(0, "try:")
        for child in node.children:
            if len(node.children) == 1:
                self.node(child, dict(env), 1)
                continue
            self.emit(1, f"if child is None or child == {child.name!r}:")
            self.isolated(2, partial(self.node, child, dict(env)))
        if not node.children:
            self.emit(1, "pass")
        self.except_(0)
        if not any("produce(" in line for line in self.lines):
            self.lines.remove("produce = ctx.produce")
        return self.lines

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
        elif node.kind in ("filter", "filter_not", "map_values"):
            self.at(node, depth)
            self.table_step(node, env, old, depth)
        elif node.kind == "suppress":
            self.at(node, depth)
            self.suppress(node, env, depth)
        elif node.kind == "table_join":
            self.table_join(node, env, old, False, depth)
        elif node.kind == "fk_subscribe":
            self.fk_subscribe(node, env, old, depth)
        else:  # pragma: no cover - the checks allow nothing else after a table
            raise AssertionError(node.kind)

    def table_step(self, node: Node, env: Env, old: Var, depth: int) -> None:
        """filter, filter_not, map_values on a table: applied to the new value, and to the old
        one where a filter or a regrouping needs it. A row that stops passing a filter is
        forwarded as a tombstone; an update that passes on neither side is not forwarded at all
        (as Kafka Streams does, checked by the conformance suite)."""
        assert node.logic is not None
        # Kept in a store, the store knows the old value: only the new one is computed here.
        with_old = node.store is None and (node.kind != "map_values" or _needs_old(node))
        outs: list[Var] = []
        for var in (env["value"], old) if with_old else (env["value"],):
            side_env = dict(env, value=var)
            result = self.fresh("t")
            self.emit(depth, f"{result} = None")
            self.emit(depth, f"if {_expr(var)} is not None:")
            self.prepare([node.logic], side_env, depth + 1)
            code = self.call(node.logic, side_env)
            if node.kind == "map_values":
                self.emit(depth + 1, f"{result} = {code}")
                outs.append(Var(result))
                continue
            self.emit(depth + 1, f"if {code}:" if node.kind == "filter" else f"if not ({code}):")
            kept = side_env["value"]
            # The same value or None: still the source's bytes when it was.
            self.emit(depth + 2, f"{result} = {kept.raw or kept.name}")
            outs.append(Var(None, result, kept.fmt) if kept.raw is not None else Var(result))
        new, new_old = outs[0], (outs[1] if with_old else Var("None"))
        if node.store is not None:
            self.materialize(node, env, new, depth)
            return
        if with_old:
            self.emit(depth, f"if {_expr(new)} is not None or {_expr(new_old)} is not None:")
            depth += 1
        for child in node.children:
            if len(node.children) > 1:
                self.isolated(depth, partial(self.updates, child, dict(env, value=new), new_old))
            else:
                self.updates(child, dict(env, value=new), new_old, depth)

    def table_join(self, node: Node, env: Env, old: Var, right: bool, depth: int) -> None:
        """A table joined with a table (Kafka Streams' KTableKTable{Inner,Left,Right,Outer}
        Join): an update of either side looks up the other side's row; the result, stamped
        with the later of the two rows' timestamps, goes to the join's steps. `right`: this
        update is the other table's (the joiner still gets the left value as `value`)."""
        step = node.step
        assert isinstance(step, Join) and node.peer is not None and node.store is not None
        self.at(node, depth)
        theirs = self._table_of(node) if right else node.peer
        assert theirs.store is not None
        their = self.topics[theirs.topics[0]]
        kb, e, seen = self.fresh("kb"), self.fresh("e"), self.fresh("o")
        self.emit(depth, f"{kb} = {self.encoded(env, 'key', their.key)}")
        self.emit(depth, f"{e} = ctx.store({theirs.store!r}, part).get({kb})")
        decode = f"deserialize_{their.value}"
        self.serde.add(decode)
        new = env["value"]
        new_code = str(new.name or new.raw)
        # Inner: nothing without the other row; left: nothing when the left row is missing
        # (an update of the right side) or when neither side has anything; outer: nothing
        # only when neither has.
        needs_other = step.how == "inner" or (step.how == "left" and right)
        if needs_other:
            self.emit(depth, f"if {e} is not None:")
            depth += 1
            self.emit(depth, f"{seen} = {decode}({e}[0])")
        else:
            self.emit(depth, f"{seen} = None if {e} is None else {decode}({e}[0])")
            anything = f"{e} is not None or {_expr(old)} is not None or {new_code} is not None"
            self.emit(depth, f"if {anything}:")
            depth += 1
        joined = self.fresh("j")
        self.emit(depth, f"{joined} = None")
        # Inner, and left on the left side: a deleted row joins to a tombstone; left on the
        # right side joins whatever the right has; outer: a tombstone only when both are gone.
        inner = depth
        if step.how == "outer":
            self.emit(depth, f"if {e} is not None or {new_code} is not None:")
            inner += 1
        elif not (step.how == "left" and right):
            self.emit(depth, f"if {new_code} is not None:")
            inner += 1
        mine_value = self.decoded(env, "value", inner)
        self.prepare([step.joiner], env, inner)
        if right:
            call = self.call(step.joiner, dict(env, value=Var(seen)), other=mine_value)
        else:
            call = self.call(step.joiner, env, other=seen)
        self.emit(inner, f"{joined} = {call}")
        ts = self.fresh("ts")
        self.emit(depth, f"{ts} = ts if {e} is None else max(ts, {e}[1])")
        out = dict(env, value=Var(joined), timestamp=Var(ts))
        for child in node.children:
            if len(node.children) > 1:
                self.isolated(depth, partial(self.updates, child, dict(out), Var("None")))
            else:
                self.updates(child, dict(out), Var("None"), depth)

    def fk_subscribe(self, node: Node, env: Env, old: Var, depth: int) -> None:
        """A left row's update in a foreign-key join: the foreign keys of its old and new
        values (None for a missing value), in the right table's key format, go with both
        values to the join's subscribe (the app's fk module)."""
        step, fk = node.step, node.fk
        assert isinstance(step, Join) and step.foreign_key is not None and fk is not None
        self.at(node, depth)
        right = self.topics[fk.right_topic]
        self.serde.add(f"serialize_{right.key}")
        keys = []
        for side in (old, env["value"]):
            side_env = dict(env, value=side)
            fkb = self.fresh("fk")
            keys.append(fkb)
            self.emit(depth, f"{fkb} = None")
            self.emit(depth, f"if {_expr(side)} is not None:")
            self.prepare([step.foreign_key], side_env, depth + 1)
            extracted = self.call(step.foreign_key, side_env)
            self.emit(depth + 1, f"{fkb} = serialize_{right.key}({extracted})")
        key, new = env["key"], env["value"]
        self.emit(
            depth,
            f"fk_subscribe(ctx, {fk.name!r}, part, {key.raw}, {keys[0]}, {keys[1]}, "
            f"{old.raw}, {new.raw}, {self.plain(env, 'timestamp')})",
        )

    def fk_foreign(self, node: Node, env: Env, depth: int) -> None:
        """A right row's update in a foreign-key join: an answer to each subscriber."""
        assert node.fk is not None
        self.at(node, depth)
        key, new = env["key"], env["value"]
        self.emit(
            depth,
            f"fk_foreign_update(ctx, {node.fk.name!r}, part, {key.raw}, {new.raw}, "
            f"{self.plain(env, 'timestamp')})",
        )

    def _table_of(self, join: Node) -> Node:
        """The table source whose step a table-table join is (the left side)."""
        for source in self.stateful:
            if source.kind == "table_source" and join in source.children:
                return source
        raise AssertionError(join.name)

    def suppress(self, node: Node, env: Env, depth: int) -> None:
        """A table's updates into a suppression buffer, which forwards each key's latest
        update once its time is up (the buffer store's update function runs the steps after
        it). The buffer keeps values as bytes: a null one (a tombstone) is held too."""
        assert node.store is not None
        key, value = env["key"], env["value"]
        key_format = key.fmt or "string"
        if value.raw is not None and value.fmt is not None:
            value_format, data = value.fmt, value.raw
        else:
            value_format = AGGREGATE_FORMAT if value.fmt is None else value.fmt
            data = self.encoded(env, "value", value_format)
        self.store_formats[node.store] = TopicFormats(key_format, value_format)
        self.raw_stores.add(node.store)
        self.stateful.append(node)
        kb = self.encoded(env, "key", key_format)
        ts = self.plain(env, "timestamp")
        self.emit(depth, f"ctx.suppression({node.store!r}, part).hold({kb}, {data}, {ts})")

    def table_source(self, node: Node, env: Env, formats: TopicFormats, depth: int) -> None:
        """A table's source record upserts its key (a null value deletes it); records without
        a key are dropped, as in Kafka Streams."""
        assert node.store is not None
        self.store_formats[node.store] = formats
        self.raw_stores.add(node.store)
        self.stateful.append(node)
        key = self.fresh("kb")
        self.emit(depth, f"{key} = {env['key'].raw}")
        self.emit(depth, f"if {key} is not None:")
        self.emit(
            depth + 1,
            f"ctx.store({node.store!r}, {self.partition}).put({key}, {env['value'].raw}, "
            f"{self.plain(env, 'timestamp')})",
        )

    def repartition(self, node: Node, env: Env, depth: int) -> None:
        """group_by: write the record, keyed by the group, to the repartition topic; records
        whose group is null are dropped, as in Kafka Streams."""
        if node.logic is not None:
            self.prepare([node.logic], env, depth)
            k = self.fresh("k")
            self.emit(depth, f"{k} = {self.call(node.logic, env)}")
            env["key"] = Var(k)
        key = env["key"]
        if isinstance(node.step, Join) and node.step.how == "left":
            # Before a left join, a null key travels too: the join keeps it (KIP-962).
            self.produce(node.topics[0], env, depth, repr(node.topics[0]))
            return
        self.emit(depth, f"if {key.name or key.raw} is not None:")
        self.produce(node.topics[0], env, depth + 1, repr(node.topics[0]))

    def regroup(self, node: Node, env: Env, old: Var, depth: int) -> None:
        """A table's group_by: the old value leaves its group, the new one joins its group; a
        row whose group stays the same sends one record with both (KIP-904)."""
        sides: dict[str, tuple[str, Env]] = {}
        present = {side: _expr(var) for side, var in (("old", old), ("new", env["value"]))}
        for side, var in (("old", old), ("new", env["value"])):
            side_env = dict(env, value=var)
            group = self.fresh("k")
            if node.logic is None:
                group = str(env["key"].name or env["key"].raw)
            else:
                self.emit(depth, f"{group} = None")
                self.emit(depth, f"if {present[side]} is not None:")
                self.prepare([node.logic], side_env, depth + 1)
                self.emit(depth + 1, f"{group} = {self.call(node.logic, side_env)}")
            if node.logic is not None:
                side_env["key"] = Var(group)
            sides[side] = (group, side_env)
        (k_old, old_env), (k_new, new_env) = sides["old"], sides["new"]
        topic = node.topics[0]
        old_bytes = self.encoded(old_env, "value", self.topics[topic].value)
        same = f"{k_old} is not None and {k_old} == {k_new}"
        both_there = f"{present['old']} is not None and {present['new']} is not None"
        self.emit(depth, f"if {both_there} and {same}:")
        both = f"[{REGROUP_HEADER}, ('kgen.old', {old_bytes})]"
        self.produce(topic, dict(new_env, headers=Var(both)), depth + 1, repr(topic))
        self.emit(depth, "else:")
        for side, (group, side_env), headers in (
            ("old", sides["old"], SUBTRACT_HEADERS),
            ("new", sides["new"], "None"),
        ):
            self.emit(depth + 1, f"if {present[side]} is not None and {group} is not None:")
            self.produce(topic, dict(side_env, headers=Var(headers)), depth + 2, repr(topic))

    def materialize(self, node: Node, env: Env, value: Var, depth: int) -> None:
        """A table operation kept in its store: the result (None deletes) goes into the store,
        whose updates (old and new, from the store) run the steps after it."""
        assert node.store is not None
        key = env["key"]
        key_format = key.fmt or "string"
        raw = value.raw is not None and value.fmt is not None
        value_format = value.fmt if raw and value.fmt else AGGREGATE_FORMAT
        self.store_formats[node.store] = TopicFormats(key_format, value_format)
        if raw:
            self.raw_stores.add(node.store)
        self.stateful.append(node)
        kb = self.fresh("kb")
        self.emit(depth, f"{kb} = {self.encoded(env, 'key', key_format)}")
        stored = value.raw if raw else value.name
        ts = self.plain(env, "timestamp")
        self.emit(depth, f"ctx.store({node.store!r}, {self.partition}).put({kb}, {stored}, {ts})")

    def aggregation(self, node: Node, env: Env, depth: int) -> None:
        """count, reduce, aggregate: fold the record into its key's aggregate in the store.
        Null keys and null values are dropped, as in Kafka Streams. The aggregate's timestamp
        is the latest of its records'."""
        assert node.store is not None and node.step is not None
        step = node.step
        key = env["key"]
        key_format = key.fmt or "string"
        value_format = COUNT_FORMAT if node.kind == "count" else AGGREGATE_FORMAT
        store_key_format = key_format
        if node.window is not None:
            store_key_format = windows.key_format(key_format, node.window)
        self.store_formats[node.store] = TopicFormats(store_key_format, value_format)
        self.stateful.append(node)
        kb = self.fresh("kb")
        self.emit(depth, f"{kb} = {self.encoded(env, 'key', key_format)}")
        value = env["value"]
        guard = f"{kb} is not None"
        if not node.table and (node.window is None or isinstance(node.window, Sliding)):
            # (Time and session windows take null values, as Kafka Streams' do.)
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
                if step.merge is not None:
                    logics.append(step.merge)
        needed = set().union(*(self.uses(lg) for lg in logics)) if logics else set()
        if isinstance(step, Reduce):
            needed.add("value")  # a key's first value is its aggregate
        for field in ("key", "value", "timestamp", "headers"):
            if field in needed:
                self.decoded(env, field, depth)
        st, o, a = self.fresh("st"), self.fresh("o"), self.fresh("a")
        ts = self.decoded(env, "timestamp", depth)
        if node.window is not None:
            self.emit(depth, f"{st} = ctx.window_store({node.store!r}, {self.partition})")
            self.windows(node, env, depth, (st, kb, ts))
            return
        self.emit(depth, f"{st} = ctx.store({node.store!r}, {self.partition})")
        self.emit(depth, f"{o} = {st}.get({kb})")
        if node.table:
            headers = self.decoded(env, "headers", depth)
            self.emit(depth, f"if {headers} == {SUBTRACT_HEADERS}:")
            self.fold(node, env, depth + 1, o, a, subtract=True)
            both = f"isinstance({headers}, list) and {headers}[:1] == [{REGROUP_HEADER}]"
            self.emit(depth, f"elif {both}:")
            # The old value leaves and the new one joins: one update (KIP-904).
            # (A header's value is typed str | bytes | None; this one is bytes.)
            old = f"{headers}[1][1]"
            old_bytes = f"({old} if isinstance({old}, bytes) else None)"
            old_env = dict(env, value=Var(None, old_bytes, env["value"].fmt))
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

    def windows(self, node: Node, env: Env, depth: int, names: tuple[str, str, str]) -> None:
        """A windowed aggregation (Kafka Streams' KStreamWindowAggregate): the record updates
        every window it falls in that is still open on the task's stream time; a window that
        closed (end <= stream time - grace) drops it as late. Store keys are the key's bytes
        then the window start (8 bytes, big-endian): Kafka Streams' windowed key layout."""
        st, kb, ts = names  # the store, the key's bytes, the timestamp
        window = node.window
        assert window is not None
        if isinstance(window, Sliding):
            self.sliding(node, env, depth, names)
            return
        if isinstance(window, Session):
            self.sessions(node, env, depth, names)
            return
        size, advance = windows.span(window), windows.advance(window)
        now, start, kw, o, a = (self.fresh(p) for p in ("now", "ws", "kw", "o", "a"))
        self.emit(depth, f"{now} = {st}.observe({ts}) - {windows.grace(window)}")
        if advance == size:
            self.emit(depth, f"for {start} in ({ts} - {ts} % {size},):")
        else:
            first = f"max(0, {ts} - {size - advance}) // {advance} * {advance}"
            self.emit(depth, f"for {start} in range({first}, {ts} + 1, {advance}):")
        depth += 1
        self.emit(depth, f"if {start} + {size} <= {now}:")
        self.emit(depth + 1, f"{st}.late({ts}, {start}, {start} + {size})")
        self.emit(depth + 1, "continue", flush=False)
        self.emit(depth, f'{kw} = {kb} + {start}.to_bytes(8, "big", signed=True)')
        self.emit(depth, f"{o} = {st}.get({kw})")
        self.fold(node, env, depth, o, a, subtract=False)
        self.emit(depth, f"{st}.put({kw}, {a}, {ts} if {o} is None else max({o}[1], {ts}))")

    def sliding(self, node: Node, env: Env, depth: int, names: tuple[str, str, str]) -> None:
        """Sliding windows: the store finds and makes the windows (Kafka Streams' KIP-450
        algorithm); the aggregation itself is a local function it calls per window."""
        st, kb, ts = names
        window = node.window
        assert window is not None
        d = windows.span(window)
        now, fold, o, a = self.fresh("now"), self.fresh("fold"), self.fresh("o"), self.fresh("a")
        self.emit(depth, f"{now} = {st}.observe({ts}) - {windows.grace(window)}")
        self.emit(depth, f"if {ts} + {d} < {now}:")
        self.emit(depth + 1, f"{st}.late({ts}, {ts}, {ts} + {d})")
        self.emit(depth, "else:")
        self.emit(depth + 1, f"def {fold}({o}: Any) -> Any:")
        self.known = self.current  # `at` names this node already
        self.fold(node, env, depth + 2, o, a, subtract=False)
        self.emit(depth + 2, f"return {a}", flush=False)
        self.emit(depth + 1, f"{st}.slide({kb}, {ts}, {now}, {fold})")

    def sessions(self, node: Node, env: Env, depth: int, names: tuple[str, str, str]) -> None:
        """Session windows (Kafka Streams' KStreamSessionWindowAggregate): the record's session
        [ts, ts] merges with the key's sessions a gap or less away; unless the merged session
        closed (end < stream time - grace - gap), the merged ones are deleted (a tombstone
        each, at its end) and the merged session is written, at its end."""
        st, kb, ts = names
        window = node.window
        step = node.step
        assert window is not None and step is not None
        gap = windows.span(window)
        g, start, end, now = self.fresh("g"), self.fresh("s"), self.fresh("e"), self.fresh("now")
        sessions, sk, sv, s0, s1 = (self.fresh(p) for p in ("ss", "sk", "sv", "s", "e"))
        self.emit(depth, f"{now} = {st}.observe({ts}) - {windows.grace(window) + gap}")
        self.emit(depth, f"{sessions} = {st}.sessions({kb}, {ts})")
        # Typed Any: the spec's expressions decide what an aggregate holds.
        if isinstance(step, Aggregate):
            self.emit(depth, f"{g}: Any = {self.call(step.init, env)}")
        else:
            self.emit(depth, f"{g}: Any = {'0' if node.kind == 'count' else 'None'}")
        self.emit(depth, f"{start} = {end} = {ts}")
        self.emit(depth, f"for _, {sv}, {s0}, {s1} in {sessions}:")
        merged = dict(env, value=Var(sv))
        if isinstance(step, Aggregate):
            assert step.merge is not None
            self.emit(depth + 1, f"{g} = {self.call(step.merge, merged, g)}")
        elif isinstance(step, Reduce):
            self.emit(
                depth + 1, f"{g} = {sv} if {g} is None else {self.call(step.reduce, merged, g)}"
            )
        else:
            self.emit(depth + 1, f"{g} = {g} + {sv}")
        self.emit(depth + 1, f"{start}, {end} = min({start}, {s0}), max({end}, {s1})")
        self.emit(depth, f"if {end} < {now}:")
        self.emit(depth + 1, f"{st}.late({ts}, {start}, {end})")
        self.emit(depth, "else:")
        self.emit(depth + 1, f"if {start} != {ts} or {end} != {ts}:")
        self.emit(depth + 2, f"for {sk}, _, _, {s1} in {sessions}:")
        self.emit(depth + 3, f"{st}.put({sk}, None, {s1})")
        a = self.fresh("a")
        if isinstance(step, Aggregate):
            self.emit(depth + 1, f"{a} = {self.call(step.aggregate, env, g)}")
        elif isinstance(step, Reduce):
            value = env["value"].name
            self.emit(
                depth + 1, f"{a} = {value} if {g} is None else {self.call(step.reduce, env, g)}"
            )
        else:
            self.emit(depth + 1, f"{a} = {g} + 1")
        times = (f'{t}.to_bytes(8, "big", signed=True)' for t in (end, start))
        key = " + ".join((kb, *times))
        self.emit(depth + 1, f"{st}.put({key}, {a}, {end})")

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


def _expr(var: Var) -> str:
    """Code for a table value: its decoded name, else its bytes."""
    return str(var.name or var.raw)


def _needs_old(node: Node) -> bool:
    """Whether a table's old values matter below `node`: a regrouping (group_by) subtracts
    them from their group, and a filter forwards nothing when neither passes."""
    todo = list(node.children)
    while todo:
        child = todo.pop()
        if child.kind in ("repartition", "filter", "filter_not"):
            return True
        if child.kind == "map_values":
            todo.extend(child.children)
    return False
