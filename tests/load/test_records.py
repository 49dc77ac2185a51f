"""Following the JSONL records file written by the locustfile."""

from __future__ import annotations

from pathlib import Path

from gameday.load.records import RecordReader, RequestRecord


def line(ts: float, status: int = 200) -> str:
    return RequestRecord(ts=ts, method="GET", path="/api/orders", status=status, latency_ms=1.5,
                         version="1.0.0").to_json() + "\n"


def test_reader_follows_appends_sorts_and_waits_for_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    reader = RecordReader(path)
    assert reader.read() == []  # no file yet
    path.write_text(line(1) + line(3) + line(2)[:10])  # a partial line at the end
    assert [r.ts for r in reader.read()] == [1, 3]
    with path.open("a") as handle:
        handle.write(line(2)[10:] + line(4, status=0))
    records = reader.read()
    assert [r.ts for r in records] == [1, 2, 3, 4]
    assert records[-1].failed and not records[0].failed
    assert [r.ts for r in reader.read(since=3)] == [3, 4]


def test_round_trip() -> None:
    import json

    record = RequestRecord(ts=5.25, method="POST", path="/api/orders", status=0, latency_ms=0.5,
                           error="ConnectionRefusedError: [Errno 111]")
    assert RequestRecord.from_dict(json.loads(record.to_json())) == record
