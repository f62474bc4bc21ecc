"""The `kgen` command: exit codes, `check` against stale output, help, describe and graph,
`build --out` and `init`."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from kgen import __version__, cli
from kgen.codegen import emit, render
from kgen.spec import Spec
from kgen.starter import starter_spec

ROOT = Path(__file__).resolve().parent.parent
PAYMENTS_DESCRIBE = """\
Topology of payments (exactly_once):
Topologies:
   Sub-topology: 0
    Source: unknown-payments-source (topics: [payment])
      --> unknown-payments-filter
    Processor: unknown-payments-filter (filter)
      --> unknown-payments-to
      <-- unknown-payments-source
    Sink: unknown-payments-to (topic: unknown-payment)
      <-- unknown-payments-filter
"""


# A stateless app whose sub-topologies read one topic each: no stores, no tasks module, no
# global tables, no stream-stream joins, no processors, no connectors or mirrors.
STATELESS_FILES = (
    len(render.FILES)
    - len(render.STATEFUL_ONLY)
    - len(render.TASKS_ONLY)
    - len(render.GLOBAL_ONLY)
    - len(render.JOINS_ONLY)
    - len(render.FK_ONLY)
    - len(render.PROCESSORS_ONLY)
    - len(render.STANDBY_ONLY)
    - len(render.CONNECT_ONLY)
    - len(render.MIRROR_ONLY)
    + 1  # kgen.lock
)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`kgen ARGV` in this process: (exit code, stdout, stderr); argparse's exits included."""
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the payments spec and its generated app, as the working directory."""
    (tmp_path / "specs").mkdir()
    shutil.copy(ROOT / "specs" / "payments.toml", tmp_path / "specs")
    shutil.copytree(
        ROOT / "generated" / "payments",
        tmp_path / "generated" / "payments",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".mypy_cache"),
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- check -----------------------------------------------------------------------------------


def test_check_passes_on_the_repository(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    code, out, err = run(capsys, "check")
    assert code == 0, out + err
    assert out == f"{len(list((ROOT / 'specs').glob('*.toml')))} specs: generated/ is up to date\n"


def test_check_passes_on_a_fresh_copy(checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "check")[0] == 0


def test_check_shows_a_diff_of_an_edited_file(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topology = checkout / "generated/payments/payments/topology.py"
    topology.write_text(
        topology.read_text().replace("'unknown'", "'known'").replace('"unknown"', '"known"')
    )
    code, out, err = run(capsys, "check")
    assert code == 1
    assert "--- a/generated/payments/payments/topology.py\n" in out
    assert "+++ b/generated/payments/payments/topology.py\n" in out
    assert '-            if k1 == "known":\n' in out
    assert '+            if k1 == "unknown":\n' in out
    assert "generated/payments/ is stale: run `kgen build specs/payments.toml`" in err


def test_check_fails_when_the_spec_changed(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = checkout / "specs/payments.toml"
    spec.write_text(spec.read_text().replace("key == 'unknown'", "key == 'lost'"))
    code, out, _ = run(capsys, "check")
    assert code == 1
    assert '+            if k1 == "lost":\n' in out
    # The header's spec hash changes in every file.
    assert "+++ b/generated/payments/payments/settings.py\n" in out


def test_check_fails_on_an_extra_file(checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (checkout / "generated/payments/payments/extra.py").write_text("x = 1\n")
    # What running the app leaves behind is not an extra file.
    cache = checkout / "generated/payments/payments/__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "topology.cpython-311.pyc").write_bytes(b"\0")
    code, out, _ = run(capsys, "check")
    assert code == 1
    assert "--- a/generated/payments/payments/extra.py\n+++ /dev/null\n" in out
    assert "__pycache__" not in out


def test_check_fails_on_a_missing_file(checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (checkout / "generated/payments/README.md").unlink()
    code, out, _ = run(capsys, "check")
    assert code == 1
    assert "--- /dev/null\n+++ b/generated/payments/README.md\n" in out


def test_check_fails_on_an_orphan_folder(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (checkout / "generated/gone/gone").mkdir(parents=True)
    (checkout / "generated/gone/gone/__init__.py").write_text("")
    code, _, err = run(capsys, "check")
    assert code == 1
    assert "generated/gone/ has no spec in specs/" in err


def test_check_without_specs_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "check")
    assert code == 1
    assert "no specs in specs/" in err


def test_build_repairs_what_check_reports(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (checkout / "generated/payments/payments/extra.py").write_text("x = 1\n")
    (checkout / "generated/payments/README.md").unlink()
    code, out, _ = run(capsys, "build", "specs/payments.toml")
    assert (code, out) == (0, "specs/payments.toml -> generated/payments/ (2 files changed)\n")
    assert not (checkout / "generated/payments/payments/extra.py").exists()
    assert run(capsys, "check")[0] == 0


# -- build --out -----------------------------------------------------------------------------


def test_build_out_writes_the_app_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    out_dir = tmp_path / "elsewhere"
    code, out, _ = run(capsys, "build", "specs/payments.toml", "--out", str(out_dir))
    assert code == 0
    assert out == f"specs/payments.toml -> {out_dir}/ ({STATELESS_FILES} files changed)\n"
    expected = emit.on_disk(ROOT / "generated/payments")
    assert emit.on_disk(out_dir) == expected
    for rel in expected:
        assert (out_dir / rel).read_bytes() == (ROOT / "generated/payments" / rel).read_bytes()
    assert not (tmp_path / "generated").exists()
    # A second build changes nothing.
    assert run(capsys, "build", "specs/payments.toml", "--out", str(out_dir))[1].endswith(
        "(0 files changed)\n"
    )


def test_build_out_takes_one_spec(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "build", "a.toml", "b.toml", "--out", "x")
    assert code == 2
    assert "--out takes one spec" in err


def test_build_of_a_bad_spec_fails_without_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("bad.toml").write_text('app = "bad"\n[[streams]]\nname = "s"\nfrom = "nowhere"\n')
    code, out, err = run(capsys, "build", "bad.toml", "--out", "app")
    assert code == 1
    assert out == ""
    assert "bad.toml:4:" in err
    assert "unknown topic 'nowhere'" in err
    assert "Traceback" not in err
    assert not Path("app").exists()


def test_build_of_a_missing_spec_is_a_user_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "build", "nope.toml")
    assert code == 1
    assert err.startswith("nope.toml:1:1: ")
    assert "cannot read" in err
    assert "Traceback" not in err


def test_validate(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(ROOT)
    code, out, _ = run(capsys, "validate", "specs/payments.toml", "specs/orders.toml")
    assert (code, out) == (0, "specs/payments.toml: ok\nspecs/orders.toml: ok\n")


# -- help and usage --------------------------------------------------------------------------

SUBCOMMANDS = [
    [],
    ["build"],
    ["check"],
    ["validate"],
    ["describe"],
    ["graph"],
    ["init"],
    ["demo"],
    ["kafka"],
    ["kafka", "fetch"],
    ["kafka", "start"],
    ["kafka", "stop"],
    ["kafka", "status"],
    ["connect"],
    ["connect", "start"],
    ["connect", "stop"],
    ["connect", "status"],
]


@pytest.mark.parametrize("command", SUBCOMMANDS, ids=lambda c: " ".join(c) or "kgen")
def test_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, *command, "--help")
    assert code == 0
    assert out.startswith(f"usage: kgen {' '.join(command)}".rstrip())


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "--help")
    commands = (
        "build",
        "check",
        "validate",
        "describe",
        "graph",
        "init",
        "demo",
        "kafka",
        "connect",
    )
    for command in commands:
        assert f"    {command} " in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--version")[:2] == (0, f"kgen {__version__}\n")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["build"],
        ["describe"],
        ["init"],
        ["graph", "--format", "png", "specs/payments.toml"],
        ["check", "--no-such-flag"],
        ["kafka"],
    ],
    ids=lambda a: " ".join(a) or "nothing",
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.startswith("usage: kgen")


def test_the_module_runs_as_a_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kgen", "describe", "specs/payments.toml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, PAYMENTS_DESCRIBE)


# -- describe and graph ----------------------------------------------------------------------


def test_describe_payments(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    assert run(capsys, "describe", "specs/payments.toml") == (0, PAYMENTS_DESCRIBE, "")


def test_graph_mermaid_payments(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    code, out, _ = run(capsys, "graph", "specs/payments.toml")
    assert code == 0
    assert out == (
        "flowchart LR\n"
        '    t0[("payment")]\n'
        '    t1[("unknown-payment")]\n'
        '    subgraph s0["sub-topology 0"]\n'
        '        p0["unknown-payments-source<br/>source"]\n'
        '        p1["unknown-payments-filter<br/>filter"]\n'
        '        p2["unknown-payments-to<br/>sink"]\n'
        "    end\n"
        "    t0 --> p0\n"
        "    p0 --> p1\n"
        "    p1 --> p2\n"
        "    p2 --> t1\n"
    )


def test_graph_dot_payments(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    code, out, _ = run(capsys, "graph", "--format", "dot", "specs/payments.toml")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == 'digraph "payments" {'
    assert lines[-1] == "}"
    assert '    t0 [shape=cylinder, label="payment"];' in lines
    assert '    t1 [shape=cylinder, label="unknown-payment"];' in lines
    assert '        p1 [shape=box, label="unknown-payments-filter\\nfilter"];' in lines
    edges = [line.strip() for line in lines if "->" in line]
    assert edges == ["t0 -> p0;", "p0 -> p1;", "p1 -> p2;", "p2 -> t1;"]


def test_describe_of_a_bad_spec_is_a_located_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("x.toml").write_text('app = "x"\n[topics.a]\n[[streams]]\nname = "s"\nfrom = "a"\n')
    code, out, err = run(capsys, "describe", "x.toml")
    assert code == 1
    assert out == ""
    assert err.startswith("x.toml:4:1: streams[0].name: stream 's' goes nowhere")


# -- init ------------------------------------------------------------------------------------


def test_starter_spec_is_a_valid_spec_naming_every_top_level_field() -> None:
    text = starter_spec("shop")
    spec = Spec.model_validate(tomllib.loads(text))
    assert spec.app == "shop"
    for name, field in Spec.model_fields.items():
        key = field.alias or name
        mentioned = [
            line
            for line in text.splitlines()
            if line.lstrip("# ").startswith((f"{key} =", f"[{key}.", f"[[{key}]]"))
        ]
        assert mentioned, f"the starter does not show {key!r}"
    kinds = [next(iter(s.model_dump(exclude_none=True))) for s in spec.streams[0].steps]
    assert kinds == ["filter", "map_values", "to"]
    assert {spec.topics[t].value for t in spec.topics} == {"json"}
    assert len(spec.tests) == 1


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Shop", "is not a valid app name"),
        ("9lives", "is not a valid app name"),
        ("my app", "is not a valid app name"),
        ("", "is not a valid app name"),
        # Names the build refuses, with the build's own message.
        ("json", "'json'.*pick another app name"),
        ("class", "'class'.*pick another app name"),
        ("tests", "'tests'.*pick another app name"),
    ],
)
def test_starter_refuses_bad_names(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        starter_spec(name)


def test_init_then_build_gives_an_app_whose_tests_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "init", "x", "--path", "tmp/x.toml")
    assert (code, out) == (0, "wrote tmp/x.toml; next: kgen build tmp/x.toml\n")
    code, out, err = run(capsys, "build", "tmp/x.toml")
    assert (code, err) == (0, ""), err
    assert out == f"tmp/x.toml -> generated/x/ ({STATELESS_FILES} files changed)\n"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            "not broker",
            "generated/x/tests",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The starter's test case, the format round trips and the error-policy test all ran.
    assert (
        "test_paid_orders_get_cents_others_are_dropped"
        in (tmp_path / "generated/x/tests/test_x_topology.py").read_text()
    )
    assert " passed" in result.stdout
    assert " failed" not in result.stdout


def test_init_default_path_and_no_overwrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "init", "shop")[0] == 0
    written = Path("specs/shop.toml").read_text()
    assert written == starter_spec("shop")
    Path("specs/shop.toml").write_text("# mine\n")
    code, _, err = run(capsys, "init", "shop")
    assert code == 1
    assert "specs/shop.toml exists; not overwriting it" in err
    assert Path("specs/shop.toml").read_text() == "# mine\n"


def test_init_with_a_bad_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "init", "Bad Name")
    assert code == 1
    assert err.startswith("kgen init: 'Bad Name' is not a valid app name")
    assert not Path("specs").exists()
