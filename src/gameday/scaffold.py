"""`gameday init`: a project file, a first feature and the pytest glue, from the team's manifests.

It reads the manifests (a folder of YAML, or a kustomization), takes every Deployment
that a Service selects, and writes:

- ``gameday.yaml``: each service with its Deployment, container, image repository,
  Service and port, the endpoints its probes use, how a response names its release,
  a load of declared requests, and image catalog entries for the embedded cluster
  (the command that runs the service locally, the release found in the manifest, and a
  bad release of the same build that the harness breaks with a fault);
- ``features/rollback.feature``: a rollout-undo rehearsal under load, in runbook words;
- ``tests/test_gameday_features.py`` and a ``conftest.py`` line, so plain ``pytest`` runs
  the features too.

Nothing that exists is overwritten.

    gameday init --manifests k8s --command "{python} {dir}/app.py" --version-env APP_VERSION \\
                 --release-header X-App-Version --request /api/cart
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from gameday.errors import ConfigError
from gameday.images import split_reference
from gameday.manifests import read_sources
from gameday.project import FILENAMES

_TEMPLATES = jinja2.Environment(loader=jinja2.PackageLoader("gameday", "templates"), undefined=jinja2.StrictUndefined,
                                keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
GUESSED_FOLDERS = ("k8s", "kubernetes", "manifests", "deploy", "deployment")


@dataclass(frozen=True)
class Found:
    """One Deployment a Service selects, as the manifests say it."""

    name: str
    container: str
    repository: str
    release: str
    port: int
    service: str
    service_port: int
    health: str | None
    ready: str | None


def _probe_path(container: dict[str, Any], kind: str) -> str | None:
    probe = container.get(f"{kind}Probe") or {}
    return (probe.get("httpGet") or {}).get("path")


def discover(docs: list[dict[str, Any]]) -> list[Found]:
    services = [d for d in docs if d.get("kind") == "Service"]
    found = []
    for deployment in (d for d in docs if d.get("kind") == "Deployment"):
        template = deployment.get("spec", {}).get("template", {})
        labels = template.get("metadata", {}).get("labels") or {}
        selecting = next((s for s in services if (sel := s.get("spec", {}).get("selector"))
                          and all(labels.get(k) == v for k, v in sel.items())), None)
        containers = template.get("spec", {}).get("containers") or []
        if selecting is None or not containers:
            continue
        container = containers[0]
        repository, release = split_reference(str(container.get("image", "")))
        ports = container.get("ports") or [{}]
        service_ports = selecting.get("spec", {}).get("ports") or [{}]
        found.append(Found(
            name=deployment["metadata"]["name"], container=container.get("name", ""), repository=repository,
            release=release, port=int(ports[0].get("containerPort", 8080)), service=selecting["metadata"]["name"],
            service_port=int(service_ports[0].get("port", 80)), health=_probe_path(container, "liveness"),
            ready=_probe_path(container, "readiness")))
    return found


def init(root: Path, *, manifests: Path | None, kustomize: Path | None, command: str, version_env: str,
         release_header: str | None, release_json: str | None, users: int = 4,
         requests: tuple[str, ...] = ()) -> list[Path]:
    """Write the scaffold under ``root``; returns the files written."""
    root = root.resolve()
    existing = next((root / n for n in FILENAMES if (root / n).exists()), None)
    if existing is not None:
        raise ConfigError(f"{existing} already exists", fix="edit it, or run init in another folder")
    if (release_header is None) == (release_json is None):
        raise ConfigError("say how a response names the release that served it",
                          fix="pass --release-header NAME or --release-json FIELD (one of them)")
    if manifests is None and kustomize is None:
        manifests = next((root / f for f in GUESSED_FOLDERS if (root / f).is_dir()), None)
        if manifests is None:
            raise ConfigError(f"no manifests folder found under {root} ({', '.join(GUESSED_FOLDERS)})",
                              fix="pass --manifests DIR or --kustomize DIR")
    source = (kustomize or manifests)
    assert source is not None
    source = (root / source).resolve() if not source.is_absolute() else source
    if not source.exists():
        raise ConfigError(f"{source} does not exist", fix="pass the folder holding your manifests")
    docs = read_sources((source,), None) if kustomize is None else read_sources((), source)
    services = discover(docs)
    if not services:
        raise ConfigError(f"no Deployment selected by a Service in {source}",
                          fix="gameday rehearses a Deployment behind a Service; check the selector labels")
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ConfigError(f"--command {command!r} does not parse: {exc}", fix="quote it as a shell would") from None
    context = {
        "services": services, "source": str(source.relative_to(root)) if source.is_relative_to(root) else str(source),
        "kustomize": kustomize is not None, "argv": argv, "version_env": version_env,
        "release_header": release_header, "release_json": release_json, "users": users,
        "requests": [r if r.startswith("/") else f"/{r}" for r in requests],
    }
    written = []
    for template, target in (("gameday.yaml.j2", root / "gameday.yaml"),
                             ("rollback.feature.j2", root / "features" / "rollback.feature"),
                             ("test_gameday_features.py.j2", root / "tests" / "test_gameday_features.py")):
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_TEMPLATES.get_template(template).render(**context, first=services[0]))
        written.append(target)
    conftest = root / "conftest.py"
    line = 'pytest_plugins = ["gameday.library"]  # gameday\'s step library, fixtures and reports\n'
    if not conftest.exists():
        conftest.write_text(line)
        written.append(conftest)
    elif "gameday.library" not in conftest.read_text():
        conftest.write_text(conftest.read_text() + "\n" + line)
        written.append(conftest)
    return written
