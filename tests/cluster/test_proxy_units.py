"""The service proxy's routing table and weighted picking, from plain API objects (no I/O)."""

from __future__ import annotations

from collections import Counter

from gameday.cluster.proxy_routes import WeightedPicker, build_routes, resolve_host, virtual_service_routes


def _service(name: str, port: int = 80, port_name: str = "http") -> dict:
    return {"metadata": {"namespace": "default", "name": name},
            "spec": {"ports": [{"name": port_name, "port": port, "targetPort": 8080, "protocol": "TCP"}]}}


def _slice(service: str, endpoints: list[tuple[str, str, bool]], port_name: str = "http") -> dict:
    return {"metadata": {"namespace": "default", "name": f"{service}-abc",
                         "labels": {"kubernetes.io/service-name": service}},
            "ports": [{"name": port_name, "port": 8080}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready},
                           "targetRef": {"kind": "Pod", "namespace": "default", "name": pod}}
                          for pod, ip, ready in endpoints]}


def _pod(name: str, ip: str, local: str | None) -> dict:
    annotations = {"gameday.io/local-address": f"{local}:8080"} if local else {}
    return {"metadata": {"namespace": "default", "name": name, "annotations": annotations},
            "status": {"podIPs": [{"ip": ip}]}}


def _vs(host: str, routes: list[tuple[str, int | None]]) -> dict:
    return {"metadata": {"namespace": "default", "name": f"{host}-vs", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"hosts": [host], "http": [{"route": [
                {"destination": {"host": dest}, **({"weight": w} if w is not None else {})} for dest, w in routes]}]}}


PODS = [_pod("a", "198.18.0.1", "127.50.0.1"), _pod("b", "198.18.0.2", "127.50.0.2"),
        _pod("c", "198.18.0.3", "127.50.0.3"), _pod("outside", "10.0.0.9", None)]


def test_ready_endpoints_are_translated_to_local_addresses_only() -> None:
    slices = [_slice("demo", [("a", "198.18.0.1", True), ("b", "198.18.0.2", False),
                              ("outside", "10.0.0.9", True)])]
    routes = build_routes([_service("demo")], slices, PODS, [])
    (dest,) = routes["default/demo:80"].destinations
    # b is not ready; "outside" has no local address and is never dialled
    assert dest.backends == (("127.50.0.1", 8080),)


def test_selector_switch_shows_as_new_backends() -> None:
    blue = build_routes([_service("demo")], [_slice("demo", [("a", "198.18.0.1", True)])], PODS, [])
    green = build_routes([_service("demo")], [_slice("demo", [("c", "198.18.0.3", True)])], PODS, [])
    assert blue["default/demo:80"].eligible() == {("127.50.0.1", 8080)}
    assert green["default/demo:80"].eligible() == {("127.50.0.3", 8080)}


def test_virtual_service_weights_split_connections_exactly() -> None:
    services = [_service("demo"), _service("demo-stable"), _service("demo-canary")]
    slices = [_slice("demo-stable", [("a", "198.18.0.1", True), ("b", "198.18.0.2", True)]),
              _slice("demo-canary", [("c", "198.18.0.3", True)])]
    vs = _vs("demo", [("demo-stable", 80), ("demo-canary.default.svc.cluster.local", 20)])
    route = build_routes(services, slices, PODS, [vs])["default/demo:80"]
    picker = WeightedPicker()
    picks = [picker.pick(route) for _ in range(100)]
    by_service = Counter(dest.service for dest, _ in picks)
    assert by_service == {"default/demo-stable": 80, "default/demo-canary": 20}
    stable_backends = Counter(backend for dest, backend in picks if dest.service == "default/demo-stable")
    assert stable_backends == {("127.50.0.1", 8080): 40, ("127.50.0.2", 8080): 40}
    drained = build_routes(services, slices, PODS, [_vs("demo", [("demo-stable", 100), ("demo-canary", 0)])])
    assert drained["default/demo:80"].eligible() == {("127.50.0.1", 8080), ("127.50.0.2", 8080)}


def test_a_weighted_destination_without_endpoints_still_takes_its_share() -> None:
    services = [_service("demo"), _service("demo-canary")]
    route = build_routes(services, [_slice("demo", [("a", "198.18.0.1", True)])], PODS,
                         [_vs("demo", [("demo", 50), ("demo-canary", 50)])])["default/demo:80"]
    picker = WeightedPicker()
    assert Counter(backend is None for _, backend in (picker.pick(route) for _ in range(10))) == {True: 5, False: 5}


def test_istio_host_names_resolve_to_services() -> None:
    assert resolve_host("demo", "shop") == "shop/demo"
    assert resolve_host("demo.other", "shop") == "other/demo"
    assert resolve_host("demo.other.svc.cluster.local", "shop") == "other/demo"
    hosts, routes = virtual_service_routes(_vs("demo", [("demo-stable", None)]))
    assert hosts == ["default/demo"] and routes == [("default/demo-stable", None, None)]
