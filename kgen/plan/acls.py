"""The least-privilege ACLs of a generated app, from its plan: what its clients ask the
broker for, and nothing more (rendered into the app as data: `<app>/acls.py`).

Read from the runtime's templates: the consumer joins the group `app_id` and reads the
sources (and repartition topics); the producer writes sinks, the dead-letter topic and
internal topics, under exactly-once with transactional ids `<app_id>-<instance>`; the admin
client lists topics (DESCRIBE), creates the missing topics the spec gives partitions and the
internal topics (CREATE), reads existing changelogs' cleanup.policy (DESCRIBE_CONFIGS),
deletes consumed repartition records (DELETE, only where there are repartition topics; a
refused purge stops the app, since those topics would otherwise grow without bound) and
describes the group (standbys, interactive queries: DESCRIBE, implied by READ). Restore,
standby and global-table consumers are assigned partitions and commit nothing, but have a
group id (`<app_id>-restore`, `-standby`, `-global`) whose coordinator librdkafka looks up:
DESCRIBE on it (the standby one only when the app keeps standby replicas). Under the
consumer group protocol the app also reads and sets its group's session time-out
(ALTER_CONFIGS on the group, which implies DESCRIBE_CONFIGS; refused, the app stops).

No other DESCRIBE: READ, WRITE and DELETE imply it, so each ACL listed is one the app needs.
No IDEMPOTENT_WRITE on the cluster: since Kafka 3.0 (KIP-679) an idempotent producer may
initialise with WRITE on any topic, which every app has.
"""

import json
from dataclasses import dataclass

from kgen.plan.models import AppPlan

# The `when` of ACLs only the consumer group protocol, exactly-once, or standby replicas need.
CONSUMER_PROTOCOL = "consumer-protocol"
EXACTLY_ONCE = "exactly-once"
STANDBYS = "standbys"


@dataclass(frozen=True)
class Acl:
    """One ALLOW ACL: `operation` on the resource (`resource_type`, `pattern_type`, `name`)."""

    resource_type: str  # TOPIC | GROUP | TRANSACTIONAL_ID | CLUSTER
    pattern_type: str  # LITERAL | PREFIXED
    name: str
    operation: str  # READ | WRITE | CREATE | DELETE | DESCRIBE | DESCRIBE_CONFIGS | ALTER_CONFIGS
    why: str
    when: str = ""  # "" (always), CONSUMER_PROTOCOL, EXACTLY_ONCE or STANDBYS

    def as_tuple(self) -> tuple[str, str, str, str, str, str]:
        """The fields in order, for the generated app's data."""
        return (
            self.resource_type,
            self.pattern_type,
            self.name,
            self.operation,
            self.why,
            self.when,
        )


def required(plan: AppPlan) -> tuple[Acl, ...]:
    """Every ACL the app `plan` needs, in a stable order, without duplicates."""
    acls: list[Acl] = []

    def add(
        kind: str,
        pattern: str,
        name: str,
        operations: tuple[str, ...],
        why: str,
        *,
        when: str = "",
    ) -> None:
        for operation in operations:
            acl = Acl(kind, pattern, name, operation, why, when)
            if all(
                (a.resource_type, a.pattern_type, a.name, a.operation)
                != (kind, pattern, name, operation)
                for a in acls
            ):
                acls.append(acl)

    created = {t.name for t in plan.topics if t.partitions is not None}
    for topic in plan.source_topics:
        add("TOPIC", "LITERAL", topic, ("READ",), "source topic")
    for topic in plan.global_topics:
        add("TOPIC", "LITERAL", topic, ("READ",), "global table's topic")
    outputs = [*plan.sink_topics]
    if plan.dead_letter_topic:
        outputs.append(plan.dead_letter_topic)
    for topic in outputs:
        why = "dead-letter topic" if topic == plan.dead_letter_topic else "sink topic"
        add("TOPIC", "LITERAL", topic, ("WRITE",), why)
    for topic in [*plan.source_topics, *plan.global_topics, *outputs]:
        if topic in created:
            add("TOPIC", "LITERAL", topic, ("CREATE",), "created at start when missing")
    prefix = f"{plan.app_id}-"
    if plan.stateful:
        # Consumed repartition records are deleted (DELETE); nothing else is.
        purged = any(t.kind == "repartition" for t in plan.internal_topics)
        operations = (
            "CREATE",
            "READ",
            "WRITE",
            *(["DELETE"] if purged else []),
            "DESCRIBE_CONFIGS",
        )
        why = "internal topics (changelog): created, read, written"
        if purged:
            why = "internal topics (repartition, changelog): created, read, written, purged"
        names = [t.name for t in plan.internal_topics]
        if all(name.startswith(prefix) for name in names):
            add("TOPIC", "PREFIXED", prefix, operations, why)
        else:
            for name in names:
                add("TOPIC", "LITERAL", name, operations, why)
    add("GROUP", "LITERAL", plan.app_id, ("READ",), "the app's consumer group")
    # Assigned partitions, no commits: only the group coordinator is looked up (DESCRIBE).
    helpers = [
        ("restore", plan.stateful, "restores stores from changelogs", ""),
        ("standby", plan.standbys, "keeps standby replicas", STANDBYS),
        ("global", bool(plan.global_tables), "loads global tables", ""),
    ]
    for suffix, used, what, when in helpers:
        if used:
            why = f"the consumer that {what} (assigned partitions, commits nothing)"
            add("GROUP", "LITERAL", f"{plan.app_id}-{suffix}", ("DESCRIBE",), why, when=when)
    why = "exactly-once: a transactional id per instance"
    add("TRANSACTIONAL_ID", "PREFIXED", prefix, ("WRITE",), why, when=EXACTLY_ONCE)
    why = "--group-protocol consumer: reads and sets the group's session time-out"
    add("GROUP", "LITERAL", plan.app_id, ("ALTER_CONFIGS",), why, when=CONSUMER_PROTOCOL)
    return tuple(acls)


def connect_required(plan: AppPlan) -> tuple[Acl, ...]:
    """The ACLs the Kafka Connect worker's principal needs for the spec's connectors: a
    source writes its topics (and creates them when its config sets `topic.creation.*`), a
    sink reads its topics in the group `connect-<name>` (unless `consumer.override.group.id`),
    a dead-letter queue is written (and created). The worker's own group and internal topics
    depend on its config, not the spec: the generated `acls --connect` adds them."""
    acls: list[Acl] = []
    for connector in plan.connectors:
        config = json.loads(connector.json)
        who = f"{connector.kind} connector {connector.name}"
        creates = any(key.startswith("topic.creation.") for key in config)
        for topic in connector.topics:
            if connector.kind == "source":
                acls.append(Acl("TOPIC", "LITERAL", topic, "WRITE", f"written by {who}"))
                if creates:
                    why = f"created by the worker for {who} (topic.creation.*)"
                    acls.append(Acl("TOPIC", "LITERAL", topic, "CREATE", why))
            else:
                acls.append(Acl("TOPIC", "LITERAL", topic, "READ", f"read by {who}"))
        if connector.kind == "sink":
            group = config.get("consumer.override.group.id", f"connect-{connector.name}")
            acls.append(Acl("GROUP", "LITERAL", group, "READ", f"the consumer group of {who}"))
            dead_letters = config.get("errors.deadletterqueue.topic.name")
            if dead_letters:
                why = f"the dead-letter queue of {who}"
                acls.append(Acl("TOPIC", "LITERAL", dead_letters, "WRITE", why))
                acls.append(Acl("TOPIC", "LITERAL", dead_letters, "CREATE", why))
    unique: dict[tuple[str, str, str, str], Acl] = {}
    for acl in acls:
        unique.setdefault((acl.resource_type, acl.pattern_type, acl.name, acl.operation), acl)
    return tuple(unique.values())
