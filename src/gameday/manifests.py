"""The team's own manifests, rendered for one release in the rehearsal namespace.

A service's manifests (files, folders of YAML, or a kustomization rendered with
``kubectl kustomize``) are read once and checked before anything starts: they parse,
they hold the Deployment the project file names, that Deployment has the container,
and the Service is there.  ``render()`` then gives the documents to ``kubectl apply``
for one release: the container's image set to ``<repository>:<release>``, replicas as
asked, every object moved into the rehearsal namespace.

    m = Manifests.load(project.service("checkout-api"))
    kubectl.apply(m.render(release="1.0.0", replicas=3))
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gameday.errors import ConfigError
from gameday.images import split_reference

Doc = dict[str, Any]
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PriorityClass",
                  "StorageClass", "PersistentVolume", "IngressClass", "APIService",
                  "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"}
TRACK_LABEL = "track"


def _read_file(path: Path) -> list[Doc]:
    try:
        docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"manifest {where} does not parse: {getattr(exc, 'problem', None) or exc}",
                          fix="fix the YAML (kubectl apply would refuse it too)") from None
    except UnicodeDecodeError:
        raise ConfigError(f"manifest {path} is not UTF-8 text", fix="save it as UTF-8") from None
    found = []
    for index, doc in enumerate(docs):
        if doc is None:
            continue
        if not isinstance(doc, dict) or "kind" not in doc or "metadata" not in doc:
            raise ConfigError(f"manifest {path} document {index + 1} is not a Kubernetes object (no kind/metadata)",
                              fix="each YAML document needs apiVersion, kind and metadata")
        if doc["kind"] == "List":
            found += [item for item in doc.get("items") or [] if isinstance(item, dict)]
        else:
            found.append(doc)
    return found


def _kustomize(folder: Path) -> list[Doc]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise ConfigError("kubectl not found on PATH (needed to render the kustomization)", fix="install kubectl")
    try:
        done = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"kubectl kustomize {folder} took over 60 s", fix="check the kustomization") from None
    if done.returncode != 0:
        first = next((line for line in done.stderr.splitlines() if line.strip()), f"exit {done.returncode}")
        raise ConfigError(f"kustomization {folder} does not build: {first.strip()}", fix="fix it until "
                          f"`kubectl kustomize {folder}` works")
    return [d for d in yaml.safe_load_all(done.stdout) if isinstance(d, dict)]


def read_sources(files: tuple[Path, ...], kustomize: Path | None) -> list[Doc]:
    """Every object in the given files/folders (*.yaml, *.yml, *.json, sorted) or kustomization."""
    if kustomize is not None:
        return _kustomize(kustomize)
    docs: list[Doc] = []
    for path in files:
        if path.is_dir():
            members = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml", ".json") and p.is_file()
                             and p.name not in ("kustomization.yaml", "kustomization.yml"))
            if not members:
                raise ConfigError(f"manifest folder {path} holds no .yaml/.yml/.json files", fix="point at the manifests")
            for member in members:
                docs += _read_file(member)
        else:
            docs += _read_file(path)
    return docs


def _name(doc: Doc) -> str:
    return str((doc.get("metadata") or {}).get("name", ""))


@dataclass(frozen=True)
class Manifests:
    """A service's objects, checked; ``render`` gives one release of them."""

    service: Any  # gameday.project.Service
    docs: tuple[Doc, ...]
    container: str
    repository: str
    service_port: int
    target_port: int | str | None

    @classmethod
    def load(cls, service: Any) -> Manifests:
        docs = read_sources(service.manifests, service.kustomize)
        where = service.source
        deployment = cls._find(docs, "Deployment", service.deployment, where, "deployment")
        containers = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
        if not containers:
            raise ConfigError(f"{where}: deployment {service.deployment} has no containers", fix="fix the manifest")
        names = [c.get("name") for c in containers]
        container = service.container or names[0]
        match = next((c for c in containers if c.get("name") == container), None)
        if match is None:
            raise ConfigError(f"{where}: deployment {service.deployment} has no container {container!r} "
                              f"(containers: {', '.join(map(str, names))})", fix="fix container: in the project file")
        repository = service.image or split_reference(str(match.get("image", "")))[0]
        if not repository:
            raise ConfigError(f"{where}: container {container} has no image and the project file names none",
                              fix="add image: REPOSITORY to the service")
        svc = cls._find(docs, "Service", service.service_name, where, "service.name")
        ports = (svc.get("spec") or {}).get("ports") or []
        if not ports:
            raise ConfigError(f"{where}: service {service.service_name} has no ports", fix="fix the manifest")
        port = next((p for p in ports if p.get("port") == service.service_port), None) if service.service_port else ports[0]
        if port is None:
            raise ConfigError(f"{where}: service {service.service_name} has no port {service.service_port} "
                              f"(ports: {', '.join(str(p.get('port')) for p in ports)})",
                              fix="fix service.port in the project file")
        return cls(service=service, docs=tuple(docs), container=container, repository=repository,
                   service_port=int(port["port"]), target_port=port.get("targetPort"))

    @staticmethod
    def _find(docs: list[Doc], kind: str, name: str, where: str, key: str) -> Doc:
        found = [d for d in docs if d.get("kind") == kind]
        match = next((d for d in found if _name(d) == name), None)
        if match is None:
            names = ", ".join(sorted(_name(d) for d in found)) or "none"
            raise ConfigError(f"{where}: the manifests have no {kind} named {name!r} ({kind}s found: {names})",
                              fix=f"fix {key} in the project file or the manifests")
        return match

    # -- rendering ---------------------------------------------------------------------------
    def image(self, release: str) -> str:
        return f"{self.repository}:{release}"

    def written_release(self) -> str:
        """The release (image tag) the manifest itself names for the container."""
        deployment = self._find(list(self.docs), "Deployment", self.service.deployment, self.service.source, "deployment")
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            if container.get("name") == self.container:
                return split_reference(str(container.get("image", "")))[1]
        return "latest"

    def render(self, release: str | None, *, replicas: int | None = None, track: str | None = None,
               with_service: bool = True, selector_track: str | None = None,
               annotations: dict[str, str] | None = None) -> list[Doc]:
        """The objects for ``release`` (None: the image as written) in the rehearsal namespace.

        ``track`` renders the Deployment as ``<deployment>-<track>`` with a ``track`` label
        in its selector (blue-green); ``selector_track`` points the Service at one track.
        ``annotations`` go on the pod template (e.g. a fault for this release's pods).
        """
        namespace = self.service.namespace
        out = []
        for original in self.docs:
            doc = copy.deepcopy(original)
            kind = doc.get("kind")
            if kind == "Namespace":
                continue  # the rehearsal namespace is gameday's, made beforehand
            if kind not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = namespace
            if kind == "Deployment" and _name(doc) == self.service.deployment:
                self._deployment(doc, release, replicas, track, annotations)
            elif kind == "Service" and _name(doc) == self.service.service_name:
                if not with_service:
                    continue
                if selector_track:
                    doc.setdefault("spec", {}).setdefault("selector", {})[TRACK_LABEL] = selector_track
            out.append(doc)
        return out

    def _deployment(self, doc: Doc, release: str | None, replicas: int | None, track: str | None,
                    annotations: dict[str, str] | None) -> None:
        spec = doc.setdefault("spec", {})
        template = spec.setdefault("template", {})
        if replicas is not None:
            spec["replicas"] = replicas
        if track:
            doc["metadata"]["name"] = f"{self.service.deployment}-{track}"
            for labels in (doc["metadata"].setdefault("labels", {}),
                           spec.setdefault("selector", {}).setdefault("matchLabels", {}),
                           template.setdefault("metadata", {}).setdefault("labels", {})):
                labels[TRACK_LABEL] = track
        if annotations:
            template.setdefault("metadata", {}).setdefault("annotations", {}).update(annotations)
        for container in template.get("spec", {}).get("containers", []):
            if container.get("name") == self.container and release is not None:
                container["image"] = self.image(release)

    def track_service(self, track: str) -> Doc:
        """The service's Service for one track only, named ``<service>-<track>`` (a canary's destinations)."""
        svc = copy.deepcopy(self._find(list(self.docs), "Service", self.service.service_name, self.service.source,
                                       "service.name"))
        meta = svc["metadata"]
        meta["name"] = self.track_service_name(track)
        meta["namespace"] = self.service.namespace
        for key in ("resourceVersion", "uid", "creationTimestamp"):
            meta.pop(key, None)
        spec = svc.setdefault("spec", {})
        for key in ("clusterIP", "clusterIPs", "nodePort"):
            spec.pop(key, None)
        spec.setdefault("selector", {})[TRACK_LABEL] = track
        return svc

    def track_service_name(self, track: str) -> str:
        return f"{self.service.service_name}-{track}"

    def virtual_service(self, weights: dict[str, int]) -> Doc:
        """An Istio VirtualService for the service's host, splitting its traffic between tracks by weight."""
        route = [{"destination": {"host": self.track_service_name(track), "port": {"number": self.service_port}},
                  "weight": weight} for track, weight in weights.items()]
        return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                "metadata": {"name": self.service.service_name, "namespace": self.service.namespace},
                "spec": {"hosts": [self.service.service_name], "http": [{"route": route}]}}

    def deployment_name(self, track: str | None = None) -> str:
        return f"{self.service.deployment}-{track}" if track else self.service.deployment

    def selector(self) -> dict[str, str]:
        svc = next(d for d in self.docs if d.get("kind") == "Service" and _name(d) == self.service.service_name)
        return dict((svc.get("spec") or {}).get("selector") or {})


_FLAG_NAME = re.compile(r"[-._a-zA-Z0-9]+")


def check_flag_name(flag: str) -> None:
    """A feature flag is a key of the service's flags ConfigMap, so it must be one the API server takes
    (its IsConfigMapKey): letters, digits, '-', '_' and '.', at most 253 of them, not '.', '..' or '..x'."""
    if not _FLAG_NAME.fullmatch(flag) or len(flag) > 253 or flag.startswith("..") or flag == ".":
        fix = ("give the flag a name" if flag == "." else
               "use letters, digits, '-', '_' and '.' (at most 253, not starting with '..')")
        raise ConfigError(f"feature flag {flag!r} is not a ConfigMap key", fix=fix)


def to_yaml(docs: list[Doc]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)

