"""pytest plugin: a session-wide real Kafka broker as the `kafka_bootstrap` fixture.

Auto-loaded wherever kgen is installed, so importing it does no work: the broker code is
imported, fetched and started only when a test asks for the fixture.
"""

import os
from collections.abc import Iterator

import pytest

_BOOTSTRAP_ENV = "KGEN_BOOTSTRAP_SERVERS"  # == kgen.kafka.BOOTSTRAP_ENV; not imported, see above
_FIXTURE = "kafka_bootstrap"


def pytest_configure(config: pytest.Config) -> None:
    """Register the `broker` marker so projects using the plugin need no config for it."""
    config.addinivalue_line(
        "markers", "broker: needs a real Kafka broker (started by the kgen pytest plugin)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give every `broker`-marked test the broker, even one that only reads the env variable."""
    for item in items:
        if item.get_closest_marker("broker") is None:
            continue
        names = getattr(item, "fixturenames", None)
        if isinstance(names, list) and _FIXTURE not in names:
            names.append(_FIXTURE)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers of a real broker: `$KGEN_BOOTSTRAP_SERVERS`, else one started here.

    A broker started here lives for the whole session (data in pytest's tmp dir) and its
    address is exported in `KGEN_BOOTSTRAP_SERVERS` so subprocesses of the tests find it.
    """
    existing = os.environ.get(_BOOTSTRAP_ENV)
    if existing:
        yield existing
        return
    from kgen.kafka import LocalKafka  # deferred: the plugin import must stay cheap

    broker = LocalKafka(data_dir=tmp_path_factory.mktemp("kafka"))
    bootstrap = broker.start()
    os.environ[_BOOTSTRAP_ENV] = bootstrap
    try:
        yield bootstrap
    finally:
        os.environ.pop(_BOOTSTRAP_ENV, None)
        broker.stop()
