"""Small topic chores shared by the demo, the tests and the benchmarks: (re)create topics, read
a topic to its end as a read_committed consumer sees it."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

# confluent_kafka.admin re-exports NewTopic without marking it for type checkers.
from confluent_kafka.cimpl import NewTopic

TIMEOUT_S = 30.0

# Records of tests, samples and benchmarks carry fixed timestamps, often from the epoch's
# first seconds: the broker's time retention (7 days by default, checked every 5 minutes)
# would delete them, active segment included, while a test still reads them. Topics made here
# keep everything unless the caller says otherwise.
KEEP_EVERYTHING = {"retention.ms": "-1"}


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int


def recreate_topics(
    bootstrap: str,
    topics: dict[str, int],
    groups: Iterable[str] = (),
    config: dict[str, str] | None = None,
) -> None:
    """Delete (if present) and create each topic with its partition count; delete the consumer
    groups so that no committed offset survives. Bounded: gives up after 60 s."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    doomed = [t for t in topics if t in admin.list_topics(timeout=TIMEOUT_S).topics]
    if doomed:
        for future in admin.delete_topics(doomed, operation_timeout=TIMEOUT_S).values():
            future.result()
    _delete_groups(admin, list(groups))
    # Deletion is asynchronous: a topic still listed cannot be created again yet.
    deadline = time.monotonic() + 60
    while any(t in admin.list_topics(timeout=TIMEOUT_S).topics for t in doomed):
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics {doomed} were not deleted within 60 s")
        time.sleep(0.2)
    create_topics(bootstrap, topics, config)


def _delete_groups(admin: AdminClient, groups: list[str]) -> None:
    """Delete those of `groups` that exist (listing first: a fresh cluster has no group
    coordinator until the offsets topic exists, and answers NOT_COORDINATOR). A group stays
    non-empty for a while after its app stopped if it used static membership: wait for it."""
    deadline = time.monotonic() + 90
    while True:
        listed = admin.list_consumer_groups(request_timeout=TIMEOUT_S).result()
        present = [g for g in groups if g in {x.group_id for x in listed.valid}]
        if not present:
            return
        for group, future in admin.delete_consumer_groups(
            present, request_timeout=TIMEOUT_S
        ).items():
            try:
                future.result()
            except KafkaException as exc:
                code = exc.args[0].code()
                if code == KafkaError.NON_EMPTY_GROUP and time.monotonic() < deadline:
                    continue
                if code != KafkaError.GROUP_ID_NOT_FOUND:
                    raise RuntimeError(f"cannot delete consumer group {group}: {exc}") from exc
        time.sleep(0.5)


def create_topics(
    bootstrap: str, topics: dict[str, int], config: dict[str, str] | None = None
) -> None:
    """Create each topic that does not exist yet, keeping its records whatever their
    timestamps (see KEEP_EVERYTHING) unless `config` sets another retention."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = admin.list_topics(timeout=TIMEOUT_S).topics
    settings = {**KEEP_EVERYTHING, **(config or {})}
    new = [NewTopic(t, n, 1, config=settings) for t, n in topics.items() if t not in existing]
    if not new:
        return
    for future in admin.create_topics(new, operation_timeout=TIMEOUT_S).values():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


def read_committed(bootstrap: str, topic: str, timeout_s: float = 60.0) -> list[Record]:
    """Every committed record of `topic`, to the end of each partition (isolation.level=
    read_committed, so aborted and still-open transactions are invisible)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "kgen-reader",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=TIMEOUT_S).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        out: list[Record] = []
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(at_end) < len(partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{topic}: did not reach the end of every partition in {timeout_s} s"
                )
            for msg in consumer.consume(1000, timeout=0.5):
                err = msg.error()
                if err is not None and err.code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition() or 0)
                elif err is not None:
                    raise KafkaException(err)
                else:
                    out.append(
                        Record(
                            msg.partition() or 0,
                            msg.offset() or 0,
                            msg.key(),
                            msg.value(),
                            msg.timestamp()[1],
                        )
                    )
        return out
    finally:
        consumer.close()


def produce_all(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes | None]],
    timestamp: int = 0,
) -> int:
    """Produce (key, value) pairs as fast as the client allows, waiting when its queue is
    full; returns how many were delivered. Raises if any delivery failed."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, "partitioner": "murmur2_random"}
    )
    failures: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            failures.append(err)

    count = 0
    for key, value in records:
        while True:
            try:
                producer.produce(topic, value, key, timestamp=timestamp, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        count += 1
    if producer.flush(120) or failures:
        raise RuntimeError(f"producing to {topic}: {len(failures)} failed, e.g. {failures[:1]}")
    return count
