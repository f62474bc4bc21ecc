"""A generated app's group settings without a broker: the fast-failover defaults, the
`--group-protocol` flag, the client settings librdkafka takes under each protocol, and the
commit before an incremental assignment."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException
from conftest import App, BuildApp

SPEC = """
app = "group-settings"
[topics.gs-in]
[topics.gs-out]
[[streams]]
name = "s"
from = "gs-in"
steps = [{ to = "gs-out" }]
"""


@pytest.fixture(scope="module")
def app(build_app: BuildApp) -> App:
    return build_app(SPEC, "group-settings")


def _consumer(config: dict[str, Any]) -> None:
    """librdkafka takes `config` (it checks settings when the client is made, offline)."""
    Consumer({"bootstrap.servers": "127.0.0.1:9", "group.id": "g", **config}).close()


def test_classic_defaults_fail_over_in_10_s(app: App) -> None:
    settings = app.module("settings").parse(["--bootstrap-servers", "x:1"])
    assert (settings.group_protocol, settings.session_timeout_ms) == ("classic", 10_000)
    conf = app.module("rebalance").membership(settings)
    assert conf == {"session.timeout.ms": 10_000, "heartbeat.interval.ms": 1_000}
    _consumer(conf)


def test_consumer_protocol_leaves_the_brokers_settings_out(app: App) -> None:
    settings = app.module("settings").parse(
        [
            "--bootstrap-servers",
            "x:1",
            "--group-protocol",
            "consumer",
            "--session-timeout-ms",
            "6000",
        ]
    )
    assert (settings.group_protocol, settings.session_timeout_ms) == ("consumer", 6_000)
    conf = app.module("rebalance").membership(settings)
    # Session time-out, heartbeat and assignor are the broker's: range co-partitions.
    assert conf == {"group.protocol": "consumer", "group.remote.assignor": "range"}
    _consumer(conf)
    # What the classic protocol sets, librdkafka refuses under the consumer protocol.
    with pytest.raises(KafkaException, match=r"session\.timeout\.ms"):
        _consumer({**conf, "session.timeout.ms": 6000})


def test_the_transaction_time_out_follows_the_session(app: App) -> None:
    """A dead instance's open transaction holds its partitions as long as its session does:
    a shorter session fails over sooner only if its transactions are aborted as soon."""
    settings, rebalance = app.module("settings"), app.module("rebalance")
    default = settings.parse(["--bootstrap-servers", "x:1"])
    assert rebalance.transaction_timeout_ms(default) == 10_000  # Kafka Streams' (EOS)
    short = settings.parse(["--bootstrap-servers", "x:1", "--session-timeout-ms", "6000"])
    assert rebalance.transaction_timeout_ms(short) == 6_000


def test_a_short_session_keeps_the_heartbeat_below_a_third(app: App) -> None:
    rebalance = app.module("rebalance")
    assert rebalance.heartbeat_interval_ms(45_000) == 1_000
    assert rebalance.heartbeat_interval_ms(2_400) == 800


class _Calls:
    def __init__(self) -> None:
        self.commits = 0


def test_an_incremental_assignment_commits_the_kept_partitions_first(app: App) -> None:
    """Under the consumer protocol partitions are added to those kept, whose processed records
    may not be committed yet: the batch read during the rebalance is dropped and the loop goes
    back to the committed offsets, so they are committed before (else read twice)."""
    rebalance = app.module("rebalance")
    calls = _Calls()

    class Loop(rebalance.Rebalancing):
        broken = None
        dirty = True
        rebalances = {"assigned": 0, "revoked": 0, "lost": 0}  # noqa: RUF012 (the metrics' counts)

        def _commit(self) -> None:
            calls.commits += 1
            self.dirty = False

    class Consumer:
        owned: list[object] = []  # noqa: RUF012 (what the consumer holds)

        def assignment(self) -> list[object]:
            return self.owned

    loop, consumer = Loop(), Consumer()
    loop._on_assign(consumer, [])
    assert calls.commits == 1 and loop.rebalanced and loop.assigned is None
    # Given nothing and holding nothing: a member without partitions (its idle time counts).
    assert loop.member_without_partitions
    loop.broken = object()  # going back to the last commit anyway: nothing to commit
    consumer.owned = ["a partition kept"]
    loop._on_assign(consumer, [])
    assert calls.commits == 1
    assert not loop.member_without_partitions
