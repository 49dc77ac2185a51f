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


def test_the_wheel_carries_the_step_library_features_and_data(tmp_path):
    import subprocess
    import sys

    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps",
                            "-w", str(tmp_path / "dist"), "-q"], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "dist").glob("gameday-*.whl")
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, timeout=300)
    probe = ("from gameday.paths import shipped; from gameday.features import validate; "
             "from gameday.cluster.build import pinned_version; "
             "print(len(validate([shipped('features')])), pinned_version(), "
             "(shipped('scenarios') / 'migrations' / 'env.py').exists())")
    # run from an empty folder with only the installed copy on the path: no checkout to fall back on
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                            env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    features, version, migrations = result.stdout.split()
    assert int(features) >= 6 and version.startswith("v1.") and migrations == "True"
    assert str(target) in subprocess.run(
        [sys.executable, "-c", "import gameday.steps, sys; print(gameday.steps.__file__)"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env={"PYTHONPATH": str(target)}).stdout
