"""The commented starter spec that `kgen init NAME` writes: valid, buildable, and a tour of
every top-level field."""

from __future__ import annotations

import tomllib
from string import Template

from kgen.spec import APP_NAME, Spec, checks, package_name
from kgen.spec.locator import Locator

# `$app` is the app name; topic names derive from it. Optional fields are shown commented out
# with their defaults, so uncommenting one never changes what the spec means until edited.
_STARTER = Template("""\
# $app: a kgen spec. `kgen build specs/$app.toml` turns it into a standalone Kafka stream app
# (Kafka Streams semantics) in generated/$package/; `kgen describe specs/$app.toml` prints its
# topology, and the app's own tests run the [[tests]] cases below with no broker.

# The app name: the Python package ($package) and the Kafka application.id / consumer group.
# Lower case; letters, digits, '_' and '-'.
app = "$app"

# One line for the README and the package docstring.
description = "Keeps paid orders and adds their amount in cents."

# "exactly_once" (transactions, read_committed; Kafka Streams' exactly_once_v2) or
# "at_least_once".
guarantee = "exactly_once"

# How often offsets (and the transaction) are committed. Default: 100 ms under exactly_once,
# 30000 ms under at_least_once, as in Kafka Streams.
# commit_interval_ms = 100

# A record that cannot be decoded or whose expression fails: "fail" stops the app (nothing past
# the record is committed), "skip" logs and drops it, "dead_letter" writes its raw bytes to
# dead_letter_topic with headers naming the error and where the record came from.
on_error = "fail"
# With on_error = "dead_letter": the topic for those records, declared under [topics] too
# (key and value "bytes").
# dead_letter_topic = "$app-dlq"

# Replication factor of the topics the app creates (internal topics, and topics below without
# one): -1 is the broker's default.replication.factor, like Kafka Streams' replication.factor.
# replication_factor = -1

# Warm copies of each store partition that other instances keep (Kafka Streams'
# num.standby.replicas): a dead instance's partitions move without restoring their stores in
# full. The app's --num-standby-replicas overrides it.
# num_standby_replicas = 0

# The memory RocksDB may use in each instance, all its store partitions together (block cache
# and memtables). The app's --rocksdb-memory-mib overrides it.
# rocksdb_memory_mib = 64

# Modules that expressions may use, e.g. ["math", "re"].
imports = []
# kgen checks that the modules of imports and functions can be imported; list here the ones
# that exist only where the app runs (their submodules too), e.g. ["mycompany.rules"].
# runtime_only_modules = []

# Every topic the app reads or writes, with the formats of its keys and values: string, json,
# bytes, int (4 bytes), long (8 bytes), double (8 bytes), byte-compatible with Kafka's Java
# serializers.
[topics.$app-orders]
key = "string"
value = "json"

[topics.$app-paid]
key = "string"
value = "json"
# Set partitions to have the app create the topic at start when it is missing; then
# replication_factor (default: the broker's) and topic config may be set too.
partitions = 3
# replication_factor = 1
# config = { "retention.ms" = "604800000" }

# Streams: each reads topics (`from`) or another stream (`from_stream`, or a branch of one as
# "stream.branch") and runs its steps in order; a stream that does not end with `to` or
# `branch` must be read by another. Steps: filter, filter_not, map, map_values, flat_map,
# flat_map_values, select_key, peek, branch, merge, to. Logic is a Python expression over key,
# value, timestamp and headers, or a function of yours: { function = "package.module:function" }.
[[streams]]
name = "paid-orders"
from = "$app-orders"
steps = [
  # Keep only paid orders (records of other statuses are dropped).
  { filter = "value.get('status') == 'paid'" },
  # Replace the value; the key and timestamp stay the same.
  { map_values = "{**value, 'cents': round(value['amount'] * 100)}" },
  # Write every record to a topic.
  { to = "$app-paid" },
]

# State: group a stream (group_by_key, or group_by = "<new key>") and count, reduce or
# aggregate it into a named store, e.g.
#   steps = [{ group_by = "value['customer']" }, { count = true, store = "orders-per-customer" },
#            { to_stream = true }, { to = "$app-counts" }]
# Stores are RocksDB databases under --state-dir, backed by compacted changelog topics.
# [stores.orders-per-customer]
# type = "rocksdb"             # or "memory" (restored from the whole changelog on start)
# cache_max_entries = 50000    # 0: every update goes downstream at once

# Tables: a topic read as a KTable (latest value per key; a null value deletes the key).
# [[tables]]
# name = "customers"
# from = "$app-customers"
# store = "customers"
# A stream joins a table on its key: { join = "customers", joiner = "{**value, 'c': other}" }
# A stream joins a stream within a window: { join = "clicks", within = "10m", grace = "1m",
# how = "left", joiner = "{**value, 'click': other}" }. A table joins a table by a foreign key
# (first step of a [[tables]] entry): { join = "products", foreign_key = "value['product']",
# joiner = "{**value, 'product': other}" }.
# What the DSL lacks, a processor of yours does (Processor API): { process =
# "mymodule:MyProcessor", stores = ["seen"] }, a class with init(context), process(record) and
# close(), its stores declared under [stores] with key and value formats.

# Global tables: every partition of a topic on every instance (a GlobalKTable), joined by a
# lookup key computed from the record, e.g. { join = "currencies", key = "value['currency']",
# joiner = "{**value, 'rate': other}", how = "left" }.
# [[global_tables]]
# name = "currencies"
# from = "$app-currencies"
# store = "currencies"

# Kafka Connect connectors deployed next to the app (`python -m $package connect apply`): a
# source feeding a topic the app reads, or a sink reading one it writes. Secrets as $${env:VAR}.
# [[connectors]]
# name = "$app-orders-file"
# class = "file-source"          # or "file-sink", "debezium-postgres", any connector class
# [connectors.config]           # converters the config leaves out follow the topic's format
# "file" = "/var/data/orders.jsonl"
# "topic" = "$app-orders"
# "value.converter" = "org.apache.kafka.connect.storage.StringConverter"   # JSON lines as is

# MirrorMaker 2 flows, generated into mm2.properties (`kgen mirror run`).
# [[mirrors]]
# source = { alias = "primary", bootstrap_servers = "localhost:9092" }
# target = { alias = "backup", bootstrap_servers = "localhost:9093" }
# topics = ["$app-.*"]

# Test cases: records piped into source topics and every record expected on the output topics,
# in order (a record without a timestamp gets 0; an expected one without it skips the check).
# They become the generated app's tests (`pytest generated/$package/tests`).
[[tests]]
name = "paid orders get cents, others are dropped"

[[tests.input]]
topic = "$app-orders"
key = "o-1"
value = { status = "paid", amount = 12.5 }
timestamp = 1000

[[tests.input]]
topic = "$app-orders"
key = "o-2"
value = { status = "open", amount = 3.0 }
timestamp = 2000

[[tests.expect]]
topic = "$app-paid"
key = "o-1"
value = { status = "paid", amount = 12.5, cents = 1250 }
timestamp = 1000
""")


def starter_spec(name: str) -> str:
    """The starter spec for app `name`; ValueError if `name` cannot be an app name."""
    if not APP_NAME.match(name):
        raise ValueError(
            f"{name!r} is not a valid app name: it is lower case, starts with a letter and has "
            "only letters, digits, '_' and '-' (it becomes the Python package and the Kafka "
            "application.id)"
        )
    text = _STARTER.substitute(app=name, package=package_name(name))
    # The same checks as `kgen build`, so a name the build would refuse (one that shadows a
    # Python module, say) is refused here, with the build's message.
    spec = Spec.model_validate(tomllib.loads(text))
    errors = [e for e in checks.check(spec, Locator("<starter>", text)) if not e.warning]
    if errors:
        raise ValueError(
            "; ".join(f"{e.message} ({e.hint})" if e.hint else e.message for e in errors)
        )
    return text
