"""`python -m bench mirror --records N [--size B] [--partitions P] [--exactly-once]`: how fast
MirrorMaker 2 (dedicated mode, kgen's `MirrorMaker`) copies a topic from cluster A to cluster
B, both local single-node brokers, next to the rate of a generated app on the same records.

1. Two brokers start (loopback, their own temporary data dirs); the topic `mirror-in` (P
   partitions) is created on A, and MirrorMaker starts with the identity replication policy
   (the topic keeps its name on B) and waits until B has the topic.
2. Live mirroring: N records of B bytes (the sequence number, padded) are produced to A as fast
   as confluent-kafka allows, while MirrorMaker copies them. Sampled every 0.1 s: A's and B's
   end offsets. Reported: the producer's rate, MirrorMaker's rate (N over the time from the
   first record produced to the last one on B), the replication lag (records on A not yet on
   B) when the producer finished, and how long B took after that to have them all.
3. The app: a generated exactly-once copy app (`mirror-in` -> `mirror-out`) runs on A from a
   cold start over the same N records; its rate is N over the time from its launch to its
   group having committed all of them (the harness's own method, start-up included).

Every wait is bounded; the brokers, MirrorMaker and the app are stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from kgen import topics
from kgen.codegen import emit, render
from kgen.kafka import LocalKafka
from kgen.kafka.mirror import MirrorMaker, mirror_properties
from kgen.plan.planner import plan
from kgen.spec.load import load_spec

TOPIC = "mirror-in"
OUTPUT = "mirror-out"
APP = "bench-mirror-copy"
IDENTITY_POLICY = "org.apache.kafka.connect.mirror.IdentityReplicationPolicy"
SPEC = """
app = "{app}"
guarantee = "exactly_once"

[topics.{source}]
key = "string"
value = "string"
partitions = {partitions}

[topics.{sink}]
key = "string"
value = "string"
partitions = {partitions}

[[streams]]
name = "copy"
from = "{source}"
steps = [{{ to = "{sink}" }}]
"""


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _ends(bootstrap: str, topic: str, partitions: int) -> int:
    """The sum of `topic`'s end offsets (0 while it does not exist)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-mirror-ends"})
    try:
        total = 0
        for p in range(partitions):
            try:
                total += consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            except KafkaException:  # not there yet
                return 0
        return total
    finally:
        consumer.close()


def _wait(what: str, condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        time.sleep(0.1)


def _records(count: int, size: int) -> list[tuple[bytes, bytes]]:
    pad = b"x" * max(0, size - 10)
    return [(f"k{n % 10_000}".encode(), b"%010d" % n + pad) for n in range(count)]


def run(records: int, size: int, partitions: int, exactly_once: bool) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="kgen-bench-mirror-"))
    a_kafka, b_kafka = LocalKafka(data_dir=work / "a"), LocalKafka(data_dir=work / "b")
    mirror: MirrorMaker | None = None
    app: subprocess.Popen[bytes] | None = None
    try:
        a, b = a_kafka.start(), b_kafka.start()
        topics.create_topics(a, {TOPIC: partitions, OUTPUT: partitions})
        overrides = {"replication.policy.class": IDENTITY_POLICY}
        if exactly_once:
            overrides |= {
                "B.exactly.once.source.support": "enabled",
                "dedicated.mode.enable.internal.rest": "true",
                "listeners": "http://127.0.0.1:0",
                "A.consumer.isolation.level": "read_committed",
            }
        mirror = MirrorMaker(
            mirror_properties("A", a, "B", b, topics=TOPIC, groups="none", overrides=overrides),
            work / "mirror",
            clusters=["B"],
        )
        mirror.start()
        admin_b = AdminClient({"bootstrap.servers": b})
        _wait("the topic on B", lambda: TOPIC in admin_b.list_topics(timeout=10).topics, 60)
        say(f"mirror: MirrorMaker up, producing {records:,} records of {size} bytes to A")
        data = _records(records, size)
        samples: list[tuple[float, int]] = []
        stop_sampling = False

        def sample() -> None:
            while not stop_sampling:
                samples.append((time.monotonic(), _ends(b, TOPIC, partitions)))
                time.sleep(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        start = time.monotonic()
        topics.produce_all(a, TOPIC, data, timestamp=int(time.time() * 1000))
        produced = time.monotonic()
        lag_at_end = records - _ends(b, TOPIC, partitions)
        _wait("every record on B", lambda: _ends(b, TOPIC, partitions) >= records, 600)
        mirrored = time.monotonic()
        stop_sampling = True
        sampler.join(5)
        peak_lag = 0
        # Peak lag: A's end is not sampled; the producer's rate between start and end is.
        produce_rate = records / (produced - start)
        for at, on_b in samples:
            on_a = min(records, int((at - start) * produce_rate))
            peak_lag = max(peak_lag, on_a - on_b)
        say("mirror: mirrored; now the app on A")

        # The app on A, from a cold start, over the same records.
        folder = work / "app"
        folder.mkdir()
        spec = folder / "copy.toml"
        spec.write_text(
            SPEC.format(app=APP, source=TOPIC, sink=OUTPUT, partitions=partitions), "utf-8"
        )
        app_plan = plan(load_spec(spec))
        app_dir = folder / app_plan.package
        emit.write(render.render(app_plan), app_dir)
        app_start = time.monotonic()
        app = subprocess.Popen(
            [sys.executable, "-m", app_dir.name, "--bootstrap-servers", a],
            cwd=app_dir,
            env={**os.environ, "PYTHONPATH": str(app_dir)},
            stdout=(work / "app.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        group = Consumer({"bootstrap.servers": a, "group.id": APP})
        tps = [TopicPartition(TOPIC, p) for p in range(partitions)]

        def app_done() -> bool:
            assert app is not None and app.poll() is None, "the app exited"
            try:
                committed = group.committed(tps, timeout=10)
            except KafkaException:  # the coordinator is not ready yet
                return False
            return sum(max(tp.offset, 0) for tp in committed) >= records

        try:
            _wait("the app's commits", app_done, 600)
        finally:
            group.close()
        app_s = time.monotonic() - app_start
        return {
            "records": records,
            "bytes": size,
            "partitions": partitions,
            "exactly_once": float(exactly_once),
            "produce_rate": produce_rate,
            "mirror_rate": records / (mirrored - start),
            "lag_at_produce_end": lag_at_end,
            "peak_lag": peak_lag,
            "drain_s": mirrored - produced,
            "app_rate": records / app_s,
        }
    finally:
        if app is not None and app.poll() is None:
            app.send_signal(signal.SIGTERM)
            try:
                app.wait(60)
            except subprocess.TimeoutExpired:
                app.kill()
        if mirror is not None:
            mirror.stop()
        b_kafka.kill()
        a_kafka.kill()


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench mirror", description=__doc__)
    p.add_argument("--records", type=int, default=1_000_000, help="(%(default)s)")
    p.add_argument("--size", type=int, default=200, help="value bytes (%(default)s)")
    p.add_argument("--partitions", type=int, default=6, help="(%(default)s)")
    p.add_argument("--exactly-once", action="store_true", help="MirrorMaker exactly-once")
    args = p.parse_args(argv)
    if args.records < 1 or args.size < 10 or args.partitions < 1:
        p.error("--records >= 1, --size >= 10, --partitions >= 1")
    result = run(args.records, args.size, args.partitions, args.exactly_once)
    mode = "exactly-once" if args.exactly_once else "at-least-once"
    print(
        f"mirror ({mode}): {result['records']:,.0f} records of {args.size} B, "
        f"{args.partitions} partitions\n"
        f"  produced to A      {result['produce_rate']:>10,.0f} records/s\n"
        f"  mirrored A -> B    {result['mirror_rate']:>10,.0f} records/s "
        f"(first produced to last on B)\n"
        f"  lag at produce end {result['lag_at_produce_end']:>10,.0f} records "
        f"(drained in {result['drain_s']:.1f} s; peak ~{result['peak_lag']:,.0f})\n"
        f"  the app on A       {result['app_rate']:>10,.0f} records/s (cold start included)"
    )
    return 0
