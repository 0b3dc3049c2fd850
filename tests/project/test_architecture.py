"""The tree shows the architecture: each sub-package of ``lib/`` imports only the tiers before it."""

from __future__ import annotations

import re
from pathlib import Path

import layercollapse
import pytest

LIB = Path(layercollapse.__file__).resolve().parent
#: The tiers in order (the README's table); the top-level modules ``progress``, ``paths`` and ``settings`` serve every tier.
TIERS = ["model", "data", "readout", "measures", "storage", "pruning", "controls", "claims", "study", "site", "cli"]
UTILITIES = {"progress", "paths", "settings"}
IMPORT = re.compile(r"^\s*(?:from|import) layercollapse\.(\w+)", re.M)


def imported_tiers(package: str) -> set[str]:
    return {name for path in (LIB / package).rglob("*.py") for name in IMPORT.findall(path.read_text())} - {package}


def test_every_sub_package_is_a_tier():
    packages = {path.parent.name for path in LIB.glob("*/__init__.py")}
    assert packages == set(TIERS)
    assert {path.stem for path in LIB.glob("*.py")} == UTILITIES | {"__init__", "__main__"}


def test_each_tier_imports_only_the_tiers_before_it():
    for index, package in enumerate(TIERS):
        later = imported_tiers(package) - set(TIERS[:index]) - UTILITIES
        assert not later, f"lib/{package} imports {sorted(later)}, which come after it in {TIERS}"


def test_the_check_finds_an_import_of_a_later_tier(tmp_path, monkeypatch):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "bad.py").write_text("def f():\n    from layercollapse.study.experiments import Experiments\n")
    monkeypatch.setattr(__import__(__name__), "LIB", tmp_path)
    assert imported_tiers("model") == {"study"}


def test_the_package_build_lists_every_tier():
    import tomllib

    pyproject = tomllib.loads((LIB.parent / "pyproject.toml").read_text())
    assert set(pyproject["tool"]["setuptools"]["packages"]) == {"layercollapse", *(f"layercollapse.{t}" for t in TIERS)}


@pytest.mark.parametrize("name", layercollapse.__all__)
def test_every_public_name_resolves(name):
    assert getattr(layercollapse, name) is not None


def test_the_package_docstring_lists_the_tiers_in_order():
    assert re.findall(r"^- ``(\w+)``:", layercollapse.__doc__, flags=re.M) == TIERS


def test_only_the_settings_module_reads_the_environment():
    readers = {str(path.relative_to(LIB)) for path in LIB.rglob("*.py")
               if re.search(r"os\.environ\.get|os\.getenv|os\.environ\[", path.read_text())}
    assert readers == {"settings.py"}, f"read environment variables through layercollapse.settings: {readers}"
