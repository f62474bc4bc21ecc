"""Where each name that carries state comes from in the spec: the entry or step that makes a
store or an internal topic, and the line that keeps its name when the spec around it changes
(kgen.evolution points its errors there and quotes that line in its hints)."""

from __future__ import annotations

import json

from kgen.plan import graph
from kgen.plan.models import StateOrigin
from kgen.spec import Process, Spec, Stream, Table

Loc = tuple[str | int, ...]

# Nodes that own the store they name (a join's `store` is the table's it reads).
_OWNERS = ("table_source", "count", "reduce", "aggregate", "suppress")
_TABLE_OPS = ("filter", "filter_not", "map_values")


def _keep(field: str, value: str) -> str:
    return f"{field} = {json.dumps(value)}"


def state_origins(spec: Spec, g: graph.Graph) -> tuple[StateOrigin, ...]:
    """Every store and internal topic of the graph with its origin, sorted by name; the first
    node that makes a name is its origin."""
    steps: dict[int, tuple[Loc, str]] = {}
    items: list[tuple[str, int, Stream | Table]] = [
        *(("streams", i, s) for i, s in enumerate(spec.streams)),
        *(("tables", i, t) for i, t in enumerate(spec.tables)),
    ]
    for section, i, item in items:
        for j, step in enumerate(item.steps):
            steps[id(step)] = ((section, i, "steps", j), item.name)
    tables = {t.name: i for i, t in enumerate(spec.tables)}
    found: dict[str, StateOrigin] = {}

    def add(name: str, loc: Loc, entry: str, keep: str) -> None:
        found.setdefault(name, StateOrigin(name, loc, entry, keep))

    for node in g.walk():
        if node.kind == "table_source" and node.store is not None and node.entry is not None:
            index = tables[node.entry]
            add(node.store, ("tables", index), node.entry, _keep("store", node.store))
            continue
        if node.step is None or id(node.step) not in steps:
            continue
        loc, entry = steps[id(node.step)]
        if node.kind == "repartition":
            topic = node.topics[0]
            label = topic.removeprefix(f"{spec.app}-").removesuffix("-repartition")
            # A stream-stream join's are named after the stream and the step: no one field
            # keeps them.
            joined = node.partitions_from and label.endswith(("-left", "-right"))
            add(topic, loc, entry, "" if joined else _keep("name", label))
        elif node.sjoin is not None:
            side = node.sjoin
            base = side.this_store.removesuffix("-this-join-store").removesuffix(
                "-other-join-store"
            )
            for store in (side.this_store, side.other_store, side.shared_store):
                if store is not None:
                    add(store, loc, entry, _keep("store", base))
        elif node.fk is not None and node.kind == "fk_subscribe":
            fk = node.fk
            keep = _keep("name", fk.name)
            for name in (fk.subscription_store, fk.subscription_topic, fk.response_topic):
                add(name, loc, entry, keep)
        elif node.kind == "process" and isinstance(node.step, Process):
            stores = "stores = [" + ", ".join(json.dumps(s) for s in node.step.stores) + "]"
            for k, store in enumerate(node.step.stores):
                add(store, (*loc, "stores", k), entry, stores)
        elif node.store is not None and node.kind in (*_OWNERS, *_TABLE_OPS):
            add(node.store, loc, entry, _keep("store", node.store))
            if node.window is not None and node.window.emit == "final":
                add(f"{node.store}-final", loc, entry, _keep("store", node.store))
    for i, glob in enumerate(spec.global_tables):
        add(glob.store, ("global_tables", i), glob.name, _keep("store", glob.store))
    return tuple(found[name] for name in sorted(found))
