"""Tests for kgen.locate: exact positions, coverage of parsed documents, and tolerance."""

import random
import tomllib
from typing import Any

import pytest

from kgen.spec.locate import Path, locate, nearest

# --- keys -----------------------------------------------------------------------------------


def test_empty_and_comment_only_documents() -> None:
    assert locate("") == {}
    assert locate("# nothing\n\n   # here\n") == {}


def test_simple_keys_and_whitespace() -> None:
    text = 'name = "x"\n  port   =  9092\n\tflag=true\n'
    assert locate(text) == {("name",): (1, 1), ("port",): (2, 3), ("flag",): (3, 2)}


def test_dotted_key_maps_each_part() -> None:
    found = locate("a.b.c = 1\nx . y\t.z = 2\n")
    assert found[("a",)] == (1, 1)
    assert found[("a", "b")] == (1, 3)
    assert found[("a", "b", "c")] == (1, 5)
    assert found[("x",)] == (2, 1)
    assert found[("x", "y")] == (2, 5)
    assert found[("x", "y", "z")] == (2, 8)


def test_dotted_parent_keeps_first_occurrence() -> None:
    found = locate("a.b = 1\na.c = 2\n")
    assert found[("a",)] == (1, 1)
    assert found[("a", "c")] == (2, 3)


def test_quoted_keys_are_single_unquoted_parts() -> None:
    text = '"a.b" = 1\n\'x\' = 2\n"a\\"b" = 3\n\'c\\d\' = 4\n"\\u00e9\\t" = 5\n"" = 6\n'
    assert tomllib.loads(text).keys() == {"a.b", "x", 'a"b', "c\\d", "é\t", ""}
    assert locate(text) == {
        ("a.b",): (1, 1),
        ("x",): (2, 1),
        ('a"b',): (3, 1),
        ("c\\d",): (4, 1),
        ("é\t",): (5, 1),
        ("",): (6, 1),
    }


def test_dotted_key_with_quoted_parts() -> None:
    found = locate("site.\"google.com\".'x.y' = true\n")
    assert found[("site",)] == (1, 1)
    assert found[("site", "google.com")] == (1, 6)
    assert found[("site", "google.com", "x.y")] == (1, 19)


def test_bare_keys_that_look_like_numbers() -> None:
    found = locate("1234 = 1\n3.14 = 2\n")
    assert found[("1234",)] == (1, 1)
    assert found[("3", "14")] == (2, 3)


# --- tables ---------------------------------------------------------------------------------


def test_table_header_and_its_keys() -> None:
    found = locate("top = 1\n\n[server]\nport = 1\n")
    assert found[("server",)] == (3, 1)
    assert found[("server", "port")] == (4, 1)


def test_nested_header_points_parents_at_their_names() -> None:
    found = locate('  [ a . "b.c" ]  # comment\nk = 1\n')
    assert found[("a", "b.c")] == (1, 3)
    assert found[("a",)] == (1, 5)
    assert found[("a", "b.c", "k")] == (2, 1)


def test_explicit_header_wins_over_implicit_parent() -> None:
    found = locate("[a.b]\nx = 1\n[a]\ny = 2\n")
    assert found[("a",)] == (3, 1)
    assert found[("a", "b")] == (1, 1)
    assert found[("a", "y")] == (4, 1)


def test_array_of_tables() -> None:
    text = '[[streams]]\nname = "a"\n\n[[streams]]\nname = "b"\n'
    assert locate(text) == {
        ("streams",): (1, 1),
        ("streams", 0): (1, 1),
        ("streams", 0, "name"): (2, 1),
        ("streams", 1): (4, 1),
        ("streams", 1, "name"): (5, 1),
    }


def test_nested_arrays_of_tables_restart_per_parent() -> None:
    text = (
        "[[streams]]\n"  # 1
        "[[streams.steps]]\n"  # 2
        "a = 1\n"  # 3
        "[[streams.steps]]\n"  # 4
        "b = 2\n"  # 5
        "[[streams]]\n"  # 6
        "  [[ streams . steps ]] # indented\n"  # 7
        "c = 3\n"  # 8
    )
    found = locate(text)
    assert found[("streams", 0, "steps")] == (2, 1)
    assert found[("streams", 0, "steps", 0)] == (2, 1)
    assert found[("streams", 0, "steps", 0, "a")] == (3, 1)
    assert found[("streams", 0, "steps", 1)] == (4, 1)
    assert found[("streams", 0, "steps", 1, "b")] == (5, 1)
    assert found[("streams", 1)] == (6, 1)
    assert found[("streams", 1, "steps")] == (7, 3)
    assert found[("streams", 1, "steps", 0)] == (7, 3)
    assert found[("streams", 1, "steps", 0, "c")] == (8, 1)
    assert ("streams", 1, "steps", 1) not in found


def test_sub_table_belongs_to_last_array_element() -> None:
    text = (
        "[[streams]]\n"
        "[streams.config]\n"
        "x = 1\n"
        "[[streams]]\n"
        "[streams.config]\n"
        "x = 2\n"
        "[streams.config.deep]\n"
        "y = 3\n"
    )
    found = locate(text)
    assert found[("streams", 0, "config")] == (2, 1)
    assert found[("streams", 0, "config", "x")] == (3, 1)
    assert found[("streams", 1, "config")] == (5, 1)
    assert found[("streams", 1, "config", "x")] == (6, 1)
    assert found[("streams", 1, "config", "deep", "y")] == (8, 1)


def test_quoted_array_of_tables_name() -> None:
    found = locate('[["my streams"]] # c\nk = 1\n')
    assert found[("my streams", 0)] == (1, 1)
    assert found[("my streams", 0, "k")] == (2, 1)


# --- arrays and inline tables ---------------------------------------------------------------


def test_array_elements() -> None:
    found = locate('tags = ["a", "b",3]\n')
    assert found[("tags",)] == (1, 1)
    assert found[("tags", 0)] == (1, 9)
    assert found[("tags", 1)] == (1, 14)
    assert found[("tags", 2)] == (1, 18)


def test_multiline_array_with_comments_and_nesting() -> None:
    text = (
        'm = [  # opening comment with ] , [ and "\n'
        "  [1, 2],\n"
        "  # a whole comment line, 3 ]\n"
        '  [ ["x"],\n'
        "    [] ],\n"
        "  'last', # trailing comma\n"
        "]\n"
        "after = 1\n"
    )
    found = locate(text)
    assert found[("m", 0)] == (2, 3)
    assert found[("m", 0, 0)] == (2, 4)
    assert found[("m", 0, 1)] == (2, 7)
    assert found[("m", 1)] == (4, 3)
    assert found[("m", 1, 0)] == (4, 5)
    assert found[("m", 1, 0, 0)] == (4, 6)
    assert found[("m", 1, 1)] == (5, 5)
    assert found[("m", 2)] == (6, 3)
    assert found[("after",)] == (8, 1)
    assert ("m", 3) not in found


def test_inline_tables_in_array() -> None:
    found = locate('steps = [ { filter = "x" }, { to = "t", a.b = 1 } ]\n')
    assert found[("steps", 0)] == (1, 11)
    assert found[("steps", 0, "filter")] == (1, 13)
    assert found[("steps", 1)] == (1, 29)
    assert found[("steps", 1, "to")] == (1, 31)
    assert found[("steps", 1, "a")] == (1, 41)
    assert found[("steps", 1, "a", "b")] == (1, 43)


def test_inline_tables_nested() -> None:
    found = locate('p = { q = { r = [ { s = 1 } ] }, "t.u" = {} }\n')
    assert found[("p",)] == (1, 1)
    assert found[("p", "q")] == (1, 7)
    assert found[("p", "q", "r")] == (1, 13)
    assert found[("p", "q", "r", 0)] == (1, 19)
    assert found[("p", "q", "r", 0, "s")] == (1, 21)
    assert found[("p", "t.u")] == (1, 34)


def test_inline_table_keys_inside_array_of_tables() -> None:
    text = "[[streams]]\n[[streams]]\nsteps = [\n  { filter = 1 },\n  { to = 't' },\n]\n"
    found = locate(text)
    assert found[("streams", 1, "steps", 0, "filter")] == (4, 5)
    assert found[("streams", 1, "steps", 1)] == (5, 3)
    assert found[("streams", 1, "steps", 1, "to")] == (5, 5)


# --- strings --------------------------------------------------------------------------------


def test_strings_containing_syntax_characters() -> None:
    text = (
        'a = "x # [y] = z, }"\n'
        'b = "q\\"uote # not = comment"\n'
        'c = "ends in backslash \\\\"\n'
        "d = 'C:\\path\\' # literal: backslash is not an escape\n"
        "e = 1\n"
    )
    data = tomllib.loads(text)
    assert data["d"] == "C:\\path\\"
    assert locate(text) == {(key,): (line, 1) for line, key in enumerate("abcde", start=1)}


def test_multiline_basic_string() -> None:
    text = (
        'doc = """\n'
        "# not a comment\n"
        "[not.a.table]\n"
        'not = "a key" \\"""\n'
        '  ""quotes"" and \\\n'
        '   a line-ending backslash"""""\n'
        "next = 1\n"
    )
    assert tomllib.loads(text)["doc"].endswith('backslash""')
    assert locate(text) == {("doc",): (1, 1), ("next",): (7, 1)}


def test_multiline_literal_string() -> None:
    text = "re = '''\n[a] = 'b' # ''\n\\ no escapes \\'''''\nnext = { k = '''x''' }\n"
    assert tomllib.loads(text)["re"].endswith("\\''")
    assert locate(text) == {("re",): (1, 1), ("next",): (4, 1), ("next", "k"): (4, 10)}


def test_multiline_strings_as_array_elements() -> None:
    text = 'a = [\n  """one\n  two""", \'\'\'th\nree\'\'\', "four"\n]\n'
    found = locate(text)
    assert found[("a", 0)] == (2, 3)
    assert found[("a", 1)] == (3, 11)
    assert found[("a", 2)] == (4, 9)


def test_empty_strings_are_not_multiline_openers() -> None:
    found = locate('a = ""\nb = \'\'\nc = ["", \'\', ""]\n')
    assert found[("b",)] == (2, 1)
    assert found[("c", 2)] == (3, 14)


# --- scalars --------------------------------------------------------------------------------


def test_numbers_booleans_and_dates() -> None:
    text = (
        "v = [ 1, -2_000, 0xDEAD, 0o7, 0b1, +1.5e-3, inf, -nan, true, false ]\n"
        "t = { d = 1979-05-27 07:32:00Z, e = 1979-05-27T00:32:00.999-07:00, f = 07:32:00 }\n"
        "w = 1979-05-27\n"
    )
    found = locate(text)
    assert found[("v", 0)] == (1, 7)
    assert found[("v", 9)] == (1, 62)
    assert found[("t", "d")] == (2, 7)
    assert found[("t", "e")] == (2, 33)
    assert found[("t", "f")] == (2, 68)
    assert found[("w",)] == (3, 1)
    assert ("t", "07:32:00Z") not in found


# --- encodings and line endings -------------------------------------------------------------


def test_crlf_gives_the_same_positions_as_lf() -> None:
    text = '[[streams]]\ndoc = """\nx"""\narr = [\n  1, # c\n  { k = 2 },\n]\n'
    crlf = text.replace("\n", "\r\n")
    assert tomllib.loads(crlf) == tomllib.loads(text)
    assert locate(crlf) == locate(text)
    assert locate(crlf)[("streams", 0, "arr", 1, "k")] == (6, 5)


def test_columns_count_characters_not_bytes() -> None:
    text = 'k = ["日本語", "b", "🎉", 1]\n"ключ" = { ü = 1, x = 2 }\n'
    found = locate(text)
    assert found[("k", 1)] == (1, 13)
    assert found[("k", 2)] == (1, 18)
    assert found[("k", 3)] == (1, 23)
    assert found[("ключ", "ü")] == (2, 12)
    assert found[("ключ", "x")] == (2, 19)


def test_tabs_count_as_one_column() -> None:
    assert locate("\t\ta\t=\t[\t1]\n") == {("a",): (1, 3), ("a", 0): (1, 9)}


def test_bom_is_not_a_column() -> None:
    assert locate("\ufeffa = 1\n") == {("a",): (1, 1)}


# --- nearest --------------------------------------------------------------------------------


def test_nearest() -> None:
    found = locate('[[streams]]\nsteps = [ { filter = "x" } ]\n')
    assert nearest(found, ("streams", 0, "steps", 0, "filter")) == (2, 13)
    # A missing field points at the element that should have had it.
    assert nearest(found, ("streams", 0, "name")) == (1, 1)
    assert nearest(found, ("streams", 0, "steps", 0, "to")) == (2, 11)
    assert nearest(found, ("streams", 0, "steps", 5)) == (2, 1)
    assert nearest(found, ("nothing", "here")) == (1, 1)
    assert nearest(found, ()) == (1, 1)
    assert nearest({}, ("a",)) == (1, 1)


# --- tolerance ------------------------------------------------------------------------------


def test_deep_nesting_does_not_hit_the_recursion_limit() -> None:
    depth = 5000
    found = locate("a = " + "[" * depth + "1" + "]" * depth + "\nb = 2\n")
    assert found[("a", *([0] * depth))] == (1, 5 + depth)
    assert found[("b",)] == (2, 1)


@pytest.mark.parametrize(
    "text",
    [
        "[",
        "[[",
        "[a",
        "[[a]",
        "a =",
        "a = [",
        "a = [1,",
        "a = {",
        "a = { b",
        "a = { b =",
        'a = "unterminated',
        'a = """unterminated\n\n',
        "a = '''",
        'a = "\\',
        "= 1",
        "]]]\n}}}\n",
        "a = [ } ]\nb = { ] }\n",
        "a.=1",
        "...",
        "\r\r\r",
        "#",
    ],
)
def test_invalid_input_never_raises(text: str) -> None:
    assert isinstance(locate(text), dict)


def test_random_garbage_never_raises() -> None:
    rng = random.Random(20240611)
    alphabet = "ab1 \t\n\r=.,[]{}#\"'\\é"
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert isinstance(locate(text), dict)


# --- whole documents ------------------------------------------------------------------------

SPECS = [
    # A typical topology: arrays of tables, inline tables in arrays, nested tables per element.
    """\
# kgen topology spec
version = 1
name = "orders-pipeline"

[kafka]
bootstrap = "localhost:9092"
"client.id" = 'kgen-orders'
producer = { acks = "all", "linger.ms" = 5, compression = 'zstd' }

[[streams]]
name = "enrich"
source = { topic = "orders", key = "string", value = "json" }
steps = [
  { filter = "value['amount'] > 0" },   # drop refunds
  { map = \"\"\"
{"id": value["id"], "total": value["amount"] * 1.2}  # not a comment
\"\"\" },
  { to = "orders.enriched", partitions = [0, 1, 2] },
]
tags = ["core", 'pii']

[streams.config]
"processing.guarantee" = "exactly_once_v2"
commit.interval.ms = 100

[[streams]]
name = "audit"
source.topic = "orders.enriched"
steps = []

[streams.config]
retries = 3
""",
    # Nested arrays of tables and dotted keys throughout.
    """\
[app]
description = '''
Counts clicks per user.
[not a header]
key = "not a key"
'''

[[streams]]
name = "clicks"

[[streams.steps]]
kind = "filter"
expr = "value.get('bot') is not True"

[[streams.steps]]
kind = "aggregate"
window = { size = "5m", grace = "30s" }
store.name = "clicks-per-user"
store.changelog.topic = "clicks-changelog"

[[streams.steps.outputs]]
topic = "clicks.counts"

[[streams]]
name = "views"

[[streams.steps]]
kind = "to"
topic = "views.out"
""",
    # Value variety: dates, numbers, nested arrays, quoted keys, CRLF-sensitive layout, unicode.
    """\
title = "Schémas — ünïcode 日本"
created = 2024-06-11T08:30:00Z
local = 2024-06-11 08:30:00
day = 2024-06-11
at = 08:30:00.5
limits = { max = 1_000_000, ratio = 0.75, hex = 0xff, ok = true, nothing = -inf }
matrix = [ [1, 2], [3, [4, 5]], [], [ { deep = [ 'x' ] } ] ]
"quoted key"."with.dot" = "v"
'literal key' = 'C:\\temp\\'

[[stores]]
name = "users"
columns = [
  "id",        # primary
  "email",
  \"\"\"multi
line\"\"\",
  '''raw "quotes" and # hash''',
]

[[stores]]
name = "events"
columns = ["ts", "kind"]
""",
    # Sparse layout: super-table declared after its children, comments everywhere.
    """\
# header comment

  [ topology . "sub.graph" ]   # indented header
  nodes = [ # inline comment
    { id = "a", next = ["b", "c"] },
    { id = "b", next = [] },   # trailing
  ]

[topology]
owner = "team-data"

[[topology.edges]]
from = "a"
to = "b"
[topology.edges.meta]
weight = 1.5
[[topology.edges]]
from = "b"
to = "c"
""",
]


def _paths(value: Any, prefix: Path = ()) -> list[Path]:
    """Every key and element path of a parsed TOML value."""
    out: list[Path] = []
    if isinstance(value, dict):
        for key, item in value.items():
            out.append((*prefix, key))
            out.extend(_paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out.append((*prefix, index))
            out.extend(_paths(item, (*prefix, index)))
    return out


def _looks_right(text: str, path: Path, where: tuple[int, int]) -> bool:
    """Whether the text at ``where`` can be where ``path`` starts."""
    line, column = where
    rest = text.split("\n")[line - 1][column - 1 :]
    last = path[-1]
    if isinstance(last, str):
        return rest.startswith(("[", '"', "'", last))
    return rest[:1] not in ("", " ", "\t", ",", "#", "\r", "]")


@pytest.mark.parametrize("line_ending", ["\n", "\r\n"])
@pytest.mark.parametrize("spec", SPECS)
def test_every_parsed_path_is_located(spec: str, line_ending: str) -> None:
    text = spec.replace("\n", line_ending)
    expected = _paths(tomllib.loads(text))
    found = locate(text)
    assert [path for path in expected if path not in found] == []
    # Nothing invented either: every located path exists in the parsed document.
    assert set(found) == set(expected)
    for path, where in found.items():
        assert _looks_right(text, path, where), (path, where)


@pytest.mark.parametrize("spec", SPECS)
def test_every_prefix_of_a_spec_is_tolerated(spec: str) -> None:
    # Prefixes cut strings, arrays and headers at every possible point.
    for end in range(len(spec) + 1):
        assert isinstance(locate(spec[:end]), dict)
