"""Reading a spec file: TOML -> pydantic models -> semantic checks, with every error located.

Each stage reports every problem it finds, as `file:LINE:COL: field.path: message`. A file that
is not TOML stops there. A document whose shape is wrong is validated again without the parts
that are wrong (kgen.spec.parts), so the semantic checks still report every problem of the
others in the same run.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kgen.spec import checks
from kgen.spec.errors import SpecError, SpecInvalid
from kgen.spec.locator import Locator
from kgen.spec.models import Spec
from kgen.spec.parts import validate_rest
from kgen.spec.schema_errors import describe_errors
from kgen.spec.toml_errors import not_utf8, toml_error


@dataclass(frozen=True)
class LoadedSpec:
    spec: Spec
    # The path as the user gave it (relative when possible): it lands in generated headers.
    display_path: str
    sha256: str
    warnings: tuple[SpecError, ...]
    # The file's text: errors found after loading (kgen.evolution) are located in it.
    text: str = ""


def load_spec(
    path: Path, display_path: str | None = None, *, look_up_modules: bool = True
) -> LoadedSpec:
    """Load and check one spec; raise SpecInvalid with all of its errors. With
    `look_up_modules` false, the modules of imports and function references are not looked up
    (see kgen.spec.checks.imports)."""
    display = display_path or _display(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecInvalid(
            [SpecError(display, 1, 1, "", f"cannot read the file: {exc.strerror}")]
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecInvalid([not_utf8(display, raw, exc)]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecInvalid([toml_error(display, text, str(exc))]) from None

    where = Locator(display, text)
    try:
        # Strict: TOML values are typed, so partitions = "3" or partitions = true is a mistake,
        # not something to convert.
        spec = Spec.model_validate(data, strict=True)
    except ValidationError as exc:
        raise SpecInvalid(_schema_and_rest(data, exc, where, look_up_modules)) from None

    problems = checks.check(spec, where, look_up_modules=look_up_modules)
    if any(not p.warning for p in problems):
        raise SpecInvalid(problems)
    digest = hashlib.sha256(raw).hexdigest()
    return LoadedSpec(spec, display, digest, tuple(sorted(problems)), text)


def _schema_and_rest(
    data: dict[str, Any], exc: ValidationError, where: Locator, look_up_modules: bool
) -> list[SpecError]:
    """The schema errors, and the semantic ones of the parts that validate."""
    errors = exc.errors()
    problems = describe_errors(errors, where)
    rest = validate_rest(data, errors)
    problems += describe_errors(list(rest.errors), where)
    if rest.spec is not None:
        problems += checks.check(
            rest.spec,
            where,
            damage=rest.damage,
            leftovers=rest.leftovers,
            look_up_modules=look_up_modules,
        )
    return problems


def _display(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.name
