"""The app's own settings and its declared topics."""

from __future__ import annotations

import keyword
import re
import sys

from kgen.spec import expr
from kgen.spec.checks.base import Checks, toml_key
from kgen.spec.models import package_name

_KAFKA_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
# Packages the generated app imports besides the stdlib: its own name must not hide them.
_DEPENDENCIES = {"confluent_kafka", "rocksdict", "pytest", "tests"}


def check_app(c: Checks) -> None:
    spec = c.spec
    pkg = package_name(spec.app)
    if c.damage.broken("app"):
        pass  # the name's mistake is reported already
    elif keyword.iskeyword(pkg):
        c.error(
            ("app",),
            f"{pkg!r} is a Python keyword and cannot name the app's package",
            f"pick another app name, e.g. '{spec.app}-app'",
        )
    elif pkg in sys.stdlib_module_names or pkg in _DEPENDENCIES:
        what = "standard library module" if pkg in sys.stdlib_module_names else "package"
        c.error(
            ("app",),
            f"app {spec.app!r} would name its Python package {pkg!r}, which hides the {what} "
            "of that name",
            f"pick another app name, e.g. '{spec.app}-app'",
        )
    dead_letter_set = spec.dead_letter_topic is not None or c.damage.broken("dead_letter_topic")
    if spec.on_error == "dead_letter" and not dead_letter_set:
        topic = f"{spec.app}-dlq"
        c.error(
            ("on_error",),
            "on_error = 'dead_letter' needs a dead_letter_topic",
            f"add dead_letter_topic = '{topic}' and declare [topics.{toml_key(topic)}] with "
            "key = 'bytes' and value = 'bytes'",
        )
    if spec.dead_letter_topic is not None:
        c.topic_ref(("dead_letter_topic",), spec.dead_letter_topic)
        if spec.on_error != "dead_letter" and not c.damage.broken("on_error"):
            c.warn(
                ("dead_letter_topic",),
                f"unused: on_error is {spec.on_error!r}",
                "set on_error = 'dead_letter' to use it",
            )
    for i, mod in enumerate(spec.imports):
        if mod.split(".")[0] in expr.RECORD_NAMES:
            c.error(("imports", i), f"module {mod!r} would hide the record field of that name")


def check_topics(c: Checks) -> None:
    for name in c.spec.topics:
        if not _KAFKA_TOPIC.match(name):
            c.warn(
                ("topics", name),
                f"{name!r} is not a legal Kafka topic name",
                "Kafka allows 1-249 characters of letters, digits, '.', '_' and '-'",
            )
