"""The baseline: a plain confluent-kafka consume -> produce copy loop, no transactions.

Consumes batches of up to 1000 records, produces every record (key and value) to the output
topic, and about every 100 ms flushes the producer and then commits the consumed offsets
(at-least-once: an offset is committed only once its record's copy is acknowledged). SIGTERM
or SIGINT: flush, commit, close, exit 0.

    python bench/copy_loop.py --bootstrap-servers HOST:PORT --input T --output T --group G
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

BATCH = 1000
COMMIT_INTERVAL_S = 0.1
TIMEOUT_S = 30.0


class CopyLoop:
    def __init__(
        self,
        bootstrap: str,
        group: str,
        output: str,
        config: dict[str, str] | None = None,
        commit_interval_s: float = COMMIT_INTERVAL_S,
    ) -> None:
        extra = config or {}
        self.output = output
        self.commit_interval_s = commit_interval_s
        self.stopping = False
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                **extra,
            }
        )
        # The same batching as the generated app's producer, so the comparison is about the
        # processing and the guarantee, not about producer tuning.
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "linger.ms": 10,
                "queue.buffering.max.messages": 1_000_000,
                "partitioner": "murmur2_random",
                "delivery.report.only.error": True,
                "on_delivery": self._on_delivery,
                **extra,
            }
        )
        self.dirty = False
        self.failed: KafkaError | None = None

    def _on_delivery(self, err: KafkaError | None, _msg: object) -> None:
        if err is not None and self.failed is None:
            self.failed = err

    def stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def run(self, topic: str, max_seconds: float) -> int:
        self.consumer.subscribe([topic])
        produce = self.producer.produce
        output = self.output
        deadline = time.monotonic() + max_seconds
        next_commit = time.monotonic() + self.commit_interval_s
        while not self.stopping and time.monotonic() < deadline:
            batch = self.consumer.consume(BATCH, timeout=0.1)
            for msg in batch:
                if msg.error() is not None:
                    raise KafkaException(msg.error())
                try:
                    produce(output, msg.value(), msg.key())
                except BufferError:
                    # The local queue is full: wait for deliveries, then retry once more.
                    self.producer.flush(TIMEOUT_S)
                    produce(output, msg.value(), msg.key())
            if batch:
                self.dirty = True
            self.producer.poll(0)
            if time.monotonic() >= next_commit:
                self.commit()
                next_commit = time.monotonic() + self.commit_interval_s
        self.commit()
        self.consumer.close()
        return 0

    def commit(self) -> None:
        """Flush, then commit what was consumed: the offsets claim only delivered copies."""
        if not self.dirty:
            return
        if self.producer.flush(TIMEOUT_S) > 0:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "flush timed out"))
        if self.failed is not None:
            raise KafkaException(self.failed)
        # enable.auto.offset.store (default): consume() stored each returned record's offset.
        self.consumer.commit(asynchronous=False)
        self.dirty = False


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bootstrap-servers", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--group", required=True)
    p.add_argument(
        "-X",
        dest="config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a librdkafka setting for the consumer and the producer, as the kgen apps take it",
    )
    p.add_argument(
        "--commit-interval-ms",
        type=int,
        default=int(COMMIT_INTERVAL_S * 1000),
        help="flush and commit about this often (%(default)s)",
    )
    # A safety net: never outlive a harness that died without stopping us.
    p.add_argument("--max-seconds", type=float, default=3600.0)
    args = p.parse_args(argv)
    config = dict(item.split("=", 1) for item in args.config)
    loop = CopyLoop(
        args.bootstrap_servers, args.group, args.output, config, args.commit_interval_ms / 1000
    )
    signal.signal(signal.SIGTERM, loop.stop)
    signal.signal(signal.SIGINT, loop.stop)
    return loop.run(args.input, args.max_seconds)


if __name__ == "__main__":
    sys.exit(main())
