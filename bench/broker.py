"""The broker the benchmark runs against, and the few admin calls the harness needs."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Self

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from kgen import topics
from kgen.kafka import KAFKA_VERSION, LocalKafka, fetch, running_broker

TIMEOUT_S = 30.0
WARMUP_TOPIC = "bench-warmup"


def require_loopback(bootstrap: str) -> None:
    """The benchmark floods its broker: refuse any address but this machine's loopback."""
    for server in bootstrap.split(","):
        host = server.strip().rsplit(":", 1)[0].strip("[]")
        if host == "localhost":
            continue
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"{server!r} is not a loopback address (127.0.0.0/8, ::1)")


class Broker:
    """`bootstrap` when given (e.g. pytest's session broker), else a fresh local broker
    started for the run and stopped after it."""

    def __init__(self, bootstrap: str | None = None) -> None:
        self._given = bootstrap
        self._local: LocalKafka | None = None
        self.bootstrap = bootstrap or ""
        self._admin: AdminClient | None = None

    def __enter__(self) -> Self:
        if self._given:
            require_loopback(self._given)
        else:
            fetch()
            self._local = LocalKafka()
            self.bootstrap = self._local.start()
        self._admin = AdminClient({"bootstrap.servers": self.bootstrap})
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Our admin client goes first: it would log the broker's disconnection otherwise.
        self._admin = None
        if self._local is not None:
            self._local.stop()

    @property
    def description(self) -> str:
        if self._local is not None:
            return f"Apache Kafka {KAFKA_VERSION}, kgen's single-node KRaft broker (started here)"
        state = running_broker()
        if state is not None and state.bootstrap_servers == self.bootstrap:
            return f"Apache Kafka {state.kafka_version}, kgen's broker from `kgen kafka start`"
        return f"the broker at {self.bootstrap} (given; version not known to the harness)"

    @property
    def pid(self) -> int | None:
        """The broker JVM's pid when it runs on this machine and we know it: ours, or the one
        `kgen kafka start` left running at this address."""
        if self._local is not None:
            return self._local.pid
        state = running_broker()
        if state is not None and state.bootstrap_servers == self.bootstrap:
            return state.pid
        return None

    @property
    def admin(self) -> AdminClient:
        assert self._admin is not None, "use Broker as a context manager"
        return self._admin

    def warm_up(self) -> None:
        """Create the broker's internal topics before anything is timed: the first consumer
        group commit creates __consumer_offsets and the first transactional producer
        __transaction_state, which costs the first system to need them a second or more."""
        topics.create_topics(self.bootstrap, {WARMUP_TOPIC: 1})
        producer = Producer(
            {"bootstrap.servers": self.bootstrap, "transactional.id": "bench-warmup"}
        )
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": "bench-warmup",
                "enable.auto.commit": False,
            }
        )
        try:
            producer.init_transactions(TIMEOUT_S)
            producer.begin_transaction()
            producer.produce(WARMUP_TOPIC, b"warm-up")
            producer.commit_transaction(TIMEOUT_S)
            consumer.commit(offsets=[TopicPartition(WARMUP_TOPIC, 0, 1)], asynchronous=False)
        finally:
            consumer.close()

    def reset(
        self,
        topic_partitions: dict[str, int],
        groups: Iterable[str],
        delete: Iterable[str] = (),
        config: dict[str, str] | None = None,
    ) -> None:
        """Empty the topics (delete and create), delete the topics in `delete` (an app's
        internal topics: it creates them again at start) and forget the groups' committed
        offsets."""
        self.delete_topics(delete)
        topics.recreate_topics(self.bootstrap, topic_partitions, groups=list(groups), config=config)

    def delete_topics(self, names: Iterable[str]) -> None:
        """Delete those of the topics that exist, and wait until the broker lists none of
        them: a topic marked for deletion cannot be created again yet."""
        wanted = set(names)
        if not wanted:
            return
        doomed = sorted(wanted & set(self.admin.list_topics(timeout=TIMEOUT_S).topics))
        if not doomed:
            return
        for future in self.admin.delete_topics(doomed, operation_timeout=TIMEOUT_S).values():
            try:
                future.result()
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise
        deadline = time.monotonic() + 60
        while wanted & set(self.admin.list_topics(timeout=TIMEOUT_S).topics):
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics {doomed} were not deleted within 60 s")
            time.sleep(0.2)

    def end_offsets(self, topic: str, *, stable: bool = False) -> dict[int, int]:
        """Each partition's high watermark; with `stable`, its last stable offset instead
        (what a read_committed consumer can reach: not past an open transaction)."""
        conf = {"bootstrap.servers": self.bootstrap, "group.id": "bench-probe"}
        if stable:
            conf["isolation.level"] = "read_committed"
        consumer = Consumer(conf)
        try:
            meta = consumer.list_topics(topic, timeout=TIMEOUT_S).topics[topic]
            return {
                p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=TIMEOUT_S)[1]
                for p in sorted(meta.partitions)
            }
        finally:
            consumer.close()

    def committed_offsets(
        self, group: str, partitions: Mapping[str, Iterable[int]]
    ) -> dict[tuple[str, int], int]:
        """The group's committed offset of each (topic, partition), 0 when it has none; all
        0 while its coordinator is not ready yet."""
        wanted = [TopicPartition(t, p) for t, parts in partitions.items() for p in parts]
        request = ConsumerGroupTopicPartitions(group, wanted)
        future = self.admin.list_consumer_group_offsets([request], request_timeout=5.0)[group]
        try:
            result = future.result()
        except KafkaException as exc:
            err = exc.args[0]
            if isinstance(err, KafkaError) and err.retriable():
                return {(tp.topic, tp.partition): 0 for tp in wanted}
            raise
        got = {(tp.topic, tp.partition): max(tp.offset, 0) for tp in result.topic_partitions or []}
        return {(tp.topic, tp.partition): got.get((tp.topic, tp.partition), 0) for tp in wanted}
