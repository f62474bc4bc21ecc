"""Workloads: what the systems under test do to the same input topic."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.data import Counts, Expectation, Pair

SPECS = Path(__file__).resolve().parent / "specs"
INPUT_TOPIC = "bench-input"
INPUT_PARTITIONS = 6


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
}
