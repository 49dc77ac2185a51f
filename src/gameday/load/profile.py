"""What load to put on a service, and how a response names the release that served it.

Plain data the engine runs, with no knowledge of any particular service:

    LoadProfile(users=4, rate=10, requests=(
        RequestSpec(path="/api/cart", weight=3, expect=(200,)),
        RequestSpec(method="POST", path="/api/cart", body={"sku": "A1"}, expect=(201,)),
    ), release=ReleaseReader(header="X-App-Version"))

    LoadProfile(locustfile=Path("load/locustfile.py"), release=ReleaseReader(json="build.release"))

The locustfiles read these settings from the environment (``ENV_*`` below), so a team's
own locustfile runs unchanged next to gameday's recorder.
"""

from __future__ import annotations

import json as _json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gameday.errors import ConfigError

# The environment the locustfiles (gameday.load.declared, gameday.load.recorder, and any team
# locustfile that cares) read.  Anything else starting GAMEDAY_LOAD_ is cleared for the run.
ENV_RECORDS = "GAMEDAY_LOAD_RECORDS"  # JSONL file the recorder appends to; unset = no recording
ENV_RELEASE_HEADER = "GAMEDAY_LOAD_RELEASE_HEADER"  # the response header that names the release
ENV_RELEASE_JSON = "GAMEDAY_LOAD_RELEASE_JSON"  # or the dotted field of the JSON body
ENV_REQUESTS = "GAMEDAY_LOAD_REQUESTS"  # declared requests, a JSON list (gameday.load.declared)
ENV_USER_RATE = "GAMEDAY_LOAD_USER_RATE"  # requests per second per user, 0 = no pause
ENV_TIMEOUT = "GAMEDAY_LOAD_TIMEOUT"  # seconds before a request counts as a connection error

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class ReleaseReader:
    """How a response names the release that served it: a header, or a field of its JSON body.

    ``ReleaseReader(header="X-App-Version")`` or ``ReleaseReader(json="build.release")``
    (a dotted path into the body; digits index lists).  Exactly one of the two.
    """

    header: str | None = None
    json: str | None = None
    _path: tuple[str, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.header is None) == (self.json is None):
            raise ConfigError("a release reader takes exactly one of header (a response header) or json "
                              "(a field of the JSON body)",
                              fix="e.g. release: {header: X-App-Version} or release: {json: build.release}")
        if self.header is not None and (not self.header.strip() or any(c in self.header for c in ":\r\n ")):
            raise ConfigError(f"release header {self.header!r} is not a header name", fix="e.g. X-App-Version")
        if self.json is not None:
            path = tuple(self.json.split("."))
            if not all(part.strip() for part in path):
                raise ConfigError(f"release json field {self.json!r} is not a dotted path",
                                  fix="e.g. version or build.release")
            object.__setattr__(self, "_path", path)

    def describe(self) -> str:
        """What is read, for messages: ``header X-App-Version`` or ``JSON field build.release``."""
        return f"header {self.header}" if self.header is not None else f"JSON field {self.json}"

    def read(self, headers: Any, body: bytes | str | None) -> str | None:
        """The release a response names, or None.  ``headers``: any mapping with a
        (case-insensitive) ``get``; ``body`` is parsed only when the response is JSON."""
        if self.header is not None:
            value = headers.get(self.header) if headers is not None else None
            return (str(value).strip() or None) if value is not None else None
        if not body:
            return None
        content_type = headers.get("Content-Type") if headers is not None else None
        if content_type is None:
            looks_json = body.lstrip()[:1] in (b"{", "{")  # no Content-Type: only an object will do
        else:
            looks_json = "json" in str(content_type).lower()
        if not looks_json:
            return None
        try:
            data = _json.loads(body)
        except (ValueError, TypeError):  # not JSON after all, or not UTF-8: no release read
            return None
        return dig(data, self._path)

    def to_env(self) -> dict[str, str]:
        return {ENV_RELEASE_HEADER: self.header} if self.header is not None else {ENV_RELEASE_JSON: str(self.json)}

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ReleaseReader | None:
        header, field_ = env.get(ENV_RELEASE_HEADER) or None, env.get(ENV_RELEASE_JSON) or None
        if header is None and field_ is None:
            return None
        return cls(header=header, json=None if header is not None else field_)


def dig(data: Any, path: tuple[str, ...]) -> str | None:
    """``data["build"]["release"]`` for ("build", "release"), as a string; None when absent."""
    for part in path:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    if isinstance(data, bool) or not isinstance(data, str | int | float):
        return None
    return str(data).strip() or None


@dataclass(frozen=True, kw_only=True)
class RequestSpec:
    """One declared request. ``expect`` empty: any status below 400 is a success.

    ``name`` is the route recorded for it (default: the path), e.g. ``/cart/{id}``.
    """

    method: str = "GET"
    path: str
    body: Any = None  # sent as JSON when not None
    headers: tuple[tuple[str, str], ...] = ()
    weight: int = 1
    expect: tuple[int, ...] = ()
    name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", str(self.method).upper())
        object.__setattr__(self, "headers", tuple((str(k), str(v)) for k, v in dict(self.headers).items()))
        object.__setattr__(self, "expect", tuple(int(s) for s in self.expect))
        where = f"request {self.method} {self.path}"
        if self.method not in METHODS:
            raise ConfigError(f"{where}: unknown method", fix=f"use one of {', '.join(sorted(METHODS))}")
        if not isinstance(self.path, str) or not self.path.startswith("/"):
            raise ConfigError(f"{where}: the path must start with /", fix="give the path on the service, e.g. /api/cart")
        if isinstance(self.weight, bool) or not isinstance(self.weight, int) or not 1 <= self.weight <= 1000:
            raise ConfigError(f"{where}: weight={self.weight!r} must be a whole number 1..1000", fix="e.g. weight: 3")
        bad = [s for s in self.expect if not 100 <= s <= 599]
        if bad:
            raise ConfigError(f"{where}: expect {bad} are not HTTP statuses", fix="e.g. expect: [200, 201]")
        try:
            _json.dumps(self.body)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: the body is not JSON ({exc})", fix="give a mapping, list or scalar") from None

    @property
    def route(self) -> str:
        return self.name or self.path

    def to_data(self) -> dict[str, Any]:
        return {"method": self.method, "path": self.path, "body": self.body, "headers": dict(self.headers),
                "weight": self.weight, "expect": list(self.expect), "name": self.route}


@dataclass(frozen=True, kw_only=True)
class LoadProfile:
    """The load for one service: declared ``requests``, or the team's own ``locustfile``.

    ``rate`` is requests per second per user (0 = no pause) and ``timeout`` the seconds
    before a request counts as a connection error: both drive the declared requests; a
    team's locustfile paces itself (it may read GAMEDAY_LOAD_USER_RATE / _TIMEOUT).
    ``release`` says how a response names the release that served it (None: not read).
    """

    users: int = 4
    rate: float = 10.0
    locustfile: Path | None = None
    requests: tuple[RequestSpec, ...] = ()
    release: ReleaseReader | None = None
    timeout: float = 5.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "requests", tuple(self.requests))
        if self.locustfile is not None:
            object.__setattr__(self, "locustfile", Path(self.locustfile))
        if (self.locustfile is None) == (not self.requests):
            raise ConfigError("a load profile takes exactly one of locustfile (the team's own) or requests "
                              "(declared)", fix="give load.locustfile or load.requests in the project file")
        if isinstance(self.users, bool) or not isinstance(self.users, int) or not 1 <= self.users <= 1000:
            raise ConfigError(f"load users={self.users} is out of range", fix="give 1 to 1000 users")
        if not 0 <= self.rate <= 1000:
            raise ConfigError(f"load rate={self.rate:g} is out of range", fix="give 0 (no pause) to 1000 requests/s per user")
        if not 0 < self.timeout <= 120:
            raise ConfigError(f"load timeout={self.timeout:g} is out of range", fix="give 0 < timeout <= 120 s")
        if self.locustfile is not None and (self.locustfile.suffix != ".py" or "," in str(self.locustfile)):
            raise ConfigError(f"locustfile {self.locustfile} must be a .py file without a comma in its path",
                              fix="point load.locustfile at the team's locustfile (a .py file)")

    def describe(self) -> str:
        what = (f"locustfile {self.locustfile}" if self.locustfile is not None
                else f"{len(self.requests)} declared request{'s' if len(self.requests) != 1 else ''}")
        return f"{self.users} users, {what}"

    def to_env(self) -> dict[str, str]:
        """The environment the locustfiles read (records path aside)."""
        env = {ENV_USER_RATE: f"{self.rate:g}", ENV_TIMEOUT: f"{self.timeout:g}"}
        if self.release is not None:
            env.update(self.release.to_env())
        if self.requests:
            env[ENV_REQUESTS] = _json.dumps([spec.to_data() for spec in self.requests], separators=(",", ":"))
        return env
