"""The modules of `imports` and of function references are looked up at build time
(kgen.spec.checks.imports), unless the spec lists them in runtime_only_modules or the command
runs with --no-import-check."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kgen import cli
from kgen.spec.errors import SpecError, SpecInvalid
from kgen.spec.load import load_spec

SPEC = """\
app = "payments"
imports = [IMPORTS]

[topics.payment]
value = "json"

[topics.large-payment]
value = "json"

[[streams]]
name = "large"
from = "payment"
steps = [
  { filter = { function = "FUNCTION" } },
  { to = "large-payment" },
]
"""

RULES = """\
LIMIT = 100


def is_large(key, value):
    return value["amount"] > LIMIT
"""


@pytest.fixture
def rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A package `kgen_test_rules` with a module `checks`, on the Python path."""
    folder = tmp_path / "lib"
    package = folder / "kgen_test_rules"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "checks.py").write_text(RULES)
    (package / "broken.py").write_text("raise RuntimeError('no config')\n")
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    for name in [m for m in sys.modules if m.startswith("kgen_test_rules")]:
        del sys.modules[name]


def spec_file(
    tmp_path: Path,
    function: str = "kgen_test_rules.checks:is_large",
    imports: str = "",
    extra: str = "",
) -> Path:
    text = SPEC.replace("IMPORTS", imports).replace("FUNCTION", function)
    path = tmp_path / "spec.toml"
    path.write_text(text.replace("[topics.payment]", f"{extra}\n[topics.payment]"))
    return path


def errors(path: Path, look_up_modules: bool = True) -> list[SpecError]:
    with pytest.raises(SpecInvalid) as info:
        load_spec(path, "spec.toml", look_up_modules=look_up_modules)
    return info.value.errors


def test_a_function_that_imports_passes(tmp_path: Path, rules: Path) -> None:
    loaded = load_spec(spec_file(tmp_path, imports='"math", "os.path"'), "spec.toml")
    assert loaded.warnings == ()


def test_a_missing_function_is_located_with_a_suggestion(tmp_path: Path, rules: Path) -> None:
    [error] = errors(spec_file(tmp_path, "kgen_test_rules.checks:is_larg"))
    assert (error.line, error.col, error.path) == (15, 16, "streams[0].steps[0].filter.function")
    assert error.message == "module 'kgen_test_rules.checks' has no function 'is_larg'"
    assert error.hint == "did you mean 'is_large'?"


def test_a_name_that_is_not_a_function(tmp_path: Path, rules: Path) -> None:
    [error] = errors(spec_file(tmp_path, "kgen_test_rules.checks:LIMIT"))
    assert error.message == "'LIMIT' in module 'kgen_test_rules.checks' is not a function"


def test_a_missing_submodule(tmp_path: Path, rules: Path) -> None:
    [error] = errors(spec_file(tmp_path, "kgen_test_rules.check:is_large"))
    assert error.message == (
        "no module named 'kgen_test_rules.check' (for 'kgen_test_rules.check:is_large')"
    )
    assert "runtime_only_modules" in error.hint and "--no-import-check" in error.hint


def test_a_module_that_fails_to_import(tmp_path: Path, rules: Path) -> None:
    [error] = errors(spec_file(tmp_path, "kgen_test_rules.broken:is_large"))
    assert error.message == (
        "importing 'kgen_test_rules.broken' fails: RuntimeError: no config "
        "(for 'kgen_test_rules.broken:is_large')"
    )


def test_missing_imports_are_located_at_their_element(tmp_path: Path, rules: Path) -> None:
    found = errors(spec_file(tmp_path, imports='"math", "dattime", "json.nosuch"'))
    assert [(e.line, e.col, e.path, e.message) for e in found] == [
        (2, 20, "imports[1]", "no module named 'dattime'"),
        (2, 31, "imports[2]", "no module named 'json.nosuch'"),
    ]
    assert found[0].hint.startswith("did you mean 'datetime'? If not, install it")


def test_a_module_hiding_a_record_field_is_one_error(tmp_path: Path, rules: Path) -> None:
    [error] = errors(spec_file(tmp_path, imports='"value"'))
    assert error.message == "module 'value' would hide the record field of that name"


def test_runtime_only_modules_are_not_looked_up(tmp_path: Path) -> None:
    path = spec_file(
        tmp_path,
        "payment_rules.checks:is_large",
        imports='"payment_rules.fmt", "geo"',
        extra='runtime_only_modules = ["payment_rules", "geo"]',
    )
    assert load_spec(path, "spec.toml").spec.runtime_only_modules == ["payment_rules", "geo"]


def test_runtime_only_modules_cover_submodules_not_prefixes(tmp_path: Path) -> None:
    path = spec_file(
        tmp_path, "payment_rules_x:is_large", extra='runtime_only_modules = ["payment_rules"]'
    )
    [error] = errors(path)
    assert error.message.startswith("no module named 'payment_rules_x'")


def test_runtime_only_modules_must_be_module_names(tmp_path: Path, rules: Path) -> None:
    [error] = errors(spec_file(tmp_path, extra='runtime_only_modules = ["not a module"]'))
    assert error.path == "runtime_only_modules"
    assert error.message == "'not a module' is not a module name"


def test_the_loader_can_skip_the_lookup(tmp_path: Path) -> None:
    path = spec_file(tmp_path, "payment_rules.checks:is_large", imports='"dateutils"')
    assert len(errors(path)) == 2
    load_spec(path, "spec.toml", look_up_modules=False)


@pytest.mark.parametrize("command", ["validate", "build", "describe", "graph"])
def test_the_commands_take_no_import_check(
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = str(spec_file(tmp_path, "payment_rules.checks:is_large"))
    assert cli.main([command, spec]) == 1
    assert "no module named 'payment_rules'" in capsys.readouterr().err
    assert cli.main([command, spec, "--no-import-check"]) == 0
    if command == "build":
        assert (tmp_path / "generated" / "payments" / "payments" / "topology.py").exists()


def test_check_takes_no_import_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = str(spec_file(tmp_path, "payment_rules.checks:is_large"))
    assert cli.main(["build", spec, "--no-import-check"]) == 0
    assert cli.main(["check", spec]) == 1
    assert "no module named 'payment_rules'" in capsys.readouterr().err
    assert cli.main(["check", spec, "--no-import-check"]) == 0
