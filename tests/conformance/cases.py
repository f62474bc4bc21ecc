"""Seeded input cases, one generator per conformance topology: the same seed gives the same
records. Keys include non-ASCII text, quotes, a backslash, an emoji (a character outside the
BMP: two UTF-16 units in Java, one code point in Python), the empty string and null; values
include tombstones where the topology reads them; timestamps are out of order, with ties.

Both drivers have one partition per topic and take the records one by one in the order given,
so partitions play no part here (see the README, Semantics).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

Record = dict[str, Any]
Case = list[Record]

KEYS = ["a", "b", "", "é", "日本", 'q"uote', "it's", "back\\slash", "😀", "a b", None]
WORDS = ["a", "b", "é", "日本", '"', "'", "😀", "ab", "abc", "hello", "\\"]
REGIONS = ["eu", "us", "ünï", ""]
PAGES = ["/", "/a", "/é", '"/q"', ""]


def _ts(rng: random.Random) -> int:
    # Out of order, with ties: the aggregates keep the latest timestamp of their records.
    return rng.randint(0, 30) * 100


def _text(rng: random.Random) -> str | None:
    roll = rng.random()
    if roll < 0.1:
        return None
    if roll < 0.15:
        return ""
    # Repeated words and runs of spaces on purpose.
    return rng.choice([" ", "  "]).join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))


def _record(topic: str, key: Any, value: Any, rng: random.Random) -> Record:
    return {"topic": topic, "key": key, "value": value, "timestamp": _ts(rng)}


def stateless(rng: random.Random) -> Case:
    return [_record("text", rng.choice(KEYS), _text(rng), rng) for _ in range(rng.randint(1, 12))]


def merge(rng: random.Random) -> Case:
    return [
        _record(rng.choice(["left", "right"]), rng.choice(KEYS), _text(rng), rng)
        for _ in range(rng.randint(1, 12))
    ]


def wordcount(rng: random.Random) -> Case:
    return [_record("lines", rng.choice(KEYS), _text(rng), rng) for _ in range(rng.randint(1, 12))]


def reduce(rng: random.Random) -> Case:
    def amount() -> int | None:
        return None if rng.random() < 0.1 else rng.randint(0, 20)

    return [_record("amounts", rng.choice(KEYS), amount(), rng) for _ in range(rng.randint(1, 15))]


def aggregate(rng: random.Random) -> Case:
    def click() -> dict[str, Any] | None:
        if rng.random() < 0.1:
            return None
        user = rng.choice([k for k in KEYS if k is not None])
        click = {"page": rng.choice(PAGES), "user": user, "n": rng.randint(0, 9)}
        if rng.random() < 0.1:
            del click["page"]  # a null key after select_key
        return click

    return [_record("clicks", rng.choice(KEYS), click(), rng) for _ in range(rng.randint(1, 15))]


def tables(rng: random.Random) -> Case:
    keys = ["u1", "u2", "ü3", "", None]  # few keys: rows are updated and deleted

    def user() -> dict[str, Any] | None:
        roll = rng.random()
        if roll < 0.25:
            return None
        return {} if roll < 0.3 else {"name": rng.choice(WORDS)}

    records = []
    for _ in range(rng.randint(1, 15)):
        if rng.random() < 0.5:
            records.append(_record("users", rng.choice(keys), user(), rng))
        else:
            records.append(_record("profiles", rng.choice(keys), _text(rng), rng))
    return records


def regroup(rng: random.Random) -> Case:
    keys = ["u1", "u2", "ü3", "u4", "", None]

    def row(with_amount: bool) -> dict[str, Any] | None:
        roll = rng.random()
        if roll < 0.2:
            return None  # a deletion (of a row that may not exist)
        value: dict[str, Any] = {} if roll < 0.25 else {"region": rng.choice(REGIONS)}
        if with_amount:
            value["amount"] = rng.randint(1, 9)
        return value

    records = []
    for _ in range(rng.randint(1, 15)):
        if rng.random() < 0.5:
            records.append(_record("members", rng.choice(keys), row(False), rng))
        else:
            records.append(_record("accounts", rng.choice(keys), row(True), rng))
    return records


def table_ops(rng: random.Random) -> Case:
    keys = ["u1", "u2", "ü3", "", None]

    def user() -> dict[str, Any] | None:
        roll = rng.random()
        if roll < 0.2:
            return None  # a deletion (of a row that may not exist)
        value: dict[str, Any] = {}
        if roll > 0.3:
            value["active"] = rng.random() < 0.5
        if rng.random() < 0.8:
            value["name"] = rng.choice(WORDS)
        if rng.random() < 0.9:
            value["region"] = rng.choice(REGIONS)
        return value

    return [_record("t-users", rng.choice(keys), user(), rng) for _ in range(rng.randint(1, 15))]


def _event_times(rng: random.Random, count: int) -> list[int]:
    """Timestamps for windows: stream time moves on in steps, with records out of order by up
    to 1.5 s (late for some windows, not others), ties, and exact window boundaries."""
    base, out = 0, []
    for _ in range(count):
        base += rng.choice([0, 0, 100, 200, 300, 500])
        out.append(max(0, base - rng.choice([0, 0, 0, 100, 300, 600, 1000, 1500])))
    return out


def tumbling_count(rng: random.Random) -> Case:
    count = rng.randint(1, 25)
    return [
        {
            "topic": "views",
            "key": rng.choice([*KEYS[:5], None]),
            "value": _text(rng),
            "timestamp": ts,
        }
        for ts in _event_times(rng, count)
    ]


def hopping_final(rng: random.Random) -> Case:
    count = rng.randint(1, 25)

    def amount() -> int | None:
        return None if rng.random() < 0.1 else rng.randint(0, 20)

    return [
        {
            "topic": "amounts",
            "key": rng.choice([*KEYS[:4], None]),
            "value": amount(),
            "timestamp": ts,
        }
        for ts in _event_times(rng, count)
    ]


def sliding_count(rng: random.Random) -> Case:
    count = rng.randint(1, 25)
    return [
        {
            "topic": "clicks",
            "key": rng.choice([*KEYS[:3], None]),
            "value": _text(rng),
            "timestamp": ts,
        }
        for ts in _event_times(rng, count)
    ]


def session_merge(rng: random.Random) -> Case:
    count = rng.randint(1, 25)
    return [
        {
            "topic": "visits",
            "key": rng.choice([*KEYS[:3], None]),
            "value": rng.choice([*PAGES, None]),
            "timestamp": ts,
        }
        for ts in _event_times(rng, count)
    ]


def suppress(rng: random.Random) -> Case:
    count = rng.randint(1, 25)
    records = []
    for ts in _event_times(rng, count):
        if rng.random() < 0.5:
            records.append(
                {
                    "topic": "events",
                    "key": rng.choice([*KEYS[:6], None]),
                    "value": _text(rng),
                    "timestamp": ts,
                }
            )
        else:
            records.append(
                {
                    "topic": "profiles",
                    "key": rng.choice(["u1", "u2", "ü3", "", None]),
                    "value": _text(rng),
                    "timestamp": ts,
                }
            )
    return records


def stream_table_join(rng: random.Random) -> Case:
    keys = ["c1", "c2", "ç3", "", None]

    def order() -> dict[str, Any] | None:
        return None if rng.random() < 0.15 else {"n": rng.randint(0, 9)}

    def customer() -> dict[str, Any] | None:
        return None if rng.random() < 0.25 else {"name": rng.choice(WORDS)}

    records = []
    for _ in range(rng.randint(1, 15)):
        if rng.random() < 0.5:
            records.append(_record("orders", rng.choice(keys), order(), rng))
        else:
            records.append(_record("customers", rng.choice(keys), customer(), rng))
    return records


def rekeyed_join(rng: random.Random) -> Case:
    """Orders keyed by order id name their customer in the value ("c": missing, null or a
    customer that may have no row); the customers' topic has updates and tombstones."""
    customers = ["c1", "c2", "ç3", ""]

    def order() -> dict[str, Any] | None:
        if rng.random() < 0.1:
            return None
        order: dict[str, Any] = {"n": rng.randint(0, 9)}
        if rng.random() < 0.9:
            order["c"] = None if rng.random() < 0.1 else rng.choice(customers)
        return order

    def customer() -> dict[str, Any] | None:
        return None if rng.random() < 0.25 else {"name": rng.choice(WORDS)}

    records = []
    for _ in range(rng.randint(1, 15)):
        if rng.random() < 0.55:
            records.append(_record("orders", rng.choice(KEYS), order(), rng))
        else:
            records.append(_record("customers", rng.choice([*customers, None]), customer(), rng))
    return records


def stream_global_join(rng: random.Random) -> Case:
    """Orders look their product up by the value's "p" (missing, null, or a key that may have
    no row); the products' topic has updates, tombstones and null keys."""
    products = ["p1", "p2", "ṗ3", ""]

    def order() -> dict[str, Any] | None:
        if rng.random() < 0.15:
            return None
        order: dict[str, Any] = {"n": rng.randint(0, 9)}
        if rng.random() < 0.85:
            order["p"] = None if rng.random() < 0.15 else rng.choice(products)
        return order

    def product() -> dict[str, Any] | None:
        return None if rng.random() < 0.25 else {"price": rng.randint(1, 99)}

    records = []
    for _ in range(rng.randint(1, 15)):
        if rng.random() < 0.55:
            records.append(_record("orders", rng.choice(KEYS), order(), rng))
        else:
            records.append(_record("products", rng.choice([*products, None]), product(), rng))
    return records


def table_table_join(rng: random.Random) -> Case:
    keys = ["k1", "k2", "ķ3", "", None]

    def row() -> str | None:
        return None if rng.random() < 0.3 else rng.choice(WORDS)

    return [
        _record(rng.choice(["ta", "tb"]), rng.choice(keys), row(), rng)
        for _ in range(rng.randint(1, 15))
    ]


def stream_stream_join(rng: random.Random) -> Case:
    """Both sides with few keys (null among them), some null values, and times out of order
    over 3 s: windows of a few hundred ms match some records, miss others, and close while
    later records are still to come."""
    keys = ["k1", "k2", "ķ3", "", None]

    def value() -> str | None:
        return None if rng.random() < 0.1 else rng.choice(WORDS)

    return [
        _record(rng.choice(["left", "right"]), rng.choice(keys), value(), rng)
        for _ in range(rng.randint(1, 20))
    ]


def fk_join(rng: random.Random) -> Case:
    """Orders (few keys) name their product in the value ("p": missing, null, or a product
    that may have no row) and change it; products are updated and deleted; both topics have
    tombstones and null keys."""
    products = ["p1", "p2", "ṗ3", ""]

    def order() -> dict[str, Any] | None:
        if rng.random() < 0.2:
            return None
        order: dict[str, Any] = {"n": rng.randint(0, 9)}
        if rng.random() < 0.9:
            order["p"] = None if rng.random() < 0.1 else rng.choice(products)
        return order

    def product() -> str | None:
        return None if rng.random() < 0.25 else rng.choice(WORDS)

    records = []
    for _ in range(rng.randint(1, 15)):
        if rng.random() < 0.55:
            key = rng.choice(["o1", "o2", "ö3", "", None])
            records.append(_record("fk-orders", key, order(), rng))
        else:
            records.append(_record("fk-products", rng.choice([*products, None]), product(), rng))
    return records


def processor(rng: random.Random) -> Case:
    """Records and, now and then, wall-clock time moving on ({"advance": ms}): the processor
    punctuates on both."""
    case: Case = []
    for _ in range(rng.randint(1, 15)):
        if rng.random() < 0.2:
            case.append({"advance": rng.choice([1000, 2500, 4999, 5000, 7000, 12000])})
            continue
        value = None if rng.random() < 0.15 else rng.choice(WORDS)
        case.append(
            {"topic": "events", "key": rng.choice(KEYS), "value": value, "timestamp": _ts(rng) * 2}
        )
    return case


def processor_windows(rng: random.Random) -> Case:
    """Records out of order over 6 s: windows of 1 s and sessions that expire (2 s, 1.5 s)."""
    case: Case = []
    for _ in range(rng.randint(1, 15)):
        value = None if rng.random() < 0.15 else rng.choice(WORDS)
        case.append(
            {"topic": "events", "key": rng.choice(KEYS), "value": value, "timestamp": _ts(rng) * 2}
        )
    return case


GENERATORS: dict[str, Callable[[random.Random], Case]] = {
    "stateless": stateless,
    "merge": merge,
    "wordcount": wordcount,
    "reduce": reduce,
    "aggregate": aggregate,
    "tables": tables,
    "regroup": regroup,
    "table-ops": table_ops,
    "tumbling-count": tumbling_count,
    "hopping-final": hopping_final,
    "sliding-count": sliding_count,
    "session-merge": session_merge,
    "suppress": suppress,
    "stream-table-join": stream_table_join,
    "stream-global-join": stream_global_join,
    "rekeyed-join": rekeyed_join,
    "table-table-join": table_table_join,
    "stream-stream-join": stream_stream_join,
    "fk-join": fk_join,
    "processor": processor,
    "processor-windows": processor_windows,
}


def generate(topology: str, seed: int) -> Case:
    """The case of `topology` for `seed`: the same records on every machine and run."""
    return GENERATORS[topology](random.Random(f"{topology}:{seed}"))
