"""Connectors and mirrors declared next to the topology: classes, secrets, and the topics
connectors write and read checked against [topics] and the app's streams (what feeds what, and
in which format)."""

from __future__ import annotations

from kgen.spec import connect
from kgen.spec.checks.base import Checks, did_you_mean, entries, listing, written_topics
from kgen.spec.errors import Loc
from kgen.spec.models import Connector, package_name

_RESERVED = {
    "connector.class": "the connector's class = '...' sets it",
    "name": "the connector's name = '...' sets it",
}
_MIRROR_FLOW_FIELDS = {
    "enabled": "the mirror enables its flow",
    "topics": "topics = [...]",
    "groups": "groups = [...]",
    "replication.policy.class": "replication_policy = 'default' | 'identity'",
    "emit.checkpoints.enabled": "emit_checkpoints = true | false",
    "sync.group.offsets.enabled": "sync_group_offsets = true | false",
}
# MirrorMaker resolves these references itself (the generated properties declare them).
MIRROR_PROVIDERS = ("env", "file", "directory")


def _short(java_class: str) -> str:
    return java_class.rsplit(".", 1)[-1]


def check_connectors(c: Checks) -> None:
    seen: dict[str, Loc] = {}
    for i, connector in enumerate(c.spec.connectors):
        base: Loc = ("connectors", i)
        if connector.name in seen:
            c.error(
                (*base, "name"),
                f"connector {connector.name!r} is declared twice",
                f"the first is at line {c.line(seen[connector.name])}: connector names are "
                "unique on a Connect cluster",
            )
        seen.setdefault(connector.name, (*base, "name"))
        _check_class(c, base, connector)
        apply = f"python -m {package_name(c.spec.app)} connect apply"
        _check_config(c, base, connector.config, f"`{apply}` resolves it from its environment")
    _check_topics(c)


def _check_class(c: Checks, base: Loc, connector: Connector) -> None:
    java_class = connect.resolve_class(connector.class_)
    if java_class is None:
        close = did_you_mean(connector.class_, list(connect.ALIASES))
        c.error(
            (*base, "class"),
            f"{connector.class_!r} is neither a connector kgen knows "
            f"({listing(list(connect.ALIASES))}) nor a Java class name",
            close or "write the connector's full class, e.g. 'com.example.MyConnector'",
        )
        return
    known = connect.BY_CLASS.get(java_class)
    if known is None and connector.kind is None:
        c.error(
            (*base, "class"),
            f"kgen does not know {java_class}: is it a source or a sink?",
            "add kind = 'source' (it writes topics) or kind = 'sink' (it reads them)",
        )
    elif known is not None and connector.kind not in (None, known.kind):
        c.error(
            (*base, "kind"),
            f"{_short(java_class)} is a {known.kind} connector, not a {connector.kind}",
            "drop kind: kgen knows this class",
        )
    if known is not None and known.kind == "sink" and connector.topics is not None:
        c.error(
            (*base, "topics"),
            "a sink connector reads the topics of its config",
            'drop topics and set "topics" (comma separated) or "topics.regex" in its config',
        )
    for key, why in _RESERVED.items():
        if key in connector.config:
            c.error((*base, "config", key), f"{key!r} is not set in config", f"drop it: {why}")


def _check_config(c: Checks, base: Loc, config: dict[str, str], resolved_by: str) -> None:
    """Secrets are references, and `${env:VAR}` references name variables."""
    for key, value in config.items():
        loc: Loc = (*base, "config", key)
        if connect.is_secret(key) and not connect.only_references(value):
            c.error(
                loc,
                f"{key!r} holds a secret written into the spec: it would be committed, and "
                "generated into the app",
                f'write a reference instead, e.g. "${{env:{_env_name(key)}}}" ({resolved_by})',
            )
        for match in connect.REFERENCE.finditer(value):
            if match.group(1) == "env" and not connect.ENV_NAME.match(match.group(3)):
                c.error(
                    loc,
                    f"{match.group(0)!r} names no environment variable",
                    "write ${env:NAME}, NAME of letters, digits and '_'",
                )


def _env_name(key: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in key).upper()


def _check_topics(c: Checks) -> None:
    read_by_app = {t for _, e in entries(c.spec) for t in e.from_topics}
    read_by_app |= {g.from_ for g in c.spec.global_tables}
    written_by_app = written_topics(c.spec)
    found = [
        connect.connector_topics(
            k.class_, k.kind, k.topics, dict(k.config), [*c.spec.topics, *c.damage.names("topics")]
        )
        for k in c.spec.connectors
    ]
    sources = {t: i for i, f in enumerate(found) if f.kind == "source" for t in f.topics}
    sinks = {t: i for i, f in enumerate(found) if f.kind == "sink" for t in f.topics}
    for i, (connector, topics) in enumerate(zip(c.spec.connectors, found, strict=True)):
        base: Loc = ("connectors", i)
        loc: Loc = (*base, *topics.loc)
        if topics.problem:
            c.error(loc, topics.problem, topics.hint)
            continue
        if topics.kind == "sink":
            _sink_topics(c, loc, connector, topics, written_by_app=written_by_app, sources=sources)
        elif topics.kind == "source":
            for k, topic in enumerate(topics.topics):
                at: Loc = (*loc, k) if topics.loc == ("topics",) else loc
                c.topic_ref(at, topic)
                if topic not in c.spec.topics:
                    continue
                if topic not in read_by_app and topic not in sinks and not c.damage.mentions(topic):
                    c.error(
                        at,
                        f"source connector {connector.name!r} writes topic {topic!r}, which no "
                        "stream, table or sink connector reads",
                        f"read it: from = {topic!r} in a [[streams]] or [[tables]] entry",
                    )
        if topics.kind is not None:
            _check_converters(c, base, connector, topics)


def _sink_topics(
    c: Checks,
    loc: Loc,
    connector: Connector,
    topics: connect.ConnectorTopics,
    *,
    written_by_app: set[str],
    sources: dict[str, int],
) -> None:
    if topics.pattern is not None:
        problem = connect.regex_error(topics.pattern)
        if problem is not None:
            c.error(loc, f"invalid regex {topics.pattern!r}: {problem}")
        elif not topics.topics:
            c.error(
                loc,
                f"topics.regex {topics.pattern!r} matches no declared topic "
                f"(declared: {listing(list(c.spec.topics))})",
                "a sink connector reads topics of the spec: declare them under [topics]",
            )
    elif not topics.topics:
        c.error(
            (*loc[:-1],),
            f"sink connector {connector.name!r} reads no topic",
            'set "topics" (comma separated) or "topics.regex" in its config',
        )
        return
    for topic in topics.topics:
        c.topic_ref(loc, topic)
        if topic not in c.spec.topics or c.damage.mentions(topic):
            continue
        if topic not in written_by_app and topic not in sources:
            c.error(
                loc,
                f"sink connector {connector.name!r} reads topic {topic!r}, which nothing in "
                "the spec writes: no stream's 'to' or branch, no source connector",
                f"write it from a stream: {{ to = {topic!r} }}",
            )


def _check_converters(
    c: Checks, base: Loc, connector: Connector, topics: connect.ConnectorTopics
) -> None:
    """Each converter writes (or reads) the bytes of its topics' declared format; a
    converter not set is set by kgen from that format, which one converter must fit."""
    declared = [t for t in topics.topics if t in c.spec.topics]
    verb = "writes" if topics.kind == "source" else "reads"
    for part in ("key", "value"):
        formats = {t: getattr(c.spec.topics[t], part) for t in declared}
        setting = f"{part}.converter"
        converter = connector.config.get(setting)
        if converter is None:
            if len(set(formats.values())) > 1:
                listed = ", ".join(f"{t!r} is {f}" for t, f in sorted(formats.items()))
                c.error(
                    (*base, "config"),
                    f"connector {connector.name!r} {verb} topics of different {part} formats "
                    f"({listed}), and one {setting} serves them all",
                    f'set "{setting}" in its config, or give the topics one {part} format',
                )
            continue
        loc: Loc = (*base, "config", setting)
        wire = connect.CONVERTERS.get(converter)
        for topic, fmt in sorted(formats.items()):
            if fmt == "bytes":
                continue  # the app takes the bytes as they are
            if wire is None:
                c.error(
                    loc,
                    f"{_short(converter)} is no converter kgen can match with the {part} format "
                    f"{fmt!r} of topic {topic!r}",
                    f"use {_short(connect.DEFAULT_CONVERTER[fmt])} (or leave {setting} out: "
                    f"kgen sets it from the topic's format), or declare {part} = 'bytes' to "
                    "take the records' bytes as they are",
                )
                break
            if fmt not in wire and not (converter == connect.STRING and fmt == "json"):
                c.error(
                    loc,
                    f"{_short(converter)} {'writes' if verb == 'writes' else 'reads'} "
                    f"{wire[0]}, but topic {topic!r} has {part} format {fmt!r}",
                    f"use {_short(connect.DEFAULT_CONVERTER[fmt])} (or leave {setting} out: "
                    f"kgen sets it from the topic's format), or declare {part} = {wire[0]!r} "
                    "on the topic",
                )
                break
            schemas = f"{setting}.schemas.enable"
            if converter == connect.JSON and connector.config.get(schemas, "true") != "false":
                c.error(
                    (*base, "config", schemas) if schemas in connector.config else loc,
                    f"JsonConverter with schemas enabled {verb} each {part} in a "
                    '{"schema": ..., "payload": ...} envelope, which the json format of topic '
                    f"{topic!r} does not hold",
                    f'set "{schemas}" = "false"',
                )
                break


def check_mirrors(c: Checks) -> None:
    clusters: dict[str, tuple[str, Loc]] = {}
    flows: dict[tuple[str, str], Loc] = {}
    policy: tuple[str, Loc] | None = None
    for i, mirror in enumerate(c.spec.mirrors):
        base: Loc = ("mirrors", i)
        if mirror.source.alias == mirror.target.alias:
            c.error(
                (*base, "target", "alias"),
                f"a mirror's source and target are both {mirror.source.alias!r}",
                "mirror between two clusters with different aliases",
            )
        for side in ("source", "target"):
            cluster = getattr(mirror, side)
            loc: Loc = (*base, side, "bootstrap_servers")
            first = clusters.setdefault(cluster.alias, (cluster.bootstrap_servers, loc))
            if first[0] != cluster.bootstrap_servers:
                c.error(
                    loc,
                    f"cluster {cluster.alias!r} is {first[0]!r} at line {c.line(first[1])}, "
                    f"here {cluster.bootstrap_servers!r}",
                    "one alias is one cluster: give the other cluster another alias",
                )
            if "bootstrap.servers" in cluster.config:
                c.error(
                    (*base, side, "config", "bootstrap.servers"),
                    "'bootstrap.servers' is not set in config",
                    "drop it: bootstrap_servers = '...' sets it",
                )
            _mirror_config(c, (*base, side), cluster.config)
        flow = (mirror.source.alias, mirror.target.alias)
        if flow in flows:
            c.error(
                (*base, "source", "alias"),
                f"the flow {flow[0]}->{flow[1]} is mirrored already at line {c.line(flows[flow])}",
                "list all its topics and groups in one [[mirrors]] entry",
            )
        flows.setdefault(flow, base)
        for field in ("topics", "groups"):
            for k, pattern in enumerate(getattr(mirror, field)):
                problem = connect.regex_error(pattern)
                if problem is not None:
                    c.error((*base, field, k), f"invalid regex {pattern!r}: {problem}")
        if mirror.sync_group_offsets and not mirror.emit_checkpoints:
            c.error(
                (*base, "sync_group_offsets"),
                "group offsets are synced from checkpoints, which this mirror does not emit",
                "set emit_checkpoints = true, or sync_group_offsets = false",
            )
        if mirror.sync_group_offsets and not mirror.groups:
            c.error(
                (*base, "sync_group_offsets"),
                "sync_group_offsets = true, but the mirror names no consumer groups",
                "list the groups whose offsets to sync: groups = ['<regex>', ...]",
            )
        if policy is None:
            policy = (mirror.replication_policy, base)
        elif policy[0] != mirror.replication_policy:
            c.error(
                (*base, "replication_policy"),
                f"replication_policy {mirror.replication_policy!r} differs from "
                f"{policy[0]!r} at line {c.line(policy[1])}: MirrorMaker takes one",
                "give every mirror the same replication_policy",
            )
        for key in mirror.config:
            if key in _MIRROR_FLOW_FIELDS:
                c.error(
                    (*base, "config", key),
                    f"{key!r} is not set in config",
                    f"drop it: {_MIRROR_FLOW_FIELDS[key]} sets it",
                )
        _mirror_config(c, base, mirror.config)


def _mirror_config(c: Checks, base: Loc, config: dict[str, str]) -> None:
    _check_config(c, base, config, "MirrorMaker resolves it from its environment")
    for key, value in config.items():
        for match in connect.REFERENCE.finditer(value):
            if match.group(1) not in MIRROR_PROVIDERS:
                c.error(
                    (*base, "config", key),
                    f"{match.group(0)!r}: MirrorMaker's properties resolve "
                    f"{', '.join('${' + p + ':...}' for p in MIRROR_PROVIDERS)} references",
                    "use one of those providers",
                )
