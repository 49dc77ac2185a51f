"""Wall time of a whole game day, per feature, and how much of it is the harness rather than scenarios.

    python benchmarks/gameday_wall.py                          # run the shipped game day, then report
    python benchmarks/gameday_wall.py --config examples/node-inventory/gameday.yaml
    python benchmarks/gameday_wall.py --journal reports/<run-id>/journal.json [--journal ...]  # report runs made

For each feature: its scenarios, the sum of their durations (setup, the incident, the checks,
teardown), and the longest; then the run's wall time from the command's start to its exit,
the share of it that no scenario accounts for (the environment starting and stopping, reports)
and the figure against the 60 s goal of the shipped game day, all from one run.  Then where the
scenarios' time goes: the steps that took most of it (step texts with their quoted values and
numbers generalised, so one line covers a step in every scenario that uses it) and the time
inside scenarios but outside any step (fixtures: the service deployed, its traffic started and
stopped, the environment's per-scenario setup and teardown).  With
--journal the wall time is the journal's own start-to-end (the command's start-up is not in it).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

GOAL_S = 60.0


def _seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def report(journal: dict, wall: float, label: str) -> float:
    by_feature: dict[str, list[dict]] = defaultdict(list)
    for scenario in journal["scenarios"]:
        by_feature[scenario.get("feature") or "?"].append(scenario)
    print(f"\n{label}: run {journal['run_id']} ({journal['status']})")
    print(f"{'feature':58} {'scenarios':>9} {'sum s':>8} {'longest s':>10}")
    total = 0.0
    for feature, scenarios in sorted(by_feature.items(), key=lambda kv: -sum(s["duration_s"] or 0 for s in kv[1])):
        durations = [s["duration_s"] or 0.0 for s in scenarios]
        total += sum(durations)
        print(f"{feature[:58]:58} {len(scenarios):9d} {sum(durations):8.1f} {max(durations):10.1f}")
    print(f"{'all scenarios':58} {len(journal['scenarios']):9d} {total:8.1f}")
    print(f"wall time {wall:.1f} s; scenarios {total:.1f} s; outside any scenario {wall - total:.1f} s "
          f"({(wall - total) / wall:.0%} of the wall time)")
    breakdown(journal, total)
    return wall


def step_kind(step: dict) -> str:
    """``When release "1.1.0" is rolled out`` and ``... "1.3.0" ...`` are one kind of step."""
    text = re.sub(r'"[^"]*"', '"…"', step["name"])
    text = re.sub(r"(?<![\w.])\d+(\.\d+)?(?![\w.])", "N", text)
    return f"{step.get('keyword', '').strip()} {text}".strip()


def breakdown(journal: dict, total: float, top: int = 15) -> None:
    kinds: dict[str, list[float]] = defaultdict(list)
    outside = 0.0
    for scenario in journal["scenarios"]:
        in_steps = 0.0
        for step in scenario.get("steps", []):
            took = step.get("duration_s") or 0.0
            kinds[step_kind(step)].append(took)
            in_steps += took
        outside += (scenario["duration_s"] or 0.0) - in_steps
    if not total:
        return
    print(f"\nwhere the scenarios' {total:.1f} s go (the {top} longest kinds of step):")
    print(f"{'step':78} {'times':>5} {'sum s':>7} {'share':>6} {'median s':>9}")
    for kind, durations in sorted(kinds.items(), key=lambda kv: -sum(kv[1]))[:top]:
        print(f"{kind[:78]:78} {len(durations):5d} {sum(durations):7.1f} {sum(durations) / total:6.0%} "
              f"{statistics.median_high(durations):9.2f}")
    print(f"{'inside scenarios, outside any step (fixtures: setup and teardown)':78} {'':5} {outside:7.1f} "
          f"{outside / total:6.0%}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="project file (default: the shipped demo game day)")
    parser.add_argument("--journal", action="append", type=Path, default=[], help="report a run already made")
    args = parser.parse_args()
    walls = []
    if args.journal:
        for path in args.journal:
            journal = json.loads(path.read_text())
            walls.append(report(journal, _seconds(journal["start"], journal["end"]), str(path)))
    else:
        with tempfile.TemporaryDirectory() as reports:
            command = [sys.executable, "-m", "gameday.cli", "run", "--reports", reports, "--run-id", "bench"]
            if args.config:
                command += ["--config", args.config]
            began = time.monotonic()
            done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=False)
            wall = time.monotonic() - began
            journal_path = Path(reports) / "bench" / "journal.json"
            if not journal_path.exists():
                print(f"the run left no journal (exit {done.returncode})", file=sys.stderr)
                return 2
            walls.append(report(json.loads(journal_path.read_text()), wall, f"gameday run (exit {done.returncode})"))
    whole = sum(walls)
    print(f"\nwhole: {whole:.1f} s wall; against the {GOAL_S:g} s goal: {whole / GOAL_S:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
