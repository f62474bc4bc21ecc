"""The generated app's HTTP server, metrics and health, without a broker: the route table, the
Prometheus series read from the loop's counters, the producer's statistics turned into
per-topic counts, the restore's progress and log line, the flags, and the watchdog's
liveness. tests/test_metrics_broker.py scrapes a running app."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition
from conftest import App, BuildApp
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def app(build_app: BuildApp) -> App:
    """wordcount (stateful, two input topics) under a package name of its own."""
    text = (ROOT / "specs" / "wordcount.toml").read_text(encoding="utf-8")
    return build_app(text.replace('app = "wordcount"', 'app = "metrics-unit"'), "metrics_unit")


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


# -- the route table ---------------------------------------------------------------------------


def test_dispatch_finds_the_route_and_says_404_or_405_otherwise(app: App) -> None:
    server = app.module("server")
    seen: list[Any] = []

    def key(request: Any) -> Any:
        seen.append(request)
        return server.json_response(200, {"key": request.params["key"]})

    routes = [server.route("GET", r"/stores/(?P<store>[^/]+)/keys/(?P<key>[^/]+)", key)]
    ok = server.dispatch(routes, "GET", "/stores/counts/keys/hello?from=a&from=b")
    assert (ok.status, json.loads(ok.body)) == (200, {"key": "hello"})
    assert seen[0].params == {"store": "counts", "key": "hello"}
    assert seen[0].query == {"from": ["a", "b"]}
    # Patterns match the whole path.
    assert server.dispatch(routes, "GET", "/stores/counts/keys/hello/more").status == 404
    missing = server.dispatch(routes, "GET", "/nothing")
    assert missing.status == 404 and b"/nothing" in missing.body
    wrong = server.dispatch(routes, "POST", "/stores/counts/keys/hello")
    assert (wrong.status, wrong.headers) == (405, {"Allow": "GET"})


def test_health_answers_200_or_503_with_the_reason(app: App) -> None:
    server = app.module("server")
    reason: list[str | None] = ["restoring state"]
    routes = server.health_routes(lambda: None, lambda: reason[0])
    live = server.dispatch(routes, "GET", "/health/live")
    assert (live.status, json.loads(live.body)) == (200, {"status": "up"})
    ready = server.dispatch(routes, "GET", "/health/ready")
    assert (ready.status, ready.content_type) == (503, "application/json")
    assert json.loads(ready.body) == {"status": "down", "reason": "restoring state"}
    reason[0] = None
    assert server.dispatch(routes, "GET", "/health/ready").status == 200


def test_the_server_serves_on_a_free_port_and_outlives_a_failing_handler(app: App) -> None:
    server = app.module("server")

    def fail(request: Any) -> Any:
        raise RuntimeError("a handler's bug")

    routes = [
        server.route("GET", "/fail", fail),
        *server.health_routes(lambda: None, lambda: "waiting"),
    ]
    http = server.HttpServer("127.0.0.1", 0, routes)
    http.start()
    try:
        assert http.url.startswith("http://127.0.0.1:") and not http.url.endswith(":0")
        status, headers, body = _get(http.url + "/fail")
        assert status == 500 and b"internal error" in body
        status, headers, body = _get(http.url + "/health/ready")
        assert (status, json.loads(body)) == (503, {"status": "down", "reason": "waiting"})
        assert headers["Content-Type"] == "application/json"
        assert headers["Content-Length"] == str(len(body))
        assert _get(http.url + "/health/live")[0] == 200
    finally:
        http.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(http.url + "/health/live", timeout=2)


def test_a_port_in_use_stops_the_app_with_one_line(app: App, tmp_path: Path) -> None:
    server = app.module("server")
    taken = server.HttpServer("127.0.0.1", 0, [])
    try:
        port = taken.url.rsplit(":", 1)[1]
        result = subprocess.run(
            [
                *(sys.executable, "-m", app.package, "--bootstrap-servers", "127.0.0.1:9"),
                *("--http-port", port, "--state-dir", str(tmp_path)),
            ],
            cwd=app.root,
            env=app.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        taken.stop()
    assert result.returncode == 3, App.why(result)
    assert f"cannot serve HTTP on 127.0.0.1 port {port}" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


# -- the metrics -------------------------------------------------------------------------------


def _source(app: App, **changes: Any) -> SimpleNamespace:
    """What the metrics read from the run loop, as a fake Runner."""
    fields: dict[str, Any] = {
        "errors": SimpleNamespace(skipped=0, dead_lettered=0, dropped=0),
        "collector": SimpleNamespace(aborted=0),
        "recoveries": 0,
        "rebalances": {"assigned": 0, "revoked": 0, "lost": 0},
        "stores": SimpleNamespace(progress=app.module("restore").RestoreProgress()),
    }
    return SimpleNamespace(**{**fields, **changes})


def _scrape(metrics: Any) -> dict[str, float]:
    """Every sample of GET /metrics, by name and labels: `name{a="x",b="y"}`."""
    server = metrics.routes()[0]
    response = server.handler(None)
    assert response.status == 200 and response.content_type.startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.body.decode()):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            samples[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return samples


def test_the_series_read_the_loops_counters(app: App) -> None:
    source = _source(
        app,
        errors=SimpleNamespace(skipped=2, dead_lettered=3, dropped=0),
        collector=SimpleNamespace(aborted=4),
        recoveries=5,
        rebalances={"assigned": 6, "revoked": 7, "lost": 8},
    )
    source.stores.progress.restored["word-counts"] = 1000
    source.stores.progress.remaining["word-counts"] = 250
    metrics = app.module("metrics").Metrics(source, "exactly_once")
    repartition = "metrics-unit-word-counts-repartition"
    metrics.consumed_batch(
        [Message(topic="lines", partition=0), Message(topic=repartition, partition=1)] * 3
    )
    metrics.consumed_batch([Message(topic="lines", partition=0)])
    metrics.committed(0.02)
    metrics.committed(0.3)
    metrics.lag = {("lines", 0): 12, ("lines", 1): 0}
    metrics.store_entries = {"word-counts": 42}
    samples = _scrape(metrics)
    assert samples['kgen_app_info{application_id="metrics-unit",guarantee="exactly_once"}'] == 1
    assert samples['kgen_app_records_consumed_total{topic="lines"}'] == 4
    assert samples[f'kgen_app_records_consumed_total{{topic="{repartition}"}}'] == 3
    assert samples["kgen_app_commit_duration_seconds_count"] == 2
    assert samples["kgen_app_commit_duration_seconds_sum"] == pytest.approx(0.32)
    assert samples['kgen_app_commit_duration_seconds_bucket{le="0.025"}'] == 1
    assert samples['kgen_app_consumer_lag{partition="0",topic="lines"}'] == 12
    assert samples['kgen_app_consumer_lag{partition="1",topic="lines"}'] == 0
    assert samples["kgen_app_transactions_aborted_total"] == 4
    assert samples["kgen_app_recoveries_total"] == 5
    assert samples['kgen_app_rebalances_total{event="assigned"}'] == 6
    assert samples['kgen_app_rebalances_total{event="revoked"}'] == 7
    assert samples['kgen_app_rebalances_total{event="lost"}'] == 8
    assert samples["kgen_app_records_skipped_total"] == 2
    assert samples["kgen_app_records_dead_lettered_total"] == 3
    assert samples['kgen_app_restored_records_total{store="word-counts"}'] == 1000
    assert samples['kgen_app_restore_remaining_records{store="word-counts"}'] == 250
    assert samples['kgen_app_store_estimated_entries{store="word-counts"}'] == 42
    # wordcount drops nothing by Kafka Streams' rules: no series that is always 0.
    assert not any("dropped" in name for name in samples)


def _stats(name: str, topics: dict[str, dict[str, int]]) -> str:
    """librdkafka's statistics JSON, with only what the metrics read."""
    return json.dumps(
        {
            "name": name,
            "type": "producer",
            "topics": {
                topic: {"partitions": {p: {"msgs": n, "txmsgs": n} for p, n in parts.items()}}
                for topic, parts in topics.items()
            },
        }
    )


def test_records_produced_come_from_the_producers_statistics(app: App) -> None:
    metrics = app.module("metrics").Metrics(_source(app), "exactly_once")
    # Partition -1 holds records whose partition was not known yet: they are counted again
    # on their partition.
    metrics.on_producer_stats(_stats("p#producer-1", {"out": {"0": 10, "1": 5, "-1": 7}}))
    metrics.on_producer_stats(_stats("p#producer-1", {"out": {"0": 30, "1": 5, "-1": 7}}))
    assert metrics.produced == {"out": 35}
    # A replaced producer counts from 0 again: its records add to the total.
    metrics.on_producer_stats(_stats("p#producer-2", {"out": {"0": 4}, "dlq": {"0": 1}}))
    assert metrics.produced == {"out": 39, "dlq": 1}
    # A count that goes down is librdkafka's topic object starting afresh: all of it is new.
    metrics.on_producer_stats(_stats("p#producer-2", {"out": {"0": 2}, "dlq": {"0": 1}}))
    assert metrics.produced == {"out": 41, "dlq": 1}
    assert _scrape(metrics)['kgen_app_records_produced_total{topic="out"}'] == 41


# -- the restore's progress ----------------------------------------------------------------------


class _Changelog:
    """A consumer reading a changelog of 100 records at offsets 0..99 of partition 0, 40 a
    call (and at its end, an end-of-partition event)."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.next = 0

    def get_watermark_offsets(self, tp: TopicPartition, **_: Any) -> tuple[int, int]:
        return (0, 100)

    def assign(self, partitions: list[TopicPartition]) -> None:
        assert [(tp.partition, tp.offset) for tp in partitions] == [(0, 0)]

    def consume(self, count: int, timeout: float) -> list[Message]:
        if self.next >= 100:
            eof = KafkaError(KafkaError._PARTITION_EOF)
            return [Message(topic=self.topic, partition=0, error=eof)]
        first, self.next = self.next, min(self.next + 40, 100)
        return [
            Message(
                topic=self.topic,
                partition=0,
                offset=o,
                key=b"k%d" % o,
                value=(1).to_bytes(8, "big"),
                timestamp=(0, 1000),
            )
            for o in range(first, self.next)
        ]


def test_a_restore_publishes_its_progress_and_logs_it_with_an_eta(
    app: App, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    restore: ModuleType = app.module("restore")
    monkeypatch.setattr(restore, "REPORT_EVERY_S", 0.0)  # a line a batch
    progress = restore.RestoreProgress()
    topic = "metrics-unit-word-counts-changelog"
    backend = app.module("backends").MemoryBackend()
    seen: list[tuple[dict[str, int], dict[str, int]]] = []

    def tick() -> None:  # called after each read, before its records are counted
        seen.append((dict(progress.restored), dict(progress.remaining)))

    with caplog.at_level(logging.INFO):
        read = restore._restore_with(
            _Changelog(topic), [("word-counts", topic, 0, backend)], tick, progress
        )
    assert read == 100 and len(backend.data) == 100
    assert seen[1:4] == [
        ({"word-counts": 40}, {"word-counts": 60}),
        ({"word-counts": 80}, {"word-counts": 20}),
        ({"word-counts": 100}, {"word-counts": 0}),
    ]
    assert progress.restored == {"word-counts": 100}
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("restoring ")]
    assert lines[0].startswith("restoring word-counts: 40 of about 100 changelog records read (")
    assert lines[0].endswith(" s to go")


def test_a_failed_restore_leaves_nothing_under_way(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    restore = app.module("restore")
    topic = "metrics-unit-word-counts-changelog"

    class Failing(_Changelog):
        def consume(self, count: int, timeout: float) -> list[Message]:
            if self.next:
                raise KafkaException(KafkaError(KafkaError._TRANSPORT, "broker gone"))
            return super().consume(count, timeout)

        def close(self) -> None:
            pass

    monkeypatch.setattr(restore, "Consumer", lambda config: Failing(topic))
    progress = restore.RestoreProgress()
    backend = app.module("backends").MemoryBackend()
    with pytest.raises(KafkaException, match="broker gone"):
        restore.restore({}, [("word-counts", topic, 0, backend)], lambda: None, progress)
    assert progress.restored == {"word-counts": 40}
    assert progress.remaining == {"word-counts": 0}


# -- flags and liveness --------------------------------------------------------------------------


def test_http_flags_and_their_environment_variables(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = app.module("settings")
    base = ["--bootstrap-servers", "b:9092"]
    default = settings.parse(base)
    assert (default.http_port, default.http_host) == (None, "127.0.0.1")
    given = settings.parse([*base, "--http-port", "0", "--http-host", "0.0.0.0"])
    assert (given.http_port, given.http_host) == (0, "0.0.0.0")
    monkeypatch.setenv("METRICS_UNIT_HTTP_PORT", "9464")
    monkeypatch.setenv("METRICS_UNIT_HTTP_HOST", "::1")
    from_env = settings.parse(base)
    assert (from_env.http_port, from_env.http_host) == (9464, "::1")


def test_liveness_follows_the_loop_and_the_watchdogs_limit(app: App) -> None:
    watchdog = app.module("watchdog")
    made: list[Any] = []
    loop = threading.Thread(target=lambda: made.append(watchdog.Watchdog(30.0)))
    loop.start()
    loop.join()
    assert made[0].stalled() == "the run loop has ended"
    dog = watchdog.Watchdog(30.0)  # this thread is its loop
    assert dog.stalled() is None
    dog.last = time.monotonic() - 31
    assert dog.stalled() == "no progress for 31 s (limit 30 s)"
