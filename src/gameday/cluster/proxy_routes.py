"""The service proxy's routing table, computed from API objects (pure, no I/O).

Inputs are plain dicts as the API returns them: Services, EndpointSlices (written by the
real controller-manager), Pods (for the ``gameday.io/local-address`` annotation the
process kubelet writes) and Istio-style VirtualServices.  Output: for each Service port,
the weighted destinations and each destination's READY local backends (127.x:port).
Addresses that are not loopback are never returned, so nothing dials out.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]
LOCAL_ADDRESS_ANNOTATION = "gameday.io/local-address"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


@dataclass(frozen=True)
class Destination:
    service: str  # ns/name
    port: int  # that Service's port
    weight: int
    backends: tuple[tuple[str, int], ...]  # ready local (host, port)


@dataclass
class Route:
    """What one Service port's listener forwards to."""

    key: str  # ns/name:port
    destinations: list[Destination] = field(default_factory=list)
    weighted: bool = False  # set by a VirtualService: balanced per HTTP request, as Istio does

    def eligible(self) -> set[tuple[str, int]]:
        """Backends that may still receive traffic (weight > 0)."""
        return {b for d in self.destinations if d.weight > 0 for b in d.backends}


def service_key(namespace: str, name: str, port: int) -> str:
    return f"{namespace}/{name}:{port}"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def local_hosts(pods: list[Obj]) -> tuple[dict[str, str], dict[str, str]]:
    """(ns/name -> local host, API pod IP -> local host) from the kubelet's annotations."""
    by_name: dict[str, str] = {}
    by_ip: dict[str, str] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        address = (meta.get("annotations") or {}).get(LOCAL_ADDRESS_ANNOTATION, "")
        host = address.rsplit(":", 1)[0] if ":" in address else address
        if not host or not _is_loopback(host):
            continue
        by_name[f"{meta.get('namespace')}/{meta.get('name')}"] = host
        for ip in (pod.get("status") or {}).get("podIPs") or []:
            by_ip[ip.get("ip", "")] = host
    return by_name, by_ip


def ready_backends(service: Obj, port: int, slices: list[Obj], pods: list[Obj]) -> tuple[tuple[str, int], ...]:
    """READY endpoints of one Service port, translated to local addresses, in a stable order."""
    meta = service["metadata"]
    spec_port = next((p for p in service["spec"].get("ports") or [] if p.get("port") == port), None)
    if spec_port is None:
        return ()
    port_name = spec_port.get("name") or ""
    by_name, by_ip = local_hosts(pods)
    found: set[tuple[str, int]] = set()
    for slc in slices:
        smeta = slc.get("metadata") or {}
        if smeta.get("namespace") != meta["namespace"] or \
                (smeta.get("labels") or {}).get(SERVICE_NAME_LABEL) != meta["name"]:
            continue
        number = next((p.get("port") for p in slc.get("ports") or [] if (p.get("name") or "") == port_name), None)
        if number is None:
            continue
        for endpoint in slc.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            ref = endpoint.get("targetRef") or {}
            host = by_name.get(f"{ref.get('namespace', meta['namespace'])}/{ref.get('name')}") if ref else None
            for address in endpoint.get("addresses") or []:
                local = host or by_ip.get(address) or (address if _is_loopback(address) else None)
                if local:
                    found.add((local, int(number)))
    return tuple(sorted(found))


def resolve_host(host: str, namespace: str) -> str:
    """Istio host name -> ns/name: 'demo', 'demo.ns', 'demo.ns.svc.cluster.local'."""
    parts = host.split(".")
    if len(parts) == 1:
        return f"{namespace}/{parts[0]}"
    return f"{parts[1]}/{parts[0]}"


def virtual_service_routes(vs: Obj) -> tuple[list[str], list[tuple[str, int | None, int | None]]]:
    """(hosts as ns/name, [(destination ns/name, port or None, weight or None)]) of the first http route."""
    namespace = vs["metadata"]["namespace"]
    spec = vs.get("spec") or {}
    hosts = [resolve_host(h, namespace) for h in spec.get("hosts") or [] if isinstance(h, str)]
    http = spec.get("http") or []
    # routes with match conditions need L7 inspection; the first unconditional one wins
    chosen = next((h for h in http if not h.get("match")), http[0] if http else None)
    routes = []
    for entry in (chosen or {}).get("route") or []:
        dest = entry.get("destination") or {}
        if not dest.get("host"):
            continue
        port = (dest.get("port") or {}).get("number")
        weight = entry.get("weight")
        routes.append((resolve_host(dest["host"], namespace), port, int(weight) if weight is not None else None))
    return hosts, routes


def route_weights(routes: list[tuple[str, int | None, int | None]]) -> list[int]:
    """Each destination's weight as Istio applies it: as given (missing ones 0), or equal when none is given."""
    given = [w for _, _, w in routes]
    if all(w is None for w in given):
        return [100 // max(1, len(routes))] * len(routes)
    return [w or 0 for w in given]


def build_routes(services: list[Obj], slices: list[Obj], pods: list[Obj],
                 virtual_services: list[Obj]) -> dict[str, Route]:
    by_name = {f"{s['metadata']['namespace']}/{s['metadata']['name']}": s for s in services}
    overrides: dict[str, list[tuple[str, int | None, int | None]]] = {}
    for vs in sorted(virtual_services, key=lambda v: v["metadata"].get("creationTimestamp", "")):
        hosts, routes = virtual_service_routes(vs)
        for host in hosts:
            if host in by_name and routes:
                overrides.setdefault(host, routes)  # the oldest VirtualService for a host wins

    def destination(name: str, wanted: int | None, incoming: int, weight: int) -> Destination:
        svc = by_name.get(name)
        if svc is None:
            return Destination(name, wanted or incoming, weight, ())
        numbers = [int(p["port"]) for p in svc["spec"].get("ports") or []]
        port = wanted if wanted in numbers else incoming if incoming in numbers else (numbers or [incoming])[0]
        assert port is not None
        return Destination(name, port, weight, ready_backends(svc, port, slices, pods))

    table: dict[str, Route] = {}
    for name, svc in by_name.items():
        namespace, short = name.split("/", 1)
        for spec_port in svc["spec"].get("ports") or []:
            if (spec_port.get("protocol") or "TCP") != "TCP":
                continue
            number = int(spec_port["port"])
            route = Route(service_key(namespace, short, number))
            routes = overrides.get(name) or []
            if routes:
                route.weighted = True
                route.destinations = [destination(dest, port, number, weight)
                                      for (dest, port, _), weight in zip(routes, route_weights(routes), strict=True)]
            else:
                route.destinations = [destination(name, number, number, 100)]
            table[route.key] = route
    return table


class WeightedPicker:
    """Smooth weighted round robin (as nginx does): deterministic, evenly interleaved splits."""

    def __init__(self) -> None:
        self._signature: tuple[tuple[str, int], ...] = ()
        self._current: list[int] = []
        self._next_backend: dict[str, int] = {}

    def pick(self, route: Route) -> tuple[Destination, tuple[str, int] | None] | None:
        dests = route.destinations
        signature = tuple((d.service, d.weight) for d in dests)
        if signature != self._signature:
            self._signature, self._current = signature, [0] * len(dests)
        total = sum(d.weight for d in dests)
        if not dests or total <= 0:
            return None
        for i, dest in enumerate(dests):
            self._current[i] += dest.weight
        best = max(range(len(dests)), key=lambda i: self._current[i])
        self._current[best] -= total
        chosen = dests[best]
        if not chosen.backends:
            return chosen, None  # Istio semantics: the weight still applies, the request fails
        index = self._next_backend.get(chosen.service, 0)
        self._next_backend[chosen.service] = index + 1
        return chosen, chosen.backends[index % len(chosen.backends)]
