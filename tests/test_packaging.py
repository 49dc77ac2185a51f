"""The wheel must carry every engine package and the step library."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_engine_package_is_listed_in_pyproject():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    src = REPO / "src"
    found = {
        ".".join(init.parent.relative_to(src).parts)
        for init in src.rglob("__init__.py")
        if "gomod" not in init.parts
    }
    assert found - listed == set(), f"add these to [tool.setuptools] packages: {sorted(found - listed)}"
    assert {"gameday.steps", "gameday.fixtures"} <= listed


def test_pytest_plugin_entry_point_is_declared():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert config["project"]["entry-points"]["pytest11"] == {"gameday": "gameday.plugin"}
