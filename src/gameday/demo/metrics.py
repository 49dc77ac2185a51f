"""Prometheus text exposition of the demo service's requests, with no client library.

Counts by path template, method, status and version, plus a latency histogram by path
template: enough for a scraper or a human to see which version answered what.
"""

from __future__ import annotations

import threading
from collections import defaultdict

# Seconds; the upper buckets catch the latency fault (latency-ms=400 lands in 0.5).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _labels(**labels: str) -> str:
    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in labels.items()) + "}"


class Metrics:
    def __init__(self, version: str) -> None:
        self.version = version
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self._buckets: dict[str, list[int]] = {}
        self._sums: dict[str, float] = defaultdict(float)
        self._counts: dict[str, int] = defaultdict(int)

    def observe(self, path: str, method: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(path, method, status)] += 1
            buckets = self._buckets.setdefault(path, [0] * len(BUCKETS))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    buckets[i] += 1
            self._sums[path] += seconds
            self._counts[path] += 1

    def render(self) -> str:
        version = self.version
        lines = [
            "# HELP demo_requests_total HTTP requests served, by path template, method, status and version.",
            "# TYPE demo_requests_total counter",
        ]
        with self._lock:
            for (path, method, status), count in sorted(self._requests.items()):
                labels = _labels(path=path, method=method, status=str(status), version=version)
                lines.append(f"demo_requests_total{labels} {count}")
            lines += [
                "# HELP demo_request_duration_seconds Request latency, by path template and version.",
                "# TYPE demo_request_duration_seconds histogram",
            ]
            for path in sorted(self._buckets):
                for bound, count in zip(BUCKETS, self._buckets[path], strict=True):
                    labels = _labels(path=path, version=version, le=f"{bound:g}")
                    lines.append(f"demo_request_duration_seconds_bucket{labels} {count}")
                labels = _labels(path=path, version=version, le="+Inf")
                lines.append(f"demo_request_duration_seconds_bucket{labels} {self._counts[path]}")
                base = _labels(path=path, version=version)
                lines.append(f"demo_request_duration_seconds_sum{base} {self._sums[path]:.6f}")
                lines.append(f"demo_request_duration_seconds_count{base} {self._counts[path]}")
        lines += [
            "# HELP demo_version_info The version this process serves.",
            "# TYPE demo_version_info gauge",
            f"demo_version_info{_labels(version=version)} 1",
        ]
        return "\n".join(lines) + "\n"
