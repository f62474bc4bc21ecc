"""Plan -> {relative path: file text}: Jinja templates, black-formatted in memory.

A pure function: nothing touches the disk here, so `build` and `check` share every byte.
"""

from __future__ import annotations

import functools
import json
import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import black
import jinja2
from black.mode import TargetVersion

from kgen.evolution import lock
from kgen.plan import acls, describe
from kgen.plan.models import AppPlan

BLACK_MODE = black.Mode(target_versions={TargetVersion.PY311}, line_length=100)

# (template, output path); `{pkg}` is the app's package name.
FILES = (
    ("app/pyproject.toml.j2", "pyproject.toml"),
    ("app/README.md.j2", "README.md"),
    ("app/package/__init__.py.j2", "{pkg}/__init__.py"),
    ("app/package/__main__.py.j2", "{pkg}/__main__.py"),
    ("app/package/settings.py.j2", "{pkg}/settings.py"),
    ("app/package/reset.py.j2", "{pkg}/reset.py"),
    ("app/package/acls.py.j2", "{pkg}/acls.py"),
    ("app/package/connect.py.j2", "{pkg}/connect.py"),
    ("app/mm2.properties.j2", "mm2.properties"),
    ("app/package/serde.py.j2", "{pkg}/serde.py"),
    ("app/package/errors.py.j2", "{pkg}/errors.py"),
    ("app/package/topology.py.j2", "{pkg}/topology.py"),
    ("app/package/runtime.py.j2", "{pkg}/runtime.py"),
    ("app/package/workers.py.j2", "{pkg}/workers.py"),
    ("app/package/recovery.py.j2", "{pkg}/recovery.py"),
    ("app/package/rebalance.py.j2", "{pkg}/rebalance.py"),
    ("app/package/tasks.py.j2", "{pkg}/tasks.py"),
    ("app/package/collector.py.j2", "{pkg}/collector.py"),
    ("app/package/topics.py.j2", "{pkg}/topics.py"),
    ("app/package/logs.py.j2", "{pkg}/logs.py"),
    ("app/package/watchdog.py.j2", "{pkg}/watchdog.py"),
    ("app/package/server.py.j2", "{pkg}/server.py"),
    ("app/package/metrics.py.j2", "{pkg}/metrics.py"),
    ("app/package/driver.py.j2", "{pkg}/driver.py"),
    ("app/package/state.py.j2", "{pkg}/state.py"),
    ("app/package/backends.py.j2", "{pkg}/backends.py"),
    ("app/package/restore.py.j2", "{pkg}/restore.py"),
    ("app/package/global_tables.py.j2", "{pkg}/global_tables.py"),
    ("app/package/joins.py.j2", "{pkg}/joins.py"),
    ("app/package/fk.py.j2", "{pkg}/fk.py"),
    ("app/package/processors.py.j2", "{pkg}/processors.py"),
    ("app/package/standby.py.j2", "{pkg}/standby.py"),
    ("app/package/queries.py.j2", "{pkg}/queries.py"),
    ("app/package/py.typed.j2", "{pkg}/py.typed"),
    ("app/tests/conftest.py.j2", "tests/conftest.py"),
    ("app/tests/test_topology.py.j2", "tests/test_{pkg}_topology.py"),
    ("app/tests/test_serde.py.j2", "tests/test_{pkg}_serde.py"),
    ("app/tests/test_broker.py.j2", "tests/test_{pkg}_broker.py"),
    ("app/tests/test_state.py.j2", "tests/test_{pkg}_state.py"),
)
# Only apps with state stores get these.
# Only for apps with a sub-topology that reads several topics (timestamp-ordered tasks).
TASKS_ONLY = frozenset({"app/package/tasks.py.j2"})
# Only for apps with global tables.
GLOBAL_ONLY = frozenset({"app/package/global_tables.py.j2"})
# Only for apps with stream-stream joins.
JOINS_ONLY = frozenset({"app/package/joins.py.j2"})
# Only for apps with foreign-key joins.
FK_ONLY = frozenset({"app/package/fk.py.j2"})
# Only for apps with connectors, and with mirrors.
CONNECT_ONLY = frozenset({"app/package/connect.py.j2"})
MIRROR_ONLY = frozenset({"app/mm2.properties.j2"})
PROCESSORS_ONLY = frozenset({"app/package/processors.py.j2"})
# Standby replicas copy RocksDB stores.
STANDBY_ONLY = frozenset({"app/package/standby.py.j2"})
STATEFUL_ONLY = frozenset(
    {
        "app/package/state.py.j2",
        "app/package/backends.py.j2",
        "app/package/restore.py.j2",
        "app/package/queries.py.j2",
        "app/tests/test_state.py.j2",
    }
)


def templates_dir() -> Path:
    """templates/ beside kgen/ in a checkout; kgen/templates in an installed wheel."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package.parent / "templates", package / "templates"):
        if (candidate / "app").is_dir():
            return candidate
    raise FileNotFoundError(f"kgen's templates are neither in {package.parent} nor in {package}")


def py(value: Any) -> str:
    """A spec value as a Python literal: repr() quotes every string safely.

    TOML has inf and nan, whose repr() is not a literal; they become float("inf") etc.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return f'float("{value!r}")'
    if isinstance(value, dict):
        return "{" + ", ".join(f"{py(k)}: {py(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(py(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(py(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if value is None or isinstance(value, (str, bytes, int, float)):
        return repr(value)
    raise TypeError(f"{value!r} ({type(value).__name__}) has no Python literal in generated code")


def _printable(text: str) -> str:
    # Control characters (NUL above all) are not allowed in Python source, even in comments.
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def comment(value: object) -> str:
    """Text for a '#' comment: one line, whatever the spec said."""
    return _printable(" ".join(str(value).split()))


def doc(value: object) -> str:
    """Text for a triple-quoted docstring: no quote or backslash can end or break it."""
    return _printable(str(value).replace("\\", "\\\\").replace('"', '\\"'))


@functools.cache
def environment() -> jinja2.Environment:
    """One environment per process: it compiles each template once (and reloads a template
    whose file changed)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters.update(
        py=py, comment=comment, doc=doc, tojson=lambda v: json.dumps(v, sort_keys=True)
    )
    return env


def header(plan: AppPlan, prefix: str) -> str:
    source = comment(plan.spec_path)
    return (
        f"{prefix} Code generated by kgen {plan.kgen_version} from {source}. DO NOT EDIT.\n"
        f"{prefix} spec sha256:{plan.spec_sha256}"
    )


def render(plan: AppPlan) -> dict[str, str]:
    env = environment()
    context = {
        "plan": plan,
        "describe_text": describe.text(plan),
        "mermaid": describe.mermaid(plan),
        "acls": acls.required(plan),
        "connect_acls": acls.connect_required(plan),
    }
    files: dict[str, str] = {}
    python: dict[str, tuple[str, str]] = {}  # path -> (header lines, the rest)
    for template, target in FILES:
        if template == "app/tests/test_state.py.j2" and not plan.stores:
            continue
        if template in STATEFUL_ONLY and not plan.stateful:
            if not (plan.global_tables and template == "app/package/backends.py.j2"):
                continue
        if template in GLOBAL_ONLY and not plan.global_tables:
            continue
        if template in JOINS_ONLY and not plan.join_sides:
            continue
        if template in FK_ONLY and not plan.foreign_key_joins:
            continue
        if template in CONNECT_ONLY and not plan.connectors:
            continue
        if template in MIRROR_ONLY and plan.mirror is None:
            continue
        if template in PROCESSORS_ONLY and not plan.processors:
            continue
        if template in STANDBY_ONLY and not plan.standbys:
            continue
        if template in TASKS_ONLY and not plan.task_groups:
            continue  # no sub-topology reads several topics: records go in fetch order
        path = target.format(pkg=plan.package)
        head = _header_for(plan, path)
        text = env.get_template(template).render(header=head, **context)
        if path.endswith(".py"):
            python[path] = _split(text, head)
        else:
            files[path] = text
    files.update(_format(python))
    # Each connector's config, as the Connect REST API takes it (JSON has no comments: no
    # header; the README and connect.py say where they come from).
    for connector in plan.connectors:
        files[f"{plan.package}/connectors/{connector.name}.json"] = connector.json
    # What carries state across deployments (kgen.evolution); `kgen build` adds the resets
    # accepted so far.
    files[lock.FILE] = lock.dumps(lock.from_plan(plan))
    return dict(sorted(files.items()))


def _split(text: str, head: str) -> tuple[str, str]:
    """A Python file's header (two comment lines naming the spec) and the rest: black leaves
    the header as it is, and it is all that differs between many apps' copies of a file."""
    if head and text.startswith(head + "\n"):
        return head + "\n", text[len(head) + 1 :]
    return "", text


# black's output per input text (black is deterministic): the same file of another app with
# the same features, or `check` and the golden tests in one process, is formatted once.
_FORMATTED: dict[str, str] = {}
_FORMATTED_MAX = 4096
# Below this many texts to format, a worker process costs more than it saves.
_POOL_MIN = 4


def _format(python: dict[str, tuple[str, str]]) -> dict[str, str]:
    """black on every file's text after its header: new texts in worker processes, one per
    core (black takes ~80% of a build), the output identical to formatting them one by one."""
    new = sorted({body for _, body in python.values()} - _FORMATTED.keys())
    done: list[str] | None = None
    if len(new) >= _POOL_MIN and (pool := _pool()) is not None:
        try:
            done = list(pool.map(_black, new))
        except (OSError, BrokenProcessPool):
            _pool.cache_clear()  # the next build makes another pool
    if done is None:
        done = [_black(text) for text in new]
    if len(_FORMATTED) + len(new) > _FORMATTED_MAX:
        _FORMATTED.clear()
    _FORMATTED.update(zip(new, done, strict=True))
    return {path: head + _FORMATTED[body] for path, (head, body) in python.items()}


def _black(text: str) -> str:
    return black.format_str(text, mode=BLACK_MODE)


@functools.cache
def _pool() -> ProcessPoolExecutor | None:
    """Workers for black, made on the first build that needs them and kept for the process
    (its later builds: `kgen build` of many specs, a test session). None on one core, or
    where processes cannot be made (then black runs here)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if (cores or 1) < 2:
        return None
    methods = multiprocessing.get_all_start_methods()
    # forkserver: workers forked from a clean server, not from a process that may run
    # threads (a test session's Kafka clients); spawn where there is no forkserver.
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    try:
        return ProcessPoolExecutor(min(cores or 1, 8), mp_context=context)
    except (OSError, ValueError, NotImplementedError):
        return None


# A forked child (a test's own process pool, say) cannot use its parent's workers: it makes
# its own when it builds.
os.register_at_fork(after_in_child=_pool.cache_clear)


def _header_for(plan: AppPlan, path: str) -> str:
    if path.endswith(".md"):
        return "<!-- " + " ".join(header(plan, "").split()) + " -->"
    if path.endswith("py.typed"):
        return ""
    return header(plan, "#")
