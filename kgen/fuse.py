"""Fusing a source's processor chain into straight-line Python: no per-record dispatch.

Each path from a source to a sink becomes nested code in one loop body: a filter is an `if`, a
flat_map a `for`, a branch an `if/elif/else`, a merge is inlined into each of its inputs. Keys
and values stay raw bytes until an expression reads them, so a record that only passes through
is never decoded and re-encoded (the payments filter reads the key and never touches the value).
Every step gets fresh variable names, so sibling paths cannot see each other's values.
"""

from __future__ import annotations

from dataclasses import dataclass

from kgen import expr
from kgen.graph import Node
from kgen.spec import FunctionRef, Logic


@dataclass(frozen=True)
class Var:
    """Where a record's key or value is: decoded in `name`, and/or still as the source's bytes
    in `raw` (of format `fmt`) while no step has changed it."""

    name: str | None
    raw: str | None = None
    fmt: str | None = None


Env = dict[str, Var]


@dataclass(frozen=True)
class TopicFormats:
    key: str
    value: str


def function_alias(ref: FunctionRef) -> str:
    module, function = ref.function.split(":")
    return f"_{module.replace('.', '_')}_{function}"


class Fuser:
    """Emits the code of one source topic's records, given that topic's formats."""

    def __init__(
        self,
        topics: dict[str, TopicFormats],
        modules: frozenset[str],
        aliases: dict[str, str] | None = None,
    ) -> None:
        self.topics = topics
        self.modules = modules
        # 'module:function' -> the name it is imported as, when the plan had to disambiguate.
        self.aliases = aliases or {}
        self.lines: list[str] = []
        self.counter = 0
        self.serde: set[str] = set()

    def fuse(self, source: Node, topic: str) -> list[str]:
        self.lines = []
        formats = self.topics[topic]
        # Every part of the record is read from the message where it is used, and only then:
        # a record a filter drops never has its timestamp or headers fetched.
        env = {
            "key": Var(None, "msg.key()", formats.key),
            "value": Var(None, "msg.value()", formats.value),
            "timestamp": Var(None, "msg.timestamp()[1]"),
            "headers": Var(None, "msg.headers()"),
        }
        for child in source.children:
            self.node(child, dict(env), 0)
        return self.lines

    # -- helpers -----------------------------------------------------------------------------

    def emit(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def decoded(self, env: Env, field: str, depth: int) -> str:
        """The name of a decoded key/value, decoding the raw bytes here if not done yet."""
        var = env[field]
        if var.name is not None:
            return var.name
        assert var.raw is not None
        name = self.fresh({"timestamp": "ts", "headers": "hd"}.get(field, field[0]))
        if var.fmt is None:  # timestamp, headers: no format, just a name for expressions
            self.emit(depth, f"{name} = {var.raw}")
        else:
            fn = f"deserialize_{var.fmt}"
            self.serde.add(fn)
            self.emit(depth, f"{name} = {fn}({var.raw})")
        env[field] = Var(name, var.raw, var.fmt)
        return name

    def plain(self, env: Env, field: str) -> str:
        """Timestamp or headers for a produced record: the name if there is one, else a read."""
        var = env[field]
        return var.name or str(var.raw)

    def encoded(self, env: Env, field: str, fmt: str) -> str:
        var = env[field]
        if var.raw is not None and var.fmt == fmt:
            return var.raw  # unchanged bytes in the sink's own format: pass them through
        value = var.name
        if value is None:
            self.serde.add(f"deserialize_{var.fmt}")
            value = f"deserialize_{var.fmt}({var.raw})"
        self.serde.add(f"serialize_{fmt}")
        return f"serialize_{fmt}({value})"

    def uses(self, logic: Logic) -> frozenset[str]:
        if isinstance(logic, FunctionRef):
            return frozenset({"key", "value"})
        return expr.parse(logic, self.modules).uses

    def call(self, logic: Logic, env: Env) -> str:
        """Code evaluating `logic` over the (already decoded) record in env."""
        if isinstance(logic, FunctionRef):
            alias = self.aliases.get(logic.function) or function_alias(logic)
            return f"{alias}({env['key'].name}, {env['value'].name})"
        # Only what the expression reads is decoded (prepare); the rest is never named.
        names = {f: var.name for f, var in env.items() if var.name is not None}
        return expr.parse(logic, self.modules).render(names)

    def prepare(self, logics: list[Logic], env: Env, depth: int) -> None:
        needed = set().union(*(self.uses(lg) for lg in logics)) if logics else set()
        for field in ("key", "value", "timestamp", "headers"):
            if field in needed:
                self.decoded(env, field, depth)

    # -- nodes -------------------------------------------------------------------------------

    def children(self, node: Node, env: Env, depth: int) -> None:
        for child in node.children:
            self.node(child, dict(env), depth)

    def node(self, node: Node, env: Env, depth: int) -> None:
        kind = node.kind
        if kind in ("merge", "passthrough", "branch_child"):
            self.children(node, env, depth)
            return
        if kind == "sink":
            self.produce(node.topics[0], env, depth, repr(node.topics[0]))
            return
        if kind == "branch":
            self.branch(node, env, depth)
            return
        assert node.logic is not None
        if kind == "dynamic_sink":
            self.dynamic_sink(node, env, depth)
            return
        self.prepare([node.logic], env, depth)
        code = self.call(node.logic, env)
        if kind == "filter":
            self.emit(depth, f"if {code}:")
            self.children(node, env, depth + 1)
        elif kind == "filter_not":
            self.emit(depth, f"if not ({code}):")
            self.children(node, env, depth + 1)
        elif kind == "peek":
            self.emit(depth, code)
            self.children(node, env, depth)
        elif kind == "map":
            k, v = self.fresh("k"), self.fresh("v")
            self.emit(depth, f"{k}, {v} = {code}")
            env.update(key=Var(k), value=Var(v))
            self.children(node, env, depth)
        elif kind == "map_values":
            v = self.fresh("v")
            self.emit(depth, f"{v} = {code}")
            env["value"] = Var(v)
            self.children(node, env, depth)
        elif kind == "select_key":
            k = self.fresh("k")
            self.emit(depth, f"{k} = {code}")
            env["key"] = Var(k)
            self.children(node, env, depth)
        elif kind == "flat_map":
            k, v = self.fresh("k"), self.fresh("v")
            self.emit(depth, f"for {k}, {v} in {code}:")
            env.update(key=Var(k), value=Var(v))
            self.children(node, env, depth + 1)
        elif kind == "flat_map_values":
            v = self.fresh("v")
            self.emit(depth, f"for {v} in {code}:")
            env["value"] = Var(v)
            self.children(node, env, depth + 1)
        else:  # pragma: no cover - the graph only builds the kinds above
            raise AssertionError(kind)

    def branch(self, node: Node, env: Env, depth: int) -> None:
        # Decode everything any predicate reads first: nothing may stand between `elif`s.
        self.prepare([p for p, _ in node.branches if p is not None], env, depth)
        for i, (predicate, child) in enumerate(node.branches):
            if predicate is None and i == 0:
                # A lone default branch takes every record: there is no condition to test.
                self.node(child, dict(env), depth)
                continue
            if predicate is None:
                self.emit(depth, "else:")
            else:
                self.emit(depth, f"{'if' if i == 0 else 'elif'} {self.call(predicate, env)}:")
            self.node(child, dict(env), depth + 1)

    def dynamic_sink(self, node: Node, env: Env, depth: int) -> None:
        assert node.logic is not None
        self.prepare([node.logic], env, depth)
        target = self.fresh("t")
        self.emit(depth, f"{target} = {self.call(node.logic, env)}")
        groups: dict[TopicFormats, list[str]] = {}
        for topic in node.topics:
            groups.setdefault(self.topics[topic], []).append(topic)
        allowed = tuple(node.topics)
        for i, topics in enumerate(groups.values()):
            self.emit(depth, f"{'if' if i == 0 else 'elif'} {target} in {tuple(topics)!r}:")
            self.produce(topics[0], dict(env), depth + 1, target)
        self.emit(depth, "else:")
        self.emit(depth + 1, f"raise UnknownTopicError({target}, {allowed!r})")

    def produce(self, topic: str, env: Env, depth: int, topic_code: str) -> None:
        formats = self.topics[topic]
        key = self.encoded(env, "key", formats.key)
        value = self.encoded(env, "value", formats.value)
        # Output keeps the input record's timestamp and headers, as in Kafka Streams.
        timestamp, headers = self.plain(env, "timestamp"), self.plain(env, "headers")
        self.emit(
            depth,
            f"produce({topic_code}, {value}, {key}, timestamp={timestamp}, headers={headers})",
        )
