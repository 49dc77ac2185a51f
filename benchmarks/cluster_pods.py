"""Pods on the local cluster: pod create -> Ready, and a 3-replica `kubectl rollout undo` -> complete.

    python benchmarks/cluster_pods.py [--pods 5] [--undo-runs 3] [--nodes 1]

Figures (printed): seconds from `create pod` to the Ready condition (demo image with an
HTTP readiness probe, periodSeconds 1) per pod and their median; seconds from
`kubectl rollout undo` (after a crashing image stalled the rollout, and after a bad image
rolled out completely) to `kubectl rollout status` returning, median over runs; how much later
`rollout status` returns than the Deployment's status said complete (seen on a watch of the
API, stamped on arrival): the lag in a rehearsal's "done" mark, which is taken when that
command returns; and the CPU share the process kubelet + service proxy (in this process) use
while idle with the pods running.  The binaries must be built.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

from kubernetes import client, watch

from gameday.cluster import build
from gameday.cluster.local import LocalCluster
from gameday.errors import GameDayError
from gameday.lifecycle import wait_until

IDLE_SECONDS = 10.0


def demo_container(image: str) -> dict[str, Any]:
    return {"name": "demo", "image": image, "ports": [{"containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 1}}


def kubectl(cluster: LocalCluster, *args: str, stdin: str | None = None, check: bool = True) -> str:
    done = subprocess.run(["kubectl", "--kubeconfig", str(cluster.kubeconfig), *args], input=stdin,
                          capture_output=True, text=True, timeout=180)
    if check and done.returncode:
        raise SystemExit(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def pod_ready(core: client.CoreV1Api, name: str) -> bool:
    pod = core.read_namespaced_pod(name, "default")
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def create_to_ready(cluster: LocalCluster, count: int) -> list[float]:
    core = client.CoreV1Api(cluster.api_client())
    times = []
    for index in range(count):
        name = f"bench-{index}"
        t0 = time.monotonic()
        core.create_namespaced_pod("default", {"metadata": {"name": name},
                                               "spec": {"containers": [demo_container("gameday/demo:1.0.0")]}})
        wait_until(lambda name=name: pod_ready(core, name), timeout=60, interval=0.05, what=f"pod {name} Ready")
        times.append(round(time.monotonic() - t0, 2))
    return times


def idle_cpu_share(seconds: float) -> float:
    before, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    time.sleep(seconds)
    after = resource.getrusage(resource.RUSAGE_SELF)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return round(100 * used / (time.monotonic() - t0), 1)


def rolled_out(deployment: Any) -> bool:
    """kubectl's own test for a complete rollout (its DeploymentStatusViewer), on a Deployment object."""
    spec, status = deployment.spec, deployment.status
    updated = status.updated_replicas or 0
    return ((status.observed_generation or 0) >= deployment.metadata.generation and updated == spec.replicas
            and (status.replicas or 0) == updated and (status.available_replicas or 0) == updated)


class CompleteWatch:
    """A watch on one Deployment from now on that stamps (monotonic) the first event showing it rolled out."""

    def __init__(self, cluster: LocalCluster, name: str) -> None:
        self.apps = client.AppsV1Api(cluster.api_client())
        self.selector = f"metadata.name={name}"
        self.at: float | None = None
        self.stream = watch.Watch()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CompleteWatch:
        # listed here, before the caller acts: the watch starts at this version, so only later events count
        self.since = self.apps.list_namespaced_deployment("default", field_selector=self.selector).metadata.resource_version
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stream.stop()
        self.thread.join(timeout=10)

    def _run(self) -> None:
        for event in self.stream.stream(self.apps.list_namespaced_deployment, "default", timeout_seconds=150,
                                        field_selector=self.selector, resource_version=self.since):
            if rolled_out(event["object"]):
                self.at = time.monotonic()
                return


def undo_once(cluster: LocalCluster, run: int, bad_image: str) -> tuple[float, float | None]:
    """Deploy 1.0.0, roll out ``bad_image``, then time `rollout undo` until `rollout status` returns;
    and how long after the watch saw the Deployment complete that command returned."""
    name = f"undo-{run}-{bad_image.rsplit('-', 1)[-1]}"
    labels = {"app": name}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
                  "spec": {"replicas": 3, "selector": {"matchLabels": labels},
                           "template": {"metadata": {"labels": labels},
                                        "spec": {"terminationGracePeriodSeconds": 5,
                                                 "containers": [demo_container("gameday/demo:1.0.0")]}}}}
    kubectl(cluster, "apply", "-f", "-", stdin=json.dumps(deployment))
    kubectl(cluster, "rollout", "status", f"deployment/{name}", "--timeout=120s")
    kubectl(cluster, "set", "image", f"deployment/{name}", f"demo={bad_image}")
    if bad_image.endswith("crash"):  # the rollout stalls; the old pods keep serving
        wait_until(lambda: "CrashLoopBackOff" in kubectl(cluster, "get", "pods", "-l", f"app={name}"),
                   timeout=60, interval=0.5, what="CrashLoopBackOff")
    else:  # the bad version rolls out completely; undo has to start 3 pods again
        kubectl(cluster, "rollout", "status", f"deployment/{name}", "--timeout=120s")
    with CompleteWatch(cluster, name) as complete:
        t0 = time.monotonic()
        kubectl(cluster, "rollout", "undo", f"deployment/{name}")
        kubectl(cluster, "rollout", "status", f"deployment/{name}", "--timeout=120s")
        returned = time.monotonic()
    kubectl(cluster, "delete", "deployment", name, "--wait=false")
    return round(returned - t0, 2), None if complete.at is None else round(returned - complete.at, 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=5)
    parser.add_argument("--undo-runs", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=1)
    args = parser.parse_args()
    if not build.is_built():
        print(f"binaries not built in {build.bin_dir()}: run `python -m gameday.cluster.build`", file=sys.stderr)
        return 2
    try:
        with LocalCluster(nodes=args.nodes) as cluster:
            ready = create_to_ready(cluster, args.pods)
            print(f"pod create -> Ready (s), {args.pods} pods one after another: {ready}")
            print(f"  median {statistics.median(ready):.2f} s, max {max(ready):.2f} s")
            share = idle_cpu_share(IDLE_SECONDS)
            print(f"kubelet + proxy CPU while idle with {args.pods} pods: {share:.1f} % of one core "
                  f"(over {IDLE_SECONDS:g} s)")
            client.CoreV1Api(cluster.api_client()).delete_collection_namespaced_pod("default", grace_period_seconds=1)
            for bad, what in (("gameday/demo:2.0.0-crash", "stalled by CrashLoopBackOff (old pods still up)"),
                              ("gameday/demo:2.0.0-errors", "after a completed bad rollout (3 new pods)")):
                runs = [undo_once(cluster, run, bad) for run in range(args.undo_runs)]
                undo = [took for took, _ in runs]
                print(f"3-replica `rollout undo` -> `rollout status` complete, {what} (s): {undo}")
                print(f"  median {statistics.median(undo):.2f} s, max {max(undo):.2f} s")
                lags = [lag for _, lag in runs if lag is not None]
                print(f"  `rollout status` returned after the watch saw the Deployment complete by (s): {lags}"
                      + (f"; median {statistics.median(lags):.3f} s, max {max(lags):.3f} s" if lags else
                         " (the watch saw no complete status)"))
    except GameDayError as exc:
        print(exc.one_line(), file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
