"""The benchmark's input: seeded JSON records of about 200 bytes, and order-free digests that
tell whether an output topic holds exactly the expected records."""

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
# One input record's expected output values (raw bytes), e.g. itself or nothing for a filter.
Expectation = Callable[[bytes, bytes, dict[str, Any]], Iterable[bytes]]


def records(n: int, seed: int = SEED) -> Iterator[tuple[bytes, bytes, dict[str, Any]]]:
    """`n` records as (key, value bytes, value object); the same seed gives the same bytes.

    About half have kind 'keep'; keys are one of USERS user ids, so they spread over every
    partition. Values are compact JSON (as kgen's `json` format writes it) of ~200 bytes.
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


class Expected:
    """Digests of the input and of each expectation's output, computed while the input is
    produced (one pass over the generated records)."""

    def __init__(self, expectations: dict[str, Expectation]) -> None:
        self.expectations = expectations
        self.input = Digest()
        self.outputs = {name: Digest() for name in expectations}

    def feed(self, source: Iterable[tuple[bytes, bytes, dict[str, Any]]]) -> Iterator[Pair]:
        """Yield each record as (key, value) for the producer, recording what it implies."""
        for key, value, obj in source:
            self.input.add(key, value)
            for name, expect in self.expectations.items():
                digest = self.outputs[name]
                for out in expect(key, value, obj):
                    digest.add(key, out)
            yield key, value
