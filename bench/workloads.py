"""Workloads: what the systems under test do to the same input topic."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from bench.data import USERS_TIMESTAMP_MS, Counts, Expectation, Pair, user_rows

SPECS = Path(__file__).resolve().parent / "specs"
INPUT_TOPIC = "bench-input"
INPUT_PARTITIONS = 6


@dataclass(frozen=True)
class TableInput:
    """A second input topic read as a table (KTable), preloaded once per harness run before the
    input; the systems only read it."""

    topic: str
    partitions: int
    # (key, value) of every row, in the order they are produced.
    rows: Callable[[], Iterable[Pair]]
    # Every row's timestamp (epoch ms): earlier than every input record.
    timestamp_ms: int
    config: Mapping[str, str] = field(default_factory=lambda: {"cleanup.policy": "compact"})


@dataclass(frozen=True)
class Workload:
    name: str
    # The kgen spec of this workload; its app name is the kgen app's group id.
    spec: Path
    # Where the kgen app (and any system doing the same work) writes.
    output_topic: str
    # The output values each input record implies, or, for a table, the counts it must end with.
    expect: Expectation | Counts
    description: str
    # Topics read as tables besides the input (the harness preloads them).
    tables: tuple[TableInput, ...] = ()


def _keep(_key: bytes, value: bytes, obj: dict[str, Any]) -> Iterable[bytes]:
    # The filter forwards the input bytes unchanged.
    return (value,) if obj["kind"] == "keep" else ()


def _transform(_key: bytes, _value: bytes, obj: dict[str, Any]) -> Iterable[Pair]:
    # bench/specs/transform.toml: key = country; value = compact JSON with the fields in this
    # order (every system writes these exact bytes).
    cents = round(obj["amount"] * 100)
    out = {
        "id": obj["id"],
        "user": obj["user"],
        "country": obj["country"],
        "amount_cents": cents,
        "fee_cents": cents * 3 // 100,
    }
    return ((str(obj["country"]).encode(), json.dumps(out, separators=(",", ":")).encode()),)


def _user(_key: bytes, _value: bytes, obj: dict[str, Any]) -> bytes:
    # group_by = "value['user']": the group key, serialized as the spec's `string` key.
    return str(obj["user"]).encode()


# windowed-count: 1-minute tumbling windows in event time (the value's `ts`, epoch ms).
WINDOW_MS = 60_000


def _user_minute(key: bytes, _value: bytes, obj: dict[str, Any]) -> bytes:
    # group_by_key, then the window: Kafka Streams' TimeWindowedSerde layout of the windowed
    # key, the key's bytes then the window start as 8 bytes big-endian. No record is late (each
    # partition's records come in event-time order), so every one is counted.
    ts: int = obj["ts"]
    return key + (ts - ts % WINDOW_MS).to_bytes(8, "big", signed=True)


# enrich: the input joined with the users table (stream-table join, inner).
USERS_TOPIC = "bench-users"


@cache
def _users() -> dict[bytes, dict[str, Any]]:
    return {key: obj for key, _value, obj in user_rows()}


def _user_table() -> Iterable[Pair]:
    return ((key, value) for key, value, _obj in user_rows())


def _enrich(key: bytes, _value: bytes, obj: dict[str, Any]) -> Iterable[bytes]:
    # bench/specs/enrich.toml: the value with the user's tier and country appended, compact
    # JSON (every system writes these bytes). Every user has a row: one output per input.
    row = _users()[key]
    out = {**obj, "tier": row["tier"], "user_country": row["country"]}
    return (json.dumps(out, separators=(",", ":")).encode(),)


WORKLOADS: dict[str, Workload] = {
    "filter": Workload(
        name="filter",
        spec=SPECS / "filter.toml",
        output_topic="bench-filter-out",
        expect=_keep,
        description="keep JSON records whose kind is 'keep' (about half)",
    ),
    "transform": Workload(
        name="transform",
        spec=SPECS / "transform.toml",
        output_topic="bench-transform-out",
        expect=_transform,
        description="parse JSON, amount and fee in cents, re-key by country, write compact JSON",
    ),
    "count": Workload(
        name="count",
        spec=SPECS / "count.toml",
        output_topic="bench-count-out",
        expect=Counts(_user),
        description="group by value['user'] (10,000 users), count into a RocksDB store, "
        "to_stream to a topic",
    ),
    "windowed-count": Workload(
        name="windowed-count",
        spec=SPECS / "windowed-count.toml",
        output_topic="bench-windowed-out",
        expect=Counts(_user_minute),
        description="event time from value['ts'], group by key (the user), 1-minute tumbling "
        "windows without grace, count into a window store, every update to a topic",
    ),
    "enrich": Workload(
        name="enrich",
        spec=SPECS / "enrich.toml",
        output_topic="bench-enrich-out",
        expect=_enrich,
        description="stream-table join (inner) with a 10,000-row users table on bench-users "
        "(compacted, co-partitioned, preloaded): each record gets its user's tier and country",
        tables=(
            TableInput(
                topic=USERS_TOPIC,
                partitions=INPUT_PARTITIONS,
                rows=_user_table,
                timestamp_ms=USERS_TIMESTAMP_MS,
            ),
        ),
    ),
}
