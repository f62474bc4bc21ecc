"""Errors raised while fetching or running the local Kafka broker."""


class LocalKafkaError(RuntimeError):
    """Base class: the local broker could not be fetched, started or stopped."""


class ToolMissingError(LocalKafkaError):
    """`java` or `mvn` is missing or unusable."""


class FetchError(LocalKafkaError):
    """Maven could not resolve the broker's jars."""


class BrokerStartError(LocalKafkaError):
    """The broker process did not come up; carries the tail of its logs."""

    def __init__(self, summary: str, log_tail: str = "") -> None:
        self.summary = summary
        self.log_tail = log_tail
        super().__init__(f"{summary}\n{log_tail}" if log_tail else summary)
