"""One record per request the load generator made, and the JSONL file that carries them.

The recorder (gameday.load.recorder, in the locust process) appends one JSON line per
request; ``RecordReader`` follows the file incrementally, so a trigger polling ten times
a second parses each line once.  Timestamps are wall-clock epoch seconds at the response (when the outcome
is known), comparable with the journal's UTC timestamps.
"""

from __future__ import annotations

import json
import threading
from bisect import bisect_left
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NO_VERSION = "none"  # connection errors and responses that name no release

_encode = json.JSONEncoder(separators=(",", ":")).encode  # built once: json.dumps(separators=) builds one per call


@dataclass(frozen=True)
class RequestRecord:
    ts: float  # epoch seconds when the response (or the error) arrived
    method: str
    path: str  # the route template, e.g. /cart/{id}
    status: int  # 0 when no HTTP response arrived (connection refused, reset, timeout)
    latency_ms: float
    version: str = NO_VERSION
    error: str | None = None
    # Whether the request failed, decided where the truth is: the declared request's expected
    # statuses, or the team locustfile's own verdict (locust's exception, set with
    # catch_response).  None (records written before this field existed, hand-made ones):
    # derived from the status, a 5xx or no response at all.
    failed: bool | None = None

    def __post_init__(self) -> None:
        if self.failed is None:
            object.__setattr__(self, "failed", self.status == 0 or self.status >= 500)

    @property
    def sent(self) -> float:
        """When the request was sent (epoch s): the answer's time minus the latency."""
        return self.ts - self.latency_ms / 1000

    def to_json(self) -> str:
        # Per request in the locust process: a dict literal and a prebuilt encoder, not asdict().
        return _encode({"ts": self.ts, "method": self.method, "path": self.path, "status": self.status,
                        "latency_ms": self.latency_ms, "version": self.version, "error": self.error,
                        "failed": self.failed})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RequestRecord:
        failed = data.get("failed")
        return cls(
            ts=float(data["ts"]),
            method=str(data.get("method", "GET")),
            path=str(data["path"]),
            status=int(data["status"]),
            latency_ms=float(data["latency_ms"]),
            version=str(data.get("version") or NO_VERSION),
            error=data.get("error"),
            failed=None if failed is None else bool(failed),
        )


HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


def parse_endpoint(endpoint: str) -> tuple[str, str]:
    """``"POST /api/cart"`` -> ("POST", "/api/cart"); ConfigError for anything else."""
    from gameday.errors import ConfigError

    method, _, path = endpoint.strip().partition(" ")
    if method.upper() not in HTTP_METHODS or not path.strip().startswith("/"):
        raise ConfigError(f"endpoint {endpoint!r} is not an HTTP method and a route",
                          fix='write it as METHOD and route, e.g. "POST /api/cart"')
    return method.upper(), path.strip()


@dataclass(frozen=True)
class EndpointRecords:
    """The records of one endpoint ("POST /api/cart") of a record source (a LoadGenerator): a rule
    evaluated on them judges that endpoint alone."""

    source: Any
    method: str
    path: str

    @classmethod
    def parse(cls, source: Any, endpoint: str) -> EndpointRecords:
        """``"POST /api/cart"`` (the method and the route as requests are recorded); one that no request
        of the load has reached is refused, naming those that were."""
        from gameday.errors import ConfigError

        method, path = parse_endpoint(endpoint)
        seen = sorted({f"{r.method} {r.path}" for r in source.records()})
        if f"{method} {path}" not in seen:
            raise ConfigError(f"endpoint {endpoint!r} has had no request from the load "
                              f"(its endpoints: {', '.join(seen) or 'none yet'})",
                              fix='write it as METHOD and route, e.g. "POST /api/cart"')
        return cls(source, method, path)

    @property
    def running(self) -> bool:
        return bool(getattr(self.source, "running", True))

    def records(self, since: float | None = None) -> list[RequestRecord]:
        return [r for r in self.source.records(since=since) if r.method == self.method and r.path == self.path]

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


class RecordReader:
    """Follows a JSONL records file; keeps every record, sorted by ``ts``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._records: list[RequestRecord] = []
        self._lock = threading.Lock()

    def read(self, since: float | None = None) -> list[RequestRecord]:
        with self._lock:
            self._follow()
            if since is None:
                return list(self._records)
            return self._records[bisect_left(self._records, since, key=lambda r: r.ts):]

    def _follow(self) -> None:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return
        end = chunk.rfind(b"\n")
        if end < 0:
            return  # only a partial line so far: read it whole next time
        self._offset += end + 1
        fresh = [RequestRecord.from_dict(json.loads(line)) for line in chunk[:end].splitlines() if line.strip()]
        if not fresh:
            return
        in_order = (not self._records or fresh[0].ts >= self._records[-1].ts) and all(
            a.ts <= b.ts for a, b in zip(fresh, fresh[1:], strict=False)
        )
        self._records.extend(fresh)
        if not in_order:
            # Concurrent users finish out of order by a few ms; timsort fixes a nearly
            # sorted list in about linear time.
            self._records.sort(key=lambda r: r.ts)
