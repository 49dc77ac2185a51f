"""Process kubelet parts that need no API server: back-off, addresses, probes, status, volumes, logs."""

from __future__ import annotations

import http.server
import ipaddress
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from gameday.cluster.kubelet import AddressPool, backoff_from_env
from gameday.cluster.kubelet_containers import Backoff, ContainerRun
from gameday.cluster.kubelet_probes import ProbeSpec, ProbeState, ProbeTarget, run_probe
from gameday.cluster.kubelet_server import KubeletHTTPServer, LogSource, select_lines
from gameday.cluster.kubelet_status import pod_phase, pod_status, should_restart, status_patch
from gameday.cluster.kubelet_volumes import container_env, mount_map, rewrite_paths, sync_volumes
from gameday.errors import ConfigError


def test_backoff_first_restart_is_immediate_then_doubles_up_to_the_cap() -> None:
    backoff = Backoff(base=10, maximum=300)
    assert [backoff.delay(n) for n in range(1, 9)] == [0, 10, 20, 40, 80, 160, 300, 300]


def test_backoff_base_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAMEDAY_KUBELET_BACKOFF_BASE", "0.5")
    assert backoff_from_env().delay(3) == 1.0
    monkeypatch.setenv("GAMEDAY_KUBELET_BACKOFF_BASE", "soon")
    with pytest.raises(ConfigError, match="GAMEDAY_KUBELET_BACKOFF_BASE"):
        backoff_from_env()


def test_addresses_are_unique_loopback_pairs_with_never_dialled_api_ips() -> None:
    pool = AddressPool(second_octet=77)
    pairs = [pool.allocate() for _ in range(600)]
    assert len({local for local, _ in pairs}) == 600 and len({api for _, api in pairs}) == 600
    benchmarking = ipaddress.ip_network("198.18.0.0/15")
    for local, api in pairs:
        assert ipaddress.ip_address(local).is_loopback and local.startswith("127.77.")
        assert ipaddress.ip_address(api) in benchmarking
        assert not local.endswith((".0", ".255"))


def test_probe_state_honours_initial_delay_and_thresholds() -> None:
    spec = ProbeSpec.parse("readiness", {"httpGet": {"port": 1}, "initialDelaySeconds": 5, "periodSeconds": 2,
                                         "successThreshold": 2, "failureThreshold": 3})
    state = ProbeState(spec, started_at=100.0)
    assert not state.due(104.9) and state.due(105.0)
    state.record(True, "", 105.0)
    assert state.result is None and state.next_due == 107.0  # one success of two needed
    state.record(True, "", 107.0)
    assert state.result is True
    state.record(False, "boom", 109.0)
    state.record(False, "boom", 111.0)
    assert state.result is True  # two failures of three
    assert state.record(False, "boom", 113.0) and state.result is False and state.message == "boom"


@pytest.fixture
def http_target():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200 if self.path == "/ok" else 500)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield ProbeTarget(host="127.0.0.1", ports={"web": server.server_address[1]}, env={}, cwd="/")
    server.shutdown()
    server.server_close()


def test_real_probes_pass_and_fail(http_target: ProbeTarget, tmp_path: Path) -> None:
    def probe(action: dict) -> bool:
        spec = ProbeSpec.parse("liveness", {**action, "timeoutSeconds": 1})
        assert spec is not None
        return run_probe(spec, http_target)[0]

    assert probe({"httpGet": {"path": "/ok", "port": "web"}})
    assert not probe({"httpGet": {"path": "/broken", "port": "web"}})
    assert probe({"tcpSocket": {"port": "web"}})
    assert not probe({"tcpSocket": {"port": 1}})  # nothing listens on port 1
    assert probe({"exec": {"command": [sys.executable, "-c", "pass"]}})
    assert not probe({"exec": {"command": [sys.executable, "-c", "raise SystemExit(1)"]}})
    # a probe naming a non-loopback host still goes to the pod's own address
    assert probe({"httpGet": {"host": "192.0.2.1", "path": "/ok", "port": "web"}})


def _status(name: str, state: dict, ready: bool = False, last: dict | None = None) -> dict:
    return {"name": name, "ready": ready, "state": state, "lastState": last or {}}


def test_pod_phase_follows_the_kubelet_rules() -> None:
    waiting = {"waiting": {"reason": "ErrImagePull"}}
    assert pod_phase([_status("a", waiting)], "Always") == "Pending"
    assert pod_phase([_status("a", {"waiting": {"reason": "CrashLoopBackOff"}}, last={"terminated": {}})],
                     "Always") == "Running"
    done = {"terminated": {"exitCode": 0}}
    failed = {"terminated": {"exitCode": 3}}
    assert pod_phase([_status("a", done)], "Never") == "Succeeded"
    assert pod_phase([_status("a", done), _status("b", failed)], "Never") == "Failed"
    assert pod_phase([_status("a", failed)], "OnFailure") == "Running"
    assert should_restart("OnFailure", 1) and not should_restart("OnFailure", 0) and should_restart(None, 0)


def test_pod_status_keeps_transition_times_and_the_schedulers_condition() -> None:
    scheduled = {"type": "PodScheduled", "status": "True", "lastTransitionTime": "T0"}
    pod = {"spec": {}, "status": {"conditions": [scheduled,
                                                 {"type": "Ready", "status": "False", "lastTransitionTime": "T1"}]}}
    running = [_status("web", {"running": {}}, ready=False)]
    status = pod_status(pod, running, "198.18.0.1", "T0", "T2")
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["lastTransitionTime"] == "T1"  # still False: unchanged
    assert conditions["Ready"]["message"] == "containers with unready status: [web]"
    assert conditions["PodScheduled"] is scheduled
    ready = pod_status(pod, [_status("web", {"running": {}}, ready=True)], "198.18.0.1", "T0", "T3")
    assert {c["type"]: c for c in ready["conditions"]}["Ready"] == {
        "type": "Ready", "status": "True", "lastProbeTime": None, "lastTransitionTime": "T3"}
    assert {op["path"] for op in status_patch(ready)} >= {"/status/phase", "/status/podIP", "/status/containerStatuses"}


def test_configmap_volumes_are_files_and_mount_paths_are_rewritten(tmp_path: Path) -> None:
    cm = {"data": {"config.yaml": "a: 1\n", "other": "x"}}
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"app": "demo"}},
           "spec": {"nodeName": "n1", "volumes": [
               {"name": "config", "configMap": {"name": "demo-config"}},
               {"name": "picked", "configMap": {"name": "demo-config", "items": [{"key": "other", "path": "o.txt"}]}},
               {"name": "scratch", "emptyDir": {}}]}}
    dirs = sync_volumes(pod, tmp_path, lambda ns, name: cm if (ns, name) == ("ns", "demo-config") else None,
                        lambda ns, name: None)
    assert (dirs["config"] / "config.yaml").read_text() == "a: 1\n"
    assert [p.name for p in dirs["picked"].iterdir()] == ["o.txt"]
    assert dirs["scratch"].is_dir()
    cm["data"] = {"config.yaml": "a: 2\n"}  # a ConfigMap update rewrites and prunes
    sync_volumes(pod, tmp_path, lambda ns, name: cm, lambda ns, name: None)
    assert (dirs["config"] / "config.yaml").read_text() == "a: 2\n" and not (dirs["config"] / "other").exists()
    container = {"volumeMounts": [{"name": "config", "mountPath": "/etc/demo"}]}
    mounts = mount_map(container, dirs)
    assert rewrite_paths("--config=/etc/demo/config.yaml", mounts) == f"--config={dirs['config']}/config.yaml"
    assert rewrite_paths("/etc/democracy", mounts) == "/etc/democracy"


def test_container_env_resolves_field_and_configmap_refs() -> None:
    pod = {"metadata": {"name": "web-1", "namespace": "shop", "uid": "u1", "labels": {"app": "demo"}},
           "spec": {"nodeName": "node-1"}}
    container = {"envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}], "env": [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "level"}}},
        {"name": "GREETING", "value": "hi $(POD_NAME)"},
        {"name": "VERSION", "value": "pod-wins"}]}
    env = container_env(pod, container, {"VERSION": "image"}, "198.18.0.7",
                        lambda ns, name: {"data": {"level": "debug"}}, lambda ns, name: None)
    assert env == {"VERSION": "pod-wins", "CM_level": "debug", "POD_NAME": "web-1", "POD_NS": "shop",
                   "POD_IP": "198.18.0.7", "APP": "demo", "LEVEL": "debug", "GREETING": "hi web-1"}


def test_log_lines_honour_tail_timestamps_and_since() -> None:
    now = time.time()
    from gameday.cluster.kubelet_containers import rfc3339_nano

    lines = [f"{rfc3339_nano(now - 100)} old".encode()] + [f"{rfc3339_nano(now)} line {i}".encode() for i in range(5)]
    assert select_lines(lines, tail=2, timestamps=False, since=None) == [b"line 3", b"line 4"]
    assert select_lines(lines, tail=1, timestamps=True, since=None)[0].endswith(b"Z line 4")
    assert len(select_lines(lines, tail=None, timestamps=False, since=10)) == 5
    assert select_lines(lines, tail=0, timestamps=False, since=None) == []


def test_container_output_is_captured_and_served_over_https(tmp_path: Path) -> None:
    run = ContainerRun(name="c", image="x", spec={}, log_dir=tmp_path / "uid" / "logs" / "c",
                       backoff=Backoff(1, 2), wake=lambda: None)
    target = ProbeTarget(host="127.0.0.1", ports={}, env={}, cwd=str(tmp_path))
    run.launch([sys.executable, "-c", "print('one'); print('two'); raise SystemExit(4)"], {}, tmp_path, target)
    assert run.proc is not None
    run.proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while run.log_path().read_text().count("\n") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run.reap(time.monotonic())
    assert run.status()["state"]["terminated"]["exitCode"] == 4
    server = KubeletHTTPServer(0, lambda ns, pod, c, prev: LogSource(run.log_path(0), lambda: False)
                               if (ns, pod) == ("default", "p") else None, tmp_path / "pki")
    server.start()
    try:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        url = f"https://127.0.0.1:{server.port}/containerLogs/default/p/c?tailLines=1"
        with urllib.request.urlopen(url, context=context, timeout=10) as resp:
            assert resp.read() == b"two\n"
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(url.replace("/p/", "/missing/"), context=context, timeout=10)
    finally:
        server.stop()


def test_a_bad_kubeconfig_is_a_one_line_config_error(tmp_path: Path) -> None:
    from gameday.cluster.kubelet import ProcessKubelet
    from gameday.cluster.proxy import ServiceProxy
    from gameday.images import ImageCatalog

    missing = tmp_path / "missing.kubeconfig"
    for part in (ProcessKubelet(missing, ["node-1"], ImageCatalog.load(), tmp_path / "kubelet"),
                 ServiceProxy(missing)):
        with pytest.raises(ConfigError, match="missing.kubeconfig"), part:
            pass
    with pytest.raises(ConfigError, match="at least one node"):
        ProcessKubelet(missing, [], ImageCatalog.load(), tmp_path)
