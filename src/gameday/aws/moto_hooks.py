"""The few places where gameday hooks into moto's in-process ECS backend.

moto has no public API to report task or deployment progress, so the task runner runs
inside the moto server process and changes moto's model objects directly.  These
hooks keep moto's own behaviour where it already matches ECS and fix three spots:

* ``create_service`` / ``update_service`` tell the runner at once, inside the API call,
  so no reader ever sees moto's made-up counts (moto sets runningCount = desiredCount
  and keeps a single deployment, which would let ``services-stable`` pass at once);
* ``list_tasks`` honours ``serviceName`` (tasks carry ``group = service:<name>``, as on
  ECS) and filters on desiredStatus RUNNING by default, as ECS does;
* task status is owned by the runner: moto's "advance on every describe" state
  machine for ``ecs::task`` is switched off.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

_installed = False
_listeners: list[Callable[[Any, Any], None]] = []


def install(on_service_changed: Callable[[Any, Any], None]) -> None:
    """Patch moto's ECS backend class (once per process) and register a listener."""
    global _installed
    _listeners.append(on_service_changed)
    if _installed:
        return
    from moto.ecs.models import EC2ContainerServiceBackend
    from moto.moto_api import state_manager

    state_manager.set_transition(model_name="ecs::task", transition={"progression": "manual", "times": 10**12})

    for name in ("create_service", "update_service"):
        setattr(EC2ContainerServiceBackend, name, _notifying(getattr(EC2ContainerServiceBackend, name)))
    original_list_tasks = EC2ContainerServiceBackend.list_tasks

    @functools.wraps(original_list_tasks)
    def list_tasks(self: Any, cluster_str: str | None = None, container_instance: str | None = None,
                   family: str | None = None, started_by: str | None = None,
                   service_name: str | None = None, desiredStatus: str | None = None) -> list[Any]:
        tasks = original_list_tasks(
            self, cluster_str, container_instance, family, started_by, None, desiredStatus or "RUNNING"
        )
        if service_name:
            wanted = f"service:{service_name.split('/')[-1]}"
            tasks = [t for t in tasks if t.group == wanted]
        return tasks

    EC2ContainerServiceBackend.list_tasks = list_tasks  # type: ignore[method-assign]
    _installed = True


def _notifying(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        service = method(self, *args, **kwargs)
        for listener in _listeners:
            listener(self, service)
        return service

    return wrapper


def ecs_backends() -> Any:
    """Every (account, region) ECS backend moto has created so far."""
    from moto.ecs.models import ecs_backends as backends

    for account_id in list(backends.keys()):
        regional = backends[account_id]
        for region in list(regional.keys()):
            yield regional[region]
