"""Connectors and mirrors of a spec, resolved: each connector's full Connect config (the class
spelled out, converters set from its topics' formats where the spec sets none) and the
MirrorMaker 2 dedicated-mode properties of the spec's mirrors."""

from __future__ import annotations

import json

from kgen import properties
from kgen.plan.models import ConnectorPlan, MirrorFlowPlan, MirrorPlan
from kgen.spec import Connector, Mirror, Spec, connect

# MirrorMaker's replication policies by the spec's name.
POLICIES = {
    "default": "org.apache.kafka.connect.mirror.DefaultReplicationPolicy",
    "identity": "org.apache.kafka.connect.mirror.IdentityReplicationPolicy",
}
_PROVIDER_CLASSES = {
    "env": "org.apache.kafka.common.config.provider.EnvVarConfigProvider",
    "file": "org.apache.kafka.common.config.provider.FileConfigProvider",
    "directory": "org.apache.kafka.common.config.provider.DirectoryConfigProvider",
}


def connectors(spec: Spec) -> tuple[ConnectorPlan, ...]:
    return tuple(_connector(spec, c) for c in spec.connectors)


def _connector(spec: Spec, connector: Connector) -> ConnectorPlan:
    java_class = connect.resolve_class(connector.class_)
    assert java_class is not None  # checked
    found = connect.connector_topics(
        connector.class_, connector.kind, connector.topics, dict(connector.config), [*spec.topics]
    )
    assert found.kind is not None
    config = dict(connector.config)
    config["connector.class"] = java_class
    config["name"] = connector.name
    # Converters the spec leaves out follow the topics' formats (checked to be one per part).
    converters = []
    for part in ("key", "value"):
        setting = f"{part}.converter"
        formats = {getattr(spec.topics[t], part) for t in found.topics if t in spec.topics}
        if setting not in config and len(formats) == 1:
            converter = connect.DEFAULT_CONVERTER[formats.pop()]
            config[setting] = converter
            if converter == connect.JSON:
                config[f"{setting}.schemas.enable"] = "false"
        if setting in config:
            converters.append(config[setting].rsplit(".", 1)[-1])
    env = sorted({v for value in config.values() for v in connect.env_references(value)})
    known = connect.BY_CLASS.get(java_class)
    return ConnectorPlan(
        name=connector.name,
        java_class=java_class,
        kind=found.kind,
        topics=found.topics,
        topics_pattern=found.pattern,
        converters=tuple(converters),
        env=tuple(env),
        plugin=known.plugin if known else "",
        json=json.dumps(dict(sorted(config.items())), indent=2, ensure_ascii=False) + "\n",
    )


def mirror(spec: Spec) -> MirrorPlan | None:
    """The spec's mirrors as one MirrorMaker 2 dedicated-mode config, or None without any."""
    if not spec.mirrors:
        return None
    clusters: dict[str, str] = {}
    cluster_config: dict[str, dict[str, str]] = {}
    for m in spec.mirrors:
        for side in (m.source, m.target):
            clusters.setdefault(side.alias, side.bootstrap_servers)
            cluster_config.setdefault(side.alias, {}).update(side.config)
    settings: list[tuple[str, str]] = [("clusters", ", ".join(clusters))]
    for alias, servers in clusters.items():
        settings.append((f"{alias}.bootstrap.servers", servers))
        settings += [(f"{alias}.{k}", v) for k, v in sorted(cluster_config[alias].items())]
    settings.append(("replication.policy.class", POLICIES[spec.mirrors[0].replication_policy]))
    flows = []
    for m in spec.mirrors:
        flow = f"{m.source.alias}->{m.target.alias}"
        settings += [
            (f"{flow}.enabled", "true"),
            (f"{flow}.topics", ", ".join(m.topics)),
            (f"{flow}.groups", ", ".join(m.groups)),
            (f"{flow}.emit.checkpoints.enabled", _bool(m.emit_checkpoints)),
            (f"{flow}.sync.group.offsets.enabled", _bool(m.sync_group_offsets)),
        ]
        settings += [(f"{flow}.{k}", v) for k, v in sorted(m.config.items())]
        flows.append(_flow(m))
    providers = sorted(
        {
            match.group(1)
            for _, value in settings
            for match in connect.REFERENCE.finditer(value)
            if match.group(1) in _PROVIDER_CLASSES
        }
    )
    if providers:
        # Secrets stay references in the file: MirrorMaker resolves them when it starts.
        settings.append(("config.providers", ",".join(providers)))
        settings += [(f"config.providers.{p}.class", _PROVIDER_CLASSES[p]) for p in providers]
    lines = tuple(f"{properties.key(k)} = {properties.value(v)}" for k, v in settings)
    return MirrorPlan(tuple(flows), lines)


def _flow(m: Mirror) -> MirrorFlowPlan:
    return MirrorFlowPlan(
        source=m.source.alias,
        source_bootstrap=m.source.bootstrap_servers,
        target=m.target.alias,
        target_bootstrap=m.target.bootstrap_servers,
        topics=tuple(m.topics),
        groups=tuple(m.groups),
        policy=m.replication_policy,
        emit_checkpoints=m.emit_checkpoints,
        sync_group_offsets=m.sync_group_offsets,
    )


def _bool(value: bool) -> str:
    return "true" if value else "false"
