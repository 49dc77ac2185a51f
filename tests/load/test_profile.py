"""The engine's load types, the release reader and the recorder, in process (no locust run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gameday.errors import ConfigError
from gameday.load import LoadProfile, ReleaseReader, RequestSpec
from gameday.load.profile import (
    ENV_RELEASE_HEADER,
    ENV_RELEASE_JSON,
    ENV_REQUESTS,
    ENV_TIMEOUT,
    ENV_USER_RATE,
)
from gameday.load.recorder import Recorder
from gameday.load.records import RequestRecord


class Headers(dict[str, str]):
    """Case-insensitive like every HTTP client's headers."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return next((v for k, v in self.items() if k.lower() == key.lower()), default)


class Response:
    def __init__(self, status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        self.status_code = status
        self.headers = Headers(headers or {}) if status else None
        self.content = body


JSON = {"Content-Type": "application/json; charset=utf-8"}


@pytest.mark.parametrize(
    "reader, headers, body, expected",
    [
        (ReleaseReader(header="X-App-Version"), {"x-app-version": "3.1.0"}, b"", "3.1.0"),
        (ReleaseReader(header="X-App-Version"), {}, b'{"version": "1"}', None),
        (ReleaseReader(json="version"), JSON, b'{"version": "1.2.0"}', "1.2.0"),
        (ReleaseReader(json="build.release"), JSON, b'{"build": {"release": "3.1.0"}}', "3.1.0"),
        (ReleaseReader(json="builds.0.id"), JSON, b'{"builds": [{"id": 42}]}', "42"),
        (ReleaseReader(json="build.release"), JSON, b'{"build": "3.1.0"}', None),
        (ReleaseReader(json="version"), JSON, b'{"version": {"major": 1}}', None),
        (ReleaseReader(json="version"), JSON, b'{"version": true}', None),
        (ReleaseReader(json="version"), JSON, b"{not json", None),  # a bad body is tolerated
        (ReleaseReader(json="version"), JSON, b"\xff\xfe", None),
        (ReleaseReader(json="version"), {"Content-Type": "text/plain"}, b'{"version": "1"}', None),
        (ReleaseReader(json="version"), None, b' {"version": "1"}', "1"),  # no headers: an object will do
        (ReleaseReader(json="version"), JSON, b"", None),
    ],
)
def test_release_reader(reader: ReleaseReader, headers: dict[str, str] | None, body: bytes,
                        expected: str | None) -> None:
    assert reader.read(None if headers is None else Headers(headers), body) == expected


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({}, "exactly one of header"),
        ({"header": "X-A", "json": "version"}, "exactly one of header"),
        ({"header": "X App"}, "not a header name"),
        ({"json": "build..release"}, "not a dotted path"),
    ],
)
def test_release_reader_takes_one_way(kwargs: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        ReleaseReader(**kwargs)


def test_release_reader_env_round_trip() -> None:
    for reader in (ReleaseReader(header="X-App-Version"), ReleaseReader(json="build.release")):
        assert ReleaseReader.from_env(reader.to_env()) == reader
    assert ReleaseReader.from_env({}) is None
    assert ReleaseReader(json="build.release").describe() == "JSON field build.release"


def test_request_spec_defaults_and_data() -> None:
    spec = RequestSpec(path="/cart")
    assert (spec.method, spec.weight, spec.expect, spec.route) == ("GET", 1, (), "/cart")
    post = RequestSpec(method="post", path="/cart/{id}", body={"sku": "A1"}, headers=(("X-T", "1"),),
                       expect=(201,), weight=3, name="/cart/{id}")
    assert post.to_data() == {"method": "POST", "path": "/cart/{id}", "body": {"sku": "A1"}, "headers": {"X-T": "1"},
                              "weight": 3, "expect": [201], "name": "/cart/{id}"}


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"path": "cart"}, "must start with /"),
        ({"path": "/cart", "method": "FETCH"}, "unknown method"),
        ({"path": "/cart", "weight": 0}, "weight=0"),
        ({"path": "/cart", "expect": (200, 700)}, r"expect \[700\]"),
        ({"path": "/cart", "body": {"when": object()}}, "body is not JSON"),
    ],
)
def test_bad_request_specs(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        RequestSpec(**kwargs)


def test_load_profile_takes_a_locustfile_or_requests(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="exactly one of locustfile"):
        LoadProfile()
    with pytest.raises(ConfigError, match="exactly one of locustfile"):
        LoadProfile(locustfile=tmp_path / "l.py", requests=(RequestSpec(path="/"),))
    with pytest.raises(ConfigError, match="users=0"):
        LoadProfile(users=0, requests=(RequestSpec(path="/"),))
    with pytest.raises(ConfigError, match=r"\.py file"):
        LoadProfile(locustfile=tmp_path / "load.txt")
    profile = LoadProfile(requests=[RequestSpec(path="/cart", expect=(200,))],  # type: ignore[arg-type]
                          release=ReleaseReader(header="X-App-Version"), rate=0)
    assert profile.requests == (RequestSpec(path="/cart", expect=(200,)),) and profile.users == 4
    env = profile.to_env()
    assert env[ENV_USER_RATE] == "0" and env[ENV_TIMEOUT] == "5" and env[ENV_RELEASE_HEADER] == "X-App-Version"
    assert json.loads(env[ENV_REQUESTS])[0]["expect"] == [200]
    assert ENV_RELEASE_JSON not in env


def records_of(path: Path) -> list[RequestRecord]:
    return [RequestRecord.from_dict(json.loads(line)) for line in path.read_text().splitlines()]


def test_recorder_takes_the_verdict_and_reads_the_release(tmp_path: Path) -> None:
    out = tmp_path / "requests.jsonl"
    recorder = Recorder(out, ReleaseReader(header="X-App-Version"))
    recorder("GET", "/cart", 1.23456, response=Response(200, {"x-app-version": "3.1.0"}))
    recorder("GET", "/cart", 2.0, response=Response(200, {"X-App-Version": "3.1.0"}),
             exception=RuntimeError("out of stock"))  # the team's catch_response said failed
    recorder("GET", "/missing", 1.0, response=Response(404, {}))  # 404 that the workload accepted
    recorder("POST", "/cart", 0.4, response=Response(0), exception=ConnectionRefusedError(111, "refused"))
    recorder("GET", "/cart", 1.0, response=Response(0))  # no response is a failure, whatever the verdict
    recorder.close()
    ok, checked, accepted, refused, silent = records_of(out)
    assert (ok.version, ok.failed, ok.error, ok.latency_ms) == ("3.1.0", False, None, 1.235)
    assert (checked.failed, checked.error) == (True, "RuntimeError: out of stock")
    assert (accepted.status, accepted.failed, accepted.version) == (404, False, "none")
    assert (refused.status, refused.failed, refused.version) == (0, True, "none")
    assert "ConnectionRefusedError" in (refused.error or "")
    assert silent.failed


def test_recorder_reads_a_json_field_only_from_json_bodies(tmp_path: Path) -> None:
    out = tmp_path / "requests.jsonl"
    recorder = Recorder(out, ReleaseReader(json="build.release"))
    recorder("GET", "/cart", 1.0, response=Response(200, JSON, b'{"build": {"release": "3.1.0"}}'))
    recorder("GET", "/cart", 1.0, response=Response(200, {"Content-Type": "text/html"}, b"<html>"))
    recorder("GET", "/cart", 1.0, response=Response(200, JSON, b'{"build": '))
    recorder.close()
    assert [r.version for r in records_of(out)] == ["3.1.0", "none", "none"]


def test_old_records_without_failed_keep_todays_rule() -> None:
    old = {"ts": 1.0, "method": "GET", "path": "/", "status": 404, "latency_ms": 1.0, "version": "1"}
    assert RequestRecord.from_dict(old).failed is False  # a 4xx was no failure then
    assert RequestRecord.from_dict({**old, "status": 503}).failed is True
    assert RequestRecord.from_dict({**old, "failed": True}).failed is True
    record = RequestRecord(ts=1.5, method="GET", path="/", status=200, latency_ms=1.0, failed=True)
    assert RequestRecord.from_dict(json.loads(record.to_json())) == record
