"""Real Kafka (KRaft) from Maven jars, one broker or a cluster, a Kafka Connect worker and
MirrorMaker 2, for tests, the demo and users."""

from kgen.kafka.broker import LocalKafka
from kgen.kafka.cluster import LocalKafkaCluster
from kgen.kafka.connect import ConnectWorker
from kgen.kafka.connect_rest import ConnectClient
from kgen.kafka.constants import (
    BOOTSTRAP_ENV,
    CACHE_ENV,
    CONNECT_URL_ENV,
    CONNECT_VERSION,
    DEBEZIUM_VERSION,
    KAFKA_VERSION,
)
from kgen.kafka.errors import (
    BrokerStartError,
    ConnectError,
    FetchError,
    LocalKafkaError,
    ServiceStartError,
    ToolMissingError,
)
from kgen.kafka.fetch import fetch, is_fetched
from kgen.kafka.mirror import MirrorMaker, mirror_properties
from kgen.kafka.paths import cache_root, kafka_home, libs_dir, run_dir
from kgen.kafka.runstate import RunState, running_broker

__all__ = [
    "BOOTSTRAP_ENV",
    "CACHE_ENV",
    "CONNECT_URL_ENV",
    "CONNECT_VERSION",
    "DEBEZIUM_VERSION",
    "KAFKA_VERSION",
    "BrokerStartError",
    "ConnectClient",
    "ConnectError",
    "ConnectWorker",
    "FetchError",
    "LocalKafka",
    "LocalKafkaCluster",
    "LocalKafkaError",
    "MirrorMaker",
    "RunState",
    "ServiceStartError",
    "ToolMissingError",
    "cache_root",
    "fetch",
    "is_fetched",
    "kafka_home",
    "libs_dir",
    "mirror_properties",
    "run_dir",
    "running_broker",
]
