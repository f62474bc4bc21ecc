"""Windows and event time, by hand: the edge cases the conformance suite's random cases may
miss (a record exactly at a window's end, exactly at the grace boundary, hopping windows near
0), emit = "final", late records and the timestamp expression, through the generated app's
in-memory driver. Kafka Streams itself judges the rest (test_conformance: tumbling-count,
hopping-final)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from confluent_kafka import Producer
from conftest import App, BuildApp

from kgen import topics
from kgen.spec.errors import SpecInvalid
from kgen.spec.load import load_spec

COUNTS = """
app = "win-{name}"

[topics.events]
key = "string"
value = "json"

[topics.out]
key = "string"
value = "long"

[[streams]]
name = "events"
from = "events"
{extractor}
steps = [
  {{ group_by_key = true }},
  {{ {window} }},
  {{ count = true, store = "counts" }},
  {{ to_stream = true }},
  {{ to = "out" }},
]
"""


def _app(build_app: BuildApp, name: str, window: str, extractor: str = "") -> App:
    spec = COUNTS.format(name=name, window=window, extractor=extractor)
    return build_app(spec, f"win_{name.replace('-', '_')}")


def _run(app: App, records: list[tuple[str | None, Any, int]]) -> tuple[Any, list[tuple[Any, ...]]]:
    driver = app.module("driver").TopologyTestDriver()
    for key, value, ts in records:
        driver.pipe_input("events", key, value, timestamp=ts)
    out = [
        (r.key.key, r.key.start, r.key.end, r.value, r.timestamp)
        for r in driver.read_records("out")
    ]
    return driver, out


def test_a_record_at_a_window_end_opens_the_next_window(build_app: BuildApp) -> None:
    app = _app(build_app, "edge", 'tumbling = "1s", grace = "0s"')
    _, out = _run(app, [("k", {}, 999), ("k", {}, 1000), ("k", {}, 1999)])
    assert out == [("k", 0, 1000, 1, 999), ("k", 1000, 2000, 1, 1000), ("k", 1000, 2000, 2, 1999)]


def test_grace_takes_records_until_stream_time_reaches_end_plus_grace(build_app: BuildApp) -> None:
    app = _app(build_app, "grace", 'tumbling = "1s", grace = "500ms"')
    # Stream time 1499: [0, 1000) is open until 1000 + 500, so 999 still counts.
    driver, out = _run(app, [("k", {}, 1499), ("k", {}, 999)])
    assert out == [("k", 1000, 2000, 1, 1499), ("k", 0, 1000, 1, 999)]
    assert driver.errors.dropped == 0
    # Stream time 1500: [0, 1000) closed (end <= stream time - grace), the record is late.
    driver, out = _run(app, [("k", {}, 1500), ("k", {}, 999), ("k", {}, 1000)])
    assert out == [("k", 1000, 2000, 1, 1500), ("k", 1000, 2000, 2, 1500)]
    assert driver.errors.dropped == 1


def test_hopping_windows_start_at_zero_and_never_before(build_app: BuildApp) -> None:
    app = _app(build_app, "hop", 'hopping = "1s", advance = "300ms", grace = "1s"')
    _, out = _run(app, [("k", {}, 100), ("k", {}, 650)])
    assert [(start, end, n) for _, start, end, n, _ in out] == [
        (0, 1000, 1),
        (0, 1000, 2),
        (300, 1300, 1),
        (600, 1600, 1),
    ]


def test_emit_final_writes_each_window_once_when_it_closes(build_app: BuildApp) -> None:
    app = _app(build_app, "final", 'tumbling = "1s", grace = "200ms", emit = "final"')
    driver = app.module("driver").TopologyTestDriver()
    for key, ts in [("a", 100), ("b", 900), ("a", 950), ("a", 1100)]:
        driver.pipe_input("events", key, {}, timestamp=ts)
    assert driver.read_records("out") == []  # stream time 1100 < 1000 + 200: nothing closed
    driver.pipe_input("events", "a", {}, timestamp=1200)
    out = [(r.key.key, r.key.start, r.value, r.timestamp) for r in driver.read_records("out")]
    # Ordered by window end, then by the windowed key's bytes (Kafka Streams' buffer order).
    assert out == [("a", 0, 2, 950), ("b", 0, 1, 900)]
    driver.pipe_input("events", "a", {}, timestamp=950)  # late: dropped, nothing re-emitted
    driver.pipe_input("events", "a", {}, timestamp=2200)
    out = [(r.key.key, r.key.start, r.value) for r in driver.read_records("out")]
    assert out == [("a", 1000, 2)]
    assert driver.errors.dropped == 1
    # Emitted results leave the buffer: only the open window [2000, 3000) of a waits there.
    assert list(driver.read_store("counts-final").values()) == [1]


def test_closed_windows_leave_the_store_after_their_retention(build_app: BuildApp) -> None:
    app = _app(build_app, "retention", 'tumbling = "1s", grace = "0s", retention = "2s"')
    driver, _ = _run(app, [("k", {}, 0), ("k", {}, 1000), ("k", {}, 2500)])
    assert sorted(w.start for w in driver.read_store("counts")) == [1000, 2000]
    driver.pipe_input("events", "k", {}, timestamp=3000)
    assert sorted(w.start for w in driver.read_store("counts")) == [2000, 3000]


def test_a_record_between_two_sessions_merges_them(build_app: BuildApp) -> None:
    app = _app(build_app, "sessions", 'session = "1s", grace = "2s"')
    _, out = _run(app, [("k", {}, 1000), ("k", {}, 3000), ("k", {}, 2000)])
    # The third record is within the gap of both: the two sessions become one, [1000, 3000],
    # and each of them is deleted (a tombstone, at its end) first.
    assert [(start, end, n) for _, start, end, n, _ in out] == [
        (1000, 1000, 1),
        (3000, 3000, 1),
        (1000, 1000, None),
        (3000, 3000, None),
        (1000, 3000, 3),
    ]
    [(_, _, _, _, ts)] = out[-1:]
    assert ts == 3000  # a session's updates carry its end
    serde = app.module("serde")
    raw = serde.SERIALIZERS["session_string"](serde.Windowed("k", 1000, 3000))
    # SessionWindowedSerializer: the key's bytes, then the end and the start.
    assert raw == b"k" + (3000).to_bytes(8, "big") + (1000).to_bytes(8, "big")


def test_sliding_windows_end_at_each_record(build_app: BuildApp) -> None:
    app = _app(build_app, "sliding", 'sliding = "1s", grace = "0s"')
    _, out = _run(app, [("k", {}, 5000), ("k", {}, 5500)])
    # [4000, 5000] for the first; then [4500, 5500] holds both, and the first record's right
    # window [5001, 6001] holds the second.
    assert [(start, end, n) for _, start, end, n, _ in out] == [
        (4000, 5000, 1),
        (5001, 6001, 1),
        (4500, 5500, 2),
    ]


def test_the_timestamp_expression_gives_event_time(build_app: BuildApp) -> None:
    app = _app(
        build_app, "event-time", 'tumbling = "1s", grace = "0s"', "timestamp = \"value['at']\""
    )
    driver, out = _run(app, [("k", {"at": 1500}, 10), ("k", {"at": 2100}, 20)])
    assert out == [("k", 1000, 2000, 1, 1500), ("k", 2000, 3000, 1, 2100)]
    # A negative event time is dropped with a warning, as Kafka Streams does.
    driver.pipe_input("events", "k", {"at": -5}, timestamp=30)
    assert driver.read_records("out") == [] and driver.errors.dropped == 1
    # Anything but an int fails the record by the error policy (here: fail), naming the source.
    errors = app.module("errors")
    with pytest.raises(errors.ProcessingFailed, match=r"events-source.*not an int"):
        driver.pipe_input("events", "k", {"at": "1500"}, timestamp=40)


def test_windowed_keys_are_written_as_kafka_streams_writes_them(build_app: BuildApp) -> None:
    app = _app(build_app, "serde", 'tumbling = "1m", grace = "0s"')
    driver = app.module("driver").TopologyTestDriver()
    driver.pipe_input("events", "ü", {}, timestamp=61_000)
    [raw] = driver.read_raw("out")
    # TimeWindowedSerializer: the key's bytes, then the window start, 8 bytes big-endian.
    assert raw.key == "ü".encode() + (60_000).to_bytes(8, "big")
    serde = app.module("serde")
    assert serde.DESERIALIZERS["windowed_string_60000"](raw.key) == ("ü", 60_000, 120_000)


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ('{ tumbling = "1m", grace = "0s" }, { count = true, store = "c" }', "needs a grouped"),
        ('{ group_by_key = true }, { tumbling = "1m" }, { count = true, store = "c" }', "grace"),
        (
            '{ group_by_key = true }, { tumbling = "1m", grace = "5x" }, '
            '{ count = true, store = "c" }',
            "not a duration",
        ),
        (
            '{ group_by_key = true }, { hopping = "1m", advance = "2m", grace = "0s" }, '
            '{ count = true, store = "c" }',
            "at most the size",
        ),
        (
            '{ group_by_key = true }, { tumbling = "1m", grace = "10s", retention = "1m" }, '
            '{ count = true, store = "c" }',
            "shorter than the window",
        ),
        (
            '{ group_by_key = true }, { tumbling = "1m", grace = "0s" }',
            "a windowed stream goes on with count, reduce or aggregate, not to_stream",
        ),
        (
            '{ group_by_key = true }, { session = "5m", grace = "0s" }, '
            '{ aggregate = "agg + 1", init = "0", store = "c" }',
            "an aggregate of session windows needs merge",
        ),
        (
            '{ group_by_key = true }, { tumbling = "5m", grace = "0s" }, '
            '{ aggregate = "agg + 1", init = "0", merge = "agg + value", store = "c" }',
            "merge is only for aggregates of session windows",
        ),
        (
            '{ group_by_key = true }, { sliding = "1m", grace = "0s", retention = "1m" }, '
            '{ count = true, store = "c" }',
            "shorter than the window's twice its time difference",
        ),
    ],
)
def test_window_mistakes_are_located(tmp_path: Any, steps: str, message: str) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text(
        'app = "bad"\n[topics.t]\n[topics.o]\n[[streams]]\nname = "s"\nfrom = "t"\n'
        f"steps = [{steps}, {{ to_stream = true }}, {{ to = 'o' }}]\n",
        encoding="utf-8",
    )
    with pytest.raises(SpecInvalid) as info:
        load_spec(spec)
    text = info.value.format()
    assert message in text and "bad.toml:7" in text, text


SUPPRESSED = """
app = "win-suppress-{name}"

[topics.events]
key = "string"
value = "json"

[topics.out]
key = "string"
value = "long"

[[streams]]
name = "events"
from = "events"
steps = [
  {{ group_by_key = true }},
  {{ count = true, store = "counts" }},
  {{ suppress = "1s", {limits} }},
  {{ to_stream = true }},
  {{ to = "out" }},
]
"""


def test_suppress_holds_each_key_until_its_time_is_up(build_app: BuildApp) -> None:
    spec = SUPPRESSED.format(name="held", limits="max_records = 2")
    app = build_app(spec, "win_suppress_held")
    driver = app.module("driver").TopologyTestDriver()
    for key, ts in [("a", 0), ("a", 500), ("b", 600)]:
        driver.pipe_input("events", key, {}, timestamp=ts)
    assert driver.read_records("out") == []
    # Stream time 1000: a's first held update (at 0) is 1 s old; its latest count goes out.
    driver.pipe_input("events", "c", {}, timestamp=1000)
    assert [(r.key, r.value, r.timestamp) for r in driver.read_records("out")] == [("a", 2, 500)]
    # A third key held: the buffer holds at most 2, so the oldest (b) goes out early.
    driver.pipe_input("events", "d", {}, timestamp=1100)
    assert [(r.key, r.value) for r in driver.read_records("out")] == [("b", 1)]


def test_a_full_buffer_that_shuts_down_stops_the_app(build_app: BuildApp) -> None:
    spec = SUPPRESSED.format(name="full", limits='max_records = 1, when_full = "shut_down"')
    app = build_app(spec, "win_suppress_full")
    driver = app.module("driver").TopologyTestDriver()
    driver.pipe_input("events", "a", {}, timestamp=0)
    errors = app.module("errors")
    with pytest.raises(errors.BufferFull, match="holds more than 1 keys"):
        driver.pipe_input("events", "b", {}, timestamp=10)


@pytest.mark.broker
def test_windowed_results_are_partitioned_by_their_plain_key(
    build_app: BuildApp, kafka_bootstrap: str
) -> None:
    """The app's murmur2 is the Java client's (and librdkafka's murmur2_random): a windowed
    result goes where the plain key would, as with Kafka Streams' WindowedStreamPartitioner."""
    app = _app(build_app, "partitioner", 'tumbling = "1m", grace = "0s"')
    murmur2 = app.module("serde").murmur2
    keys = ["", "a", "ab", "abc", "abcd", "ü", "日本語", "user-12345"]
    keys += [f"k{i}" for i in range(60)]
    topic = f"murmur2-{uuid.uuid4().hex[:8]}"
    topics.create_topics(kafka_bootstrap, {topic: 7})
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random"})
    for key in keys:
        producer.produce(topic, b"v", key.encode())
    assert producer.flush(30) == 0
    placed = {r.key: r.partition for r in topics.read_committed(kafka_bootstrap, topic)}
    assert placed == {k.encode(): (murmur2(k.encode()) & 0x7FFFFFFF) % 7 for k in keys}
