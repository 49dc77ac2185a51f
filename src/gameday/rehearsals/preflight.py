"""Before anything starts: what the features name must exist in the project.

`gameday run` parses every feature and, for each step, checks the names its arguments
carry (a step module says which in ``NAMES``): a ``service`` is in the project file and its manifests parse and hold its
Deployment and Service; a ``deployment`` belongs to a service; a ``release`` (or
``blue``/``green``) is in the image catalog when the embedded cluster will run it; a
``fault`` parses; a feature ``flag`` is a ConfigMap key; the load's locustfile imports.  Each miss is one line naming the feature line and the fix, exit 2,
before a cluster or any load starts.

    check = Preflight(project, embedded=True)
    validate(feature_paths, check=check)     # check([("service", "cart"), ("release", "2.0")], "f:3")
"""

from __future__ import annotations

from typing import Any

from gameday.errors import ConfigError
from gameday.faults import parse_fault
from gameday.load import check_locustfile
from gameday.load.records import parse_endpoint
from gameday.manifests import Manifests, check_flag_name
from gameday.project import Project, Service


class Preflight:
    def __init__(self, project: Project, *, embedded: bool) -> None:
        self.project = project
        self.embedded = embedded
        self._manifests: dict[str, Manifests] = {}
        self._catalog: Any = None
        self._checked: set[Any] = set()

    def manifests(self, service: Service) -> Manifests:
        if service.name not in self._manifests:
            self._manifests[service.name] = Manifests.load(service)
        return self._manifests[service.name]

    def __call__(self, named: list[tuple[str, str]], where: str) -> None:
        try:
            self._check(named)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc.message}", fix=exc.fix) from None

    def _check(self, named: list[tuple[str, str]]) -> None:
        kinds = {kind for kind, _ in named}
        service = None
        for kind, value in named:
            if kind == "service":
                service = self.project.service(value)
                self.manifests(service)
            elif kind == "deployment":
                service = self._owner(value)
            elif kind == "fault":
                parse_fault(value, f"fault {value!r}")
            elif kind == "database-service":  # a service given a database: its pods must read its URL
                service = self.project.service(value)
                self.manifests(service)
                service.database_variable()
            elif kind == "endpoint":
                parse_endpoint(value)
            elif kind == "flag":  # a key of the service's flags ConfigMap
                check_flag_name(value)
        if service is None and "load" in kinds and len(self.project.services) == 1:
            service = self.project.service()  # "steady traffic from N users": the only service's load
        if service is not None and service.load is not None and service.load.locustfile is not None:
            self._locustfile(service.load.locustfile)
        runbooks = [value for kind, value in named if kind == "runbook"]
        for runbook in runbooks:
            from gameday.runbook.follow import load

            for section in [value for kind, value in named if kind == "section"] or [""]:
                if section:
                    load(self.project, runbook, section)  # the file parses and has the section
        releases = [value for kind, value in named if kind == "release"]
        if releases and self.embedded:
            candidates = [service] if service is not None else list(self.project.services.values())
            for release in releases:
                self._release(release, candidates)

    def _locustfile(self, path: Any) -> None:
        if path not in self._checked:
            check_locustfile(path)  # one line naming the file if it does not import, before any load
            self._checked.add(path)

    def _owner(self, deployment: str) -> Service:
        for service in self.project.services.values():
            if deployment in (service.deployment, f"{service.deployment}-blue", f"{service.deployment}-green"):
                self.manifests(service)
                return service
        known = ", ".join(sorted(s.deployment for s in self.project.services.values()))
        raise ConfigError(f"deployment {deployment!r} is not a Deployment of any service in {self.project.path} "
                          f"({known})", fix="name one of those, or add the service to the project file")

    def _release(self, release: str, services: list[Service]) -> None:
        if self._catalog is None:
            self._catalog = self.project.catalog()
        from gameday.cluster.access import image_missing

        errors = [image_missing(self._catalog, self.manifests(s).image(release)) for s in services]
        if all(errors) and errors:
            raise errors[0]  # type: ignore[misc]
