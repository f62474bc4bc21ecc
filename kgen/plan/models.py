"""The resolved plan: every decision about a generated app, made in Python.

Templates receive one `AppPlan` and only print it. Everything here is immutable and ordered
deterministically, so the same spec always renders the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TopicPlan:
    name: str
    key_format: str
    value_format: str
    # Set when the app creates the topic at start if it is missing.
    partitions: int | None
    replication_factor: int | None
    config: tuple[tuple[str, str], ...]
    is_source: bool
    is_sink: bool
    is_dead_letter: bool
    # Read in full by every instance into a global table's store.
    is_global: bool = False


@dataclass(frozen=True)
class InternalTopicPlan:
    """A topic the app owns and creates at start: a repartition or a changelog topic."""

    name: str
    kind: str  # "repartition" | "changelog"
    # Fixed by the spec, else as many as the most of `partitions_from` has.
    partitions: int | None
    partitions_from: tuple[str, ...]
    config: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class WindowPlan:
    """The windows of a windowed aggregation's store, in ms."""

    kind: str  # "time" (tumbling, hopping), "sliding" or "session"
    # A time window's size, a sliding window's time difference, a session's gap.
    span_ms: int
    grace_ms: int
    retention_ms: int
    # Stream time passes a window's end by this much before its final result goes out.
    closes_after_ms: int
    # The store that holds results until their window closes (emit = "final"), or None.
    final_store: str | None


@dataclass(frozen=True)
class SuppressPlan:
    """A suppression buffer (suppress with a time limit)."""

    limit_ms: int
    max_records: int | None
    shut_down_when_full: bool


@dataclass(frozen=True)
class WindowedFormat:
    """A windowed key's format: the key in `inner`, then the window start (8 bytes); for
    sessions, the end then the start."""

    name: str
    inner: str
    size: int  # a time window's size (its end is start + size); 0 for sessions
    session: bool


@dataclass(frozen=True)
class JoinSidePlan:
    """One side's processor of a stream-stream join (ms; before/after seen from this side)."""

    name: str
    this_store: str
    other_store: str
    # Left and outer joins: the records still waiting for a partner.
    shared_store: str | None
    left: bool
    before_ms: int
    after_ms: int
    grace_ms: int
    # This side's records without a partner come out (left side of a left join; outer).
    outer: bool


@dataclass(frozen=True)
class ForeignKeyJoinPlan:
    """A foreign-key join's internal topics and stores (the runtime's fk module)."""

    name: str
    subscription_topic: str
    response_topic: str
    left_store: str
    right_store: str
    subscription_store: str
    left: bool


@dataclass(frozen=True)
class StorePlan:
    name: str
    type: str  # "rocksdb" | "memory"
    # What writes it: "table", "count", "reduce" or "aggregate".
    kind: str
    cache_max_entries: int
    key_format: str
    value_format: str
    # A table's store keeps its values' bytes as read; an aggregation's, decoded objects.
    raw_values: bool
    changelog_topic: str
    # The source topics of its sub-topology: the store has one partition per partition of them.
    source_topics: tuple[str, ...]
    # The function its updates run through (Python identifier in the topology module).
    emit_function: str
    # A windowed aggregation's store: its windows.
    window: WindowPlan | None = None
    # A suppression buffer's store: its limits.
    suppress: SuppressPlan | None = None
    # A stream-stream join's window store: how long it keeps a record (before + after +
    # grace of the window).
    join_retention_ms: int | None = None
    # A stream-stream join's shared store: the value formats of its left and right records.
    join_value_formats: tuple[str, str] | None = None


@dataclass(frozen=True)
class ProcessorPlan:
    """A `process` step: the user's class, made once per task of its group."""

    node: str
    module: str
    cls: str
    # The name the topology imports the class as.
    alias: str
    stores: tuple[str, ...]
    # Its task group (processor_groups' index: its sub-topology).
    group: int
    # The first nodes after it, which forward(record, child) may name.
    children: tuple[str, ...]
    # The function its forwards run (Python identifier in the topology module) and its body.
    forward_function: str
    forward_lines: tuple[str, ...]


@dataclass(frozen=True)
class ProcessorGroupPlan:
    """A sub-topology with processors: one task per partition of its source topics."""

    index: int
    source_topics: tuple[str, ...]


@dataclass(frozen=True)
class EmitFunction:
    name: str
    store: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class FunctionImport:
    module: str
    function: str
    alias: str


@dataclass(frozen=True)
class Processor:
    """One node of the topology, for `describe` and the pictures."""

    name: str
    kind: str
    detail: str
    topics: tuple[str, ...]
    successors: tuple[str, ...]


@dataclass(frozen=True)
class SubTopology:
    index: int
    processors: tuple[Processor, ...]
    # A global table's: read in full by every instance, outside the consumer group's tasks.
    global_store: bool = False


@dataclass(frozen=True)
class GlobalTablePlan:
    """A global table: its topic (also its changelog) and the store every instance fills."""

    name: str
    topic: str
    store: str
    type: str  # "rocksdb" | "memory"
    key_format: str
    value_format: str


@dataclass(frozen=True)
class SourceBlock:
    """Fused code for the records of some source topics: lines, indented relative to 0."""

    topics: tuple[str, ...]
    lines: tuple[str, ...]


@dataclass(frozen=True)
class RecordPlan:
    topic: str
    key: Any
    value: Any
    timestamp: int | None
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class TestCasePlan:
    name: str
    function_name: str
    inputs: tuple[RecordPlan, ...]
    # Expected records per topic, topics sorted; every sink topic appears (maybe empty).
    expected: tuple[tuple[str, tuple[RecordPlan, ...]], ...]
    # Expected store contents: (store, ((key, value), ...)).
    stores: tuple[tuple[str, tuple[tuple[Any, Any], ...]], ...] = ()


@dataclass(frozen=True)
class StateOrigin:
    """Where a name that carries state across deployments (a store, an internal topic) comes
    from in the spec, and the field that keeps it when the spec around it changes."""

    name: str
    # The spec path of the entry or step that makes it, e.g. ('streams', 0, 'steps', 2).
    loc: tuple[str | int, ...]
    # The name of its [[streams]], [[tables]] or [[global_tables]] entry.
    entry: str
    # The field to write at `loc` to keep the name, as a TOML line: 'store = "word-counts"'.
    keep: str


@dataclass(frozen=True)
class ConnectorPlan:
    """A Kafka Connect connector of the spec, its config complete (the generated
    `<package>/connectors/<name>.json`, PUT to the worker by `connect apply`)."""

    name: str
    java_class: str
    kind: str  # "source" | "sink"
    # The topics it writes (a source) or reads (a sink); a sink's topics.regex, if it has one.
    topics: tuple[str, ...]
    topics_pattern: str | None
    # The short names of its key and value converters.
    converters: tuple[str, ...]
    # The environment variables its ${env:VAR} references name, resolved at apply time.
    env: tuple[str, ...]
    # Where a class kgen knows comes from; "" for others.
    plugin: str
    # The config as JSON, keys sorted.
    json: str


@dataclass(frozen=True)
class MirrorFlowPlan:
    """One MirrorMaker 2 flow, for the README."""

    source: str
    source_bootstrap: str
    target: str
    target_bootstrap: str
    topics: tuple[str, ...]
    groups: tuple[str, ...]
    policy: str
    emit_checkpoints: bool
    sync_group_offsets: bool


@dataclass(frozen=True)
class MirrorPlan:
    """The spec's mirrors: MirrorMaker 2's dedicated-mode properties (`mm2.properties`)."""

    flows: tuple[MirrorFlowPlan, ...]
    # The properties file's lines, escaped for java.util.Properties.
    lines: tuple[str, ...]


@dataclass(frozen=True)
class AppPlan:
    app_id: str
    package: str
    description: str
    guarantee: str
    commit_interval_ms: int
    on_error: str
    dead_letter_topic: str | None
    replication_factor: int
    topics: tuple[TopicPlan, ...]
    source_topics: tuple[str, ...]
    sink_topics: tuple[str, ...]
    formats: tuple[str, ...]
    # Formats of windowed keys (store keys, sinks of windowed results).
    windowed_formats: tuple[WindowedFormat, ...]
    serde_imports: tuple[str, ...]
    module_imports: tuple[str, ...]
    function_imports: tuple[FunctionImport, ...]
    blocks: tuple[SourceBlock, ...]
    # Stateful apps: repartition topics read back, stores, their update functions.
    internal_source_topics: tuple[str, ...]
    internal_topics: tuple[InternalTopicPlan, ...]
    stores: tuple[StorePlan, ...]
    emit_functions: tuple[EmitFunction, ...]
    # Sink topics written with stores' updates (compared as tables in the broker test).
    table_sinks: tuple[str, ...]
    # Some `to` chooses its topic per record (the code raises UnknownTopicError).
    dynamic_routing: bool
    # Source topics whose code decodes a record before anything else: a malformed record
    # there always fails, which the generated tests use to exercise the error policy.
    malformed_sources: tuple[str, ...]
    subtopologies: tuple[SubTopology, ...]
    # Source topics of each sub-topology that reads several: its tasks take their partitions'
    # records in timestamp order (Kafka Streams' PartitionGroup).
    task_groups: tuple[tuple[str, ...], ...]
    # Whether the per-record code produces anything (a spec of tables only does not).
    process_produces: bool
    # Some aggregation is windowed (window stores, stream time, late records).
    windowed: bool
    # Some table's updates are suppressed (suppression buffers).
    suppressed: bool
    # Sinks written with windowed keys: partitioned by the plain key, as Kafka Streams does.
    windowed_sinks: tuple[str, ...]
    # Source topics joined in one sub-topology: they must have as many partitions.
    copartitioned: tuple[tuple[str, ...], ...]
    # Global tables: filled before processing starts, kept up to date as the app runs.
    global_tables: tuple[GlobalTablePlan, ...]
    # Stream-stream joins: each side's processor.
    join_sides: tuple[JoinSidePlan, ...]
    # Foreign-key table-table joins.
    foreign_key_joins: tuple[ForeignKeyJoinPlan, ...]
    # Standby replicas per store partition (the spec's; the app's flag overrides it).
    num_standby_replicas: int
    # The RocksDB memory budget of an instance, MiB (the spec's; the app's flag overrides it).
    rocksdb_memory_mib: int
    # The user's processors (process steps), their task groups, and their stores.
    processors: tuple[ProcessorPlan, ...]
    processor_groups: tuple[ProcessorGroupPlan, ...]
    processor_stores: tuple[str, ...]
    # Some store (or global table) keeps its data in RocksDB: the app needs rocksdict.
    uses_rocksdb: bool
    # Some records may be dropped by Kafka Streams' rules (late, negative event time).
    drops: bool
    tests: tuple[TestCasePlan, ...]
    kgen_version: str
    spec_path: str
    spec_sha256: str
    # Where each store and internal topic comes from (kgen.evolution's lock and errors).
    state_origins: tuple[StateOrigin, ...] = ()
    # Kafka Connect connectors and MirrorMaker 2 flows deployed next to the app.
    connectors: tuple[ConnectorPlan, ...] = ()
    mirror: MirrorPlan | None = None

    @property
    def third_party_imports(self) -> tuple[str, ...]:
        """The topology's imports of confluent_kafka and of the user's modules, in isort's
        order (by module, case-insensitively)."""
        lines = [("confluent_kafka", "from confluent_kafka import Message")]
        lines += [
            (f.module, f"from {f.module} import {f.function} as {f.alias}")
            for f in self.function_imports
        ]
        return tuple(line for _, line in sorted(lines, key=lambda m: (m[0].lower(), m[1])))

    @property
    def queryable_stores(self) -> tuple[StorePlan, ...]:
        """The stores interactive queries read: tables', aggregations' (windowed too) and
        processors' (not buffers, subscriptions or join windows)."""
        kinds = ("table", "count", "reduce", "aggregate", "processor")
        return tuple(s for s in self.stores if s.kind in kinds)

    @property
    def stateful(self) -> bool:
        """The app runs tasks that open and close with their partitions: it keeps stores, or
        runs processors of the user's (whose instances are per task, even without a store)."""
        return bool(self.stores) or bool(self.processors)

    @property
    def standbys(self) -> bool:
        """Some store is on disk: it can have standby replicas."""
        return any(s.type == "rocksdb" for s in self.stores)

    @property
    def reraises(self) -> bool:
        """Some processor is reached from a store's updates (its failures are the update's)."""
        lines = [line for f in self.emit_functions for line in f.lines]
        lines += [line for p in self.processors for line in p.forward_lines]
        return any("reraise" in line for line in lines)

    @property
    def global_topics(self) -> tuple[str, ...]:
        return tuple(g.topic for g in self.global_tables)
