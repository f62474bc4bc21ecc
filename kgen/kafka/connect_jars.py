"""The jars of Kafka Connect (worker and MirrorMaker 2) and of its connector plugins, from Maven
Central into the cache, with the broker's fetch machinery."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from kgen.kafka.constants import CONNECT_ARTIFACTS, CONNECT_VERSION, DEBEZIUM_VERSION, LOG4J_VERSION
from kgen.kafka.errors import FetchError
from kgen.kafka.fetch import Bundle, fetch_bundle
from kgen.kafka.paths import connect_home, plugin_home

# What Connect itself provides and a plugin must take from it: a second kafka-clients (and its
# compression codecs) or slf4j in a plugin directory is at best dead weight, at worst a
# LinkageError. Jackson too: Debezium's CloudEventsConverter looks up a JsonConverter method
# taking Connect's JsonNode and fails to load against a JsonNode of its own.
_PROVIDED_GROUPS = (
    "org.apache.kafka",
    "com.fasterxml.jackson.core",
    "jakarta.ws.rs",
    "org.slf4j",
    "org.apache.logging.log4j",
    "org.lz4",
    "org.xerial.snappy",
    "com.github.luben",
)


@dataclass(frozen=True)
class ConnectPlugin:
    """A connector plugin kgen can fetch: one Maven artifact and its runtime dependencies."""

    name: str  # the plugin directory's name: "debezium-postgres"
    artifact: str  # group:artifact:version
    # The connector classes a worker must list once it has loaded the plugin.
    connector_classes: tuple[str, ...]

    @property
    def version(self) -> str:
        return self.artifact.rsplit(":", 1)[1]

    def bundle(self) -> Bundle:
        home = plugin_home(self.name, self.version)
        jar = "-".join(self.artifact.split(":")[1:]) + ".jar"
        return Bundle(
            name=self.name,
            title=f"the Connect plugin {self.artifact}",
            artifact=self.artifact,
            home=home,
            libs=home / "plugins" / self.name,
            dependencies=(self.artifact,),
            required=(jar,),
            exclude_groups=_PROVIDED_GROUPS,
        )

    def plugin_path(self) -> Path:
        """The `plugin.path` entry holding this plugin (its directory's parent)."""
        return self.bundle().libs.parent


DEBEZIUM_POSTGRES = ConnectPlugin(
    name="debezium-postgres",
    artifact=f"io.debezium:debezium-connector-postgres:{DEBEZIUM_VERSION}",
    connector_classes=("io.debezium.connector.postgresql.PostgresConnector",),
)

PLUGINS = {plugin.name: plugin for plugin in (DEBEZIUM_POSTGRES,)}


def connect_bundle() -> Bundle:
    """The classpath of a Connect worker and of MirrorMaker 2 (no broker in it)."""
    home = connect_home()
    return Bundle(
        name="kafka-connect",
        title=f"Kafka Connect {CONNECT_VERSION} jars",
        artifact=f"org.apache.kafka:connect-runtime:{CONNECT_VERSION}",
        home=home,
        libs=home / "libs",
        dependencies=(
            *(f"org.apache.kafka:{artifact}:{CONNECT_VERSION}" for artifact in CONNECT_ARTIFACTS),
            # Like the broker's: connect-runtime brings log4j-core but no slf4j binding.
            f"org.apache.logging.log4j:log4j-slf4j-impl:{LOG4J_VERSION}",
        ),
        required=(
            *(f"{artifact}-{CONNECT_VERSION}.jar" for artifact in CONNECT_ARTIFACTS),
            f"kafka-clients-{CONNECT_VERSION}.jar",
            f"log4j-slf4j-impl-{LOG4J_VERSION}.jar",
        ),
    )


def fetch_connect(progress: Callable[[str], None] | None = None) -> Path:
    """Make sure Connect's jars are cached; return the directory holding them."""
    return fetch_bundle(connect_bundle(), progress)


def find_plugin(name: str) -> ConnectPlugin:
    """The known plugin called `name`; FetchError naming the known ones otherwise."""
    plugin = PLUGINS.get(name)
    if plugin is None:
        known = ", ".join(sorted(PLUGINS))
        raise FetchError(f"unknown Connect plugin {name!r} (known: {known})")
    return plugin


def fetch_plugins(
    names: Iterable[str], progress: Callable[[str], None] | None = None
) -> list[Path]:
    """Make sure the named plugins are cached; return their `plugin.path` entries."""
    paths = []
    for name in names:
        plugin = find_plugin(name)
        fetch_bundle(plugin.bundle(), progress)
        paths.append(plugin.plugin_path())
    return paths
