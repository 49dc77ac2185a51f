"""Benchmark: detection and recovery against ground truth, live, with more incidents than the test.

    python benchmarks/ground_truth.py [--trials 10] [--users 4 20] [--out results.json]

Runs what tests/load/test_ground_truth_live.py runs (a service on 127.0.0.1 whose fault is
switched on and off at instants it stamps itself, gameday's real load generator, the
rehearsal's wait_for_alarm and wait_recovered), ``--trials`` incidents per fault and user
count, the user counts side by side, and prints the same table: per configuration the median
and worst (largest |error|) detect and recover errors against the switch, and the most the
rules added to what the traffic showed.  Every load run is bounded and stopped at the end.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEST = HERE.parent / "tests" / "load" / "test_ground_truth_live.py"


def load_test_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("ground_truth_live", TEST)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="incidents per fault and user count")
    parser.add_argument("--users", type=int, nargs="+", default=[4, 20])
    parser.add_argument("--out", type=Path, help="write every trial here (JSON)")
    args = parser.parse_args()
    live = load_test_module()
    live.USERS = tuple(args.users)
    live.CONFIGS = [(users, fault) for users in live.USERS for fault in live.FAULTS]
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gameday-ground-truth-") as folder, \
            ThreadPoolExecutor(len(live.USERS)) as pool:
        lanes = [pool.submit(live.run_lane, users, Path(folder) / f"{users}-users", args.trials)
                 for users in live.USERS]
        trials = [trial for lane in lanes for trial in lane.result()]
    print(live.table(trials))
    print(f"(errors in seconds, signed: + late, - early; worst = largest |error|; "
          f"{time.monotonic() - began:.0f} s; bound {live.BOUND} s)")
    if args.out:
        args.out.write_text(json.dumps([asdict(t) for t in trials], indent=1))
    worst = max(max(abs(t.detect_error), abs(t.recover_error)) for t in trials)
    return 0 if worst <= live.BOUND else 1


if __name__ == "__main__":
    sys.exit(main())
