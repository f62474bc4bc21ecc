"""Metrics and health of a running app, on the real broker: wordcount with --http-port 0 first
restores a store from a changelog of 200,000 records (not ready until the restore is done, live
throughout), then counts a known workload; /metrics then says exactly how many records it
consumed and produced per topic, that it committed, that its lag is 0 and what it restored."""

from __future__ import annotations

import json
import re
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from example_apps import build_example, start_app
from prometheus_client.parser import text_string_to_metric_families

from kgen import topics

pytestmark = pytest.mark.broker

APP_ID = "metrics-wc"
PARTITIONS = 3
CHANGELOG = f"{APP_ID}-word-counts-changelog"
REPARTITION = f"{APP_ID}-word-counts-repartition"
# Changelog records there before the app starts: its store restores all of them.
PRELOADED = 200_000
LINES = [f"a{i % 97} b{i % 89} common" for i in range(2_000)]
WORDS = 3 * len(LINES)
DISTINCT = 97 + 89 + 1


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _scrape(url: str) -> dict[str, float]:
    """Every sample of GET /metrics, by name and labels: `name{a="x",b="y"}`."""
    status, body = _get(url + "/metrics")
    assert status == 200, body
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            samples[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return samples


def _prepare(bootstrap: str) -> None:
    compact = {"cleanup.policy": "compact"}
    topics.recreate_topics(
        bootstrap,
        {"lines": PARTITIONS, "word-counts": PARTITIONS, CHANGELOG: PARTITIONS},
        groups=[APP_ID],
        config=compact,
    )
    topics.recreate_topics(
        bootstrap, {REPARTITION: PARTITIONS}, config={"cleanup.policy": "delete"}
    )
    one = (1).to_bytes(8, "big", signed=True)
    topics.produce_all(bootstrap, CHANGELOG, ((b"pre%d" % i, one) for i in range(PRELOADED)))
    topics.produce_all(
        bootstrap, "lines", ((f"l{i}".encode(), line.encode()) for i, line in enumerate(LINES))
    )


def _wait_for_url(log: Path, deadline: float) -> str:
    while time.monotonic() < deadline:
        found = re.search(r"serving /metrics.* on (http://\S+)", log.read_text())
        if found:
            return found.group(1)
        time.sleep(0.02)
    raise AssertionError(f"no URL logged:\n{log.read_text()[-3000:]}")


def test_metrics_and_health_through_a_restore_and_a_known_workload(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    _prepare(kafka_bootstrap)
    app_dir = build_example("wordcount", APP_ID, tmp_path)
    log = tmp_path / "app.log"
    app = start_app(
        app_dir,
        kafka_bootstrap,
        log,
        *("--http-port", "0", "--cache-max-entries", "0", "--state-dir", str(tmp_path / "s")),
    )
    try:
        deadline = time.monotonic() + 90
        url = _wait_for_url(log, deadline)
        assert not url.endswith(":0")

        # Health from the start: not ready (no assignment yet, then restoring), live.
        reasons: list[str] = []
        restoring: list[dict[str, float]] = []
        while True:
            assert app.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            live, live_body = _get(url + "/health/live")
            assert (live, json.loads(live_body)) == (200, {"status": "up"})
            ready, body = _get(url + "/health/ready")
            if ready == 200:
                # Every store partition is restored by now: its line was logged before.
                text = log.read_text()
                break
            assert ready == 503, body
            reasons.append(json.loads(body)["reason"])
            if "restoring" in reasons[-1]:
                restoring.append(_scrape(url))
            time.sleep(0.02)
        assert json.loads(body) == {"status": "up"}
        for p in range(PARTITIONS):
            assert re.search(rf"restored {CHANGELOG}-{p}: read \d+ changelog records", text), text
        assert "waiting for the first partition assignment" in reasons
        assert any(r.startswith("restoring state") for r in reasons), reasons
        # While restoring, the restore's progress is there to see.
        restore = '{store="word-counts"}'
        progress = [
            (
                s[f"kgen_app_restored_records_total{restore}"],
                s[f"kgen_app_restore_remaining_records{restore}"],
            )
            for s in restoring
        ]
        assert any(0 < done < PRELOADED and left > 0 for done, left in progress), progress

        # The workload: every count reaches the workload's, and the lag falls to 0.
        expected = {
            'kgen_app_records_consumed_total{topic="lines"}': len(LINES),
            f'kgen_app_records_consumed_total{{topic="{REPARTITION}"}}': WORDS,
            f'kgen_app_records_produced_total{{topic="{REPARTITION}"}}': WORDS,
            # No cache (--cache-max-entries 0): every count goes out and to the changelog.
            'kgen_app_records_produced_total{topic="word-counts"}': WORDS,
            f'kgen_app_records_produced_total{{topic="{CHANGELOG}"}}': WORDS,
        }
        while True:
            assert app.poll() is None, log.read_text()[-3000:]
            samples = _scrape(url)
            counts = {name: samples.get(name) for name in expected}
            lag = {k: v for k, v in samples.items() if k.startswith("kgen_app_consumer_lag{")}
            if counts == expected and len(lag) == 2 * PARTITIONS and not any(lag.values()):
                break
            assert time.monotonic() < deadline, f"{counts}\n{lag}\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        assert samples["kgen_app_commit_duration_seconds_count"] > 0
        assert samples["kgen_app_commit_duration_seconds_sum"] > 0
        assert samples[f"kgen_app_restored_records_total{restore}"] == PRELOADED
        assert samples[f"kgen_app_restore_remaining_records{restore}"] == 0
        # RocksDB's estimate: each key once after a flush, an update in the memtable again.
        entries = samples[f"kgen_app_store_estimated_entries{restore}"]
        assert PRELOADED + DISTINCT <= entries <= PRELOADED + WORDS
        assert samples['kgen_app_rebalances_total{event="assigned"}'] >= 1
        assert samples['kgen_app_rebalances_total{event="lost"}'] == 0
        for name in ("transactions_aborted", "recoveries", "records_skipped"):
            assert samples[f"kgen_app_{name}_total"] == 0, name
        assert samples["kgen_app_records_dead_lettered_total"] == 0
        assert samples[f'kgen_app_info{{application_id="{APP_ID}",guarantee="exactly_once"}}'] == 1
    finally:
        app.send_signal(signal.SIGTERM)
        code = app.wait(60)
    assert code == 0, log.read_text()[-3000:]
