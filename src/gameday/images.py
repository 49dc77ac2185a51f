"""The image catalog: container image references mapped to local commands.

There is no container runtime on a rehearsal machine, so the process kubelet and the
ECS task runner turn an image reference (``shop/checkout-api:1.1.0``) into a local command
through this catalog.  Each process is told where to listen through ``$HOST`` (its own
127.x address) and ``$PORT`` (the container port), and gets the pod's or task's env
on top of the tag's env.  Users add images with their own catalog files.  ``command``
may use ``{python}`` (this interpreter), ``{tag}`` and ``{dir}`` (the catalog file's
folder); a tag's ``fault:`` breaks that release of any HTTP service (see gameday.faults).

Example (the ``images:`` of a project file, or a catalog file given with ``--images``)::

    images:
      - repository: shop/checkout-api
        command: ["node", "{dir}/server.js"]
        port: 8080
        tags:
          "1.0.0": {env: {APP_VERSION: "1.0.0"}}
          "1.1.0-bad": {env: {APP_VERSION: "1.1.0-bad"}, fault: "error-rate=0.5"}
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from gameday.errors import ConfigError
from gameday.faults import FaultSpec, parse_fault


class ImageNotFound(LookupError):
    """The catalog has no entry for an image: the kubelet shows ErrImagePull for it."""


@dataclass(frozen=True)
class ImageSpec:
    image: str
    argv: list[str]
    env: dict[str, str]
    port: int | None
    fault: FaultSpec = FaultSpec()  # what the harness breaks in this release (wrap_command)

    def command(self, args: list[str] | None = None) -> list[str]:
        return self.argv + list(args or [])


@dataclass
class _Repository:
    name: str
    command: list[str]
    port: int | None
    env: dict[str, str]
    tags: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = ""
    directory: str = ""  # the catalog file's folder, for {dir}
    faults: dict[str, FaultSpec] = field(default_factory=dict)


def split_reference(image: str) -> tuple[str, str]:
    """``registry.example/team/app:1.2`` -> (``team/app``-ish repository, ``1.2``)."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = name.rsplit(":", 1)
    else:
        repo, tag = name, "latest"
    return repo, (digest or tag)


class ImageCatalog:
    def __init__(self) -> None:
        self._repos: dict[str, _Repository] = {}
        self._pruned: set[tuple[str, str]] = set()  # (repository, tag) a rehearsal took out of the "registry"
        self._crashing: set[tuple[str, str]] = set()  # (repository, tag) a rehearsal made unable to start

    def prune(self, image: str) -> None:
        """Take one image out of the registry, as a retention policy would: pods already running keep it,
        a new pull fails (ErrImagePull).  ``unprune`` puts it back."""
        repo_name, tag = split_reference(image)
        repo = self._find_repository(repo_name)
        self._pruned.add((repo.name if repo else repo_name, tag))

    def unprune(self, image: str) -> None:
        repo_name, tag = split_reference(image)
        repo = self._find_repository(repo_name)
        self._pruned.discard((repo.name if repo else repo_name, tag))

    def crash_on_start(self, image: str, crashing: bool = True) -> None:
        """From now on a new container of ``image`` exits at start (CrashLoopBackOff), as a release does
        whose configuration, secret or schema a later release changed under it; running ones keep
        running.  ``crashing=False`` mends it."""
        repo_name, tag = split_reference(image)
        repo = self._find_repository(repo_name)
        key = (repo.name if repo else repo_name, tag)
        if crashing:
            self._crashing.add(key)
        else:
            self._crashing.discard(key)

    @classmethod
    def load(cls, *paths: Path) -> ImageCatalog:
        """The project's catalog (its ``images:``, see gameday.project) plus catalog files (later win)."""
        from gameday import project

        catalog: ImageCatalog = project.load().catalog(*paths)
        return catalog

    def add_file(self, path: Path) -> None:
        try:
            data = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"image catalog {path} not found", fix="check the path") from None
        except yaml.YAMLError as exc:
            line = getattr(getattr(exc, "problem_mark", None), "line", None)
            where = f"{path}:{line + 1}" if line is not None else str(path)
            raise ConfigError(f"image catalog {where} is not valid YAML", fix="fix the YAML syntax") from None
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise ConfigError(f"image catalog {path} needs a top-level 'images:' list", fix="see images: in README.md's project file reference")
        self.add_entries(data["images"], path)

    def add_entries(self, entries: list, source: Path) -> None:
        """Validate and add catalog entries already parsed from YAML (``source`` is their file,
        named in errors and used for ``{dir}``).  Later entries win."""
        if not isinstance(entries, list):
            raise ConfigError(f"{source}: image catalog entries must be a list", fix="see images: in README.md's project file reference")
        for index, entry in enumerate(entries):
            self._repos_from_entry(Path(source), index, entry)

    def _repos_from_entry(self, path: Path, index: int, entry: Any) -> None:
        where = f"{path} images[{index}]"
        if not isinstance(entry, dict) or "repository" not in entry or "command" not in entry:
            raise ConfigError(f"{where} needs 'repository' and 'command'", fix="see images: in README.md's project file reference")
        command = entry["command"]
        if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
            raise ConfigError(f"{where}: 'command' must be a list of strings", fix='e.g. ["{python}", "-m", "app"]')
        tags = entry.get("tags") or {}
        if not isinstance(tags, dict):
            raise ConfigError(f"{where}: 'tags' must be a mapping of tag -> {{env: ...}}", fix="see images: in README.md's project file reference")
        faults: dict[str, FaultSpec] = {}
        for tag, spec in tags.items():
            if spec is not None and not isinstance(spec, dict):
                raise ConfigError(f"{where}: tag {tag!r} must map to {{env: ..., args: ...}}", fix="see images: in README.md's project file reference")
            faults[str(tag)] = parse_fault((spec or {}).get("fault"), where=f"{where} tag {str(tag)!r}")
        port = entry.get("port")
        repo = _Repository(
            name=str(entry["repository"]),
            command=command,
            port=int(port) if port is not None else None,
            env={k: str(v) for k, v in (entry.get("env") or {}).items()},
            tags={str(t): dict(s or {}) for t, s in tags.items()},
            source=where,
            directory=str(path.resolve().parent),
            faults=faults,
        )
        self._repos[repo.name] = repo

    def repositories(self) -> list[str]:
        return sorted(self._repos)

    def tags(self, repository: str) -> list[str]:
        return sorted(self._repos[repository].tags)

    def resolve(self, image: str, *, pruned_too: bool = False) -> ImageSpec:
        """Map an image reference to the command that stands in for it.

        Raises ImageNotFound when neither the repository nor the tag is known, just as
        a registry would refuse to serve the image, and for an image a rehearsal pruned
        (unless ``pruned_too``: it is known, only not served).
        """
        repo_name, tag = split_reference(image)
        repo = self._find_repository(repo_name)
        if repo is None:
            raise ImageNotFound(f"repository {repo_name} not in the image catalog")
        if repo.tags and tag not in repo.tags:
            raise ImageNotFound(f"{repo.name}:{tag} not found (known tags: {', '.join(sorted(repo.tags))})")
        if (repo.name, tag) in self._pruned and not pruned_too:
            raise ImageNotFound(f"{repo.name}:{tag} not found: pruned from the registry (a rehearsal fault)")
        spec = repo.tags.get(tag, {})
        env = {**repo.env, **{k: str(v) for k, v in (spec.get("env") or {}).items()}}
        argv = [part.replace("{python}", sys.executable).replace("{tag}", tag).replace("{dir}", repo.directory)
                for part in repo.command]
        argv += [str(a) for a in spec.get("args") or []]
        fault = repo.faults.get(tag, FaultSpec())
        if (repo.name, tag) in self._crashing:
            fault = replace(fault, crash_on_start=True)
        return ImageSpec(image=image, argv=argv, env=env, port=repo.port, fault=fault)

    def _find_repository(self, name: str) -> _Repository | None:
        # Match the full path first, then without registry host, then the last path part,
        # so "registry.local:5000/shop/cart" and "cart" both find "shop/cart".
        parts = name.split("/")
        for i in range(len(parts)):
            candidate = "/".join(parts[i:])
            if candidate in self._repos:
                return self._repos[candidate]
        short = parts[-1]
        matches = [r for r in self._repos.values() if r.name.rsplit("/", 1)[-1] == short]
        return matches[0] if len(matches) == 1 else None
