"""Real Kafka (KRaft) from Maven jars, one broker or a cluster, for tests, the demo and users."""

from kgen.kafka.broker import LocalKafka
from kgen.kafka.cluster import LocalKafkaCluster
from kgen.kafka.constants import BOOTSTRAP_ENV, CACHE_ENV, KAFKA_VERSION
from kgen.kafka.errors import BrokerStartError, FetchError, LocalKafkaError, ToolMissingError
from kgen.kafka.fetch import fetch, is_fetched
from kgen.kafka.paths import cache_root, kafka_home, libs_dir, run_dir
from kgen.kafka.runstate import RunState, running_broker

__all__ = [
    "BOOTSTRAP_ENV",
    "CACHE_ENV",
    "KAFKA_VERSION",
    "BrokerStartError",
    "FetchError",
    "LocalKafka",
    "LocalKafkaCluster",
    "LocalKafkaError",
    "RunState",
    "ToolMissingError",
    "cache_root",
    "fetch",
    "is_fetched",
    "kafka_home",
    "libs_dir",
    "run_dir",
    "running_broker",
]
