"""Ask a broker whether it serves metadata yet."""

from collections.abc import Mapping

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient


class MetadataProbe:
    """One AdminClient reused across polls (a new client per poll re-bootstraps every time)."""

    def __init__(self, bootstrap_servers: str, config: Mapping[str, str] | None = None) -> None:
        # log_level 0: while the broker boots, librdkafka would print connection errors to stderr.
        self._admin = AdminClient(
            {**(config or {}), "bootstrap.servers": bootstrap_servers, "log_level": 0}
        )

    def answers(self, timeout: float) -> bool:
        """True when `list_topics` returns metadata naming at least one broker."""
        try:
            metadata = self._admin.list_topics(timeout=max(timeout, 0.1))
        except KafkaException:
            return False
        return bool(metadata.brokers)
