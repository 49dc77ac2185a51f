"""Node-side Events, as the real kubelet records them, for `kubectl describe pod` / `get events`.

Core v1 Events (what `kubectl describe` lists, by involvedObject), source component
"kubelet" and host = node name, involvedObject = the pod with fieldPath
``spec.containers{name}``.  Repeats of one (object, fieldPath, type, reason, message) are
aggregated like client-go's EventCorrelator: one Event whose ``count`` and
``lastTimestamp`` are patched.  ``emit`` only updates memory; one writer thread talks to
the API, at most once a second per Event, and a failed write is logged and dropped.

Example::

    recorder = EventRecorder(client.CoreV1Api(api)).start()
    recorder.emit(pod, "spec.containers{web}", "Warning", "BackOff", "Back-off restarting ...", "node-1")
    recorder.stop()
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.rest import ApiException

from gameday.cluster.kubelet_containers import rfc3339

log = logging.getLogger("gameday.cluster.kubelet")

Obj = dict[str, Any]
MIN_WRITE_INTERVAL_S = 1.0
MAX_RECORDS = 4096  # like the correlator's LRU cache
REQUEST_TIMEOUT_S = 5
FLUSH_ON_STOP_S = 2.0


@dataclass
class _Record:
    namespace: str
    involved: Obj
    type: str
    reason: str
    message: str
    node: str
    count: int
    first: str
    last: str
    name: str = ""  # set once created
    written: int = 0  # the count the API has
    next_write: float = 0.0


def event_body(rec: _Record, component: str) -> Obj:
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": rec.name, "namespace": rec.namespace},
        "involvedObject": rec.involved, "reason": rec.reason, "message": rec.message, "type": rec.type,
        "source": {"component": component, "host": rec.node},
        "firstTimestamp": rec.first, "lastTimestamp": rec.last, "count": rec.count,
        "reportingComponent": component, "reportingInstance": rec.node,
    }


class EventRecorder:
    def __init__(self, core: client.CoreV1Api, *, component: str = "kubelet") -> None:
        self._core = core
        self._component = component
        self._records: collections.OrderedDict[tuple[str, ...], _Record] = collections.OrderedDict()
        self._dirty: set[tuple[str, ...]] = set()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> EventRecorder:
        self._thread = threading.Thread(target=self._run, name="kubelet-events", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Write what is pending (for at most FLUSH_ON_STOP_S), then end the writer."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(FLUSH_ON_STOP_S + REQUEST_TIMEOUT_S + 1)
            self._thread = None

    def emit(self, pod: Obj, field_path: str, type_: str, reason: str, message: str, node: str) -> None:
        """Record one occurrence; never blocks on the API and never raises."""
        meta = pod.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("uid", ""), field_path, type_, reason, message)
        now = rfc3339()
        with self._cond:
            record = self._records.get(key)
            if record is None:
                involved = {"kind": "Pod", "apiVersion": "v1", "namespace": key[0], "name": meta.get("name", ""),
                            "uid": key[1], "fieldPath": field_path}
                if meta.get("resourceVersion"):
                    involved["resourceVersion"] = meta["resourceVersion"]
                record = _Record(key[0], involved, type_, reason, message, node, count=1, first=now, last=now)
                self._records[key] = record
                while len(self._records) > MAX_RECORDS:
                    old, _ = self._records.popitem(last=False)
                    self._dirty.discard(old)
            else:
                record.count += 1
                record.last = now
                self._records.move_to_end(key)
            self._dirty.add(key)
            self._cond.notify_all()

    def pending(self) -> int:
        with self._cond:
            return len(self._dirty)

    # -- the writer ------------------------------------------------------------------------
    def _run(self) -> None:
        deadline: float | None = None
        while True:
            with self._cond:
                if self._stopping and deadline is None:
                    deadline = time.monotonic() + FLUSH_ON_STOP_S
                if deadline is not None and (not self._dirty or time.monotonic() > deadline):
                    return
                now = time.monotonic()
                due = [k for k in self._dirty if self._stopping or self._records[k].next_write <= now]
                if not due:
                    waits = [self._records[k].next_write - now for k in self._dirty]
                    self._cond.wait(min([1.0, *waits]) if waits else 1.0)
                    continue
                batch = []
                for key in due:
                    self._dirty.discard(key)
                    record = self._records[key]
                    record.next_write = now + MIN_WRITE_INTERVAL_S
                    batch.append((record, record.count, record.last))
            for record, count, last in batch:
                try:
                    self._write(record, count, last)
                except Exception:  # noqa: BLE001 - events are best effort; the writer must live on
                    log.exception("event %s for %s not written", record.reason, record.involved["name"])

    def _write(self, record: _Record, count: int, last: str) -> None:
        try:
            if record.name and record.written:
                try:
                    self._core.patch_namespaced_event(record.name, record.namespace,
                                                      {"count": count, "lastTimestamp": last},
                                                      _request_timeout=REQUEST_TIMEOUT_S)
                    record.written = count
                    return
                except ApiException as exc:
                    if exc.status != 404:
                        raise
                    # the Event expired (or was deleted): start a new one, like the correlator
            record.name = f"{record.involved['name']}.{time.time_ns():x}"
            body = event_body(record, self._component)
            body["count"], body["lastTimestamp"] = count, last
            self._core.create_namespaced_event(record.namespace, body, _request_timeout=REQUEST_TIMEOUT_S)
            record.written = count
        except (ApiException, OSError, urllib3.exceptions.HTTPError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            log.debug("event %s %s for %s/%s not written: %s", record.type, record.reason, record.namespace,
                      record.involved["name"], reason)
