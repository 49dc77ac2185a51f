"""A PostgreSQL image built on this machine, for a Docker engine that has no registry to pull from.

The image is a root filesystem made from the PostgreSQL the machine has installed (Debian's
postgresql packages: ``pg_config`` says where its programs, modules and shared files are),
the shared libraries those programs load (their ``ldd`` closure), ``/bin/sh`` and ``mkdir`` for
the entry point, the time zone files, and an entry point that honours the official image's
variables (``POSTGRES_USER``, ``POSTGRES_PASSWORD``, ``POSTGRES_DB``,
``POSTGRES_HOST_AUTH_METHOD``, ``PGDATA``).  It runs as ``postgres`` (uid 999), like the
official image.

    tag, how = ensure_image(docker_client)      # "gameday/postgres:15.18-<recipe>", "cached" / "built" / "present"

The root filesystem is kept as a tar under the cache folder (one per PostgreSQL version and recipe), so
an engine of our own that starts empty imports it in a second instead of building it again.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gameday.containers import has_image
from gameday.errors import EnvironmentNotReady

REPOSITORY = "gameday/postgres"
UID = GID = 999  # the official image's postgres user
PGDATA = "/var/lib/postgresql/data"
ENTRYPOINT = "/usr/local/bin/docker-entrypoint.sh"
HELPERS = ("sh", "mkdir")  # what the entry point runs besides PostgreSQL's own programs
SKIPPED = ("bitcode", "llvmjit")  # JIT modules: large, and the image runs with jit off
_LDD_PATH = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x")


@dataclass(frozen=True)
class Installed:
    """Where the machine's PostgreSQL lives, as ``pg_config`` says."""

    version: str  # "15.18"
    bindir: Path
    pkglibdir: Path
    sharedir: Path
    tzdata: Path | None  # --with-system-tzdata, when PostgreSQL uses the system's zone files

    @property
    def tag(self) -> str:
        """``gameday/postgres:15.18-<recipe>``: the PostgreSQL version and what the image is built with
        (entry point, configuration), so a changed recipe is never served from an old image or cache."""
        return f"{REPOSITORY}:{self.version}-{recipe()}"

    @property
    def major(self) -> str:
        return self.version.split(".")[0]


def installed() -> Installed:
    """The machine's PostgreSQL, read from ``pg_config``; EnvironmentNotReady when there is none."""
    from gameday.database.local import pg_bindir

    pg_config = Path(pg_bindir()) / "pg_config"
    if not pg_config.exists():
        pg_config = Path(shutil.which("pg_config") or "pg_config")

    def ask(flag: str) -> str:
        try:
            return subprocess.run([str(pg_config), flag], capture_output=True, text=True, check=True,
                                  timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError) as exc:
            raise EnvironmentNotReady(f"pg_config {flag} failed ({exc}): no PostgreSQL to build an image from",
                                      fix="install Debian's postgresql packages (./dev setup does)") from None

    said = ask("--version")  # "PostgreSQL 15.18 (Debian 15.18-0+deb12u1)"
    found = re.search(r"PostgreSQL (\d[\w.]*)", said)
    if found is None:
        raise EnvironmentNotReady(f"pg_config --version said {said!r}: not a PostgreSQL version")
    version = found.group(1)
    tz = re.search(r"--with-system-tzdata=(\S+?)'?(?:\s|$)", ask("--configure"))
    return Installed(version=version, bindir=Path(ask("--bindir")), pkglibdir=Path(ask("--pkglibdir")),
                     sharedir=Path(ask("--sharedir")), tzdata=Path(tz.group(1)) if tz else None)


def recipe() -> str:
    """A short hash of how the image is made: its entry point and its configuration."""
    import hashlib

    text = (Path(__file__).parent / "postgres-entrypoint.sh").read_text() + repr(image_changes_template())
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def cache_dir() -> Path:
    from gameday import settings

    return Path(settings.get("cache")).expanduser() / "images"


def rootfs_tar(pg: Installed) -> Path:
    return cache_dir() / f"postgres-{pg.version}-{recipe()}-rootfs.tar"


def _elf(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def _libraries(programs: list[Path]) -> set[Path]:
    """The shared libraries (and the dynamic loader) ``programs`` load, as ``ldd`` resolves them."""
    found: set[Path] = set()
    for start in range(0, len(programs), 50):
        batch = [str(p) for p in programs[start:start + 50]]
        out = subprocess.run(["ldd", *batch], capture_output=True, text=True, timeout=60).stdout
        found.update(Path(m.group(1)) for m in _LDD_PATH.finditer(out))
    return found


class _Rootfs:
    """A root filesystem written into a tar: files at their canonical place, symbolic links kept
    as links (so a merged-/usr machine's /lib, /bin and a library's soname link cost nothing)."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.made: set[str] = set()

    def _parents(self, name: Path) -> None:
        for parent in reversed(name.parents):
            if str(parent) != "/" and str(parent) not in self.made:
                self.directory(str(parent))

    def directory(self, name: str, *, owner: int = 0, mode: int = 0o755) -> None:
        self._parents(Path(name))
        info = tarfile.TarInfo(name.lstrip("/"))
        info.type, info.mode, info.uid, info.gid, info.mtime = tarfile.DIRTYPE, mode, owner, owner, int(time.time())
        self.tar.addfile(info)
        self.made.add(name)

    def link(self, name: str, target: str) -> None:
        info = tarfile.TarInfo(name.lstrip("/"))
        info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, target, 0o777, int(time.time())
        self.tar.addfile(info)
        self.made.add(name)

    def text(self, name: str, text: str, *, mode: int = 0o644) -> None:
        self._parents(Path(name))
        data = text.encode()
        info = tarfile.TarInfo(name.lstrip("/"))
        info.size, info.mode, info.mtime = len(data), mode, int(time.time())
        self.tar.addfile(info, io.BytesIO(data))
        self.made.add(name)

    def copy(self, path: Path) -> None:
        """``path`` from this machine, at the same place (its folder's links resolved), links followed."""
        name = path.parent.resolve() / path.name
        if str(name) in self.made:
            return
        self._parents(name)
        if path.is_symlink():
            target = os.readlink(path)
            self.link(str(name), target)
            self.copy(Path(os.path.normpath(name.parent / target)))
            return
        info = self.tar.gettarinfo(str(path), arcname=str(name).lstrip("/"))
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        with path.open("rb") as f:
            self.tar.addfile(info, f)
        self.made.add(str(name))


def build_rootfs(pg: Installed, dest: Path) -> Path:
    """Write the image's root filesystem to ``dest`` (a tar), written beside and renamed into place."""
    files = [path for tree in (pg.bindir, pg.pkglibdir, pg.sharedir) for path in sorted(tree.rglob("*"))
             if (path.is_file() or path.is_symlink())
             and not any(part.startswith(SKIPPED) for part in path.relative_to(tree).parts)]
    helpers = []
    for helper in HELPERS:
        found = shutil.which(helper, path="/usr/bin:/bin")
        if found is None:
            raise EnvironmentNotReady(f"{helper} not found: the image's entry point needs it")
        helpers.append(Path(found))
    libraries = _libraries([p for p in [*files, *helpers] if p.is_file() and _elf(p)])
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(".partial")
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
        root = _Rootfs(tar)
        for top in ("/bin", "/sbin", "/lib", "/lib64"):  # a merged-/usr machine's links, kept
            if Path(top).is_symlink():
                root.link(top, os.readlink(top))
        root.directory("/tmp", mode=0o1777)
        root.directory("/var/run/postgresql", owner=UID, mode=0o2775)
        root.directory(PGDATA, owner=UID, mode=0o700)
        for path in [*files, *helpers, *sorted(libraries)]:
            root.copy(path)
        if "/bin/sh" not in root.made and "/usr/bin/sh" not in root.made:
            root.link("/bin/sh", str(helpers[0].resolve()))
        if pg.tzdata is not None and pg.tzdata.is_dir():
            for zone in ("UTC", "Etc", "posixrules"):
                for path in [pg.tzdata / zone, *sorted((pg.tzdata / zone).rglob("*"))]:
                    if path.is_file() or path.is_symlink():
                        root.copy(path)
        root.text("/etc/passwd", f"root:x:0:0:root:/root:/bin/sh\npostgres:x:{UID}:{GID}::/var/lib/postgresql:/bin/sh\n")
        root.text("/etc/group", f"root:x:0:\npostgres:x:{GID}:\n")
        root.text("/etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n")
        root.text(ENTRYPOINT, (Path(__file__).parent / "postgres-entrypoint.sh").read_text(), mode=0o755)
    os.replace(partial, dest)
    return dest


def image_changes_template() -> list[str]:
    return ["ENV PATH={bindir}:/usr/local/bin:/usr/bin:/bin", f"ENV PGDATA={PGDATA}", "ENV TZ=UTC", f"USER {UID}",
            f'ENTRYPOINT ["{ENTRYPOINT}"]', 'CMD ["postgres", "-c", "jit=off"]', "EXPOSE 5432",
            "LABEL org.gameday.built-from=PostgreSQL-{version}"]


def image_changes(pg: Installed) -> list[str]:
    return [change.replace("{bindir}", str(pg.bindir)).replace("{version}", pg.version)
            for change in image_changes_template()]


def ensure_image(client: Any, pg: Installed | None = None) -> tuple[str, str]:
    """The local PostgreSQL image's tag in the engine ``client`` talks to, and how it got there:
    "present" (the engine had it), "cached" (imported from the cached root filesystem) or
    "built" (root filesystem assembled, cached and imported)."""
    pg = pg or installed()
    if has_image(client, pg.tag):
        return pg.tag, "present"
    tar = rootfs_tar(pg)
    how = "cached"
    if not tar.exists():
        build_rootfs(pg, tar)
        how = "built"
    repository, tag = pg.tag.split(":")
    client.api.import_image(src=str(tar), repository=repository, tag=tag, changes=image_changes(pg))
    if not has_image(client, pg.tag):
        raise EnvironmentNotReady(f"the engine did not keep the imported image {pg.tag}")
    return pg.tag, how
