"""Pod status as the kubelet reports it: phase, conditions and containerStatuses (pure functions)."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

RESTARTS_ON = {
    "Always": lambda exit_code: True,
    "OnFailure": lambda exit_code: exit_code != 0,
    "Never": lambda exit_code: False,
}


def should_restart(policy: str | None, exit_code: int) -> bool:
    return RESTARTS_ON.get(policy or "Always", RESTARTS_ON["Always"])(exit_code)


def pod_phase(statuses: list[Obj], policy: str | None) -> str:
    """Pending until a container has run; Succeeded/Failed once all are done for good."""
    if not statuses:
        return "Pending"
    states = [s["state"] for s in statuses]
    if all("terminated" in st for st in states):
        codes = [st["terminated"].get("exitCode", 1) for st in states]
        if not any(should_restart(policy, c) for c in codes):
            return "Succeeded" if all(c == 0 for c in codes) else "Failed"
    ever_ran = any("running" in st or "terminated" in st or s.get("lastState") for s, st in zip(statuses, states, strict=False))
    return "Running" if ever_ran else "Pending"


def _condition(kind: str, ok: bool, previous: dict[str, Obj], now: str,
               reason: str = "", message: str = "") -> Obj:
    status = "True" if ok else "False"
    before = previous.get(kind)
    # lastTransitionTime moves only when the status flips, as on a real kubelet
    since = before["lastTransitionTime"] if before and before.get("status") == status else now
    cond: Obj = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": since}
    if not ok and reason:
        cond["reason"] = reason
        if message:
            cond["message"] = message
    return cond


def pod_conditions(pod: Obj, statuses: list[Obj], phase: str, now: str,
                   init_statuses: list[Obj] | None = None) -> list[Obj]:
    previous = {c["type"]: c for c in (pod.get("status") or {}).get("conditions") or []}
    incomplete = [s["name"] for s in init_statuses or [] if not s["ready"]]
    unready = [s["name"] for s in statuses if not s["ready"]]
    done = phase in ("Succeeded", "Failed")
    reason = "PodCompleted" if done else "ContainersNotReady"
    message = "" if done else f"containers with unready status: [{' '.join(unready)}]"
    ready = not unready and not done and bool(statuses)
    conditions = [
        _condition("PodReadyToStartContainers", not done, previous, now),
        _condition("Initialized", not incomplete, previous, now, "ContainersNotInitialized",
                   f"containers with incomplete status: [{' '.join(incomplete)}]"),
        _condition("Ready", ready, previous, now, reason, message),
        _condition("ContainersReady", ready, previous, now, reason, message),
    ]
    scheduled = previous.get("PodScheduled") or _condition("PodScheduled", True, previous, now)
    return [*conditions[:2], conditions[2], conditions[3], scheduled]


def init_phase(init_statuses: list[Obj], policy: str | None) -> str | None:
    """Pending while init containers run; Failed when one failed and will not be retried."""
    if all(s["ready"] for s in init_statuses):
        return None
    failed = [s for s in init_statuses if s["state"].get("terminated", {}).get("exitCode", 0) != 0]
    return "Failed" if failed and policy == "Never" else "Pending"


def pod_status(pod: Obj, statuses: list[Obj], pod_ip: str, start_time: str, now: str,
               init_statuses: list[Obj] | None = None) -> Obj:
    """The status fields the kubelet owns; other fields (qosClass, ...) are left alone."""
    policy = pod["spec"].get("restartPolicy")
    phase = init_phase(init_statuses or [], policy) or pod_phase(statuses, policy)
    extra = {"initContainerStatuses": init_statuses} if init_statuses else {}
    return {
        "phase": phase,
        "conditions": pod_conditions(pod, statuses, phase, now, init_statuses),
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": start_time,
        "containerStatuses": statuses,
        **extra,
    }


def comparable(status: Obj) -> Obj:
    """The status without fields that change on every write, to decide whether to write."""
    return {k: v for k, v in status.items() if k != "conditions"} | {
        "conditions": [(c["type"], c["status"], c.get("reason")) for c in status["conditions"]]
    }


def status_patch(status: Obj) -> list[Obj]:
    """A JSON patch that sets only our fields (no resourceVersion, so no conflicts)."""
    return [{"op": "add", "path": f"/status/{key}", "value": value} for key, value in status.items()]
