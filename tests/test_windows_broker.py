"""Exactly-once for windows, proved: SIGKILL a windowed app with emit = "final" mid-stream,
twice, restart it, and read the output with isolation.level=read_committed — every closed
window exactly once, with its exact count, none lost, none emitted twice (issue 11).

The app counts events per key in tumbling 1 s windows of event time (the value's `ts`), grace
0, and emits each window's count once it closes. Stream time is per task, here per input
partition (group_by_key does not repartition): each partition gets keys of its own and event
times that move forward one window after another (out of order within a window). Most records
are late, for one of the two windows that closed last: the app must drop them, before and after
each restart (with the stream time it restored). The last record of each partition opens
one more window and so closes every earlier one: the expected output is every (key, window) of
those earlier windows, with its count and its latest event time as the record's timestamp.

The first restart keeps the instance id and the state dir: the local RocksDB state plus the
changelogs' tail. The second comes back under a new id with an empty state dir: both stores
(the window store and the buffer of not-yet-closed windows) are restored from their changelogs
alone, and the dead instance's open transaction is aborted by the broker's transaction timeout.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from conftest import App, BuildApp
from example_apps import committed_offsets

from kgen import topics

SPEC = """
app = "windows-eos"

[topics.win-eos-in]
key = "string"
value = "json"

[topics.win-eos-out]
key = "string"
value = "long"

[[streams]]
name = "events"
from = "win-eos-in"
timestamp = "value['ts']"
steps = [
  { group_by_key = true },
  { tumbling = "1s", grace = "0s", emit = "final" },
  { count = true, store = "win-counts" },
  { to_stream = true },
  { to = "win-eos-out" },
]
"""
GROUP = "windows-eos"  # the app's id: its consumer group, its internal topics' prefix
SOURCE, SINK = "win-eos-in", "win-eos-out"
CHANGELOGS = ["windows-eos-win-counts-changelog", "windows-eos-win-counts-final-changelog"]
TRANSACTION_TIMEOUT_S = 10  # the generated app's transaction.timeout.ms, as Kafka Streams'
PARTITIONS = 3
KEYS_PER_PARTITION = 8
WINDOW_MS = 1000
WINDOWS = 600  # full windows per partition
PER_WINDOW = 50  # in-window records per window and partition, each followed by 0-3 late ones

pytestmark = [pytest.mark.broker, pytest.mark.slow]

Window = tuple[bytes, int]  # (key, window start)


def _inputs(
    base: int, rng: random.Random
) -> tuple[list[list[tuple[str, int]]], dict[Window, tuple[int, int]]]:
    """Each partition's records (key, event time) in order, and the final windows they must
    give: (key, start) -> (count, latest event time). Window w of a partition spans
    [base + w s, base + (w + 1) s); event times jump around within the current window, never
    back to a closed one except for the late records, which the app drops."""
    records: list[list[tuple[str, int]]] = []
    expected: dict[Window, tuple[int, int]] = {}
    for p in range(PARTITIONS):
        keys = [f"p{p}-key-{k}" for k in range(KEYS_PER_PARTITION)]
        part: list[tuple[str, int]] = []
        for w in range(WINDOWS):
            start = base + w * WINDOW_MS
            for i in range(PER_WINDOW):
                key = rng.choice(keys)
                # The window's first record moves stream time into it; the others are anywhere.
                ts = start if i == 0 else start + rng.randrange(WINDOW_MS)
                part.append((key, ts))
                count, latest = expected.get((key.encode(), start), (0, -1))
                expected[key.encode(), start] = (count + 1, max(latest, ts))
                for _ in range(rng.randrange(4) if w >= 2 else 0):
                    # Stream time is in window w: windows w - 1 and w - 2 closed (grace 0). Most
                    # records are late, at offsets of no pattern, so that a restart which forgot
                    # the stream time likely meets one first, counts it and emits its window again.
                    late = start - rng.choice((1, 2)) * WINDOW_MS + rng.randrange(WINDOW_MS)
                    part.append((rng.choice(keys), late))
        # Stream time reaches the end of the last full window: all of them close; this one
        # opens a window that stays open, so it gives no output.
        part.append((keys[0], base + WINDOWS * WINDOW_MS))
        records.append(part)
    return records, expected


def _produce(bootstrap: str, records: list[list[tuple[str, int]]]) -> None:
    """Each partition's records, in order, with their event time as the record's timestamp
    too (idempotent: a retry neither reorders nor duplicates)."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "enable.idempotence": True,
            "batch.num.messages": 200,
        }
    )
    failures: list[object] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(err)

    for p, part in enumerate(records):
        for key, ts in part:
            value = json.dumps({"ts": ts}).encode()
            while True:
                try:
                    producer.produce(
                        SOURCE,
                        value,
                        key.encode(),
                        partition=p,
                        timestamp=ts,
                        on_delivery=on_delivery,
                    )
                    break
                except BufferError:
                    producer.poll(0.05)
    assert producer.flush(120) == 0 and not failures, f"producing failed: {failures[:3]}"


def _delete_topics(bootstrap: str, names: list[str]) -> None:
    """Delete those of `names` that exist (an earlier run's changelogs), waiting until gone."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    doomed = [t for t in names if t in admin.list_topics(timeout=30).topics]
    if not doomed:
        return
    for future in admin.delete_topics(doomed, operation_timeout=30).values():
        future.result()
    deadline = time.monotonic() + 60
    while any(t in admin.list_topics(timeout=30).topics for t in doomed):
        assert time.monotonic() < deadline, f"topics {doomed} were not deleted within 60 s"
        time.sleep(0.2)


def _committed(bootstrap: str) -> list[int]:
    """How many input records the app's group has committed, per partition."""
    return [max(o, 0) for o in committed_offsets(bootstrap, GROUP, SOURCE, PARTITIONS)]


def _kill_mid_stream(
    bootstrap: str, app: subprocess.Popen[bytes], above: list[int], totals: list[int], log: Path
) -> list[int]:
    """SIGKILL the app as soon as it has committed more than `above` records of every
    partition, but not all of any: each task dies with windows open and results buffered."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = _committed(bootstrap)
        if all(d > a for d, a in zip(done, above, strict=True)):
            app.send_signal(signal.SIGKILL)
            app.wait(30)
            assert all(d < t for d, t in zip(done, totals, strict=True)), (
                f"the app finished a partition before it could be killed: {done} of {totals}"
            )
            return done
        assert app.poll() is None, f"the app exited on its own:\n{log.read_text()[-4000:]}"
        time.sleep(0.05)
    raise AssertionError(f"the app made no progress within 120 s:\n{log.read_text()[-4000:]}")


def _start(app: App, bootstrap: str, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """Run the app in the background, its output appended to `log` (example_apps.start_app,
    for an app built by `build_app`). A short session timeout: a killed member's partitions
    move after 6 s, not 45 s."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            app.package,
            "--bootstrap-servers",
            bootstrap,
            "-X",
            "session.timeout.ms=6000",
            *args,
        ],
        cwd=app.root,
        env=app.env(),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def test_sigkill_twice_then_every_final_window_exactly_once(
    build_app: BuildApp, kafka_bootstrap: str, tmp_path: Path
) -> None:
    bootstrap = kafka_bootstrap
    _delete_topics(bootstrap, CHANGELOGS)
    topics.recreate_topics(bootstrap, {SOURCE: PARTITIONS, SINK: PARTITIONS}, groups=[GROUP])
    # Event times in the recent past: the window store's changelog (compact,delete, a day's
    # retention) would lose records older than that to the broker's time retention, and a
    # broker may refuse timestamps too far in the future.
    now_s = int(time.time())
    base = (now_s - WINDOWS - 120) * 1000
    records, expected = _inputs(base, random.Random(11))
    totals = [len(part) for part in records]
    _produce(bootstrap, records)

    app = build_app(SPEC, "windows_eos")
    log = tmp_path / "app.log"
    state, fresh_state = tmp_path / "state", tmp_path / "fresh-state"
    # Small fetches and batches: the app moves through the partitions side by side, in many
    # small transactions, rather than one partition after another.
    small: tuple[str, ...] = ("--batch-size", "100")
    small += ("-X", "queued.min.messages=1000", "-X", "max.partition.fetch.bytes=16384")
    run = ("--instance-id", "eos-a", "--state-dir", str(state), *small)
    first = _start(app, bootstrap, log, *run)
    killed_at = [_kill_mid_stream(bootstrap, first, [t * 3 // 10 for t in totals], totals, log)]

    # Same instance, same state dir: RocksDB as the dead one left it, plus the changelogs' tail.
    second = _start(app, bootstrap, log, *run)
    above = [k + t * 3 // 10 for k, t in zip(killed_at[0], totals, strict=True)]
    killed_at.append(_kill_mid_stream(bootstrap, second, above, totals, log))
    last_kill = time.monotonic()

    # A replacement instance on another machine, as it were: everything from the changelogs.
    last = _start(
        app, bootstrap, log, "--instance-id", "eos-b", "--state-dir", str(fresh_state), *small
    )
    deadline = time.monotonic() + 180
    while _committed(bootstrap) != totals:
        assert time.monotonic() < deadline, log.read_text()[-4000:]
        assert last.poll() is None, log.read_text()[-4000:]
        time.sleep(0.2)
    # A clean stop: SIGTERM finishes the batch, commits, leaves the group, exits 0.
    last.send_signal(signal.SIGTERM)
    assert last.wait(60) == 0, log.read_text()[-4000:]
    assert _committed(bootstrap) == totals

    # The second dead instance's open transaction is only aborted by the broker once its
    # transaction.timeout.ms has passed; until then a read_committed reader stops at its first
    # offset (the last stable offset), as it should.
    time.sleep(max(0.0, last_kill + TRANSACTION_TIMEOUT_S + 3 - time.monotonic()))
    output = topics.read_committed(bootstrap, SINK)

    windows: list[Window] = []
    got: dict[Window, tuple[int, int]] = {}
    for r in output:
        assert r.key is not None and r.value is not None and len(r.value) == 8, r
        window = (r.key[:-8], int.from_bytes(r.key[-8:], "big", signed=True))
        windows.append(window)
        got[window] = (int.from_bytes(r.value, "big", signed=True), r.timestamp)
    emitted = Counter(windows)
    twice = {w: n for w, n in emitted.items() if n > 1}
    lost = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    wrong = {
        w: (got[w], expected[w]) for w in expected.keys() & got.keys() if got[w] != expected[w]
    }
    summary = (
        f"{len(output)} output records for {len(expected)} expected windows; killed after "
        f"{killed_at} of {totals} committed input records per partition"
    )
    assert not twice, (
        f"{summary}: {len(twice)} emitted more than once, e.g. {list(twice.items())[:5]}"
    )
    assert not lost, f"{summary}: {len(lost)} lost, e.g. {lost[:5]}"
    assert not extra, f"{summary}: {len(extra)} not expected, e.g. {extra[:5]}"
    assert not wrong, (
        f"{summary}: {len(wrong)} (count, time) != expected, e.g. {list(wrong.items())[:5]}"
    )
    # Every window of a key goes to one partition, the plain key's (Kafka Streams'
    # WindowedStreamPartitioner), in the order the windows close.
    seen: dict[bytes, list[tuple[int, int]]] = {}
    for r, (key, start) in zip(output, windows, strict=True):
        seen.setdefault(key, []).append((r.partition, start))
    scattered = [k for k, got in seen.items() if len({p for p, _ in got}) != 1]
    assert not scattered, f"{summary}: windows of one key in several partitions: {scattered[:5]}"
    disordered = [k for k, got in seen.items() if got != sorted(got)]
    assert not disordered, f"{summary}: windows out of order for {disordered[:5]}"
    print(summary)
