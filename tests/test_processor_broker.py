"""The Processor API on the real broker: the deduplicating processor of specs/dedup.toml killed
twice mid-stream (SIGKILL) and restarted on the same state. Its store of seen ids is written
through the changelog inside the transactions and restored before its task's processor is
made again, so read with read_committed every id comes out exactly once per ten minutes of
event time, however often the app was killed. And a processor without a store in an app with
no other state: per task all the same, with its partition's record metadata and stream time."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import BuildApp
from example_apps import build_example, kill_at_thresholds, start_app
from test_processor_api import TAGGER, TAGGER_SPEC

from kgen import topics

pytestmark = pytest.mark.broker

IDS = 8_000
AGAIN = 1_000  # ids that come a third time, eleven minutes later: out once more


def test_dedup_killed_twice_writes_each_id_once_per_window(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    app_id = "dedup-crash"
    topics.recreate_topics(kafka_bootstrap, {"events": 3, "unique-events": 3}, [app_id])
    now = int(time.time() * 1000)
    # Each id once before the first run; then each again, and some eleven minutes later, before
    # the second: the first kill falls before the repeats exist, however fast the app.
    parts = (((now, IDS),), ((now + 1, IDS), (now + 11 * 60_000, AGAIN)))

    def write_part(run: int) -> None:
        for timestamp, count in parts[run] if run < len(parts) else ():
            topics.produce_all(
                kafka_bootstrap,
                "events",
                [(f"e{i}".encode(), json.dumps({"at": timestamp}).encode()) for i in range(count)],
                timestamp=timestamp,
            )

    app_dir = build_example("dedup", app_id, tmp_path)
    log = tmp_path / "app.log"
    state = ("--state-dir", str(tmp_path / "state"))
    kills = kill_at_thresholds(
        app_dir,
        kafka_bootstrap,
        log,
        (app_id, "events", 3),
        (4_000, 11_000),
        *state,
        "--batch-size",
        "200",
        before_run=write_part,
    )
    # The first run saw the first part only (the kill may come once it is all done).
    assert 4_000 <= kills[0] <= IDS, f"the first kill at {kills}"
    app = start_app(app_dir, kafka_bootstrap, log, *state, "--stop-when-idle", "6")
    assert app.wait(300) == 0, log.read_text()[-4000:]
    out = topics.read_committed(kafka_bootstrap, "unique-events")
    seen = Counter(r.key.decode() for r in out if r.key is not None)
    assert sum(seen.values()) == len(out) == IDS + AGAIN, (kills, len(out))
    assert {k for k, n in seen.items() if n == 2} == {f"e{i}" for i in range(AGAIN)}
    assert set(seen) == {f"e{i}" for i in range(IDS)}
    # Each id's first event, then (the ids that came again) its event of eleven minutes later.
    firsts = {r.key: json.loads(r.value)["at"] for r in reversed(out) if r.value is not None}
    assert set(firsts.values()) == {now}
    print(f"dedup killed after {kills[0]} and {kills[1]} events; {len(out)} results")
    assert "Traceback" not in log.read_text()


def test_a_processor_without_a_store_on_the_broker(
    kafka_bootstrap: str, build_app: BuildApp, tmp_path: Path
) -> None:
    """Every record out once, tagged with the partition and offset it was read at; each
    partition's task ticks on its own stream time (due from 0, missed seconds skipped)."""
    topics.recreate_topics(kafka_bootstrap, {"in": 3, "out": 3}, ["tagger"])
    now = int(time.time() * 1000)
    batches = (now, now + 1500, now + 4000)
    for n, timestamp in enumerate(batches):
        records = [(f"k{n}-{i}".encode(), f"v{n}-{i}".encode()) for i in range(600)]
        topics.produce_all(kafka_bootstrap, "in", records, timestamp=timestamp)
    (tmp_path / "kgen_tagger_udfs.py").write_text(TAGGER)
    sys.path.insert(0, str(tmp_path))  # the build imports the class to check it
    try:
        app = build_app(TAGGER_SPEC, "tagger")
    finally:
        sys.path.remove(str(tmp_path))
    app_dir = app.root.rename(tmp_path / app.package)  # run as `python -m tagger` there
    log = tmp_path / "app.log"
    run = start_app(app_dir, kafka_bootstrap, log, "--stop-when-idle", "4", pythonpath=[tmp_path])
    assert run.wait(120) == 0, log.read_text()[-4000:]
    read = {
        r.key: f"{r.partition}:{r.offset}:{(r.value or b'').decode().upper()}"
        for r in topics.read_committed(kafka_bootstrap, "in")
    }
    out = topics.read_committed(kafka_bootstrap, "out")
    tagged = {r.key: (r.value or b"").decode() for r in out if r.key != b"tick"}
    assert len(tagged) == len(out) - 9 == len(read) == 1800
    assert tagged == read
    ticks = Counter(int(r.value or b"") for r in out if r.key == b"tick")
    assert ticks == {timestamp: 3 for timestamp in batches}
