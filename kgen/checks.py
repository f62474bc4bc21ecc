"""Semantic checks over a whole spec: references, names, cycles, expressions, test cases.

Every check appends a located SpecError and goes on, so the user sees all problems at once.
"""

from __future__ import annotations

import keyword
import re
import sys
from typing import TYPE_CHECKING, Any

from kgen import expr
from kgen.errors import Loc, SpecError
from kgen.spec import BranchStep, DynamicTo, FunctionRef, Logic, Merge, Spec, Stream, To

if TYPE_CHECKING:
    from kgen.load import Locator

_KAFKA_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
# Names the generated package must not shadow: the stdlib and what the app imports.
_TAKEN_PACKAGES = set(sys.stdlib_module_names) | {"confluent_kafka", "rocksdict", "pytest", "tests"}


def package_name(app: str) -> str:
    return app.replace("-", "_")


def is_terminal(step: object) -> bool:
    return isinstance(step, (To, BranchStep))


def stream_outputs(spec: Spec) -> dict[str, Loc]:
    """Every name a stream can be read by: stream names and '<stream>.<branch>' for branches
    that do not write to a topic themselves; mapped to where they are declared."""
    out: dict[str, Loc] = {}
    for i, stream in enumerate(spec.streams):
        if not stream.steps or not is_terminal(stream.steps[-1]):
            out.setdefault(stream.name, ("streams", i, "name"))
        for j, step in enumerate(stream.steps):
            if isinstance(step, BranchStep):
                for b, branch in enumerate(step.branch):
                    if branch.to is None:
                        key = f"{stream.name}.{branch.name}"
                        out.setdefault(key, ("streams", i, "steps", j, "branch", b, "name"))
    return out


def stream_readers(spec: Spec) -> dict[str, list[Loc]]:
    """Which places read each stream output (from_stream and merge)."""
    readers: dict[str, list[Loc]] = {}
    for i, stream in enumerate(spec.streams):
        if stream.from_stream is not None:
            readers.setdefault(stream.from_stream, []).append(("streams", i, "from_stream"))
        for j, step in enumerate(stream.steps):
            if isinstance(step, Merge):
                for name in step.streams:
                    readers.setdefault(name, []).append(("streams", i, "steps", j, "merge"))
    return readers


def check(spec: Spec, where: Locator) -> list[SpecError]:
    return _Checker(spec, where).run()


class _Checker:
    def __init__(self, spec: Spec, where: Locator) -> None:
        self.spec = spec
        self.where = where
        self.problems: list[SpecError] = []
        self.modules = frozenset(spec.imports)

    def error(self, loc: Loc, message: str, hint: str = "") -> None:
        self.problems.append(self.where.error(loc, message, hint))

    def warn(self, loc: Loc, message: str, hint: str = "") -> None:
        self.problems.append(self.where.error(loc, message, hint, warning=True))

    def run(self) -> list[SpecError]:
        self.check_app()
        self.check_topics()
        self.check_streams()
        self.check_graph()
        self.check_tests()
        return self.problems

    def check_app(self) -> None:
        spec = self.spec
        pkg = package_name(spec.app)
        if keyword.iskeyword(pkg) or pkg in _TAKEN_PACKAGES:
            self.error(
                ("app",),
                f"{spec.app!r} would shadow the Python module {pkg!r}",
                "pick another app name",
            )
        if spec.on_error == "dead_letter" and spec.dead_letter_topic is None:
            self.error(
                ("on_error",),
                "on_error = 'dead_letter' needs a dead_letter_topic",
                ("add dead_letter_topic = '<topic>' and declare it under [topics]"),
            )
        if spec.dead_letter_topic is not None:
            self.topic_ref(("dead_letter_topic",), spec.dead_letter_topic)
            if spec.on_error != "dead_letter":
                self.warn(
                    ("dead_letter_topic",),
                    f"unused: on_error is {spec.on_error!r}",
                    ("set on_error = 'dead_letter' to use it"),
                )
        for i, mod in enumerate(spec.imports):
            if mod.split(".")[0] in expr.RECORD_NAMES:
                self.error(
                    ("imports", i), f"module {mod!r} would hide the record field of that name"
                )

    def check_topics(self) -> None:
        for name in self.spec.topics:
            if not _KAFKA_TOPIC.match(name):
                self.warn(
                    ("topics", name),
                    f"{name!r} is not a legal Kafka topic name",
                    ("Kafka allows 1-249 characters of letters, digits, '.', '_' and '-'"),
                )

    def topic_ref(self, loc: Loc, topic: str) -> None:
        if topic not in self.spec.topics:
            known = ", ".join(repr(t) for t in sorted(self.spec.topics)) or "none"
            self.error(
                loc,
                f"unknown topic {topic!r} (declared: {known})",
                (f"declare it: [topics.{_toml_key(topic)}] with key and value formats"),
            )

    def logic(self, loc: Loc, logic: Logic) -> None:
        if isinstance(logic, FunctionRef):
            return
        try:
            expr.parse(logic, self.modules)
        except expr.ExpressionError as exc:
            where = (
                f" (at column {exc.offset + 1} of the expression)" if exc.offset is not None else ""
            )
            self.error(loc, f"{exc}{where}: {logic!r}", exc.hint)

    def check_streams(self) -> None:
        seen: dict[str, int] = {}
        for i, stream in enumerate(self.spec.streams):
            if stream.name in seen:
                self.error(
                    ("streams", i, "name"),
                    f"duplicate stream name {stream.name!r}",
                    (f"streams[{seen[stream.name]}] has it already; names must be unique"),
                )
            seen.setdefault(stream.name, i)
            for t, topic in enumerate(stream.from_topics):
                loc: Loc = (
                    ("streams", i, "from")
                    if isinstance(stream.from_, str)
                    else ("streams", i, "from", t)
                )
                self.topic_ref(loc, topic)
            self.check_steps(i, stream)

    def check_steps(self, i: int, stream: Stream) -> None:
        names: set[str] = set()
        for j, step in enumerate(stream.steps):
            base: Loc = ("streams", i, "steps", j)
            if j > 0 and is_terminal(stream.steps[j - 1]):
                self.error(
                    base,
                    "this step never runs: the step before it ends the stream",
                    ("read the stream elsewhere with from_stream, or move the step before it"),
                )
            if step.name is not None:
                if step.name in names:
                    self.error(
                        (*base, "name"),
                        f"duplicate step name {step.name!r} in stream {stream.name!r}",
                    )
                names.add(step.name)
            if isinstance(step, To):
                if isinstance(step.to, DynamicTo):
                    self.logic((*base, "to", "topic"), step.to.topic)
                    for t, topic in enumerate(step.to.topics):
                        self.topic_ref((*base, "to", "topics", t), topic)
                else:
                    self.topic_ref((*base, "to"), step.to)
            elif isinstance(step, BranchStep):
                self.check_branch(base, step)
            elif isinstance(step, Merge):
                pass  # references are checked with the graph
            else:
                op = next(k for k in type(step).model_fields if k != "name")
                self.logic((*base, op), getattr(step, op))

    def check_branch(self, base: Loc, step: BranchStep) -> None:
        names: set[str] = set()
        for b, branch in enumerate(step.branch):
            loc: Loc = (*base, "branch", b)
            if branch.name in names:
                self.error((*loc, "name"), f"duplicate branch name {branch.name!r}")
            names.add(branch.name)
            if branch.when is None and b != len(step.branch) - 1:
                self.error(
                    loc,
                    f"branch {branch.name!r} has no 'when': only the last branch may be the default",
                    ("add when = '<expression>' or move it to the end"),
                )
            if branch.when is not None:
                self.logic((*loc, "when"), branch.when)
            if branch.to is not None:
                self.topic_ref((*loc, "to"), branch.to)

    def check_graph(self) -> None:
        outputs = stream_outputs(self.spec)
        readers = stream_readers(self.spec)
        for name, locs in readers.items():
            if name not in outputs:
                known = ", ".join(repr(n) for n in sorted(outputs)) or "none"
                for loc in locs:
                    self.error(
                        loc,
                        f"unknown stream {name!r} (readable streams: {known})",
                        (
                            "a stream that ends with 'to' or 'branch' cannot be read; a branch is read as '<stream>.<branch>'"
                        ),
                    )
        for name, loc in outputs.items():
            if name not in readers:
                if "." in name:
                    self.error(
                        loc,
                        f"branch {name!r} goes nowhere",
                        (
                            f"add to = '<topic>' to the branch, or read it with from_stream = {name!r}"
                        ),
                    )
                else:
                    self.error(
                        loc,
                        f"stream {name!r} goes nowhere: it neither ends with 'to' or 'branch' nor is read",
                        ("end it with { to = '<topic>' }"),
                    )
        self.check_cycles(readers)

    def check_cycles(self, readers: dict[str, list[Loc]]) -> None:
        # Edge: the stream producing an output -> the stream reading it.
        index = {s.name: i for i, s in enumerate(self.spec.streams)}
        edges: dict[int, set[int]] = {}
        for name, locs in readers.items():
            src = index.get(name.split(".")[0])
            if src is None:
                continue
            for loc in locs:
                reader = loc[1]
                assert isinstance(reader, int)
                edges.setdefault(src, set()).add(reader)
        state: dict[int, int] = {}  # 1 = on the DFS stack, 2 = done
        reported: set[int] = set()

        def visit(node: int, path: list[int]) -> None:
            state[node] = 1
            for nxt in sorted(edges.get(node, ())):
                if state.get(nxt) == 1:
                    cycle = path[path.index(nxt) :] + [nxt] if nxt in path else [node, nxt]
                    if nxt not in reported:
                        reported.add(nxt)
                        names = " -> ".join(self.spec.streams[c].name for c in cycle)
                        self.error(
                            ("streams", nxt, "name"),
                            f"streams form a cycle: {names}",
                            (
                                "a topology is a DAG; to loop records back, write them to a topic and read it"
                            ),
                        )
                elif nxt not in state:
                    visit(nxt, [*path, nxt])
            state[node] = 2

        for start in range(len(self.spec.streams)):
            if start not in state:
                visit(start, [start])

    def check_tests(self) -> None:
        sources = {t for s in self.spec.streams for t in s.from_topics}
        for c, case in enumerate(self.spec.tests):
            for kind, records in (("input", case.input), ("expect", case.expect)):
                for r, record in enumerate(records):
                    loc: Loc = ("tests", c, kind, r)
                    allowed = sources if kind == "input" else set(self.spec.topics)
                    if record.topic not in allowed:
                        what = "source" if kind == "input" else "declared"
                        known = ", ".join(repr(t) for t in sorted(allowed)) or "none"
                        self.error(
                            (*loc, "topic"),
                            f"{record.topic!r} is not a {what} topic (known: {known})",
                        )
                        continue
                    topic = self.spec.topics[record.topic]
                    for field, fmt in (("key", topic.key), ("value", topic.value)):
                        value = getattr(record, field)
                        if record.topic == self.spec.dead_letter_topic and kind == "expect":
                            fmt = "bytes"
                        problem = _format_mismatch(fmt, value)
                        if problem:
                            self.error((*loc, field), problem)
                    if kind == "input" and record.timestamp is not None and record.timestamp < 0:
                        self.error(
                            (*loc, "timestamp"),
                            "timestamps are >= 0 (Kafka treats negative ones as invalid)",
                        )


def _format_mismatch(fmt: str, value: Any) -> str:
    if value is None or fmt == "json":
        return ""
    ok = {
        "string": isinstance(value, str),
        "bytes": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31,
        "long": isinstance(value, int)
        and not isinstance(value, bool)
        and -(2**63) <= value < 2**63,
        "double": isinstance(value, (int, float)) and not isinstance(value, bool),
    }[fmt]
    if ok:
        return ""
    hint = " (bytes are written as a UTF-8 string)" if fmt == "bytes" else ""
    return f"{value!r} does not fit the topic's {fmt!r} format{hint}"


def _toml_key(name: str) -> str:
    return (
        name
        if re.match(r"^[A-Za-z0-9_-]+$", name)
        else '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    )
