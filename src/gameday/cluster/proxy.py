"""ServiceProxy: each Service port of the local cluster as a TCP listener on 127.0.0.1.

The proxy watches Services, EndpointSlices (computed by the real controller-manager),
Pods (for the kubelet's ``gameday.io/local-address`` annotation) and Istio-style
VirtualServices, and forwards to READY endpoints, translated to the pod's real 127.x
address (proxy_routes).

Balancing: HTTP/1.1 is balanced per request for every Service, as Istio does
(proxy_http), so VirtualService weights hold for keep-alive clients and a selector
switch or weight change applies from the very next request.  Backend connections are
kept alive in a small per-backend pool (proxy_http.BackendPool) that only ever serves
the backend a request was picked for; when an endpoint leaves the routing table (pod
deleted, not ready, weight 0) its idle pooled connections close at once.

The mapping "ns/name:port" -> "127.0.0.1:PORT" is in ``services()`` and in
``<workdir>/services.json`` (workdir defaults to the kubeconfig's directory).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from gameday.cluster.kubelet_watch import Informer, api_client_for, wait_all_synced
from gameday.cluster.proxy_http import Address, BackendPool, NotHTTP, relay_requests, set_nodelay
from gameday.cluster.proxy_routes import Route, WeightedPicker, build_routes
from gameday.errors import EnvironmentNotReady
from gameday.lifecycle import Provider, ThreadPart, forget_part, wait_until, watch_part

log = logging.getLogger("gameday.cluster.proxy")

CRD_FILE = Path(__file__).with_name("istio_crd.yaml")
POOL_SWEEP_S = 0.5  # how often idle pooled connections are checked for their idle timeout
SYNC_TIMEOUT_S = 30.0
PUBLISHED_CONFIGMAP = "gameday-service-proxy"


class ServiceProxy(Provider):
    name = "service-proxy"

    def __init__(self, kubeconfig: Path, *, workdir: Path | None = None, install_crd: bool = True) -> None:
        self.kubeconfig = Path(kubeconfig)
        self.workdir = Path(workdir) if workdir else self.kubeconfig.parent
        self.services_file = self.workdir / "services.json"
        self.install_crd = install_crd
        self._api: client.ApiClient | None = None
        self._informers: list[Informer] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._part: ThreadPart | None = None
        self._routes: dict[str, Route] = {}
        self._pickers: dict[str, WeightedPicker] = {}
        self._servers: dict[str, asyncio.base_events.Server] = {}
        self._addresses: dict[str, str] = {}
        self._clients: set[asyncio.StreamWriter] = set()
        self.pool = BackendPool()  # the event-loop thread's; read its counters only when idle
        self._rebuild_pending = False
        self._lock = threading.Lock()
        self._publisher = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="proxy-publish")

    # -- Provider -------------------------------------------------------------------------
    def start(self) -> ServiceProxy:
        if self._api is not None:
            return self
        self._api = api_client_for(self.kubeconfig)
        if self.install_crd:
            self._install_crd()
        loop = self._start_loop()
        core, discovery = client.CoreV1Api(self._api), client.DiscoveryV1Api(self._api)
        custom = client.CustomObjectsApi(self._api)
        virtual_services = functools.partial(custom.list_cluster_custom_object,
                                             "networking.istio.io", "v1", "virtualservices")
        self._informers = [
            Informer("services", core.list_service_for_all_namespaces, self._changed),
            Informer("endpointslices", discovery.list_endpoint_slice_for_all_namespaces, self._changed),
            Informer("pods", core.list_pod_for_all_namespaces, self._pod_changed),
        ]
        if self.install_crd:
            self._informers.append(Informer("virtualservices", virtual_services, self._changed))
        for informer in self._informers:
            informer.start()
        if not wait_all_synced(self._informers, SYNC_TIMEOUT_S):
            raise EnvironmentNotReady(f"service proxy could not list services/endpointslices within {SYNC_TIMEOUT_S:g}s",
                                      fix="check that the kube-apiserver answers")
        asyncio.run_coroutine_threadsafe(self._rebuild(), loop).result(timeout=30)
        return self

    def serve(self, routes: dict[str, Route]) -> ServiceProxy:
        """Serve a fixed routing table, without the API (unit tests, benchmarks): one listener
        per key, as ``services()`` then shows.  Calling it again replaces the table, as a
        rebuild does.  Not for a proxy that ``start()`` runs: its informers own the table."""
        loop = self._loop or self._start_loop()
        asyncio.run_coroutine_threadsafe(self._apply(routes), loop).result(timeout=30)
        return self

    def _start_loop(self) -> asyncio.AbstractEventLoop:
        self.pool = BackendPool()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="service-proxy", daemon=True)
        self._thread.start()
        self._part = ThreadPart(self._thread)
        watch_part("service proxy", self._part, shared=True)  # if its loop ends, waits on traffic are told so at once
        asyncio.run_coroutine_threadsafe(self._sweep_forever(), self._loop)
        return self._loop

    def crash(self) -> None:
        """What a killed proxy process leaves: its listeners and connections closed, its loop gone,
        nothing cleaned up in order.  A fault for rehearsals and for gameday's own tests."""
        if self._loop is not None and self._thread is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._close_all(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def stop(self) -> None:
        forget_part(self._part)
        self._part = None
        for informer in self._informers:
            informer.stop()
        self._informers = []
        if self._loop is not None and self._thread is not None:
            if self._thread.is_alive():  # not after a crash: nobody runs the loop any more
                with contextlib.suppress(Exception):
                    asyncio.run_coroutine_threadsafe(self._close_all(), self._loop).result(timeout=10)
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout=10)
            self._loop.close()
        self._loop, self._thread = None, None
        self._publisher.shutdown(wait=True, cancel_futures=True)
        if self._api is not None:
            self._api.close()
            self._api = None

    def endpoints(self) -> dict[str, Any]:
        return {"services": self.services(), "services_file": str(self.services_file)}

    def services(self) -> dict[str, str]:
        """'ns/name:port' -> '127.0.0.1:PORT' for every TCP Service port."""
        with self._lock:
            return dict(self._addresses)

    def address(self, service: str, port: int, namespace: str = "default") -> tuple[str, int]:
        """(host, port) of one Service port's local listener; waits briefly for it to appear."""
        key = f"{namespace}/{service}:{port}"
        found = wait_until(lambda: self.services().get(key), timeout=10, interval=0.1,
                           what=f"service proxy listener for {key}")
        host, _, number = found.rpartition(":")
        return host, int(number)

    # -- API side -------------------------------------------------------------------------
    def _install_crd(self) -> None:
        ext = client.ApiextensionsV1Api(self._api)
        body = yaml.safe_load(CRD_FILE.read_text())
        name = body["metadata"]["name"]
        try:
            ext.create_custom_resource_definition(body)
        except ApiException as exc:
            if exc.status != 409:
                raise

        def established() -> bool:
            crd = ext.read_custom_resource_definition(name)
            return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])

        wait_until(established, timeout=30, interval=0.2, what=f"CRD {name}", transient=(ApiException, OSError))

    def _pod_changed(self, kind: str, pod: dict[str, Any]) -> None:
        # only the annotation and pod IPs matter; other pod churn does not touch routes
        if (pod.get("metadata") or {}).get("annotations", {}).get("gameday.io/local-address") or kind == "DELETED":
            self._changed(kind, pod)

    def _changed(self, kind: str, obj: dict[str, Any]) -> None:
        loop = self._loop
        if loop is None or self._rebuild_pending:
            return
        self._rebuild_pending = True
        with contextlib.suppress(RuntimeError):  # loop already closed at stop
            loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._rebuild()))

    # -- routing (event-loop thread) -------------------------------------------------------
    async def _rebuild(self) -> None:
        await asyncio.sleep(0.05)  # coalesce bursts of events into one rebuild
        self._rebuild_pending = False
        snapshots = [i.snapshot() for i in self._informers]
        services, slices, pods = snapshots[:3]
        virtual_services = snapshots[3] if len(snapshots) > 3 else []
        await self._apply(build_routes(services, slices, pods, virtual_services))

    async def _apply(self, routes: dict[str, Route]) -> None:
        for key in list(self._servers):
            if key not in routes:
                self._servers.pop(key).close()
                self._pickers.pop(key, None)
        for key in routes:
            if key not in self._servers:
                server = await asyncio.start_server(functools.partial(self._accept, key), "127.0.0.1", 0)
                self._servers[key] = server
        self._routes = routes
        # endpoints that left every route (pod deleted, not ready, weight 0) keep no idle connection
        self.pool.retain({backend for route in routes.values() for backend in route.eligible()})
        addresses = {key: f"127.0.0.1:{server.sockets[0].getsockname()[1]}" for key, server in self._servers.items()}
        with self._lock:
            changed, self._addresses = addresses != self._addresses, addresses
        if changed:
            self._write_services_file()
            # off the event loop: an API write must never stall forwarding
            # one writer thread, so the ConfigMap never goes back to an older map
            asyncio.get_running_loop().run_in_executor(self._publisher, self._publish, addresses)

    def _write_services_file(self) -> None:
        try:
            self.services_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.services_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.services(), indent=2, sort_keys=True))
            os.replace(tmp, self.services_file)
        except OSError as exc:
            log.warning("could not write %s: %s", self.services_file, exc)

    def _publish(self, addresses: dict[str, str]) -> None:
        """The address map as ConfigMap kube-system/gameday-service-proxy, so any client holding
        the kubeconfig (a kubeconfig provider in another process) finds each Service's address."""
        body = {"metadata": {"name": PUBLISHED_CONFIGMAP, "namespace": "kube-system",
                             "labels": {"app.kubernetes.io/managed-by": "gameday"}},
                "data": {"services.json": json.dumps(addresses, sort_keys=True)}}
        if self._api is None:
            return
        core = client.CoreV1Api(self._api)
        try:
            try:
                core.replace_namespaced_config_map(PUBLISHED_CONFIGMAP, "kube-system", body, _request_timeout=10)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                core.create_namespaced_config_map("kube-system", body, _request_timeout=10)
        except Exception as exc:  # noqa: BLE001 - the local file and services() still hold the map
            log.warning("could not publish the service addresses: %s", exc)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(POOL_SWEEP_S)
            self.pool.prune()

    async def _close_all(self) -> None:
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:  # the sweeper, pending rebuilds and open client connections
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        for server in self._servers.values():
            server.close()
        for writer in self._clients:
            writer.close()
        self.pool.close()
        for _ in range(3):  # let the transports run connection_lost, which closes their sockets
            await asyncio.sleep(0)
        self._servers.clear()
        self._clients.clear()
        with self._lock:
            self._addresses = {}

    # -- forwarding ---------------------------------------------------------------------
    def _pick(self, key: str) -> list[Address] | None:
        """The backend for one request (weighted, round robin), then the picked destination's
        other ready backends, which a refused connect falls back to (as Envoy retries connect
        failures), never another destination, so weights hold.  None: no backend."""
        route = self._routes.get(key)
        if route is None:
            return None
        picked = self._pickers.setdefault(key, WeightedPicker()).pick(route)
        if picked is None or picked[1] is None:
            return None  # Istio semantics: a destination without ready endpoints still takes its share
        destination, first = picked
        assert first is not None
        return [first, *[b for b in destination.backends if b != first]]

    async def _accept(self, key: str, client_reader: asyncio.StreamReader,
                      client_writer: asyncio.StreamWriter) -> None:
        # HTTP is routed per request for every Service, as the ingress users come through
        # does: keep-alive clients follow a selector switch or a weight change at once.
        set_nodelay(client_writer)
        self._clients.add(client_writer)
        try:
            await relay_requests(client_reader, client_writer, functools.partial(self._pick, key), self.pool)
        except (OSError, ValueError, IndexError, NotHTTP, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a broken request or response ends this client connection only
        except asyncio.CancelledError:
            pass  # stop(): ending quietly keeps Python 3.11's stream callback from logging it
        finally:
            self._clients.discard(client_writer)
            client_writer.close()
