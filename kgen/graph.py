"""The processor graph of a spec: streams and their steps wired into nodes, like Kafka Streams'
InternalTopologyBuilder, before any code is written."""

from __future__ import annotations

from dataclasses import dataclass, field

from kgen.checks import is_terminal
from kgen.spec import (
    BranchStep,
    DynamicTo,
    Filter,
    FilterNot,
    FlatMap,
    FlatMapValues,
    Logic,
    Map,
    MapValues,
    Merge,
    Peek,
    SelectKey,
    Spec,
    StepBase,
    Stream,
    To,
)

_KINDS: dict[type[StepBase], str] = {
    Filter: "filter",
    FilterNot: "filter_not",
    Map: "map",
    MapValues: "map_values",
    FlatMap: "flat_map",
    FlatMapValues: "flat_map_values",
    SelectKey: "select_key",
    Peek: "peek",
}


@dataclass(eq=False)
class Node:
    name: str
    # source, filter, filter_not, map, map_values, flat_map, flat_map_values, select_key, peek,
    # branch, branch_child, merge, passthrough, sink, dynamic_sink
    kind: str
    logic: Logic | None = None
    topics: list[str] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)
    # For a branch node: (predicate or None for the default, the branch's child node).
    branches: list[tuple[Logic | None, Node]] = field(default_factory=list)

    def successors(self) -> list[Node]:
        return [child for _, child in self.branches] + self.children


@dataclass
class Graph:
    sources: list[Node]

    def walk(self) -> list[Node]:
        """Every node once, sources first, in a stable breadth-first order."""
        seen: set[int] = set()
        order: list[Node] = []
        queue = list(self.sources)
        while queue:
            node = queue.pop(0)
            if id(node) in seen:
                continue
            seen.add(id(node))
            order.append(node)
            queue.extend(node.successors())
        return order

    def components(self) -> list[list[Node]]:
        """Sub-topologies: nodes connected in either direction, in source order."""
        parent: dict[int, int] = {}

        def find(x: int) -> int:
            while parent.setdefault(x, x) != x:
                x = parent[x]
            return x

        nodes = self.walk()
        for node in nodes:
            for succ in node.successors():
                parent[find(id(succ))] = find(id(node))
        groups: dict[int, list[Node]] = {}
        for node in nodes:
            groups.setdefault(find(id(node)), []).append(node)
        return list(groups.values())


class _Names:
    def __init__(self) -> None:
        self.used: set[str] = set()

    def new(self, base: str) -> str:
        name, n = base, 1
        while name in self.used:
            n += 1
            name = f"{base}-{n}"
        self.used.add(name)
        return name


def build(spec: Spec) -> Graph:
    """Wire a checked spec into nodes; stream references become edges."""
    names = _Names()
    outputs: dict[str, Node] = {}
    pending: list[tuple[str, Node]] = []
    sources: list[Node] = []
    for stream in spec.streams:
        _build_stream(stream, names, outputs, pending, sources)
    for output, node in pending:
        outputs[output].children.append(node)
    return Graph(sources)


def _build_stream(
    stream: Stream,
    names: _Names,
    outputs: dict[str, Node],
    pending: list[tuple[str, Node]],
    sources: list[Node],
) -> None:
    prev: Node | None = None
    if stream.from_topics:
        prev = Node(names.new(f"{stream.name}-source"), "source", topics=stream.from_topics)
        sources.append(prev)

    def attach(node: Node) -> None:
        nonlocal prev
        if prev is None:
            assert stream.from_stream is not None
            pending.append((stream.from_stream, node))
        else:
            prev.children.append(node)
        prev = node

    for step in stream.steps:
        base = f"{stream.name}-{step.name}" if step.name else None
        if isinstance(step, Merge):
            node = Node(names.new(base or f"{stream.name}-merge"), "merge")
            attach(node)
            pending.extend((other, node) for other in step.streams)
        elif isinstance(step, To):
            if isinstance(step.to, DynamicTo):
                node = Node(
                    names.new(base or f"{stream.name}-to"),
                    "dynamic_sink",
                    step.to.topic,
                    list(step.to.topics),
                )
            else:
                node = Node(names.new(base or f"{stream.name}-to"), "sink", topics=[step.to])
            attach(node)
        elif isinstance(step, BranchStep):
            node = Node(names.new(base or f"{stream.name}-branch"), "branch")
            attach(node)
            for branch in step.branch:
                child = Node(names.new(f"{stream.name}.{branch.name}"), "branch_child")
                node.branches.append((branch.when, child))
                if branch.to is not None:
                    child.children.append(
                        Node(
                            names.new(f"{stream.name}.{branch.name}-to"), "sink", topics=[branch.to]
                        )
                    )
                else:
                    outputs[f"{stream.name}.{branch.name}"] = child
        else:
            kind = _KINDS[type(step)]
            node = Node(
                names.new(base or f"{stream.name}-{kind.replace('_', '-')}"),
                kind,
                getattr(step, kind),
            )
            attach(node)
    if prev is None:
        attach(Node(names.new(f"{stream.name}-passthrough"), "passthrough"))
    if not (stream.steps and is_terminal(stream.steps[-1])):
        assert prev is not None
        outputs[stream.name] = prev
