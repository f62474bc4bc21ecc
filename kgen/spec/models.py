"""The spec: pydantic models of a kgen TOML file, exactly as the user writes it.

Only shape and local rules live here; cross-references (unknown topics, cycles, expressions)
are checked in `kgen.spec.checks`, which sees the whole document.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

FORMATS = ("string", "json", "bytes", "int", "long", "double")
Format = Literal["string", "json", "bytes", "int", "long", "double"]
Guarantee = Literal["exactly_once", "at_least_once"]
ErrorPolicy = Literal["fail", "skip", "dead_letter"]

FUNCTION_REF = re.compile(
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"
)
MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
# Validation context key: validating what is left of a document without its parts that have
# errors.
REST_OF_DOCUMENT = "rest_of_document"
APP_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


def package_name(app: str) -> str:
    """The Python package of app `app`."""
    return app.replace("-", "_")


def _check_name(v: str) -> str:
    if not NAME.match(v):
        raise ValueError(
            f"{v!r}: a name starts with a letter and has only letters, digits, '_' and '-'"
        )
    return v


# Stream, step and branch names: they become processor names and '<stream>.<branch>' references.
Name = Annotated[str, AfterValidator(_check_name)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FunctionRef(Model):
    """User code: `module.path:function`, importable where the app runs."""

    function: str

    @field_validator("function")
    @classmethod
    def _check_ref(cls, v: str) -> str:
        if not FUNCTION_REF.match(v):
            raise ValueError(f"{v!r} is not of the form 'package.module:function'")
        return v


# A piece of logic: an inline Python expression over key, value, timestamp, headers, or a
# reference to a function of the user's.
Logic = str | FunctionRef


class Topic(Model):
    key: Format = "string"
    value: Format = "string"
    # Set partitions to have the app create the topic at start when it is missing.
    partitions: int | None = Field(default=None, ge=1)
    replication_factor: int | None = Field(default=None, ge=1)
    config: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _replication_needs_partitions(self) -> Topic:
        if self.replication_factor is not None and self.partitions is None:
            raise ValueError(
                "replication_factor is only used for topics the app creates: set partitions too"
            )
        return self


class StepBase(Model):
    name: Name | None = None


class Filter(StepBase):
    filter: Logic
    # On a table: keep the result in this store (Kafka Streams' Materialized).
    store: Name | None = None


class FilterNot(StepBase):
    filter_not: Logic
    store: Name | None = None


class Map(StepBase):
    map: Logic


class MapValues(StepBase):
    map_values: Logic
    store: Name | None = None


class FlatMap(StepBase):
    flat_map: Logic


class FlatMapValues(StepBase):
    flat_map_values: Logic


class SelectKey(StepBase):
    select_key: Logic


class Peek(StepBase):
    peek: Logic


class Branch(Model):
    name: Name
    # The predicate; the last branch may leave it out to catch every record no other matched.
    when: Logic | None = None
    # A topic to write the branch to; without it the branch is a stream named
    # '<stream>.<branch>' that another [[streams]] entry reads with from_stream.
    to: str | None = None


class BranchStep(StepBase):
    branch: list[Branch] = Field(min_length=1)


class Merge(StepBase):
    merge: str | list[str]

    @property
    def streams(self) -> list[str]:
        return [self.merge] if isinstance(self.merge, str) else list(self.merge)


class GroupByKey(StepBase):
    """Group by the current key; repartitions only when an earlier step changed the key."""

    group_by_key: Literal[True]
    # Formats of the repartition topic, when there is one.
    key: Format = "string"
    value: Format = "json"


class GroupBy(StepBase):
    """Group by a new key computed from each record (a stream's or a table's): always
    repartitions through '<app>-<name>-repartition'."""

    group_by: Logic
    key: Format = "string"
    value: Format = "json"
    # Partitions of the repartition topic; default: the most of its sub-topology's sources.
    partitions: int | None = Field(default=None, ge=1)


class Count(StepBase):
    count: Literal[True]
    store: Name


class Reduce(StepBase):
    """`reduce` combines the aggregate so far (`agg`) with the record's `value`; the first
    value of a key is its aggregate as is. A grouped table also needs `subtract`."""

    reduce: Logic
    subtract: Logic | None = None
    store: Name


class Aggregate(StepBase):
    """`init` gives a new key's aggregate, `aggregate` (the adder) folds each record's `value`
    into `agg`; a grouped table also needs `subtract`."""

    aggregate: Logic
    init: Logic
    subtract: Logic | None = None
    # Session windows: combines two sessions' aggregates when a record joins them (`agg` so
    # far, and the other session's as `value`).
    merge: Logic | None = None
    store: Name


_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def duration_ms(text: str) -> int:
    """'250ms', '30s', '5m', '1h', '1d' -> milliseconds."""
    match = _DURATION.match(text)
    assert match is not None, text
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def _check_duration(v: str) -> str:
    if not _DURATION.match(v):
        raise ValueError(
            f"{v!r} is not a duration: a whole number and a unit, one of ms, s, m, h, d "
            "(e.g. '250ms', '30s', '5m', '1h')"
        )
    return v


# A span of time as the user writes it: "250ms", "30s", "5m", "1h", "1d".
Duration = Annotated[str, AfterValidator(_check_duration)]
EmitMode = Literal["updates", "final"]


class WindowBase(StepBase):
    """Windowing a grouped stream (Kafka Streams' windowedBy). There is no default grace
    (as in Kafka Streams 3.0+): a spec says how long a window takes late records."""

    grace: Duration
    # How long closed windows stay in the store; default: the least the window needs.
    retention: Duration | None = None
    # "updates": every update of a window, through the store's cache; "final": one result
    # per window once it closes (Kafka Streams' suppress(untilWindowCloses)).
    emit: EmitMode = "updates"


class Tumbling(WindowBase):
    """Fixed-size, non-overlapping windows: [0, size), [size, 2 size), ..."""

    tumbling: Duration

    @field_validator("tumbling")
    @classmethod
    def _positive(cls, v: str) -> str:
        if duration_ms(v) <= 0:
            raise ValueError("a window's size must be at least 1ms")
        return v


class Hopping(WindowBase):
    """Fixed-size windows that start every `advance`: a record falls in size / advance of them."""

    hopping: Duration
    advance: Duration

    @model_validator(mode="after")
    def _advance_fits(self) -> Hopping:
        size, advance = duration_ms(self.hopping), duration_ms(self.advance)
        if size <= 0:
            raise ValueError("a window's size must be at least 1ms")
        if not 0 < advance <= size:
            raise ValueError(
                f"advance ({self.advance}) must be more than 0 and at most the size "
                f"({self.hopping}); advance = size is a tumbling window"
            )
        return self


class Sliding(WindowBase):
    """Kafka Streams' sliding windows (KIP-450): a window of `sliding` (the time difference)
    ends at each record and starts just after it, so every distinct set of records no
    further apart than the difference has its window; start and end are both inclusive."""

    sliding: Duration

    @field_validator("sliding")
    @classmethod
    def _positive(cls, v: str) -> str:
        if duration_ms(v) <= 0:
            raise ValueError("a sliding window's time difference must be at least 1ms")
        return v


class Session(WindowBase):
    """Session windows: a key's records no more than `session` (the inactivity gap) apart
    are one session; a record between two sessions merges them (the aggregation's `merge`)."""

    session: Duration

    @field_validator("session")
    @classmethod
    def _positive(cls, v: str) -> str:
        if duration_ms(v) <= 0:
            raise ValueError("a session's inactivity gap must be at least 1ms")
        return v


class Suppress(StepBase):
    """Holds a table's updates per key for `suppress` after the key's first held update (on
    stream time), then forwards the key's latest (Kafka Streams' suppress(untilTimeLimit)):
    fewer, later updates. `max_records` bounds the buffer; when it is full the oldest go out
    early (`when_full = "emit_early"`) or the app stops (`"shut_down"`)."""

    suppress: Duration
    max_records: int | None = Field(default=None, ge=1)
    when_full: Literal["emit_early", "shut_down"] = "emit_early"
    # The buffer's store (with its changelog); default '<stream>-suppress'.
    store: Name | None = None

    def store_name(self, stream: str) -> str:
        return self.store or f"{stream}-suppress"


class Join(StepBase):
    """A stream joined with a table (Kafka Streams' KStream#join / #leftJoin with a KTable):
    each record looks up the table's row of its key, as the table is at that record's turn in
    the task's timestamp order; only the stream's records trigger. `joiner` makes the output
    value from `value` and `other` (the row; None for a left join without one). As the first
    step of a [[tables]] entry, a table joined with a table (KTable#join / leftJoin /
    outerJoin): updates of either side trigger, and the result is a table. With a join window,
    a stream joined with a stream (KStream#join / leftJoin / outerJoin with JoinWindows)."""

    join: Name  # a [[tables]] or [[global_tables]] entry, or a stream (with a window)
    joiner: Logic
    # inner, left; a table joined with a table, or a stream with a stream, also outer.
    how: Literal["inner", "left", "outer"] = "inner"
    # A global table's lookup key, from the stream record (Kafka Streams' KeyValueMapper): the
    # joiner sees it as `other_key`. A record whose lookup key is None joins nothing.
    key: Logic | None = None
    # A stream-stream join's window: records of the two sides at most `within` apart join;
    # `before` / `after` say how much earlier / later the other side's record may be, when
    # they differ (JoinWindows' before and after). `grace` has no default, as in Kafka
    # Streams 3.0+ (ofTimeDifferenceAndGrace).
    within: Duration | None = None
    before: Duration | None = None
    after: Duration | None = None
    grace: Duration | None = None
    # A table joined with a table by a foreign key (KIP-213, KTable#join with a foreign key
    # extractor): the right table's key, computed from the left row (`key` and `value`).
    foreign_key: Logic | None = None
    # A stream-stream join's stores are named after this (default: the step's name, else
    # '<stream>-join'): '<store>-this-join-store', '-other-join-store', '-shared-join-store'.
    store: Name | None = None

    @property
    def windowed(self) -> bool:
        return any(d is not None for d in (self.within, self.before, self.after))

    def window_ms(self) -> tuple[int, int]:
        """(before, after) in ms; a side left out takes `within` (0 without one)."""
        before = self.before if self.before is not None else self.within
        after = self.after if self.after is not None else self.within
        return duration_ms(before or "0ms"), duration_ms(after or "0ms")

    def foreign_key_name(self, table: str) -> str:
        """A foreign-key join's name, in its internal topics and its subscription store (as
        Kafka Streams' TableJoined.as): the step's name, else '<table>-fk-join'."""
        return self.name or f"{table}-fk-join"

    def store_names(self, stream: str) -> tuple[str, ...]:
        """A stream-stream join's stores: this side's records, the other side's, and (left
        and outer joins) the records still waiting for a partner."""
        base = self.store or self.name or f"{stream}-join"
        names = (f"{base}-this-join-store", f"{base}-other-join-store")
        return names if self.how == "inner" else (*names, f"{base}-shared-join-store")


class Process(StepBase):
    """A processor of the user's (Kafka Streams' Processor API, KStream#process): a class
    with init(context), process(record) and close(), made once per task. It reads and writes
    the stores it names, forwards any number of records to the steps after it, and schedules
    punctuations on stream time or wall-clock time."""

    process: str
    # Key-value stores it uses, declared in [stores] with their key and value formats.
    stores: list[Name] = Field(default_factory=list)

    @field_validator("process")
    @classmethod
    def _check_ref(cls, v: str) -> str:
        if not FUNCTION_REF.match(v):
            raise ValueError(f"{v!r} is not of the form 'package.module:Class'")
        return v


class ToStream(StepBase):
    """A table's updates as a stream of records (Kafka Streams' KTable.toStream)."""

    to_stream: Literal[True]


class DynamicTo(Model):
    """Route each record to one of `topics`, chosen by an expression or function."""

    topic: Logic
    topics: list[str] = Field(min_length=1)


class To(StepBase):
    to: str | DynamicTo


STEP_TYPES: dict[str, type[StepBase]] = {
    "filter": Filter,
    "filter_not": FilterNot,
    "map": Map,
    "map_values": MapValues,
    "flat_map": FlatMap,
    "flat_map_values": FlatMapValues,
    "select_key": SelectKey,
    "peek": Peek,
    "branch": BranchStep,
    "merge": Merge,
    "to": To,
    "group_by_key": GroupByKey,
    "group_by": GroupBy,
    "count": Count,
    "reduce": Reduce,
    "aggregate": Aggregate,
    "to_stream": ToStream,
    "tumbling": Tumbling,
    "hopping": Hopping,
    "sliding": Sliding,
    "session": Session,
    "suppress": Suppress,
    "join": Join,
    "process": Process,
}


def _step_kind(v: Any) -> str | None:
    """Which operation a step table names: the one key of STEP_TYPES it holds."""
    if isinstance(v, StepBase):
        return next(k for k, t in STEP_TYPES.items() if isinstance(v, t))
    if not isinstance(v, dict):
        return None
    kinds = step_operations(v)
    return kinds[0] if len(kinds) == 1 else None


def step_operations(step: dict[str, Any]) -> list[str]:
    """The operation keys a step table holds; an aggregate's `merge` (for sessions) is its
    own field, not the merge operation."""
    kinds = [k for k in step if k in STEP_TYPES]
    if "aggregate" in kinds and "merge" in kinds:
        kinds.remove("merge")
    return kinds


Step = Annotated[
    Annotated[Filter, Tag("filter")]
    | Annotated[FilterNot, Tag("filter_not")]
    | Annotated[Map, Tag("map")]
    | Annotated[MapValues, Tag("map_values")]
    | Annotated[FlatMap, Tag("flat_map")]
    | Annotated[FlatMapValues, Tag("flat_map_values")]
    | Annotated[SelectKey, Tag("select_key")]
    | Annotated[Peek, Tag("peek")]
    | Annotated[BranchStep, Tag("branch")]
    | Annotated[Merge, Tag("merge")]
    | Annotated[To, Tag("to")]
    | Annotated[GroupByKey, Tag("group_by_key")]
    | Annotated[GroupBy, Tag("group_by")]
    | Annotated[Count, Tag("count")]
    | Annotated[Reduce, Tag("reduce")]
    | Annotated[Aggregate, Tag("aggregate")]
    | Annotated[ToStream, Tag("to_stream")]
    | Annotated[Tumbling, Tag("tumbling")]
    | Annotated[Hopping, Tag("hopping")]
    | Annotated[Sliding, Tag("sliding")]
    | Annotated[Session, Tag("session")]
    | Annotated[Suppress, Tag("suppress")]
    | Annotated[Join, Tag("join")]
    | Annotated[Process, Tag("process")],
    Discriminator(
        _step_kind,
        custom_error_type="step_kind",
        custom_error_message="a step is a table with exactly one operation key, one of: "
        + ", ".join(STEP_TYPES),
    ),
]


class Stream(Model):
    name: Name
    # Input: one or more topics, or another stream (or a branch of one: 'stream.branch').
    from_: str | list[str] | None = Field(default=None, alias="from")
    from_stream: str | None = None
    # Event time: the record's timestamp from its content (Kafka Streams' timestamp
    # extractor), an int of milliseconds; default: the record's own timestamp.
    timestamp: Logic | None = None
    steps: list[Step] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_input(self) -> Stream:
        if (self.from_ is None) == (self.from_stream is None):
            raise ValueError(
                "set exactly one of 'from' (topics) and 'from_stream' (another stream)"
            )
        if self.timestamp is not None and self.from_stream is not None:
            raise ValueError(
                "timestamp extracts event time where records are read: set it on the stream "
                f"that reads the topics ({self.from_stream!r} or the one it comes from)"
            )
        return self

    @property
    def from_topics(self) -> list[str]:
        if self.from_ is None:
            return []
        return [self.from_] if isinstance(self.from_, str) else list(self.from_)


class Table(Model):
    """A KTable read from a topic: each record upserts its key, a null value deletes it. The
    table lives in `store`; its steps see its updates (group_by, to_stream, to)."""

    name: Name
    from_: str = Field(alias="from")
    store: Name
    steps: list[Step] = Field(default_factory=list)

    @property
    def from_topics(self) -> list[str]:
        return [self.from_]


class GlobalTable(Model):
    """A GlobalKTable: every partition of `from` on every instance, loaded before processing
    starts and kept up to date while the app runs; streams join it with a lookup key of their
    choosing, so it needs no co-partitioning."""

    name: Name
    from_: str = Field(alias="from")
    store: Name

    @property
    def from_topics(self) -> list[str]:
        return [self.from_]


StoreType = Literal["rocksdb", "memory"]
StoreKind = Literal["key_value", "window", "session"]


class StoreConfig(Model):
    """Options of a store that an aggregation or a table names."""

    # rocksdb: on disk under --state-dir, restored from the changelog tail only;
    # memory: restored from the whole changelog on every assignment.
    type: StoreType = "rocksdb"
    # Keys kept decoded in memory by each instance, the store's open partitions sharing them;
    # updates to a key between commits reach the changelog and downstream once (0: every
    # update is forwarded at once).
    cache_max_entries: int = Field(default=50_000, ge=0)
    # A processor's store (a `process` step's `stores`): its keys' and values' formats. The
    # stores of tables and aggregations take theirs from the topology.
    key: Format | None = None
    value: Format | None = None
    # A processor's store: key-value, window (values per key and window start, windows of
    # `window_size`) or session (values per key and session); the last two keep their
    # entries for `retention` behind the latest window (or session end) written.
    kind: StoreKind = "key_value"
    window_size: Duration | None = None
    retention: Duration | None = None


ConnectorKind = Literal["source", "sink"]
ReplicationPolicy = Literal["default", "identity"]


class Connector(Model):
    """A Kafka Connect connector deployed next to the app (`python -m <app> connect apply`):
    a source feeding topics the app reads, or a sink reading topics it writes."""

    name: Name
    # A short name kgen knows ("file-source", "file-sink", "debezium-postgres") or a Java class.
    class_: str = Field(alias="class")
    # Only for a class kgen does not know: whether it writes topics (source) or reads them.
    kind: ConnectorKind | None = None
    # The topics a source writes, when kgen cannot tell them from its config (a class it does
    # not know, a routing transform). A sink's topics are its config's topics / topics.regex.
    topics: list[str] | None = None
    # The connector's config as Connect takes it; secrets as ${env:VAR} references.
    config: dict[str, str] = Field(default_factory=dict)


class MirrorCluster(Model):
    """One cluster of a mirror: its MirrorMaker 2 alias and how to reach it."""

    alias: Name
    bootstrap_servers: str = Field(min_length=1)
    # Client settings for this cluster (security), written as '<alias>.<key>'.
    config: dict[str, str] = Field(default_factory=dict)


class Mirror(Model):
    """A MirrorMaker 2 flow: topics (and consumer groups' offsets) from `source` to `target`."""

    source: MirrorCluster
    target: MirrorCluster
    # Regexes of the topics and consumer groups to mirror.
    topics: list[str] = Field(min_length=1)
    groups: list[str] = Field(default_factory=list)
    # default: a mirrored topic is '<source alias>.<topic>' on the target; identity: same name.
    replication_policy: ReplicationPolicy = "default"
    # Checkpoints (the groups' offsets translated to the target) and, from them, the groups'
    # committed offsets set on the target (MirrorMaker's defaults: true and false).
    emit_checkpoints: bool = True
    sync_group_offsets: bool = False
    # More settings of this flow, written as '<source>-><target>.<key>'.
    config: dict[str, str] = Field(default_factory=dict)


class TestRecord(Model):
    topic: str
    key: Any = None
    value: Any = None
    # Input records default to timestamp 0; on expected records, leaving it out skips the check.
    timestamp: int | None = None
    headers: dict[str, str] = Field(default_factory=dict)


class StoreEntry(Model):
    key: Any
    value: Any


class TestCase(Model):
    name: str
    input: list[TestRecord] = Field(min_length=1)
    # Every record the app writes, per topic in order; topics not listed must get nothing.
    expect: list[TestRecord] = Field(default_factory=list)
    # The whole content of stores after the input: store name -> entries.
    stores: dict[str, list[StoreEntry]] = Field(default_factory=dict)


class Spec(Model):
    app: str
    description: str = ""
    guarantee: Guarantee = "exactly_once"
    # Kafka Streams' defaults: 100 ms under exactly-once, 30 s under at-least-once.
    commit_interval_ms: int | None = Field(default=None, ge=1)
    on_error: ErrorPolicy = "fail"
    dead_letter_topic: str | None = None
    # Of the topics the app creates without one of their own (internal topics): -1 is the
    # broker's default.replication.factor, as Kafka Streams' replication.factor=-1.
    replication_factor: int = -1
    # Warm copies of each RocksDB store partition kept by other instances (Kafka Streams'
    # num.standby.replicas); the app's --num-standby-replicas overrides it.
    num_standby_replicas: int = Field(default=0, ge=0)
    # The memory RocksDB may use in each instance, all its store partitions together: one
    # block cache of this size, memtables flushed once they hold half of it (Kafka Streams'
    # BoundedMemoryRocksDBConfig); the app's --rocksdb-memory-mib overrides it.
    rocksdb_memory_mib: int = Field(default=64, ge=8)
    # Modules inline expressions may use (e.g. "math", "re").
    imports: list[str] = Field(default_factory=list)
    # Modules (with their submodules) that exist only where the app runs: kgen does not look
    # for them when it checks `imports` and function references.
    runtime_only_modules: list[str] = Field(default_factory=list)
    topics: dict[str, Topic] = Field(default_factory=dict)
    streams: list[Stream] = Field(default_factory=list)
    tables: list[Table] = Field(default_factory=list)
    global_tables: list[GlobalTable] = Field(default_factory=list)
    stores: dict[str, StoreConfig] = Field(default_factory=dict)
    tests: list[TestCase] = Field(default_factory=list)
    # Kafka Connect connectors and MirrorMaker 2 flows deployed next to the app.
    connectors: list[Connector] = Field(default_factory=list)
    mirrors: list[Mirror] = Field(default_factory=list)

    @field_validator("replication_factor")
    @classmethod
    def _replication_factor(cls, value: int) -> int:
        if value == 0 or value < -1:
            raise ValueError("must be -1 (the broker's default) or at least 1")
        return value

    @field_validator("app")
    @classmethod
    def _check_app(cls, v: str) -> str:
        if not APP_NAME.match(v):
            raise ValueError(
                f"{v!r}: an app name is lower case, starts with a letter and has only letters, "
                "digits, '_' and '-' (it becomes the Python package and the Kafka application.id)"
            )
        return v

    @model_validator(mode="after")
    def _something_to_run(self, info: ValidationInfo) -> Spec:
        # Not for the rest of a document validated without its parts that have errors
        # (kgen.spec.parts): the streams may be among them.
        rest = isinstance(info.context, dict) and info.context.get(REST_OF_DOCUMENT)
        if not self.streams and not self.tables and not rest:
            raise ValueError("a spec needs at least one [[streams]] or [[tables]] entry")
        return self

    @field_validator("imports", "runtime_only_modules")
    @classmethod
    def _check_imports(cls, v: list[str]) -> list[str]:
        for mod in v:
            if not MODULE.match(mod):
                raise ValueError(f"{mod!r} is not a module name")
        return v

    @property
    def effective_commit_interval_ms(self) -> int:
        if self.commit_interval_ms is not None:
            return self.commit_interval_ms
        return 100 if self.guarantee == "exactly_once" else 30_000
