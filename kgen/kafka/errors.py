"""Errors raised while fetching or running the local Kafka broker and its Connect components."""


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


class ServiceStartError(LocalKafkaError):
    """A Connect worker or MirrorMaker 2 did not come up; carries the tail of its logs."""

    def __init__(self, summary: str, log_tail: str = "") -> None:
        self.summary = summary
        self.log_tail = log_tail
        super().__init__(f"{summary}\n{log_tail}" if log_tail else summary)


class ConnectError(LocalKafkaError):
    """The Kafka Connect REST API refused a request, or did not answer.

    `status` is the HTTP status (None when nothing answered); the message carries the
    worker's own explanation (its JSON `message`).
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)
