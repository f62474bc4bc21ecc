"""The Processor API on the real broker: the deduplicating processor of specs/dedup.toml killed
twice mid-stream (SIGKILL) and restarted on the same state. Its store of seen ids is written
through the changelog inside the transactions and restored before its task's processor is
made again, so read with read_committed every id comes out exactly once per ten minutes of
event time, however often the app was killed."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest
from example_apps import build_example, kill_at_thresholds, start_app

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
    for timestamp, count in ((now, IDS), (now + 1, IDS), (now + 11 * 60_000, AGAIN)):
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
    )
    assert kills[0] < 2 * IDS + AGAIN, f"killed after everything was done: {kills}"
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
