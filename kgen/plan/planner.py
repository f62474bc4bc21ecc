"""Spec -> AppPlan: resolve names, topics, formats, sub-topologies and the fused code."""

from __future__ import annotations

import re

from kgen import __version__
from kgen.codegen.fuse import Fuser, TopicFormats, function_alias
from kgen.plan import connect, graph, origins, windows
from kgen.plan.models import (
    AppPlan,
    EmitFunction,
    ForeignKeyJoinPlan,
    FunctionImport,
    GlobalTablePlan,
    InternalTopicPlan,
    JoinSidePlan,
    Processor,
    ProcessorGroupPlan,
    ProcessorPlan,
    RecordPlan,
    SourceBlock,
    StorePlan,
    SubTopology,
    SuppressPlan,
    TestCasePlan,
    TopicPlan,
    WindowedFormat,
    WindowPlan,
)
from kgen.spec import (
    FunctionRef,
    Join,
    Logic,
    Process,
    Spec,
    StoreConfig,
    Stream,
    Suppress,
    Table,
    TestRecord,
    WindowBase,
    duration_ms,
    package_name,
)
from kgen.spec.load import LoadedSpec

_DETAIL = {
    "filter": "filter",
    "filter_not": "filter_not",
    "map": "map",
    "map_values": "map_values",
    "flat_map": "flat_map",
    "flat_map_values": "flat_map_values",
    "select_key": "select_key",
    "peek": "peek",
    "dynamic_sink": "to",
    "to_stream": "to_stream",
}
_STATEFUL = ("table_source", "count", "reduce", "aggregate", "suppress")
# Table operations that keep their result in a store.
_TABLE_OPS = ("filter", "filter_not", "map_values")


def _stateful(node: graph.Node) -> bool:
    return node.kind in _STATEFUL or (node.kind in _TABLE_OPS and node.store is not None)


def plan(loaded: LoadedSpec) -> AppPlan:
    spec = loaded.spec
    g = graph.build(spec)
    nodes = g.walk()
    entries: list[Stream | Table] = [*spec.streams, *spec.tables]
    sources = tuple(dict.fromkeys(t for s in entries for t in s.from_topics))
    sinks: list[str] = []
    for node in nodes:
        if node.kind in ("sink", "dynamic_sink"):
            sinks.extend(t for t in node.topics if t not in sinks)
    dlq = spec.dead_letter_topic if spec.on_error == "dead_letter" else None

    formats = {name: TopicFormats(t.key, t.value) for name, t in spec.topics.items()}
    repartitions = [n for n in nodes if n.kind == "repartition"]
    for node in repartitions:
        assert node.formats is not None
        formats[node.topics[0]] = TopicFormats(*node.formats)
    # A foreign-key join's topics: keyed by the right table's key, and by the left one's.
    fk_joins = list({id(n.fk): n.fk for n in nodes if n.fk is not None}.values())
    for fk in fk_joins:
        formats[fk.subscription_topic] = TopicFormats(spec.topics[fk.right_topic].key, "bytes")
        formats[fk.response_topic] = TopicFormats(spec.topics[fk.left_topic].key, "bytes")
    # Sinks of windowed results write windowed keys (Kafka Streams' TimeWindowedSerde).
    windowed_sinks = _windowed_sinks(g)
    for topic, window in windowed_sinks.items():
        declared = formats[topic]
        formats[topic] = TopicFormats(windows.key_format(declared.key, window), declared.value)
    function_imports = _function_imports(spec)
    aliases = {f"{f.module}:{f.function}": f.alias for f in function_imports}
    fuser = Fuser(formats, frozenset(spec.imports), aliases)
    groups = _processor_groups(g)
    fuser.task_of = {
        n.name: group.index
        for group, component in groups
        for n in component
        if n.kind in ("source", "table_source")
    }
    # Several streams may read one topic: each of its records runs through all of them, in
    # spec order, in one block (a second `elif topic == ...` for it would never run).
    readers: dict[str, list[graph.Node]] = {}
    for source in g.sources:
        for topic in source.topics:
            readers.setdefault(topic, []).append(source)
    code = {topic: fuser.fuse(nodes, topic) for topic, nodes in readers.items()}
    emit_functions: list[EmitFunction] = []
    forwards: dict[str, tuple[str, ...]] = {}
    done = 0
    # An update function may feed another store (an aggregation after to_stream), or a
    # processor whose forwards run steps of their own: fuse until every stateful node and
    # every processor has its function.
    while done < len(fuser.stateful) or len(forwards) < len(fuser.processors):
        if done < len(fuser.stateful):
            node = fuser.stateful[done]
            done += 1
            assert node.store is not None
            lines = tuple(fuser.emit_function(node))
            emit_functions.append(EmitFunction(_emit_name(node.store), node.store, lines))
        else:
            node = fuser.processors[len(forwards)]
            forwards[node.name] = tuple(fuser.forward_function(node))
    blocks: list[SourceBlock] = []
    for topic, topic_lines in code.items():
        lines = tuple(topic_lines)
        # Topics whose code is the same (same steps, same formats) share one block.
        if blocks and blocks[-1].lines == lines:
            blocks[-1] = SourceBlock((*blocks[-1].topics, topic), lines)
        else:
            blocks.append(SourceBlock((topic,), lines))

    global_tables = tuple(
        GlobalTablePlan(
            g.name,
            g.from_,
            g.store,
            (spec.stores.get(g.store) or StoreConfig()).type,
            spec.topics[g.from_].key,
            spec.topics[g.from_].value,
        )
        for g in spec.global_tables
    )
    global_topics = tuple(g.topic for g in global_tables)
    used_formats: set[str] = {
        f
        for name in (*sources, *sinks, *global_topics)
        for f in (spec.topics[name].key, spec.topics[name].value)
    }
    used_formats.update(f for node in repartitions for f in node.formats or ())
    if fk_joins:
        used_formats.add("bytes")
    used_formats.update(f for fm in fuser.store_formats.values() for f in (fm.key, fm.value))
    used_formats.update(
        _processor_key_format(config)
        for name, config in spec.stores.items()
        if config.kind != "key_value"
        and any(isinstance(n.step, Process) and name in n.step.stores for n in nodes)
    )
    windowed = {f for f in used_formats if f.startswith(("windowed_", "session_"))}
    windowed |= {formats[t].key for t in windowed_sinks}
    windowed_formats = tuple(_windowed_format(f) for f in sorted(windowed))
    used_formats = (used_formats - windowed) | {w.inner for w in windowed_formats}
    stores, internal = _state(spec, g, fuser)
    processor_stores = tuple(st.name for st in stores if st.kind == "processor")
    used_formats.update(
        f
        for st in stores
        if st.kind == "processor"
        for f in (st.key_format, st.value_format)
        if not f.startswith(("windowed_", "session_"))
    )
    processors = _processors(groups, aliases, forwards)
    if any(st.kind == "final" for st in stores):
        used_formats.add("bytes")  # a final buffer's keys
    topics = tuple(
        TopicPlan(
            name=name,
            key_format=formats[name].key,
            value_format=t.value,
            partitions=t.partitions,
            replication_factor=t.replication_factor,
            config=tuple(sorted(t.config.items())),
            is_source=name in sources,
            is_sink=name in sinks,
            is_dead_letter=name == dlq,
            is_global=name in global_topics,
        )
        for name, t in sorted(spec.topics.items())
        if name in sources or name in sinks or name == dlq or name in global_topics
    )
    return AppPlan(
        app_id=spec.app,
        package=package_name(spec.app),
        description=spec.description.strip(),
        guarantee=spec.guarantee,
        commit_interval_ms=spec.effective_commit_interval_ms,
        replication_factor=spec.replication_factor,
        on_error=spec.on_error,
        dead_letter_topic=dlq,
        topics=topics,
        source_topics=sources,
        sink_topics=tuple(sinks),
        formats=tuple(sorted(used_formats | ({"bytes"} if dlq else set()))),
        windowed_formats=windowed_formats,
        serde_imports=tuple(sorted(fuser.serde)),
        module_imports=tuple(sorted(set(spec.imports))),
        function_imports=function_imports,
        blocks=tuple(blocks),
        internal_source_topics=tuple(n.topics[0] for n in repartitions)
        + tuple(t for fk in fk_joins for t in (fk.subscription_topic, fk.response_topic)),
        internal_topics=internal,
        stores=stores,
        emit_functions=tuple(emit_functions),
        table_sinks=_table_sinks(g),
        dynamic_routing=any(n.kind == "dynamic_sink" for n in nodes),
        malformed_sources=tuple(
            t
            for b in blocks
            for t in b.topics
            if _DECODES.match(_first_code(b.lines)) and "bytes(" not in _first_code(b.lines)
        ),
        subtopologies=_subtopologies(spec, g),
        task_groups=_task_groups(g),
        process_produces=any("produce(" in line for b in blocks for line in b.lines),
        windowed=any(st.window is not None for st in stores),
        suppressed=any(n.kind == "suppress" for n in nodes),
        windowed_sinks=tuple(sorted(windowed_sinks)),
        copartitioned=_copartitioned(g),
        num_standby_replicas=spec.num_standby_replicas,
        rocksdb_memory_mib=spec.rocksdb_memory_mib,
        processors=processors,
        processor_groups=tuple(
            ProcessorGroupPlan(group.index, group.source_topics) for group, _ in groups
        ),
        processor_stores=processor_stores,
        uses_rocksdb=any(t.type == "rocksdb" for t in stores)
        or any(g.type == "rocksdb" for g in global_tables),
        global_tables=global_tables,
        join_sides=_join_sides(g),
        foreign_key_joins=tuple(
            ForeignKeyJoinPlan(
                fk.name,
                fk.subscription_topic,
                fk.response_topic,
                fk.left_store,
                fk.right_store,
                fk.subscription_store,
                fk.left,
            )
            for fk in fk_joins
        ),
        drops=any(
            n.window is not None
            or n.sjoin is not None
            or n.fk is not None
            or (n.kind == "source" and n.logic)
            for n in nodes
        )
        or any(st.window is not None for st in stores),
        tests=_tests(spec, tuple(sinks), dlq, frozenset(windowed_sinks)),
        kgen_version=__version__,
        spec_path=loaded.display_path,
        spec_sha256=loaded.sha256,
        state_origins=origins.state_origins(spec, g),
        connectors=connect.connectors(spec),
        mirror=connect.mirror(spec),
    )


def _table_sinks(g: graph.Graph) -> tuple[str, ...]:
    out: list[str] = []
    # (A foreign-key join's answers are its result table's updates.)
    stack = [n for n in g.walk() if _stateful(n) or n.kind == "fk_response"]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.kind in ("sink", "dynamic_sink"):
            out.extend(t for t in node.topics if t not in out)
        stack.extend(node.successors())
    return tuple(sorted(out))


def _suppress_plan(node: graph.Node) -> SuppressPlan | None:
    step = node.step
    if not isinstance(step, Suppress):
        return None
    return SuppressPlan(duration_ms(step.suppress), step.max_records, step.when_full == "shut_down")


def _windowed_format(name: str) -> WindowedFormat:
    """'windowed_string_60000' (time windows of 1 min), 'session_json' (sessions)."""
    kind, inner, *size = name.split("_")
    return WindowedFormat(name, inner, int(size[0]) if size else 0, kind == "session")


def _changelog_config(window: WindowPlan | None) -> tuple[tuple[str, str], ...]:
    if window is None:
        return (("cleanup.policy", "compact"),)
    # Kafka Streams' window changelogs: compacted, and deleted a day after the windows left
    # the store (windowstore.changelog.additional.retention.ms).
    return (
        ("cleanup.policy", "compact,delete"),
        ("retention.ms", str(window.retention_ms + 86_400_000)),
    )


def _processor_window(config: StoreConfig) -> WindowPlan | None:
    """A processor's window or session store: its windows (no grace: a processor decides
    what is late) and retention, which expires entries as a windowed aggregation's do."""
    if config.kind == "key_value":
        return None
    assert config.retention is not None
    retention = duration_ms(config.retention)
    if config.kind == "session":
        return WindowPlan("session", 0, 0, retention, 0, None)
    assert config.window_size is not None
    size = duration_ms(config.window_size)
    return WindowPlan("time", size, 0, retention, size, None)


def _processor_key_format(config: StoreConfig) -> str:
    """A processor's store keys: a window store's and a session store's are windowed."""
    assert config.key is not None
    if config.kind == "session":
        return f"session_{config.key}"
    if config.kind == "window":
        assert config.window_size is not None
        return f"windowed_{config.key}_{duration_ms(config.window_size)}"
    return config.key


def _window_plan(node: graph.Node) -> WindowPlan | None:
    window = node.window
    if window is None:
        return None
    assert node.store is not None
    final = f"{node.store}-final" if window.emit == "final" else None
    return WindowPlan(
        windows.kind(window),
        windows.span(window),
        windows.grace(window),
        windows.retention(window),
        windows.closes_after(window),
        final,
    )


# Steps after which a windowed result still has its windowed key.
_KEEP_KEY = (
    "to_stream",
    "filter",
    "filter_not",
    "map_values",
    "flat_map_values",
    "peek",
    "branch",
    "branch_child",
    "merge",
    "passthrough",
)


def _windowed_sinks(g: graph.Graph) -> dict[str, WindowBase]:
    """Sink topics that windowed results reach with their windowed key -> the window."""
    out: dict[str, WindowBase] = {}
    for node in g.walk():
        if node.window is None:
            continue
        window = node.window
        todo, seen = list(node.successors()), set()
        while todo:
            child = todo.pop()
            if id(child) in seen:
                continue
            seen.add(id(child))
            if child.kind in ("sink", "dynamic_sink"):
                out.update(dict.fromkeys(child.topics, window))
            elif child.kind in _KEEP_KEY:
                todo.extend(child.successors())
    return out


def _component_topics(component: list[graph.Node]) -> tuple[str, ...]:
    """The source topics of a sub-topology: its tasks are their partitions."""
    return tuple(
        dict.fromkeys(
            t for n in component if n.kind in ("source", "table_source") for t in n.topics
        )
    )


def _processor_groups(
    g: graph.Graph,
) -> list[tuple[ProcessorGroupPlan, list[graph.Node]]]:
    """The sub-topologies with process steps, numbered as `describe` numbers them."""
    return [
        (ProcessorGroupPlan(i, _component_topics(component)), component)
        for i, component in enumerate(g.components())
        if any(n.kind == "process" for n in component)
    ]


def _processors(
    groups: list[tuple[ProcessorGroupPlan, list[graph.Node]]],
    aliases: dict[str, str],
    forwards: dict[str, tuple[str, ...]],
) -> tuple[ProcessorPlan, ...]:
    out = []
    for group, component in groups:
        for node in component:
            if node.kind != "process" or not isinstance(node.step, Process):
                continue
            module, cls = node.step.process.split(":")
            out.append(
                ProcessorPlan(
                    node=node.name,
                    module=module,
                    cls=cls,
                    alias=aliases[node.step.process],
                    stores=tuple(node.step.stores),
                    group=group.index,
                    children=tuple(c.name for c in node.children),
                    forward_function="_forward_" + re.sub(r"\W", "_", node.name),
                    forward_lines=forwards[node.name],
                )
            )
    return tuple(out)


def _emit_name(store: str) -> str:
    return "_emit_" + re.sub(r"\W", "_", store)


def _state(
    spec: Spec, g: graph.Graph, fuser: Fuser
) -> tuple[tuple[StorePlan, ...], tuple[InternalTopicPlan, ...]]:
    """Stores and internal topics. A store has one partition per partition of its
    sub-topology's source topics; a repartition topic copies its upstream's partition count."""
    stores: list[StorePlan] = []
    internal: list[InternalTopicPlan] = []
    order = {id(n): i for i, n in enumerate(g.walk())}
    for component in g.components():
        topics = _component_topics(component)
        for node in sorted(component, key=lambda n: order[id(n)]):
            if node.kind == "repartition":
                step = node.step
                # Before a join: as many partitions as the table's topic, or as the most
                # of both sides' topics (co-partitioned).
                joined = [
                    t.from_ for t in spec.tables if isinstance(step, Join) and t.name == step.join
                ] + list(node.partitions_from)
                internal.append(
                    InternalTopicPlan(
                        node.topics[0],
                        "repartition",
                        getattr(step, "partitions", None),
                        tuple(joined) or topics,
                        (("cleanup.policy", "delete"), ("retention.ms", "-1")),
                    )
                )
            if node.kind == "fk_subscribe" and node.fk is not None:
                # Its topics: as many partitions as the table whose key they are keyed by.
                fk = node.fk
                for topic, like in (
                    (fk.subscription_topic, fk.right_topic),
                    (fk.response_topic, fk.left_topic),
                ):
                    internal.append(
                        InternalTopicPlan(
                            topic,
                            "repartition",
                            None,
                            (like,),
                            (("cleanup.policy", "delete"), ("retention.ms", "-1")),
                        )
                    )
                continue
            if node.kind == "fk_subscription" and node.fk is not None:
                store = node.fk.subscription_store
                config = spec.stores.get(store) or StoreConfig()
                changelog = graph.changelog_topic(spec.app, store)
                stores.append(
                    StorePlan(
                        name=store,
                        type=config.type,
                        kind="fk_subscription",
                        cache_max_entries=config.cache_max_entries,
                        key_format="bytes",
                        value_format="bytes",
                        raw_values=True,
                        changelog_topic=changelog,
                        source_topics=topics,
                        emit_function=_emit_name(store),
                    )
                )
                internal.append(
                    InternalTopicPlan(
                        changelog, "changelog", None, topics, (("cleanup.policy", "compact"),)
                    )
                )
                continue
            if node.kind == "process" and isinstance(node.step, Process):
                for store in node.step.stores:
                    config = spec.stores[store]
                    assert config.key is not None and config.value is not None
                    changelog = graph.changelog_topic(spec.app, store)
                    window = _processor_window(config)
                    stores.append(
                        StorePlan(
                            name=store,
                            type=config.type,
                            kind="processor",
                            cache_max_entries=config.cache_max_entries,
                            key_format=_processor_key_format(config),
                            value_format=config.value,
                            raw_values=False,
                            changelog_topic=changelog,
                            source_topics=topics,
                            emit_function=_emit_name(store),
                            window=window,
                        )
                    )
                    internal.append(
                        InternalTopicPlan(
                            changelog, "changelog", None, topics, _changelog_config(window)
                        )
                    )
                continue
            if node.kind == "stream_join":
                stores_, internal_ = _join_stores(spec, node, topics, fuser)
                stores += stores_
                internal += internal_
                continue
            if not _stateful(node):
                continue
            assert node.store is not None
            config = spec.stores.get(node.store) or StoreConfig()
            formats = fuser.store_formats[node.store]
            changelog = graph.changelog_topic(spec.app, node.store)
            window = _window_plan(node)
            changelog_config = _changelog_config(window)
            stores.append(
                StorePlan(
                    name=node.store,
                    type=config.type,
                    kind="table" if node.kind in ("table_source", *_TABLE_OPS) else node.kind,
                    cache_max_entries=config.cache_max_entries,
                    key_format=formats.key,
                    value_format=formats.value,
                    raw_values=node.store in fuser.raw_stores,
                    changelog_topic=changelog,
                    source_topics=topics,
                    emit_function=_emit_name(node.store),
                    window=window,
                    suppress=_suppress_plan(node),
                )
            )
            internal.append(
                InternalTopicPlan(changelog, "changelog", None, topics, changelog_config)
            )
            if window is not None and window.final_store is not None:
                final_changelog = graph.changelog_topic(spec.app, window.final_store)
                stores.append(
                    StorePlan(
                        name=window.final_store,
                        type=config.type,
                        kind="final",
                        cache_max_entries=config.cache_max_entries,
                        key_format="bytes",
                        value_format=formats.value,
                        raw_values=False,
                        changelog_topic=final_changelog,
                        source_topics=topics,
                        emit_function=_emit_name(node.store),
                    )
                )
                internal.append(
                    InternalTopicPlan(
                        final_changelog, "changelog", None, topics, (("cleanup.policy", "compact"),)
                    )
                )
    return tuple(stores), tuple(sorted(internal, key=lambda t: t.name))


def _join_stores(
    spec: Spec, node: graph.Node, topics: tuple[str, ...], fuser: Fuser
) -> tuple[list[StorePlan], list[InternalTopicPlan]]:
    """A stream-stream join side's window store, and (the left side's) the shared store of
    records waiting for a partner. A side's values are kept in its source's value format while
    no step changed them, else as JSON; the shared store keeps each side's in that side's.
    Window store changelogs are compacted and deleted a day after their records left the
    store, as Kafka Streams' are."""
    side = node.sjoin
    assert side is not None
    retention = side.before_ms + side.after_ms + side.grace_ms
    this_values = fuser.store_formats[side.this_store].value
    made: list[tuple[str, str, str, int | None]] = [
        (side.this_store, side.key_format, this_values, retention)
    ]
    sides: tuple[str, str] | None = None
    if side.left and side.shared_store is not None:
        made.append((side.shared_store, "bytes", "bytes", None))
        sides = (this_values, fuser.store_formats[side.other_store].value)
    stores, internal = [], []
    for name, key_format, value_format, keep in made:
        config = spec.stores.get(name) or StoreConfig()
        changelog = graph.changelog_topic(spec.app, name)
        changelog_config: tuple[tuple[str, str], ...] = (("cleanup.policy", "compact"),)
        if keep is not None:
            changelog_config = (
                ("cleanup.policy", "compact,delete"),
                ("retention.ms", str(keep + 86_400_000)),
            )
        stores.append(
            StorePlan(
                name=name,
                type=config.type,
                kind="join_window" if keep is not None else "join_shared",
                cache_max_entries=config.cache_max_entries,
                key_format=key_format,
                value_format=value_format,
                raw_values=keep is None,
                changelog_topic=changelog,
                source_topics=topics,
                emit_function=_emit_name(name),
                join_retention_ms=keep,
                join_value_formats=None if keep is not None else sides,
            )
        )
        internal.append(InternalTopicPlan(changelog, "changelog", None, topics, changelog_config))
    return stores, internal


def _join_sides(g: graph.Graph) -> tuple[JoinSidePlan, ...]:
    return tuple(
        JoinSidePlan(
            name=n.name,
            this_store=n.sjoin.this_store,
            other_store=n.sjoin.other_store,
            shared_store=n.sjoin.shared_store,
            left=n.sjoin.left,
            before_ms=n.sjoin.before_ms,
            after_ms=n.sjoin.after_ms,
            grace_ms=n.sjoin.grace_ms,
            outer=n.sjoin.outer,
        )
        for n in g.walk()
        if n.sjoin is not None
    )


_DECODES = re.compile(r"^[kv]\d+ = deserialize_\w+\(")


def _logics(spec: Spec) -> list[Logic]:
    found: list[Logic] = []
    entries: list[Stream | Table] = [*spec.streams, *spec.tables]
    for stream in entries:
        for step in stream.steps:
            data = step.model_dump(by_alias=True)
            for value in _walk(data):
                found.append(value)
    return found


def _walk(data: object) -> list[Logic]:
    if isinstance(data, dict):
        if set(data) == {"function"}:
            return [FunctionRef(function=data["function"])]
        return [x for v in data.values() for x in _walk(v)]
    if isinstance(data, list):
        return [x for v in data for x in _walk(v)]
    return []


def _function_imports(spec: Spec) -> tuple[FunctionImport, ...]:
    refs = {logic.function: logic for logic in _logics(spec) if isinstance(logic, FunctionRef)}
    for stream in spec.streams:
        for step in stream.steps:
            if isinstance(step, Process):
                refs[step.process] = FunctionRef(function=step.process)
    out = []
    used: set[str] = set()
    for ref in sorted(refs):
        module, function = ref.split(":")
        # 'a.b:c' and 'a_b:c' would both be _a_b_c: number the later ones.
        base = alias = function_alias(refs[ref])
        n = 1
        while alias in used:
            n += 1
            alias = f"{base}_{n}"
        used.add(alias)
        out.append(FunctionImport(module, function, alias))
    return tuple(out)


def _subtopologies(spec: Spec, g: graph.Graph) -> tuple[SubTopology, ...]:
    out = []
    for index, component in enumerate(g.components()):
        procs = []
        for node in component:
            detail = _DETAIL.get(node.kind, node.kind)
            if node.kind == "branch":
                detail = "branch " + ", ".join(c.name for _, c in node.branches)
            elif node.store is not None:
                what = "table" if node.kind == "table_source" else node.kind
                detail = f"{what}, store: {node.store}"
            elif node.kind == "repartition":
                detail = "group_by" if node.logic is not None else "group_by_key"
            if node.kind == "join" and isinstance(node.step, Join):
                what = "global table" if node.glob is not None else "table"
                detail = f"{node.step.how} join with {what} {node.step.join}, store: {node.store}"
            if node.kind == "process" and isinstance(node.step, Process):
                detail = f"process {node.step.process}, stores: {', '.join(node.step.stores)}"
            if node.fk is not None:
                fk = node.fk
                how = "left" if fk.left else "inner"
                detail = {
                    "fk_subscribe": f"{how} foreign-key join with table {fk.right_table}, "
                    f"subscribes through {fk.subscription_topic}",
                    "fk_subscription": f"answers through {fk.response_topic} (and at every "
                    f"update of table {fk.right_table}), store: {fk.subscription_store}",
                    "fk_response": f"{how} foreign-key join's results, store read: {fk.left_store}",
                }[node.kind]
            if node.sjoin is not None and isinstance(node.step, Join):
                side = node.sjoin
                stores = ", ".join(
                    filter(None, (side.this_store, side.other_store, side.shared_store))
                )
                before, after = node.step.window_ms()
                detail = (
                    f"{node.step.how} join, {'left' if side.left else 'right'} side, window "
                    f"-{before}/+{after} ms, grace {side.grace_ms} ms, stores: {stores}"
                )
            procs.append(
                Processor(
                    node.name,
                    node.kind,
                    detail,
                    tuple(node.topics),
                    tuple(s.name for s in node.successors()),
                )
            )
        out.append(SubTopology(index, tuple(procs)))
    for glob in spec.global_tables:
        source = Processor(
            f"{glob.name}-global-source",
            "global_source",
            f"global table, store: {glob.store}",
            (glob.from_,),
            (),
        )
        out.append(SubTopology(len(out), (source,), global_store=True))
    return tuple(out)


def _record(r: TestRecord, raw: bool = False, windowed: bool = False) -> RecordPlan:
    """A test record; `raw` for dead letters, which hold the input's bytes (given as text);
    `windowed` for a windowed key, given as a table {key, start, end} (compared as a tuple)."""
    key, value = r.key, r.value
    if windowed and isinstance(key, dict):
        key = (key.get("key"), key.get("start"), key.get("end"))
    if raw:
        key = key.encode() if isinstance(key, str) else key
        value = value.encode() if isinstance(value, str) else value
    return RecordPlan(r.topic, key, value, r.timestamp, tuple(sorted(r.headers.items())))


def _tests(
    spec: Spec, sinks: tuple[str, ...], dlq: str | None, windowed: frozenset[str]
) -> tuple[TestCasePlan, ...]:
    out = []
    used: set[str] = set()
    for case in spec.tests:
        base = "test_" + (re.sub(r"[^0-9a-zA-Z]+", "_", case.name).strip("_").lower() or "case")
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base}_{n}"
        used.add(name)
        expected: dict[str, list[RecordPlan]] = {t: [] for t in (*sinks, *([dlq] if dlq else []))}
        for r in case.expect:
            expected.setdefault(r.topic, []).append(
                _record(r, raw=r.topic == dlq, windowed=r.topic in windowed)
            )
        out.append(
            TestCasePlan(
                name=case.name,
                function_name=name,
                inputs=tuple(_record(r) for r in case.input),
                expected=tuple((t, tuple(rs)) for t, rs in sorted(expected.items())),
                stores=tuple(
                    (name, tuple((e.key, e.value) for e in entries))
                    for name, entries in sorted(case.stores.items())
                ),
            )
        )
    return tuple(out)


def _first_code(lines: tuple[str, ...]) -> str:
    """The first line that does something (not the `at = ...` naming the failing node)."""
    return next((line for line in lines if not line.startswith("at = ")), "")


def _copartitioned(g: graph.Graph) -> tuple[tuple[str, ...], ...]:
    """The source topics of every sub-topology with a join: a record and the row it joins
    are in the same partition only if the topics have as many (Kafka Streams checks so too)."""
    groups = []
    for component in g.components():
        if any((n.kind == "join" and n.glob is None) or n.sjoin for n in component):
            sources = [n for n in component if n.kind in ("source", "table_source")]
            groups.append(tuple(sorted({t for n in sources for t in n.topics})))
    return tuple(groups)


def _task_groups(g: graph.Graph) -> tuple[tuple[str, ...], ...]:
    """The source topics of every sub-topology that reads more than one topic."""
    groups = []
    for component in g.components():
        sources = [n for n in component if n.kind in ("source", "table_source")]
        topics = sorted({t for n in sources for t in n.topics})
        if len(topics) > 1:
            groups.append(tuple(topics))
    return tuple(groups)
