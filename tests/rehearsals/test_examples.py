"""The Node.js example project (examples/node-inventory) passes its own game day: nothing in the
engine is demo-shaped (another language, the release named in a JSON body field, faults applied
by the harness to a good build, its own locustfile and kustomization)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gameday.cluster.build import is_built
from gameday.journal import load, unclosed

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "node-inventory"

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.slow,
    pytest.mark.skipif(not is_built(), reason="Kubernetes binaries not built: run `gameday cluster build`"),
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed"),
]


def test_the_node_example_passes_its_game_day(tmp_path: Path, gameday):
    done = gameday("run", "--config", str(EXAMPLE / "gameday.yaml"), "--reports", str(tmp_path / "r"), cwd=tmp_path)
    [journal_path] = (tmp_path / "r").glob("*/journal.json")
    journal = json.loads(journal_path.read_text())
    verdicts = {s["name"]: (s["status"], s["error"]) for s in journal["scenarios"]}
    assert done.returncode == 0, verdicts
    assert len(verdicts) >= 2 and all(status == "passed" for status, _ in verdicts.values())
    for scenario in journal["scenarios"]:
        [signals] = [e["data"] for e in scenario["events"] if e["kind"] == "signals"]
        after = [p for p in signals["series"] if p["t"] > signals["marks"]["t0"] and p["error_rate"] is not None]
        assert max(p["error_rate"] for p in after) > 0.05  # the harness's fault really broke the release
        assert after[-1]["error_rate"] == 0 and after[-1]["versions"] == {"2.3.0": 1.0}  # read from the JSON body
    assert journal["environment"]["providers"]["cluster"]["name"] == "local"
    assert unclosed(load(journal_path)) == []
