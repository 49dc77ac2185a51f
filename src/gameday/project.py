"""The team's project file: the services under rehearsal, as data.

A ``gameday.yaml`` at the root of the team's repository (found upward from the working
directory; ``--config FILE`` or ``GAMEDAY_CONFIG`` names another) declares each service:
its manifests, Deployment, container, image, Service and port, endpoints, how a
response names the release that served it, its load, and the image catalog entries the
embedded cluster runs it with.  Without a project file the shipped demo project is used.

    services:
      checkout-api:
        manifests: k8s/                       # files, a folder, or kustomize: k8s/overlays/rehearsal
        service: {name: checkout-api, port: 80}
        endpoints: {health: /health, version: /version}
        release: {header: X-App-Version}      # or {json: version}
        load:
          users: 4
          requests:
            - {path: /api/cart, weight: 3}
    images:
      - repository: shop/checkout-api
        command: ["{python}", "{dir}/app.py"]
        port: 8080
        tags: {"1.0.0": {env: {APP_VERSION: "1.0.0"}}}

Everything is validated before anything starts: an error names the file, the key path
and the fix, in one line.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gameday import settings
from gameday.errors import ConfigError

FILENAMES = ("gameday.yaml", "gameday.yml")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_HERE = Path(__file__).resolve().parent


def demo_project_file() -> Path:
    """The shipped demo project: the default when a repository has no project file."""
    return _HERE / "demo/project/gameday.yaml"


# -- the schema --------------------------------------------------------------------------------
class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


def _dns_name(value: str | None) -> str | None:
    if value is not None and not DNS_LABEL.match(value):
        raise ValueError(f"{value!r} is not a Kubernetes name (lower-case letters, digits and '-')")
    return value


class ServiceRef(_Model):
    name: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)

    _name = field_validator("name")(_dns_name)


class Endpoints(_Model):
    health: str | None = None
    ready: str | None = None
    version: str | None = None

    @field_validator("health", "ready", "version")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"{value!r} is not a path (start it with /)")
        return value


class ReleaseModel(_Model):
    header: str | None = None
    json_field: str | None = Field(default=None, alias="json")

    @model_validator(mode="after")
    def _one(self) -> ReleaseModel:
        if (self.header is None) == (self.json_field is None):
            raise ValueError("give exactly one of header (a response header) or json (a field of the JSON body)")
        return self


class RequestModel(_Model):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = "GET"
    path: str
    body: Any = None
    headers: dict[str, str] = Field(default_factory=dict)
    weight: int = Field(default=1, ge=1, le=1000)
    expect: list[int] = Field(default_factory=list)
    name: str | None = None

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"{value!r} is not a path (start it with /)")
        return value

    @field_validator("expect")
    @classmethod
    def _statuses(cls, value: list[int]) -> list[int]:
        bad = [s for s in value if not 100 <= s <= 599]
        if bad:
            raise ValueError(f"{bad} are not HTTP statuses (100-599)")
        return value


class LoadModel(_Model):
    users: int = Field(default=4, ge=1, le=1000)
    rate: float = Field(default=10.0, ge=0, le=1000, description="requests per second per user (0 = no pause)")
    timeout: float = Field(default=5.0, gt=0, le=120)
    locustfile: str | None = None
    requests: list[RequestModel] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one(self) -> LoadModel:
        if (self.locustfile is None) == (not self.requests):
            raise ValueError("give exactly one of locustfile (the team's own) or requests (declared here)")
        return self


class DatabaseModel(_Model):
    """How the service finds its database: the variable its container reads the URL from. A
    rehearsal that gives the service a database (a scratch Postgres, migrated and seeded) sets it
    from a Secret of its own."""

    env: str = Field(default="DATABASE_URL", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class ServiceModel(_Model):
    namespace: str | None = None
    manifests: list[str] = Field(default_factory=list)
    kustomize: str | None = None
    deployment: str | None = None
    container: str | None = None
    image: str | None = None
    service: ServiceRef = Field(default_factory=ServiceRef)
    url: str | None = None
    endpoints: Endpoints = Field(default_factory=Endpoints)
    release: ReleaseModel | None = None
    load: LoadModel | None = None
    database: DatabaseModel | None = None

    _names = field_validator("namespace", "deployment")(_dns_name)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{value!r} is not an http(s) URL (e.g. http://127.0.0.1:8080)")
            try:
                parts.port  # noqa: B018 - urlsplit checks the port only when asked
            except ValueError:
                raise ValueError(f"{value!r} has an invalid port") from None
        return value

    @field_validator("manifests", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _sources(self) -> ServiceModel:
        if bool(self.manifests) == bool(self.kustomize):
            raise ValueError("give exactly one of manifests (files or folders) or kustomize (a kustomization folder)")
        return self


class RunbookModel(_Model):
    """How the team's runbooks map onto the rehearsal (also the shape of a ``--bindings`` file)."""

    set: dict[str, str | int | float] = Field(default_factory=dict)  # placeholder -> value or @fact
    namespaces: dict[str, str] = Field(default_factory=dict)  # the runbook's namespace -> the rehearsal's
    contexts: list[str] = Field(default_factory=list)  # kube contexts that mean the rehearsal cluster
    hosts: dict[str, str] = Field(default_factory=dict)  # host -> a service of the project, or a URL
    ecs: dict[str, Any] = Field(default_factory=dict)  # cluster: NAME, services: [NAME, ...]


class MigrationsModel(_Model):
    """The team's alembic project, for `gameday db migrations ...` (paths relative to the project file)."""

    script_location: str | None = Field(default=None, alias="script-location")
    url_env: list[str] = Field(default_factory=list, alias="url-env")  # variables env.py reads its URL from
    base_sql: str | None = Field(default=None, alias="base-sql")  # tables the application creates itself
    base: str | None = None  # or module:function that creates them, given the URL

    @field_validator("base")
    @classmethod
    def _function(cls, value: str | None) -> str | None:
        module, sep, function = (value or "").partition(":")
        if value is not None and (not sep or not module.strip() or not function.strip()):
            raise ValueError(f"{value!r} is not module:function (e.g. myapp.db:create_all)")
        return value


class ImageTagModel(_Model):
    """One tag of an image catalog entry: its env, extra args and a fault the harness applies."""

    env: dict[str, str | int | float | bool] = Field(default_factory=dict)
    args: list[str | int | float] = Field(default_factory=list)
    fault: str | None = None


class ImageModel(_Model):
    """An image catalog entry (the project file's ``images:``, or a file given with ``--images``)."""

    repository: str = Field(min_length=1)
    command: list[str] = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    env: dict[str, str | int | float | bool] = Field(default_factory=dict)
    tags: dict[str, ImageTagModel | None] = Field(default_factory=dict)

    @field_validator("tags", mode="before")
    @classmethod
    def _tag_names(cls, value: Any) -> Any:
        # YAML reads 1.0 or 2 as numbers: a tag is the text the image reference carries
        return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value

    def entry(self) -> dict[str, Any]:
        """The entry as the image catalog reads it (what the file said, nothing added)."""
        return self.model_dump(exclude_unset=True)


class CatalogFileModel(_Model):
    """An image catalog file: ``images:`` and nothing else."""

    images: list[ImageModel]


class ProjectModel(_Model):
    name: str | None = None
    namespace: str = "default"
    default_service: str | None = Field(default=None, alias="default-service")
    services: dict[str, ServiceModel] = Field(min_length=1)
    images: list[ImageModel] = Field(default_factory=list)
    steps: list[str] = Field(default_factory=list)
    runbook: RunbookModel = Field(default_factory=RunbookModel)
    migrations: MigrationsModel = Field(default_factory=MigrationsModel)

    _namespace = field_validator("namespace")(_dns_name)

    @field_validator("services")
    @classmethod
    def _service_names(cls, value: dict[str, ServiceModel]) -> dict[str, ServiceModel]:
        for name in value:
            _dns_name(name)
        return value

    @model_validator(mode="after")
    def _default(self) -> ProjectModel:
        if self.default_service is not None and self.default_service not in self.services:
            raise ValueError(f"default-service {self.default_service!r} is not one of the services "
                             f"({', '.join(self.services)})")
        return self


# -- the resolved project the engine uses ---------------------------------------------------------
@dataclass(frozen=True)
class Service:
    """One service under rehearsal, every name resolved (the engine's view of the project file)."""

    name: str
    namespace: str
    manifests: tuple[Path, ...]
    kustomize: Path | None
    deployment: str
    container: str | None  # None: the Deployment's first container
    image: str | None  # the image repository; None: taken from the manifest
    service_name: str
    service_port: int | None  # None: the Service's first port
    url: str | None
    endpoints: Endpoints
    release: Any  # gameday.load.ReleaseReader | None
    load: Any  # gameday.load.LoadProfile | None
    source: str  # "gameday.yaml services.checkout-api", for messages
    database_env: str | None = None  # the variable the container reads its database URL from

    def database_variable(self) -> str:
        """The variable the container reads its database URL from, or a ConfigError naming the key to add."""
        return str(self.need("the variable its database URL goes in", self.database_env,
                             "database: {env: DATABASE_URL}"))

    def need(self, what: str, value: Any, key: str) -> Any:
        """``value``, or a ConfigError saying which project-file key to add."""
        if value is None:
            raise ConfigError(f"{self.source} does not say {what}", fix=f"add {key} to the service in the project file")
        return value


@dataclass(frozen=True)
class Project:
    path: Path
    model: ProjectModel
    services: dict[str, Service]

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def is_demo(self) -> bool:
        return self.path == demo_project_file()

    def service(self, name: str | None = None) -> Service:
        """The named service, or the default one (the only one, or ``default-service``)."""
        if name is None:
            if self.model.default_service:
                return self.services[self.model.default_service]
            if len(self.services) == 1:
                return next(iter(self.services.values()))
            raise ConfigError(f"{self.path} has several services ({', '.join(self.services)}) and no default-service",
                              fix="name the service in the step, or set default-service in the project file")
        if name not in self.services:
            close = difflib.get_close_matches(name, list(self.services), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"service {name!r} is not in {self.path} (services: {', '.join(self.services)})",
                              fix=f"{hint}add it under services: or fix the name")
        return self.services[name]

    def migrations_location(self) -> Path | None:
        """The alembic project the migrations: block names (None: the demo service's own)."""
        location = self.model.migrations.script_location
        return self.root / location if location is not None else None

    def catalog(self, *extra: Path) -> Any:
        """The image catalog for the embedded cluster: the project's entries, then the files of
        GAMEDAY_IMAGES (`--images`), then ``extra`` files; later entries win."""
        from gameday.images import ImageCatalog

        catalog = ImageCatalog()
        if self.model.images:
            catalog.add_entries([image.entry() for image in self.model.images], self.path)
        configured = [Path(p) for p in settings.get("images").split(os.pathsep) if p.strip()]
        for path in (*configured, *extra):
            _check_catalog_file(Path(path))
            catalog.add_file(Path(path))
        return catalog

    def step_modules(self) -> list[str]:
        """The project's own step modules (importable names, or .py paths relative to the file)."""
        found = []
        for entry in self.model.steps:
            if entry.endswith(".py"):
                path = (self.root / entry).resolve()
                if not path.is_file():
                    raise ConfigError(f"{self.path} steps: {entry} does not exist", fix="fix the path")
                found.append(str(path))
            else:
                found.append(entry)
        return found


def _check_catalog_file(path: Path) -> None:
    """Each entry of an image catalog file against the schema, one line naming the file and key; a file
    that is missing or not YAML is left to the catalog, which says so itself."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"image catalog {path} is not UTF-8 text", fix="save it as UTF-8") from None
    except (OSError, yaml.YAMLError):
        return
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        return
    try:
        CatalogFileModel.model_validate(data)
    except ValidationError as exc:
        raise _one_error(path, exc, CatalogFileModel, what="image catalog") from None


# -- loading ------------------------------------------------------------------------------------------
def find(start: Path | None = None) -> Path | None:
    """The nearest gameday.yaml from ``start`` (default: the working directory) upward."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        for name in FILENAMES:
            if (folder / name).is_file():
                return folder / name
    return None


def locate(explicit: str | Path | None = None, start: Path | None = None) -> Path:
    """Which project file a run uses: ``explicit``, $GAMEDAY_CONFIG, the nearest one upward, else the demo's."""
    chosen = explicit or settings.get("config") or None
    if chosen:
        path = Path(chosen).expanduser()
        if path.is_dir():
            path = next((path / n for n in FILENAMES if (path / n).is_file()), path / FILENAMES[0])
        if not path.is_file():
            raise ConfigError(f"project file {path} does not exist",
                              fix="pass an existing gameday.yaml (or run `gameday init` to write one)")
        return path.resolve()
    return find(start) or demo_project_file()


_LOADED: dict[tuple[Path, float], Project] = {}


def load(explicit: str | Path | None = None, start: Path | None = None) -> Project:
    """Load and validate the project file :func:`locate` picks (cached per file and mtime)."""
    path = locate(explicit, start)
    key = (path, path.stat().st_mtime)
    if key not in _LOADED:
        _LOADED[key] = parse(path)
    return _LOADED[key]


def parse(path: Path) -> Project:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"project file {where} is not valid YAML: {problem}", fix="fix the YAML syntax") from None
    except UnicodeDecodeError:
        raise ConfigError(f"project file {path} is not UTF-8 text", fix="save it as UTF-8") from None
    if not isinstance(data, dict):
        raise ConfigError(f"project file {path} must be a mapping with a services: key",
                          fix="see `gameday init` for a starting point")
    try:
        model = ProjectModel.model_validate(data)
    except ValidationError as exc:
        raise _one_error(path, exc) from None
    _check_migrations(path.resolve(), model.migrations)
    return Project(path=path.resolve(), model=model,
                   services={name: _resolve(path.resolve(), name, model, svc) for name, svc in model.services.items()})


def _check_migrations(path: Path, block: MigrationsModel) -> None:
    """The files the migrations: block names exist (they are relative to the project file)."""
    for key, entry in (("script-location", block.script_location), ("base-sql", block.base_sql)):
        if entry is not None and not (path.parent / entry).exists():
            raise ConfigError(f"{path}: migrations.{key}: {entry} does not exist",
                              fix=f"fix the path (relative to {path.parent})")


def _one_error(path: Path, exc: ValidationError, root: type[BaseModel] | None = None,
               what: str = "project file") -> ConfigError:
    # a misspelt key explains the "missing" one it was meant to be: report it first
    error = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
    loc = [str(part) for part in error["loc"]]
    key = ".".join(loc) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        known = sorted(_known_keys(loc[:-1], root or ProjectModel))
        close = difflib.get_close_matches(loc[-1], known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return ConfigError(f"{path}: unknown key {key}", fix=f"{hint}known keys here: {', '.join(known)}")
    if kind == "missing":
        return ConfigError(f"{path}: {key} is missing", fix=f"add {loc[-1]}: to the {what}")
    message = error["msg"].removeprefix("Value error, ")
    return ConfigError(f"{path}: {key}: {message}", fix=f"see the {what} reference in README.md")


def _known_keys(loc: list[str], root: type[BaseModel] = ProjectModel) -> list[str]:
    """The keys the schema accepts at ``loc`` (for 'did you mean')."""
    model: Any = root
    for part in loc:
        fields = model.model_fields if isinstance(model, type) and issubclass(model, BaseModel) else {}
        field = fields.get(part) or next((f for f in fields.values() if f.alias == part), None)
        if field is None:
            continue  # a dict key (service name) or a list index: the value type is already in hand
        annotation = field.annotation
        model = _inner_model(annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [f.alias or name for name, f in model.model_fields.items()]
    return []


def _inner_model(annotation: Any) -> Any:
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
        for inner in getattr(candidate, "__args__", ()):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return annotation


def _resolve(path: Path, name: str, project: ProjectModel, model: ServiceModel) -> Service:
    from gameday.load import LoadProfile, ReleaseReader, RequestSpec

    root = path.parent
    source = f"{path} services.{name}"

    def existing(entry: str, key: str) -> Path:
        found = (root / entry).resolve()
        if not found.exists():
            raise ConfigError(f"{source}.{key}: {entry} does not exist", fix=f"fix the path (relative to {root})")
        return found

    release = None
    if model.release is not None:
        release = ReleaseReader(header=model.release.header, json=model.release.json_field)
    load = None
    if model.load is not None:
        spec = model.load
        requests = tuple(RequestSpec(method=r.method, path=r.path, body=r.body, headers=tuple(r.headers.items()),
                                     weight=r.weight, expect=tuple(r.expect), name=r.name) for r in spec.requests)
        locustfile = existing(spec.locustfile, "load.locustfile") if spec.locustfile else None
        load = LoadProfile(users=spec.users, rate=spec.rate, timeout=spec.timeout, locustfile=locustfile,
                           requests=requests, release=release)
    return Service(
        name=name,
        namespace=model.namespace or project.namespace,
        manifests=tuple(existing(m, "manifests") for m in model.manifests),
        kustomize=existing(model.kustomize, "kustomize") if model.kustomize else None,
        deployment=model.deployment or name,
        container=model.container,
        image=model.image,
        service_name=model.service.name or name,
        service_port=model.service.port,
        url=model.url,
        endpoints=model.endpoints,
        release=release,
        load=load,
        source=source,
        database_env=model.database.env if model.database is not None else None,
    )
