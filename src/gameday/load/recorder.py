"""gameday's recorder: one JSON line per request locust makes, whatever locustfile makes them.

LoadGenerator runs ``locust -f <workload>.py,<this file>``: locust imports this module as a
second locustfile (it defines no User class) and it adds a request listener.  Settings
arrive by env: ``GAMEDAY_LOAD_RECORDS`` (the JSONL file to append to; unset = no
recording), and ``GAMEDAY_LOAD_RELEASE_HEADER`` or ``GAMEDAY_LOAD_RELEASE_JSON`` (how a
response names the release that served it; neither = not read).

Whether a request failed is locust's own verdict (``exception``): for declared requests
gameday.load.declared sets it from the expected statuses; a team's locustfile decides with
``catch_response`` (plain locust marks 4xx/5xx failed).  No response at all is always a failure.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from gameday.load.profile import ENV_RECORDS, ReleaseReader
from gameday.load.records import NO_VERSION, RequestRecord


class Recorder:
    """A locust ``events.request`` listener appending a RequestRecord per request to ``path``."""

    def __init__(self, path: Path | str, release: ReleaseReader | None = None) -> None:
        # Line-buffered: each record reaches the file as its line ends, so a trigger polling
        # the file sees requests within milliseconds.
        self._out: IO[str] = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives as long as locust
        self._header = release.header if release is not None else None
        self._release = release if release is not None and release.header is None else None

    def __call__(
        self,
        request_type: str,
        name: str,
        response_time: float,
        response: Any = None,
        exception: BaseException | None = None,
        **_: Any,
    ) -> None:
        status = int(getattr(response, "status_code", 0) or 0)
        version = NO_VERSION
        if status:
            if self._header is not None:  # the common case, kept to one lookup
                headers = getattr(response, "headers", None)
                version = (headers.get(self._header) if headers is not None else None) or NO_VERSION
            elif self._release is not None:
                version = self._read_body(response) or NO_VERSION
        failed = exception is not None or status == 0
        error = f"{type(exception).__name__}: {exception}"[:200] if exception is not None else None
        record = RequestRecord(ts=time.time(), method=request_type, path=name, status=status,
                               latency_ms=round(response_time, 3), version=version, error=error, failed=failed)
        self._out.write(record.to_json() + "\n")

    def _read_body(self, response: Any) -> str | None:
        assert self._release is not None
        try:
            body = response.content
        except Exception:  # a body that cannot be read names no release; the request is still recorded
            return None
        return self._release.read(getattr(response, "headers", None), body)

    def close(self, **_: Any) -> None:
        self._out.close()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Recorder | None:
        records = env.get(ENV_RECORDS, "")
        return cls(records, ReleaseReader.from_env(env)) if records else None


_recorder = Recorder.from_env(os.environ)
if _recorder is not None:
    from locust import events

    events.request.add_listener(_recorder)
    events.quit.add_listener(_recorder.close)
