"""Inline expressions: what they may read, how they are re-printed into generated code, and
that nothing but one well-formed expression can reach it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from kgen.spec import expr
from kgen.spec.errors import SpecInvalid
from kgen.spec.load import load_spec

NO_MODULES: frozenset[str] = frozenset()
NAMES = {"key": "k1", "value": "v2", "timestamp": "ts", "headers": "hd"}


@pytest.mark.parametrize(
    ("source", "uses"),
    [
        ("key == 'unknown'", {"key"}),
        ("value['n'] > 0 and timestamp > 5", {"value", "timestamp"}),
        ("dict(headers or [])", {"headers"}),
        ("len([i for i in value['items'] if i['qty']])", {"value"}),
        ("sorted(value, key=lambda item: item[0])", {"value"}),
        ("42", set()),
        ("  key  ", {"key"}),
    ],
)
def test_uses(source: str, uses: set[str]) -> None:
    assert expr.parse(source, NO_MODULES).uses == uses


@pytest.mark.parametrize(
    ("source", "rendered"),
    [
        ("key == 'unknown'", "k1 == 'unknown'"),
        ("{**value, 'total': timestamp}", "{**v2, 'total': ts}"),
        ("[(i['sku'], value) for i in value]", "[(i['sku'], v2) for i in v2]"),
        # Attribute names and dict keys that look like record names are not record names.
        ("value.key + {'value': 1}['value']", "v2.key + {'value': 1}['value']"),
        ("headers", "hd"),
        # A comment or a line break inside brackets is not part of the expression.
        ("(key ==\n  'a')  # compare", "k1 == 'a'"),
        ("math.floor(value)", "math.floor(v2)"),
    ],
)
def test_render_renames_record_names_only(source: str, rendered: str) -> None:
    assert expr.parse(source, frozenset({"math"})).render(NAMES) == rendered


@pytest.mark.parametrize(
    "text",
    [
        'a"b',
        "a'b",
        '"""',
        "'''",
        "back\\slash\\",
        "new\nline\r\x00\x1b",
        "{{ x }} {% if %}",
        '"; import os; os.system("x") #',
    ],
)
def test_string_literals_survive_reprinting(text: str) -> None:
    source = f"key == {text!r}"
    code = expr.parse(source, NO_MODULES).render(NAMES)
    tree = ast.parse(code, mode="eval").body
    assert isinstance(tree, ast.Compare)
    assert isinstance(tree.comparators[0], ast.Constant)
    assert tree.comparators[0].value == text


def test_modules_and_builtins_are_known() -> None:
    assert expr.parse("re.sub('a', 'b', key) + str(len(value))", frozenset({"re"})).uses == {
        "key",
        "value",
    }
    assert expr.parse("os.path.basename(key)", frozenset({"os.path"})).uses == {"key"}


@pytest.mark.parametrize(
    ("source", "message", "offset"),
    [
        ("", "empty expression", None),
        ("   ", "empty expression", None),
        ("key ==", "not a Python expression", None),
        ("key)\nimport os\n(", "not a Python expression", 3),
        ("import os", "not a Python expression", 0),
        ("x = 1", "not a Python expression", None),
        ("kb", "unknown name 'kb'", 0),
        ("value + ts", "unknown name 'ts'", 8),
        ("produce", "unknown name 'produce'", 0),
        ("math.pi", "unknown name 'math'", 0),
        ("__import__('os')", "unknown name '__import__'", 0),
        # Generated code runs every step in one function: no binding or suspending in it.
        ("(v := value) or v", "assignment expressions", 1),
        ("[y := 1 for x in value]", "assignment expressions", 1),
        ("(yield)", "'yield' is not allowed", 1),
        ("(yield from value)", "'yield from' is not allowed", 1),
        ("await key", "'await' is not allowed", 0),
        # A variable named like a record field would hide it.
        ("[1 for key in value]", "'key' is the record's key", 7),
        ("sorted(value, key=lambda value: value)", "'value' is the record's value", 25),
        ("{timestamp: 1 for timestamp in value}", "'timestamp' is the record's", 18),
    ],
)
def test_rejected(source: str, message: str, offset: int | None) -> None:
    with pytest.raises(expr.ExpressionError, match=message) as info:
        expr.parse(source, frozenset({"os"}) if "os" in source else NO_MODULES)
    if offset is not None:
        assert info.value.offset == offset


def test_unknown_name_has_a_hint() -> None:
    with pytest.raises(expr.ExpressionError) as info:
        expr.parse("vale['x']", NO_MODULES)
    assert "imports" in info.value.hint


SPEC = """\
app = "exprs"

[topics.a]
[topics.b]

[[streams]]
name = "s"
from = "a"
steps = [
  {{ filter = {bad} }},
  {{ to = "b" }},
]
"""


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ('"key)\\nimport os\\n("', "unmatched ')' (at column 4 of the expression)"),
        ('"(yield)"', "'yield' is not allowed in an expression"),
        ('"(produce := print)"', "assignment expressions (:=) are not allowed"),
        ('"""key == \'a\'\nimport os"""', "invalid syntax"),
    ],
)
def test_a_bad_expression_is_a_located_spec_error(tmp_path: Path, bad: str, message: str) -> None:
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(bad=bad), encoding="utf-8")
    with pytest.raises(SpecInvalid) as info:
        load_spec(path)
    [error] = info.value.errors
    # At the step's line; the column is the step's or, when known, inside the expression.
    assert (error.file, error.line) == ("spec.toml", 10)
    assert error.col >= 5
    assert error.path == "streams[0].steps[0].filter"
    assert message in error.message
