"""What kgen knows of Kafka Connect and MirrorMaker 2: connector classes and their short names,
which topics a connector writes or reads, the converters that match each topic format, config
keys that hold secrets and `${provider:...}` references.

Pure functions over strings, shared by the spec's checks (kgen.spec.checks.connectors) and the
plan (kgen.plan.connect), so both read a connector's config the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FILE_SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"
FILE_SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"
DEBEZIUM_POSTGRES = "io.debezium.connector.postgresql.PostgresConnector"


@dataclass(frozen=True)
class KnownClass:
    """A connector class kgen knows: its kind, and where its config names its topics."""

    java_class: str
    kind: str  # "source" | "sink"
    plugin: str  # where the class comes from, for the app's README


# Short names a spec may use for `class`, and the full names they stand for.
ALIASES: dict[str, KnownClass] = {
    "file-source": KnownClass(FILE_SOURCE, "source", "Kafka Connect (connect-file)"),
    "file-sink": KnownClass(FILE_SINK, "sink", "Kafka Connect (connect-file)"),
    "debezium-postgres": KnownClass(
        DEBEZIUM_POSTGRES, "source", "Debezium PostgreSQL 3.6.1.Final (io.debezium)"
    ),
}
BY_CLASS = {known.java_class: known for known in ALIASES.values()}
JAVA_CLASS = re.compile(r"^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)+$")

# Connect's converters, and the kgen topic formats whose bytes each writes and reads.
STRING = "org.apache.kafka.connect.storage.StringConverter"
JSON = "org.apache.kafka.connect.json.JsonConverter"
BYTES = "org.apache.kafka.connect.converters.ByteArrayConverter"
CONVERTERS: dict[str, tuple[str, ...]] = {
    STRING: ("string",),
    JSON: ("json",),
    BYTES: ("bytes",),
    "org.apache.kafka.connect.converters.IntegerConverter": ("int",),
    "org.apache.kafka.connect.converters.LongConverter": ("long",),
    "org.apache.kafka.connect.converters.DoubleConverter": ("double",),
}
# The converter kgen sets for a topic format when the spec sets none.
DEFAULT_CONVERTER = {formats[0]: name for name, formats in CONVERTERS.items()}

# `${provider:key}` or `${provider:path:key}`: Connect's (and MirrorMaker's) config references.
REFERENCE = re.compile(r"\$\{([^}:]*?):(?:([^}]*?):)?([^}]*?)\}")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Config keys whose values are secrets: written as references, never inlined.
_SECRET = re.compile(r"(password|secret|token|credentials?|jaas\.config|api\.key)$", re.I)


def resolve_class(name: str) -> str | None:
    """The Java class a spec's `class` names, or None when it is neither an alias nor a class."""
    if name in ALIASES:
        return ALIASES[name].java_class
    return name if JAVA_CLASS.match(name) else None


def kind_of(java_class: str) -> str | None:
    known = BY_CLASS.get(java_class)
    return known.kind if known else None


def is_secret(key: str) -> bool:
    return bool(_SECRET.search(key))


def only_references(value: str) -> bool:
    """Whether `value` is one or more `${...}` references and nothing else."""
    return bool(value) and not REFERENCE.sub("", value).strip()


def env_references(value: str) -> list[str]:
    """The variables of the `${env:VAR}` references in `value`."""
    return [m.group(3) for m in REFERENCE.finditer(value) if m.group(1) == "env" and not m.group(2)]


def split_list(value: str) -> list[str]:
    """A Connect list setting: comma separated, blanks trimmed, empty entries dropped."""
    return [part.strip() for part in value.split(",") if part.strip()]


def debezium_topics(config: dict[str, str]) -> list[str] | None:
    """The topics a Debezium PostgreSQL source writes: `<topic.prefix>.<schema>.<table>` for
    every table of table.include.list; None when they cannot be told from the config (no
    prefix, no table list, or tables given as patterns)."""
    prefix = config.get("topic.prefix")
    tables = split_list(config.get("table.include.list", ""))
    if not prefix or not tables:
        return None
    if any(not re.fullmatch(r"[A-Za-z0-9_]+\.[A-Za-z0-9_]+", t) for t in tables):
        return None
    return [f"{prefix}.{t}" for t in tables]


def regex_error(pattern: str) -> str | None:
    """Why `pattern` is no regex (Python's reading, close to Java's for such lists)."""
    try:
        re.compile(pattern)
    except re.error as exc:
        return str(exc)
    return None


@dataclass(frozen=True)
class ConnectorTopics:
    """The topics a connector writes (a source) or reads (a sink), and the spec path to
    report them at; `pattern` is a sink's topics.regex; `problem` says why kgen cannot tell
    them (then `topics` is empty)."""

    kind: str | None
    topics: tuple[str, ...]
    loc: tuple[str | int, ...]
    pattern: str | None = None
    problem: str = ""
    hint: str = ""


def connector_topics(
    class_: str,
    kind: str | None,
    declared: list[str] | None,
    config: dict[str, str],
    known_topics: list[str],
) -> ConnectorTopics:
    """What a connector's spec entry says of its topics (paths relative to the entry).
    `known_topics`: the spec's declared topics, which a sink's topics.regex is matched with."""
    java_class = resolve_class(class_)
    if java_class in BY_CLASS:
        kind = BY_CLASS[java_class].kind
    if kind == "sink":
        if "topics.regex" in config and "topics" not in config:
            pattern = config["topics.regex"]
            if regex_error(pattern) is not None:
                return ConnectorTopics(kind, (), ("config", "topics.regex"), pattern)
            matched = tuple(t for t in sorted(known_topics) if re.fullmatch(pattern, t))
            return ConnectorTopics(kind, matched, ("config", "topics.regex"), pattern)
        return ConnectorTopics(
            kind, tuple(split_list(config.get("topics", ""))), ("config", "topics")
        )
    if kind != "source":
        return ConnectorTopics(kind, (), ())
    if declared is not None:
        return ConnectorTopics(kind, tuple(declared), ("topics",))
    if java_class == FILE_SOURCE:
        topic = config.get("topic", "").strip()
        if not topic:
            return ConnectorTopics(
                kind,
                (),
                ("config",),
                problem="a file source writes the topic of its config's 'topic', which is not set",
                hint='add "topic" = "<topic>" to its config',
            )
        return ConnectorTopics(kind, (topic,), ("config", "topic"))
    if java_class == DEBEZIUM_POSTGRES:
        topics = debezium_topics(config)
        if topics is None:
            return ConnectorTopics(
                kind,
                (),
                ("config",),
                problem="kgen cannot tell which topics this Debezium source writes: it writes "
                "'<topic.prefix>.<schema>.<table>' for each table of table.include.list",
                hint='set "topic.prefix" and "table.include.list" (tables as schema.table, '
                "comma separated), or list the topics it writes in topics = [...]",
            )
        return ConnectorTopics(kind, tuple(topics), ("config", "table.include.list"))
    return ConnectorTopics(
        kind,
        (),
        (),
        problem=f"kgen does not know which topics a {java_class} writes",
        hint="list them: topics = ['<topic>', ...]",
    )
