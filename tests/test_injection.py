"""Every string from a spec is quoted safely in the generated code.

Topic names, the description, test-case names, test keys, values and headers, topic config and
string literals inside expressions carry quotes, triple quotes, backslashes, newlines, Jinja
syntax, control characters and payloads that would create a marker file if they ever ran as
code. The app must compile, import without running any of them, pass its own tests, and use
each topic name exactly as the spec spells it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from kgen.codegen import render
from kgen.spec.errors import SpecInvalid
from kgen.spec.load import load_spec

MARKER = "PWNED"
SAMPLE = 'a"; import os; os.system("x") #'  # the payload of the issue, verbatim
DOUBLE = f'b"; open("{MARKER}", "w") #'
SINGLE = f"c'; open('{MARKER}', 'w') #"
TRIPLE_DOUBLE = f'd"""; open("{MARKER}", "w") #'
TRIPLE_SINGLE = f"e'''; open('{MARKER}', 'w') #"
BACKSLASH = "f\\"  # a trailing backslash would escape a closing quote
NEWLINE = f'g\n__import__("pathlib").Path("{MARKER}").touch()\n#'
JINJA = "h{{ 7*7 }}{% raw %}{# x #}{%- endraw %}"
CONTROL = "i\x00\x01\x1b\x7f\r\x0b\x0c\u2028\u0085\t é😀"
DOCSTRING = f'"""\nopen("{MARKER}", "w")\n"""'
DEAD_LETTERS = f"dlq\\\"'; open('{MARKER}', 'w') #"
TOPICS = (
    SAMPLE,
    DOUBLE,
    SINGLE,
    TRIPLE_DOUBLE,
    TRIPLE_SINGLE,
    BACKSLASH,
    NEWLINE,
    JINJA,
    CONTROL,
    DOCSTRING,
    DEAD_LETTERS,
)
WEIRD = "".join(TOPICS)


def q(text: str) -> str:
    """`text` as a TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    quoted = '"' + "".join(out) + '"'
    assert tomllib.loads(f"x = {quoted}")["x"] == text
    return quoted


def _spec() -> str:
    topics = "".join(
        f'[topics.{q(t)}]\nkey = "string"\nvalue = "string"\n' for t in TOPICS if t != DEAD_LETTERS
    )
    return f"""\
app = "weird"
description = {q(WEIRD)}
on_error = "dead_letter"
dead_letter_topic = {q(DEAD_LETTERS)}

{topics}
[topics.{q(DEAD_LETTERS)}]
key = "bytes"
value = "bytes"
partitions = 1
config = {{ {q(SAMPLE)} = {q(NEWLINE)}, "retention.ms" = {q(BACKSLASH)} }}

[[streams]]
name = "fanout"
from = {q(SAMPLE)}
steps = [
  {{ filter = {q(f"key != {SINGLE!r}")} }},
  {{ branch = [
    {{ name = "q", when = {q(f"key == {TRIPLE_DOUBLE!r}")}, to = {q(TRIPLE_DOUBLE)} }},
    {{ name = "rest", to = {q(DOUBLE)} }},
  ] }},
]

[[streams]]
name = "routed"
from = {q(TRIPLE_SINGLE)}
steps = [{{ to = {{ topic = "value", topics = [{q(BACKSLASH)}, {q(NEWLINE)}, {q(JINJA)}] }} }}]

[[streams]]
name = "suffixed"
from = {q(CONTROL)}
steps = [{{ map_values = {q(f"value + {DOCSTRING!r}")} }}, {{ to = {q(DOCSTRING)} }}]

[[tests]]
name = {q(SAMPLE)}
input = [
  {{ topic = {q(SAMPLE)}, key = {q(DOCSTRING)}, value = {q(WEIRD)}, timestamp = 3, \
headers = {{ {q(JINJA)} = {q(CONTROL)} }} }},
  {{ topic = {q(SAMPLE)}, key = {q(TRIPLE_DOUBLE)}, value = {q(NEWLINE)} }},
  {{ topic = {q(SAMPLE)}, key = {q(SINGLE)}, value = "filtered out" }},
]
expect = [
  {{ topic = {q(DOUBLE)}, key = {q(DOCSTRING)}, value = {q(WEIRD)}, timestamp = 3 }},
  {{ topic = {q(TRIPLE_DOUBLE)}, key = {q(TRIPLE_DOUBLE)}, value = {q(NEWLINE)} }},
]

[[tests]]
name = {q(DOCSTRING + TRIPLE_SINGLE + BACKSLASH)}
input = [
  {{ topic = {q(TRIPLE_SINGLE)}, key = "k", value = {q(NEWLINE)} }},
  {{ topic = {q(TRIPLE_SINGLE)}, key = "k", value = {q(JINJA)} }},
  {{ topic = {q(CONTROL)}, key = {q(CONTROL)}, value = {q(BACKSLASH)} }},
]
expect = [
  {{ topic = {q(NEWLINE)}, key = "k", value = {q(NEWLINE)} }},
  {{ topic = {q(JINJA)}, key = "k", value = {q(JINJA)} }},
  {{ topic = {q(DOCSTRING)}, key = {q(CONTROL)}, value = {q(BACKSLASH + DOCSTRING)} }},
]

[[tests]]
name = {q(JINJA + CONTROL + BACKSLASH)}
input = [{{ topic = {q(TRIPLE_SINGLE)}, key = "k", value = "no such topic" }}]
expect = [{{ topic = {q(DEAD_LETTERS)}, key = "k", value = "no such topic" }}]
"""


@pytest.fixture(scope="module")
def app(build_app: Any) -> Any:
    return build_app(_spec(), "weird")


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """An empty working directory: a payload that ran would leave its marker file here."""
    folder = tmp_path / "sandbox"
    folder.mkdir()
    return folder


def _no_marker(*folders: Path) -> None:
    for folder in folders:
        assert not list(folder.rglob(MARKER)), f"a payload ran: {MARKER} in {folder}"


def test_the_spec_loads_with_every_string_intact(tmp_path: Path) -> None:
    path = tmp_path / "weird.toml"
    path.write_text(_spec(), encoding="utf-8")
    loaded = load_spec(path)
    assert loaded.spec.description == WEIRD
    assert set(loaded.spec.topics) == set(TOPICS)
    assert loaded.spec.tests[0].name == SAMPLE
    # Not legal on a real broker: a warning, not an error.
    assert all(w.warning for w in loaded.warnings)
    assert any("is not a legal Kafka topic name" in w.message for w in loaded.warnings)


def test_every_python_file_compiles(app: Any) -> None:
    python_files = [rel for rel in app.files if rel.endswith(".py")]
    assert len(python_files) >= 10
    for rel in python_files:
        compile(app.files[rel], rel, "exec")
        # Control characters never reach the source itself, only as escapes.
        assert not any(ord(c) < 0x20 and c != "\n" for c in app.files[rel]), rel
    tomllib.loads(app.files["pyproject.toml"])


def test_importing_the_app_runs_no_payload(app: Any, sandbox: Path) -> None:
    modules = ["settings", "serde", "errors", "topology", "driver", "runtime"]
    code = "import importlib\n" + "".join(
        f"importlib.import_module('weird.{m}')\n" for m in modules
    )
    result = app.python(code, cwd=sandbox)
    assert result.returncode == 0, app.why(result)
    help_run = subprocess.run(
        [sys.executable, "-m", "weird", "--help"],
        cwd=sandbox,
        env=app.env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert help_run.returncode == 0, app.why(help_run)
    assert "x: not found" not in result.stderr + help_run.stderr
    _no_marker(sandbox, app.root)


def test_generated_tests_pass_in_memory(app: Any, sandbox: Path) -> None:
    result = app.pytest("-rA", cwd=sandbox)
    assert result.returncode == 0, app.why(result)
    # The three spec cases ran (all their names are symbols: the functions are numbered).
    passed = [line for line in result.stdout.splitlines() if line.startswith("PASSED ")]
    assert sum("test_weird_topology.py::test_" in line for line in passed) >= 5, result.stdout
    assert "test_malformed_record_follows_on_error_dead_letter[" in result.stdout
    _no_marker(sandbox, app.root)


ROUND_TRIP = """
import json, sys
from weird.driver import TopologyTestDriver
from weird.settings import DEAD_LETTER_TOPIC, SINK_TOPICS, SOURCE_TOPICS, TOPICS

topics = json.loads(sys.argv[1])
driver = TopologyTestDriver()
driver.pipe_input(topics["source"], "key", "value", timestamp=1)
driver.pipe_input(topics["router"], "k", topics["routed"])
print(json.dumps({
    "sources": list(SOURCE_TOPICS),
    "sinks": list(SINK_TOPICS),
    "declared": sorted(TOPICS),
    "names": sorted(t.name for t in TOPICS.values()),
    "dead_letters": DEAD_LETTER_TOPIC,
    "written": [(r.key.decode(), r.value.decode()) for r in driver.read_raw(topics["sink"])],
    "routed": [r.value.decode() for r in driver.read_raw(topics["routed"])],
}))
"""


def test_topic_names_round_trip_exactly(app: Any, sandbox: Path) -> None:
    topics = {"source": SAMPLE, "sink": DOUBLE, "router": TRIPLE_SINGLE, "routed": JINJA}
    result = app.python(ROUND_TRIP, json.dumps(topics), cwd=sandbox)
    assert result.returncode == 0, app.why(result)
    seen = json.loads(result.stdout)
    assert seen["sources"] == [SAMPLE, TRIPLE_SINGLE, CONTROL]
    assert sorted(seen["sinks"]) == sorted(
        [TRIPLE_DOUBLE, DOUBLE, BACKSLASH, NEWLINE, JINJA, DOCSTRING]
    )
    # Every topic the app uses (SINGLE is declared but only appears inside an expression).
    assert seen["declared"] == seen["names"] == sorted(set(TOPICS) - {SINGLE})
    assert seen["dead_letters"] == DEAD_LETTERS
    assert seen["written"] == [["key", "value"]]
    assert seen["routed"] == [JINJA]
    _no_marker(sandbox, app.root)


def test_generated_app_passes_ruff(app: Any) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "."],
        cwd=app.root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, app.why(result)


@pytest.mark.parametrize(
    "value",
    [
        WEIRD,
        WEIRD.encode(),
        None,
        True,
        -(2**63),
        1.5e300,
        float("inf"),
        float("-inf"),
        [float("inf"), {"k": [float("-inf"), (1,), ()]}],
        {WEIRD: {"nested": [None, False, "x"]}},
    ],
)
def test_spec_values_become_python_literals(value: Any) -> None:
    """Test keys and values (TOML has inf too) are printed as literals, never as names."""
    code = render.py(value)
    tree = compile(code, "<literal>", "eval")
    assert not tree.co_names or tree.co_names == ("float",)
    assert eval(code, {"__builtins__": {"float": float}}) == value


def test_nan_is_a_literal_too() -> None:
    assert render.py(float("nan")) == 'float("nan")'


def test_a_value_without_a_literal_is_refused() -> None:
    value = tomllib.loads("d = 1979-05-27T07:32:00Z")["d"]
    with pytest.raises(TypeError, match="no Python literal"):
        render.py({"when": value})


# -- what may not carry arbitrary text --------------------------------------------------------

BASE = """\
app = {app}
[topics.a]
[topics.b]
[[streams]]
name = {stream}
from = "a"
steps = [
  {{ filter = {expression} }},
  {{ branch = [{{ name = {branch}, to = "b" }}] }},
]
"""
GOOD = {"app": '"ok"', "stream": '"s"', "expression": '"True"', "branch": '"b"'}


@pytest.mark.parametrize(
    "case",
    [
        ("expression", q("key)\nimport os\n("), "streams[0].steps[0].filter", 8, "unmatched ')'"),
        (
            "expression",
            q("__import__('os').system('x')"),
            "streams[0].steps[0].filter",
            8,
            "unknown name '__import__'",
        ),
        ("expression", q("(produce := print)"), "streams[0].steps[0].filter", 8, ":="),
        ("expression", q("(yield)"), "streams[0].steps[0].filter", 8, "yield"),
        ("stream", q(SAMPLE), "streams[0].name", 5, "a name starts with a letter"),
        ("branch", q(DOUBLE), "streams[0].steps[1].branch[0].name", 9, "a name starts with"),
        ("app", q('x"; import os #'), "app", 1, "an app name is lower case"),
    ],
)
def test_code_and_names_are_spec_errors_not_code(
    tmp_path: Path, case: tuple[str, str, str, int, str]
) -> None:
    field, value, path, line, message = case
    spec = tmp_path / "bad.toml"
    spec.write_text(BASE.format(**{**GOOD, field: value}), encoding="utf-8")
    with pytest.raises(SpecInvalid) as info:
        load_spec(spec)
    [error] = info.value.errors
    assert (error.file, error.path, error.line) == ("bad.toml", path, line)
    assert message in error.message


def test_build_of_an_injection_attempt_writes_nothing(tmp_path: Path) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text(BASE.format(**{**GOOD, "expression": q("key)\nimport os\n(")}))
    result = subprocess.run(
        [sys.executable, "-m", "kgen", "build", "bad.toml", "--out", "app"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(Path(__file__).resolve().parent.parent), "PATH": ""},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("bad.toml:8:")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "app").exists()
