"""The benchmark's input: seeded JSON records of about 200 bytes, and what tells whether an
output topic holds what it must: order-free digests of records, or a table of counts."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

SEED = 20_251_125
USERS = 10_000
KINDS = ("keep", "drop")
TAGS = ("web", "app", "pos", "new", "vip")
CURRENCIES = ("EUR", "USD", "GBP", "JPY", "CHF")
COUNTRIES = ("DE", "FR", "US", "GB", "JP", "CH", "NL", "SE")
# Fixed, not derived from the seed: the values' padding, so their size is ~200 bytes.
_ALPHABET = "abcdefghijklmnopqrstuvwxyz      "

Pair = tuple[bytes, bytes]
# One input record's expected output values (raw bytes), e.g. itself or nothing for a filter;
# a (key, value) pair instead of a value when the output has another key than the input.
Expectation = Callable[[bytes, bytes, dict[str, Any]], Iterable[bytes | Pair]]


@dataclass(frozen=True)
class Counts:
    """An expected table of counts: `group` maps each input record to its group key (None:
    not counted); the output must end, per key, with the number of records of its group."""

    group: Callable[[bytes, bytes, dict[str, Any]], bytes | None]


def records(n: int, seed: int = SEED) -> Iterator[tuple[bytes, bytes, dict[str, Any]]]:
    """`n` records as (key, value bytes, value object); the same seed gives the same bytes.

    About half have kind 'keep'; keys are one of USERS user ids, so they spread over every
    partition. The value's `user` is the key again: a field of USERS values to group by (each
    one appears in 1,000,000 records). Values are compact JSON (as kgen's `json` format writes
    it) of ~200 bytes.
    """
    rng = random.Random(seed)
    notes = ["".join(rng.choices(_ALPHABET, k=k)) for k in range(30, 80)]
    tags = [[a, b] for a in TAGS for b in TAGS if a != b]
    for i in range(n):
        # One draw per record, sliced into fields: generating 1M records stays a few seconds.
        bits = rng.getrandbits(64)
        obj: dict[str, Any] = {
            "id": i,
            "kind": KINDS[bits & 1],
            "user": f"user-{(bits >> 1) % USERS:05d}",
            "amount": ((bits >> 15) % 500_000 + 100) / 100,
            "currency": CURRENCIES[(bits >> 35) % len(CURRENCIES)],
            "country": COUNTRIES[(bits >> 38) % len(COUNTRIES)],
            "ts": 1_700_000_000_000 + i * 7,
            "tags": tags[(bits >> 41) % len(tags)],
            "note": notes[(bits >> 46) % len(notes)],
        }
        value = json.dumps(obj, separators=(",", ":")).encode()
        yield obj["user"].encode(), value, obj


# The `enrich` workload's table: one row per user key (user-00000 ..), its own seed so that the
# rows stay the same whatever the input's seed.
USERS_SEED = 20_251_212
TIERS = ("basic", "silver", "gold", "platinum")
# Every row's timestamp: 2020-09-13 12:26:40 UTC, earlier than every input record (produced
# with the wall clock's time), so a system that takes a task's records in timestamp order
# (Kafka Streams, kgen) has the whole table before the first input record whatever it fetches
# first.
USERS_TIMESTAMP_MS = 1_600_000_000_000


def user_rows(seed: int = USERS_SEED) -> Iterator[tuple[bytes, bytes, dict[str, Any]]]:
    """The table's USERS rows as (key, compact JSON value, value object), key order: the key
    is the user (the input's key), the value a few fields (~70 bytes)."""
    rng = random.Random(seed)
    for u in range(USERS):
        bits = rng.getrandbits(32)
        user = f"user-{u:05d}"
        obj: dict[str, Any] = {
            "user": user,
            "country": COUNTRIES[bits % len(COUNTRIES)],
            "tier": TIERS[(bits >> 3) % len(TIERS)],
            "since": 2010 + (bits >> 5) % 16,
        }
        yield user.encode(), json.dumps(obj, separators=(",", ":")).encode(), obj


@dataclass
class Digest:
    """Count and an order-independent 64-bit sum of record hashes: equal digests mean the
    same multiset of (key, value) records, with overwhelming probability."""

    count: int = 0
    total: int = 0
    size: int = 0  # value bytes

    def add(self, key: bytes | None, value: bytes | None) -> None:
        h = hashlib.blake2b(key or b"", digest_size=8)
        h.update(b"\x00")
        h.update(value or b"")
        self.count += 1
        self.total = (self.total + int.from_bytes(h.digest(), "little")) & _MASK
        self.size += len(value or b"")


_MASK = (1 << 64) - 1


class CountTable:
    """A topic of counts (8-byte big-endian longs, as Kafka's LongSerializer writes them) as
    a KTable sees it: the latest count per key. A stateful app forwards one de-duplicated
    update per key and commit, so the records themselves depend on timing; the final table
    does not. Read in offset order per partition (a key lives in one partition), each key's
    count must also grow with every update: `regressions` counts those that did not."""

    def __init__(self) -> None:
        self.counts: dict[bytes, int] = {}
        self.count = 0  # records read (updates), or records counted for an expected table
        self.regressions = 0
        self.size = 0  # value bytes, as Digest.size

    def add(self, key: bytes | None, value: bytes | None) -> None:
        """One output record: the new count of its key (a null value would delete it)."""
        k = key or b""
        self.count += 1
        self.size += len(value or b"")
        if value is None:
            self.counts.pop(k, None)
            return
        new = int.from_bytes(value, "big", signed=True) if len(value) == 8 else -1
        if new <= self.counts.get(k, 0):
            self.regressions += 1
        self.counts[k] = new

    def bump(self, key: bytes) -> None:
        """One input record of group `key` (building the expected table)."""
        self.count += 1
        self.counts[key] = self.counts.get(key, 0) + 1

    def __eq__(self, other: object) -> bool:
        # The table view only: how many updates led there depends on the commit timing.
        return isinstance(other, CountTable) and self.counts == other.counts

    __hash__ = None  # type: ignore[assignment]

    def differences(self, expected: CountTable, show: int = 3) -> str:
        """What is wrong with this table against `expected`, briefly."""
        missing = expected.counts.keys() - self.counts.keys()
        extra = self.counts.keys() - expected.counts.keys()
        wrong = [
            k
            for k in expected.counts.keys() & self.counts.keys()
            if self.counts[k] != expected.counts[k]
        ]
        parts = [f"{len(self.counts):,} keys (expected {len(expected.counts):,})"]
        if missing:
            parts.append(f"{len(missing):,} missing, e.g. {sorted(missing)[:show]}")
        if extra:
            parts.append(f"{len(extra):,} unexpected, e.g. {sorted(extra)[:show]}")
        if wrong:
            parts.append(
                f"{len(wrong):,} wrong, e.g. "
                + ", ".join(
                    f"{k!r}: {self.counts[k]} not {expected.counts[k]}"
                    for k in sorted(wrong)[:show]
                )
            )
        if self.regressions:
            parts.append(f"{self.regressions:,} updates that did not increase their key's count")
        return "; ".join(parts)


# What an output is checked against: a digest of its records, or its table of counts.
Output = Digest | CountTable


def produce_keys(bootstrap: str, topic: str, keys: int, updates: int, timeout_s: float) -> int:
    """Write `keys` distinct keys (`key-0000000`, ...), each `updates` times, as small JSON
    records `{"id": n, "user": key}`; returns how many, once all are delivered."""
    from confluent_kafka import Producer

    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, "partitioner": "murmur2_random"}
    )
    n = 0
    for _ in range(updates):
        for i in range(keys):
            key = f"key-{i:07d}"
            value = json.dumps({"id": n, "user": key}, separators=(",", ":")).encode()
            while True:
                try:
                    producer.produce(topic, value, key.encode())
                    break
                except BufferError:
                    producer.poll(0.05)
            n += 1
    if producer.flush(timeout_s):
        raise RuntimeError(f"input records not delivered within {timeout_s:.0f} s")
    return n


def empty_like(expected: Output) -> Output:
    """An empty output of the same kind, to read a topic into."""
    return CountTable() if isinstance(expected, CountTable) else Digest()


def matches(got: Output, expected: Output) -> bool:
    """Whether what was read is what was expected (a table's counts must also only grow)."""
    if isinstance(got, CountTable):
        return got == expected and got.regressions == 0
    return got == expected


class Expected:
    """Digests of the input and of each expectation's output, computed while the input is
    produced (one pass over the generated records)."""

    def __init__(self, expectations: dict[str, Expectation | Counts]) -> None:
        self.expectations = expectations
        self.input = Digest()
        self.outputs: dict[str, Output] = {
            name: CountTable() if isinstance(e, Counts) else Digest()
            for name, e in expectations.items()
        }

    def feed(self, source: Iterable[tuple[bytes, bytes, dict[str, Any]]]) -> Iterator[Pair]:
        """Yield each record as (key, value) for the producer, recording what it implies."""
        for key, value, obj in source:
            self.input.add(key, value)
            for name, expect in self.expectations.items():
                output = self.outputs[name]
                if isinstance(expect, Counts):
                    assert isinstance(output, CountTable)
                    group = expect.group(key, value, obj)
                    if group is not None:
                        output.bump(group)
                    continue
                for out in expect(key, value, obj):
                    # A value keeps the input's key; a (key, value) pair re-keys the record.
                    if isinstance(out, tuple):
                        output.add(*out)
                    else:
                        output.add(key, out)
            yield key, value
