"""A small list+watch cache (an "informer") over plain dicts, shared by kubelet and proxy.

Why our own and not ``kubernetes.watch.Watch``: we want raw dicts (no model
deserialisation on a 2-core machine), our own resourceVersion bookkeeping, a prompt
``stop()`` that unblocks the read, and a re-list on 410 Gone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes.client import ApiClient
from kubernetes.client.rest import ApiException
from kubernetes.watch.watch import iter_resp_lines

log = logging.getLogger("gameday.cluster.watch")

Obj = dict[str, Any]
Handler = Callable[[str, Obj], None]


def key_of(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    return f"{namespace}/{meta['name']}" if namespace else str(meta["name"])


class Informer:
    """Keeps ``cache`` (key -> object) in sync with the API and calls ``handler(type, obj)``.

    ``list_fn`` is a generated client list method (e.g. ``CoreV1Api.list_pod_for_all_namespaces``)
    or a ``functools.partial`` of one; it is called with ``_preload_content=False``.
    Event types: ADDED, MODIFIED, DELETED (also synthesised after a re-list).
    """

    def __init__(self, name: str, list_fn: Callable[..., Any], handler: Handler | None = None,
                 *, watch_timeout: int = 60, **list_kwargs: Any) -> None:
        self.name = name
        self._list_fn = list_fn
        self._list_kwargs = list_kwargs
        self._handler = handler
        self._watch_timeout = watch_timeout
        self.cache: dict[str, Obj] = {}
        self.lock = threading.RLock()
        self._stopped = threading.Event()
        self._synced = threading.Event()
        self._resp: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> Informer:
        self._thread = threading.Thread(target=self._run, name=f"watch-{self.name}", daemon=True)
        self._thread.start()
        return self

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def wait_synced(self, timeout: float) -> bool:
        return self._synced.wait(timeout)

    def stop(self) -> None:
        self._stopped.set()
        resp = self._resp
        sock = getattr(getattr(resp, "connection", None), "sock", None)
        if sock is not None:
            # unblock the read now rather than at the next event
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def snapshot(self) -> list[Obj]:
        with self.lock:
            return list(self.cache.values())

    def get(self, key: str) -> Obj | None:
        with self.lock:
            return self.cache.get(key)

    # -- internals ---------------------------------------------------------------------
    def _run(self) -> None:
        resource_version: str | None = None
        failures = 0
        while not self._stopped.is_set():
            try:
                if resource_version is None:
                    resource_version = self._relist()
                resource_version = self._watch(resource_version)
                failures = 0
            except ApiException as exc:
                if exc.status == 410:  # our resourceVersion is too old: list again
                    resource_version = None
                    continue
                failures += 1
            except Exception as exc:  # noqa: BLE001 - the API may restart; keep watching
                if self._stopped.is_set():
                    return
                log.debug("watch %s failed: %s", self.name, exc)
                failures += 1
            if failures:
                self._stopped.wait(min(5.0, 0.2 * 2 ** min(failures, 5)))

    def _relist(self) -> str:
        resp = self._list_fn(_preload_content=False, _request_timeout=30, **self._list_kwargs)
        body = json.loads(resp.data)
        fresh = {}
        for item in body.get("items") or []:
            # list items carry no kind; the handlers don't need it
            fresh[key_of(item)] = item
        with self.lock:
            gone = [self.cache[k] for k in self.cache.keys() - fresh.keys()]
            changed = [(("MODIFIED" if k in self.cache else "ADDED"), o) for k, o in fresh.items()
                       if self.cache.get(k, {}).get("metadata", {}).get("resourceVersion")
                       != o["metadata"].get("resourceVersion")]
            self.cache = fresh
        for obj in gone:
            self._emit("DELETED", obj)
        for kind, obj in changed:
            self._emit(kind, obj)
        self._synced.set()
        return str(body["metadata"]["resourceVersion"])

    def _watch(self, resource_version: str) -> str:
        resp = self._list_fn(
            watch=True, resource_version=resource_version, allow_watch_bookmarks=True,
            timeout_seconds=self._watch_timeout, _preload_content=False,
            _request_timeout=(10, self._watch_timeout + 15), **self._list_kwargs)
        self._resp = resp
        try:
            for line in iter_resp_lines(resp):
                if self._stopped.is_set():
                    break
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event["type"], event["object"]
                if kind == "ERROR":
                    raise ApiException(status=obj.get("code"), reason=obj.get("message"))
                resource_version = obj["metadata"].get("resourceVersion", resource_version)
                if kind == "BOOKMARK":
                    continue
                with self.lock:
                    if kind == "DELETED":
                        self.cache.pop(key_of(obj), None)
                    else:
                        self.cache[key_of(obj)] = obj
                self._emit(kind, obj)
        finally:
            self._resp = None
            resp.close()
            resp.release_conn()
        return resource_version

    def _emit(self, kind: str, obj: Obj) -> None:
        if self._handler is None:
            return
        try:
            self._handler(kind, obj)
        except Exception:  # a failing handler must not end the watch
            log.exception("handler for %s failed", self.name)


def api_client_for(kubeconfig: Path) -> ApiClient:
    """An ApiClient from a kubeconfig file, or a one-line ConfigError naming the file."""
    from gameday.cluster.access import api_client

    return api_client(kubeconfig, fix="pass the kubeconfig the control plane wrote")  # type: ignore[no-any-return]


def wait_all_synced(informers: list[Informer], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    return all(i.wait_synced(max(0.0, deadline - time.monotonic())) for i in informers)
