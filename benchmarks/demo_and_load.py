"""Benchmark: demo service start time, locust throughput against it, cost of recording.

    python benchmarks/demo_and_load.py [--seconds 5] [--users 10]

Prints:
  * demo start: spawn -> first /health 200 (memory backend; Postgres backend too when the
    local Postgres provider is available); target < 0.5 s;
  * requests/s one locust process (FastHttpUser, no pause) drives through the demo, counted by
    the demo's own /metrics, with and without per-request recording, and the overhead ratio:
    the demo's own locustfile, run as any team's is (with gameday's recorder beside it);
  * the in-process cost of writing one record (gameday.load.recorder's request listener),
    reading the release from a header, and from a JSON field of the body.
Every run is bounded (locust --run-time); all processes are cleaned up on exit.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import gameday.demo
from gameday.demo.process import DemoProcess
from gameday.lifecycle import run_cleanups
from gameday.load import LoadGenerator, LoadProfile, ReleaseReader
from gameday.load.recorder import Recorder

DEMO_LOCUSTFILE = Path(gameday.demo.__file__).with_name("locustfile.py")


def start_time(runs: int, **kwargs: object) -> list[float]:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        demo = DemoProcess(**kwargs).start()  # type: ignore[arg-type]
        times.append(time.perf_counter() - began)
        demo.stop()
    return times


def served(demo: DemoProcess) -> int:
    text = demo.request("GET", "/metrics").body.decode()
    return sum(int(m.group(1)) for m in re.finditer(r'^demo_requests_total\{path="/api/[^\n]*\} (\d+)$', text, re.M))


def throughput(users: int, seconds: float, record: bool) -> tuple[float, int]:
    """Requests/s the demo served during a steady ``seconds`` window of an unpaced locust run."""
    profile = LoadProfile(users=users, rate=0, locustfile=DEMO_LOCUSTFILE,
                          release=ReleaseReader(header=gameday.demo.HEADER))
    with DemoProcess(version="bench") as demo, \
            LoadGenerator(demo.url, profile=profile, max_seconds=seconds + 6, record=record) as load:
        time.sleep(1.5 if record else 3.0)  # without records start() returns before locust is up
        first, began = served(demo), time.perf_counter()
        time.sleep(seconds)
        count, elapsed = served(demo) - first, time.perf_counter() - began
        load.stop()
        return count / elapsed, len(load.records())


class Response:
    """What the listener reads of a locust response (the demo's /api/orders answer)."""

    status_code = 200
    headers = {gameday.demo.HEADER: "1.0.0", "Content-Type": "application/json"}
    content = b'{"orders": [{"id": 1, "customer": "load-1", "amount_cents": 1234}], "version": "1.0.0"}'


def record_cost(release: ReleaseReader, count: int = 20000) -> float:
    """Microseconds per call of the recorder's listener, writing to a real file."""
    with tempfile.TemporaryDirectory() as tmp:
        recorder = Recorder(Path(tmp) / "r.jsonl", release)
        response = Response()
        began = time.perf_counter()
        for _ in range(count):
            recorder("GET", "/api/orders", 1.234, response=response)
        cost = (time.perf_counter() - began) / count * 1e6
        recorder.close()
        return cost


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args()
    try:
        memory = start_time(args.starts)
        print(f"demo start (memory):   median {statistics.median(memory):.3f}s  max {max(memory):.3f}s  "
              f"target < 0.5s  ({args.starts} runs)")
        try:
            from gameday.database.local import LocalPostgres
        except ModuleNotFoundError:
            print("demo start (postgres): skipped (gameday.database.local not available)")
        else:
            with LocalPostgres("bench") as db:
                pg = start_time(args.starts, database_url=db.dsn, env={"DEMO_CREATE_SCHEMA": "1"})
            print(f"demo start (postgres): median {statistics.median(pg):.3f}s  max {max(pg):.3f}s  target < 0.5s")

        on, recorded = throughput(args.users, args.seconds, record=True)
        off, _ = throughput(args.users, args.seconds, record=False)
        print(f"locust, 1 process, {args.users} users, no pause ({os.cpu_count()} cores shared with the demo; "
              f"load average {os.getloadavg()[0]:.1f}):")
        print(f"  with per-request records:    {on:7.0f} req/s  ({recorded} records written)")
        print(f"  without records:             {off:7.0f} req/s")
        print(f"  recording overhead:          {(off - on) / off:+.1%} of throughput (noise on a shared box ~ +-5%)")
        header = record_cost(ReleaseReader(header=gameday.demo.HEADER))
        body = record_cost(ReleaseReader(json="version"))
        print(f"  listener cost per request:   {header:.1f} us release from a header, {body:.1f} us from a JSON "
              f"field (JSON line, line-buffered write)")
    finally:
        run_cleanups()
    return 0


if __name__ == "__main__":
    sys.exit(main())
