"""Pinned versions and shared names for the local Kafka broker."""

from typing import Final

KAFKA_VERSION: Final = "4.4.0"
SCALA_BINARY_VERSION: Final = "2.13"
KAFKA_ARTIFACT: Final = f"org.apache.kafka:kafka_{SCALA_BINARY_VERSION}:{KAFKA_VERSION}"

# kafka_2.13 brings log4j-core but no slf4j binding (the Kafka tarball ships one in libs/),
# so without it every broker log line is dropped. Same version as that log4j-core.
LOG4J_VERSION: Final = "2.25.5"

# Kafka Connect (worker and MirrorMaker 2) runs from its own classpath. Maven Central serves
# connect-runtime 4.4.0 but not yet connect-file, connect-mirror or connect-mirror-client 4.4.0,
# and MirrorMaker reaches into the runtime's internals: one consistent 4.3.1 classpath, which
# talks to the 4.4.0 broker like any client. Move it to KAFKA_VERSION once 4.4.0 is complete.
CONNECT_VERSION: Final = "4.3.1"
CONNECT_ARTIFACTS: Final = (
    "connect-runtime",
    "connect-api",
    "connect-json",
    "connect-file",
    "connect-transforms",
    "connect-mirror",
    "connect-mirror-client",
)
DEBEZIUM_VERSION: Final = "3.6.1.Final"

# Pinned so the copy step does not depend on whichever plugin version the local Maven defaults to.
DEPENDENCY_PLUGIN: Final = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

# Java 17 is the minimum for a Kafka 4.x broker.
MIN_JAVA_VERSION: Final = 17

CACHE_ENV: Final = "KGEN_CACHE_DIR"
BOOTSTRAP_ENV: Final = "KGEN_BOOTSTRAP_SERVERS"
CONNECT_URL_ENV: Final = "KGEN_CONNECT_URL"

# The main classes in the kafka_2.13 jar (4.x still keeps both in the Scala core module).
BROKER_MAIN: Final = "kafka.Kafka"
STORAGE_TOOL_MAIN: Final = "kafka.tools.StorageTool"
CONNECT_MAIN: Final = "org.apache.kafka.connect.cli.ConnectDistributed"
MIRROR_MAKER_MAIN: Final = "org.apache.kafka.connect.mirror.MirrorMaker"
