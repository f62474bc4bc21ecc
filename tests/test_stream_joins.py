"""Stream-stream joins: the spec's mistakes, located; and on the real broker, the records
waiting in the join's stores survive a restart on another disk (restored from their
changelogs), so a partner that comes after the restart still joins, and a record whose window
closes after it comes out once, unjoined. (Their semantics: the conformance twin
stream-stream-join, diffed against Kafka Streams.)"""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import pytest
from conftest import BuildApp
from example_apps import build_example, start_app

from kgen import topics
from kgen.spec.errors import SpecInvalid
from kgen.spec.load import load_spec

HEAD = (
    'app = "bad"\n[topics.a]\n[topics.b]\n[topics.o]\n'
    '[[tables]]\nname = "t"\nfrom = "b"\nstore = "t"\n'
    '[[streams]]\nname = "other"\nfrom = "b"\n'
)


def _errors(tmp_path: Path, steps: str, extra: str = "") -> str:
    spec = tmp_path / "bad.toml"
    spec.write_text(
        f'{HEAD}{extra}[[streams]]\nname = "s"\nfrom = "a"\nsteps = [{steps}, {{ to = "o" }}]\n',
        encoding="utf-8",
    )
    with pytest.raises(SpecInvalid) as info:
        load_spec(spec)
    return info.value.format()


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        (
            '{ join = "other", joiner = "other" }',
            "'other' is a stream: a stream joins another within a join window",
        ),
        (
            '{ join = "other", within = "5m", joiner = "other" }',
            "a stream-stream join needs grace",
        ),
        (
            '{ join = "other", within = "5m", grace = "0s", key = "value", joiner = "other" }',
            "'other' is a stream: records join on their keys",
        ),
        (
            '{ join = "t", within = "5m", joiner = "other" }',
            "within is for a join with a stream: 't' is a table",
        ),
        (
            '{ join = "nothere", within = "5m", grace = "0s", joiner = "other" }',
            "unknown stream 'nothere'",
        ),
        (
            '{ join = "other", within = "5x", grace = "0s", joiner = "other" }',
            "'5x' is not a duration",
        ),
    ],
)
def test_stream_join_mistakes_are_located(tmp_path: Path, steps: str, message: str) -> None:
    text = _errors(tmp_path, steps)
    assert message in text and "bad.toml:15" in text, text


def test_a_table_cannot_join_a_stream(tmp_path: Path) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text(
        HEAD + '[[tables]]\nname = "u"\nfrom = "a"\nstore = "u"\nsteps = [\n'
        '  { join = "other", within = "5m", grace = "0s", joiner = "other" },\n'
        '  { to_stream = true },\n  { to = "o" },\n]\n',
        encoding="utf-8",
    )
    with pytest.raises(SpecInvalid) as info:
        load_spec(spec)
    text = info.value.format()
    assert "'other' is a stream: only a stream joins a stream" in text, text


def test_the_stores_are_named_and_listed_with_their_changelogs(tmp_path: Path) -> None:
    from kgen.plan.planner import plan

    loaded = load_spec(Path(__file__).parent.parent / "specs" / "ad-clicks.toml")
    app = plan(loaded)
    names = {s.name: s for s in app.stores}
    assert set(names) == {
        "impressions-join-this-join-store",
        "impressions-join-other-join-store",
        "impressions-join-shared-join-store",
    }
    # Window stores keep window (10 min either way) + grace (1 min), duplicates included.
    assert names["impressions-join-this-join-store"].join_retention_ms == 1_260_000
    assert names["impressions-join-shared-join-store"].join_retention_ms is None
    changelogs = {t.name: dict(t.config) for t in app.internal_topics}
    assert changelogs["ad-clicks-impressions-join-this-join-store-changelog"] == {
        "cleanup.policy": "compact,delete",
        "retention.ms": str(1_260_000 + 86_400_000),
    }
    assert app.copartitioned == (("clicks", "impressions"),)


def _produce(bootstrap: str, topic: str, records: list[tuple[str, dict[str, str], int]]) -> None:
    for key, value, timestamp in records:
        topics.produce_all(
            bootstrap, topic, [(key.encode(), json.dumps(value).encode())], timestamp=timestamp
        )


def _run(app: Path, bootstrap: str, log: Path, state: Path) -> None:
    proc = start_app(app, bootstrap, log, "--state-dir", str(state), "--stop-when-idle", "4")
    try:
        assert proc.wait(120) == 0, log.read_text()[-4000:]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)


@pytest.mark.broker
def test_waiting_records_survive_a_restart_on_another_disk(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    app_id = "ad-clicks-restart"
    topics.recreate_topics(
        kafka_bootstrap,
        {"impressions": 1, "clicks": 1, "impression-outcomes": 1},
        [app_id],
        {"retention.ms": "-1"},
    )
    app = build_example("ad-clicks", app_id, tmp_path)
    log = tmp_path / "app.log"
    # Times of today: the window stores' changelogs are deleted by time (retention.ms, as Kafka
    # Streams' are), and records stamped in 1970 would be gone before the restore.
    t0 = int(time.time() * 1000) - 3_600_000
    # First run: three impressions, one click within its window; the other two wait.
    _produce(
        kafka_bootstrap,
        "impressions",
        [
            ("i1", {"ad": "shoes"}, t0 + 1_000),
            ("i2", {"ad": "hats"}, t0 + 2_000),
            ("i4", {"ad": "x"}, t0 + 3_000),
        ],
    )
    _produce(kafka_bootstrap, "clicks", [("i4", {"page": "/x"}, t0 + 4_000)])
    _run(app, kafka_bootstrap, log, tmp_path / "disk-1")
    first = [
        (r.key, json.loads(r.value or b"null"))
        for r in topics.read_committed(kafka_bootstrap, "impression-outcomes")
    ]
    assert first == [(b"i4", {"ad": "x", "clicked": True, "page": "/x"})], log.read_text()[-3000:]
    # Second run, on an empty disk: the stores come back from their changelogs. i1's click
    # comes within its window and joins; a click 11 minutes on closes i2's window (and i1's).
    _produce(
        kafka_bootstrap,
        "clicks",
        [("i1", {"page": "/shoes"}, t0 + 61_000), ("i3", {"page": "/late"}, t0 + 700_000)],
    )
    _run(app, kafka_bootstrap, log, tmp_path / "disk-2")
    text = log.read_text()
    assert "restored " in text, text[-3000:]
    outcomes = sorted(
        (r.key or b"", json.dumps(json.loads(r.value or b"null"), sort_keys=True))
        for r in topics.read_committed(kafka_bootstrap, "impression-outcomes")
    )
    assert outcomes == sorted(
        [
            (b"i4", json.dumps({"ad": "x", "clicked": True, "page": "/x"}, sort_keys=True)),
            (b"i1", json.dumps({"ad": "shoes", "clicked": True, "page": "/shoes"}, sort_keys=True)),
            (b"i2", json.dumps({"ad": "hats", "clicked": False, "page": ""}, sort_keys=True)),
        ]
    ), text[-3000:]


SPEC = (Path(__file__).parent.parent / "specs" / "ad-clicks.toml").read_text(encoding="utf-8")


def test_sorted_keys_stay_sorted_through_adds_and_removes(build_app: BuildApp) -> None:
    """The shared store's ordered index against sorted(set(...)), through chunk splits and
    emptied chunks."""
    sorted_keys = build_app(SPEC, "sorted_keys").module("state").SortedKeys
    rng = random.Random(7)
    keys = sorted_keys([b"m", b"a"])
    reference = {b"m", b"a"}
    for _ in range(20_000):
        key = rng.randbytes(rng.randint(1, 3))
        if rng.random() < 0.6:
            keys.add(key)
            reference.add(key)
        else:
            keys.discard(key)
            reference.discard(key)
    assert list(keys) == sorted(reference) and len(keys) == len(reference)
    assert len(keys.chunks) > 2  # it did split
    for key in sorted(reference):
        keys.discard(key)
    assert list(keys) == [] and keys.chunks == []


def test_window_bounds_late_records_and_the_order_unmatched_records_come_out(
    build_app: BuildApp,
) -> None:
    """ad-clicks: 10 minutes either way, 1 minute grace, left join (ms below)."""
    driver = build_app(SPEC, "ad_clicks_edges").module("driver").TopologyTestDriver()

    def pipe(topic: str, key: str, ts: int) -> None:
        value = {"ad": key} if topic == "impressions" else {"page": key}
        driver.pipe_input(topic, key, value, timestamp=ts)

    pipe("impressions", "a", 1_000_000)
    pipe("clicks", "a", 1_600_000)  # exactly 10 minutes after: joins
    pipe("impressions", "b", 1_000_000)
    pipe("clicks", "b", 1_600_001)  # a millisecond more: no join
    # Stream time is 1,600,001: an impression at 1,000,000 whose window ended at 1,600,000
    # comes out unjoined at once (it cannot wait for a window that closed), and yet a late click
    # in its window still joins it, as in Kafka Streams: out-of-order input can give both.
    pipe("impressions", "c", 1_000_000)
    pipe("clicks", "c", 400_000)  # exactly 10 minutes before: joins
    pipe("impressions", "d", 1_100_000)
    out = [
        (r.key, r.value["page"], r.timestamp) for r in driver.read_records("impression-outcomes")
    ]
    assert out == [("a", "a", 1_600_000), ("c", "", 1_000_000), ("c", "c", 1_000_000)]
    pipe("clicks", "zz", 1_660_001)  # b's window closes (1,000,000 + 10 min + 1 min < this)
    pipe("clicks", "zz", 1_760_001)  # and d's
    out = [
        (r.key, r.value["clicked"], r.timestamp) for r in driver.read_records("impression-outcomes")
    ]
    assert out == [("b", False, 1_000_000), ("d", False, 1_100_000)]
    # A late impression, whose window closed already: out at once, unjoined; a late click
    # finds nothing (b's impression is no longer waiting).
    pipe("impressions", "e", 1_000_000)
    pipe("clicks", "b", 1_000_500)
    out = [
        (r.key, r.value["clicked"], r.timestamp) for r in driver.read_records("impression-outcomes")
    ]
    assert out == [("e", False, 1_000_000), ("b", True, 1_000_500)]


BYTES_SPEC = """
app = "bytes-join"
[topics.l]
key = "string"
value = "bytes"
[topics.r]
key = "string"
value = "bytes"
[topics.o]
key = "string"
value = "string"

[[streams]]
name = "r"
from = "r"
steps = [{ map_values = "{'n': len(value)}" }]

[[streams]]
name = "l"
from = "l"
steps = [
  { join = "r", within = "1s", grace = "0s", how = "outer", joiner = "JOINER" },
  { to = "o" },
]
""".replace("JOINER", "repr(value) + '+' + repr(other)")


def test_values_are_kept_in_each_sides_format(build_app: BuildApp) -> None:
    """Bytes (the left side's, unchanged) and JSON (the right side's, mapped) both wait in
    the stores and come out as they went in."""
    app = build_app(BYTES_SPEC, "bytes_join")
    stores = {s.name: s for s in app.module("state").STORES.values()}
    assert stores["l-join-this-join-store"].value_format == "bytes"
    assert stores["l-join-other-join-store"].value_format == "json"
    assert stores["l-join-shared-join-store"].join_value_formats == ("bytes", "json")
    driver = app.module("driver").TopologyTestDriver()
    driver.pipe_input("l", "a", b"\x00\xff", timestamp=1_000)
    driver.pipe_input("r", "b", b"xyz", timestamp=1_500)
    driver.pipe_input("r", "a", b"12", timestamp=1_800)  # joins a's record
    driver.pipe_input("l", "z", b"", timestamp=5_000)  # closes b's window
    out = [(r.key, r.value, r.timestamp) for r in driver.read_records("o")]
    assert out == [
        ("a", "b'\\x00\\xff'+{'n': 2}", 1_800),
        ("b", "None+{'n': 3}", 1_500),
    ]
