"""Pinned versions and shared names for the local Kafka broker."""

from typing import Final

KAFKA_VERSION: Final = "4.4.0"
SCALA_BINARY_VERSION: Final = "2.13"
KAFKA_ARTIFACT: Final = f"org.apache.kafka:kafka_{SCALA_BINARY_VERSION}:{KAFKA_VERSION}"

# kafka_2.13 brings log4j-core but no slf4j binding (the Kafka tarball ships one in libs/),
# so without it every broker log line is dropped. Same version as that log4j-core.
LOG4J_VERSION: Final = "2.25.5"

# Pinned so the copy step does not depend on whichever plugin version the local Maven defaults to.
DEPENDENCY_PLUGIN: Final = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

# Java 17 is the minimum for a Kafka 4.x broker.
MIN_JAVA_VERSION: Final = 17

CACHE_ENV: Final = "KGEN_CACHE_DIR"
BOOTSTRAP_ENV: Final = "KGEN_BOOTSTRAP_SERVERS"

# The main classes in the kafka_2.13 jar (4.x still keeps both in the Scala core module).
BROKER_MAIN: Final = "kafka.Kafka"
STORAGE_TOOL_MAIN: Final = "kafka.tools.StorageTool"
