"""Health checks as records: the readiness of every pod behind a Service, sampled from the API.

Kubernetes' health checks are the kubelet's probes, and their verdict is each pod's Ready
condition, which any cluster's API gives.  ``HealthChecks`` reads it every ``interval`` seconds
for the pods the Service selects (being deleted or finished: left out).  Each pod's sample is a
record, a "check": status 200 when the pod is Ready, 503 when it is not (pending, starting, or
failing its readiness probe), ``path`` the pod, ``version`` its image's tag.  A rule on the share
of failed checks (``HealthChecksFailingAbove``) reads them the way an error-rate rule reads
requests, like a load balancer's "more than half of the targets unhealthy for 1 min".

    checks = HealthChecks(api_client, "shop", {"app": "checkout-api"}).start()
    ...
    checks.records(since=t0)     # [RequestRecord(ts, "CHECK", "checkout-api-7c88d-abc12", 503, 0, "1.5.0"), ...]
    checks.stop()

The figure is the sampling's resolution: a pod that became unready is seen within ``interval``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from gameday.load.records import NO_VERSION, RequestRecord

CHECK_INTERVAL_S = 0.5
METHOD = "CHECK"


class HealthChecks:
    def __init__(self, api_client: Any, namespace: str, selector: dict[str, str], *,
                 interval: float = CHECK_INTERVAL_S) -> None:
        self.api_client = api_client
        self.namespace = namespace
        self.selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        self.interval = interval
        self.failed_reads = 0  # samples the API did not answer (left out, counted)
        self._records: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> HealthChecks:
        if self._thread is None:
            self.sample()  # the first sample now: a rule armed before the bad deploy sees the healthy state
            self._thread = threading.Thread(target=self._run, name="gameday-health-checks", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=10)

    def records(self, since: float | None = None) -> list[RequestRecord]:
        with self._lock:
            return [r for r in self._records if since is None or r.ts >= since]

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        from kubernetes import client

        try:
            pods = client.CoreV1Api(self.api_client).list_namespaced_pod(
                self.namespace, label_selector=self.selector, _request_timeout=5).items
        except Exception:  # noqa: BLE001 - an unanswered read is a gap in the checks, counted, never a verdict
            self.failed_reads += 1
            return
        now = time.time()
        checks = []
        for pod in pods:
            if pod.metadata.deletion_timestamp is not None or (pod.status.phase or "") in ("Succeeded", "Failed"):
                continue
            ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
            image = pod.spec.containers[0].image if pod.spec.containers else ""
            tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
            checks.append(RequestRecord(ts=now, method=METHOD, path=pod.metadata.name, status=200 if ready else 503,
                                        latency_ms=0.0, version=tag or NO_VERSION))
        with self._lock:
            self._records.extend(checks)
