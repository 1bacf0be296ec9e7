"""The committed lock (requirements/lock.txt) pins what pyproject.toml asks for, in its ranges."""

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCKED_EXTRAS = ("dev", "hives", "spark")  # what ./dev installs


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = list(project["dependencies"])
    for extra in LOCKED_EXTRAS:
        names += project["optional-dependencies"][extra]
    return [Requirement(r) for r in names]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements" / "lock.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"not a pin: {line!r}"
            pins[canonicalize_name(name)] = version.strip()
    return pins


@pytest.mark.parametrize("req", _requirements(), ids=str)
def test_every_requirement_is_pinned_within_its_range(req: Requirement) -> None:
    pins = _pins()
    name = canonicalize_name(req.name)
    assert name in pins, f"{req.name} is not in requirements/lock.txt: run ./dev upgrade"
    assert req.specifier.contains(pins[name], prereleases=True), (
        f"{req.name}=={pins[name]} is outside pyproject.toml's {req.specifier}"
    )


@pytest.mark.parametrize("name", ["duckdb", "sqlglot"])
def test_fast_moving_majors_have_an_upper_bound(name: str) -> None:
    (req,) = [r for r in _requirements() if canonicalize_name(r.name) == name]
    assert any(s.operator in ("<", "<=", "~=", "==") for s in req.specifier), str(req)
