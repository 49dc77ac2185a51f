"""Build etcd and the Kubernetes control-plane binaries from the Go module proxy, once per version.

The wrapper modules in ``gomod/`` pin one Kubernetes and one etcd version.  They are copied
into ``<cache>/k8s/<version>/src`` and built there with upstream's flags (CGO off, -trimpath,
tags selinux,notest); the binaries land in ``<cache>/k8s/<version>/bin`` and a stamp file
marks a finished build so later runs reuse it.  Another Kubernetes version gets a generated
wrapper module whose replace lines come from that version's own go.mod.

Run ``python -m gameday.cluster.build`` to fill the cache ahead of time (CI does).
``--metrics-server`` also installs metrics-server (``go install ...@version``) next to them,
which makes the control plane serve `kubectl top` (see controlplane).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from gameday import settings
from gameday.errors import ConfigError, EnvironmentNotReady
from gameday.lifecycle import spawn, stop_process, tail

GOMOD = Path(__file__).resolve().parent / "gomod"
KUBERNETES_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
BINARIES = ("etcd", *KUBERNETES_COMMANDS)
STAMP = ".gameday-build.json"
BUILD_TIMEOUT_S = 3600.0  # a cold build takes ~15-25 min on 2 cores; never wait forever
VERSION_PATTERN = re.compile(r"^v1\.\d+\.\d+$")
METRICS_SERVER = "sigs.k8s.io/metrics-server/cmd/metrics-server"
METRICS_SERVER_VERSION = "v0.9.0"  # its go.mod has no replace lines, so `go install @version` works
GO_FALLBACK = Path("/usr/local/go/bin/go")  # where the official tarball installs when go is not on PATH

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuildResult:
    version: str
    etcd_version: str
    bin_dir: str
    seconds: float
    sizes: dict[str, int]
    go: str


def _required(module_dir: Path, module: str) -> str:
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", (module_dir / "go.mod").read_text(), re.M)
    if not match:
        raise ConfigError(f"{module_dir / 'go.mod'} does not require {module}", fix="restore the wrapper module")
    return match.group(1)


def pinned_version() -> str:
    """The Kubernetes version the checked-in wrapper module builds."""
    return _required(GOMOD / "kubernetes", "k8s.io/kubernetes")


def etcd_version() -> str:
    return _required(GOMOD / "etcd", "go.etcd.io/etcd/server/v3")


def version_dir(version: str | None = None) -> Path:
    return Path(settings.get("cache")).expanduser() / "k8s" / (version or pinned_version())


def bin_dir(version: str | None = None) -> Path:
    return version_dir(version) / "bin"


def is_built(version: str | None = None) -> bool:
    directory = bin_dir(version)
    return (directory / STAMP).is_file() and all((directory / name).is_file() for name in BINARIES)


def go_binary() -> str:
    found = shutil.which("go") or (str(GO_FALLBACK) if GO_FALLBACK.is_file() else None)
    if not found:
        raise EnvironmentNotReady(
            "the Go toolchain (go) is needed to build the local Kubernetes control plane and was not found",
            fix="install Go >= 1.26 (etcd 3.6.16 requires it) and put it on PATH, or set GAMEDAY_CACHE to a cache that holds built binaries",
        )
    return found


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(CGO_ENABLED="0", GOTOOLCHAIN="local")
    env["GOFLAGS"] = " ".join(filter(None, [env.get("GOFLAGS", ""), "-buildvcs=false"]))
    return env


def _run(argv: list[str], cwd: Path, log: Path, what: str, **env: str) -> None:
    """Run one go command, its output appended to ``log``; bounded, killed with its children."""
    with log.open("a") as handle:
        handle.write(f"\n$ {' '.join(argv)}   (in {cwd})\n")
    proc = spawn(argv, log=log, env={**_go_env(), **env}, cwd=cwd)
    try:
        code = proc.wait(timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        stop_process(proc, grace=5)
        raise EnvironmentNotReady(f"{what} did not finish within {BUILD_TIMEOUT_S:g}s", fix=f"see {log}") from None
    finally:
        stop_process(proc, grace=5)
    if code != 0:
        last = " | ".join(tail(log, 6).splitlines())
        raise EnvironmentNotReady(f"{what} failed (exit {code}): {last}", fix=f"full log: {log}")


def _staging_modules(go: str, version: str, log: Path) -> list[str]:
    """The k8s.io staging modules that ``version``'s go.mod replaces with ./staging paths."""
    out = subprocess.run([go, "mod", "download", "-json", f"k8s.io/kubernetes@{version}"], env=_go_env(),
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise EnvironmentNotReady(f"cannot fetch k8s.io/kubernetes {version}: {out.stdout.strip()[-300:]}",
                                  fix="check the version with `go list -m -versions k8s.io/kubernetes`")
    go_mod = Path(json.loads(out.stdout)["GoMod"]).read_text()
    return re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", go_mod, re.M)


def _prepare_sources(go: str, version: str, src: Path, log: Path) -> None:
    """Copy the wrapper modules into ``src``; generate the Kubernetes one for a non-pinned version."""
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(GOMOD, src)
    if version == pinned_version():
        return
    staging = _staging_modules(go, version, log)
    twin = "v0." + version.split(".", 1)[1]
    lines = [f"module gameday.local/kubernetes\n\ngo 1.24.0\n\nrequire k8s.io/kubernetes {version}\n\nreplace ("]
    lines += [f"\t{module} => {module} {twin}" for module in staging]
    (src / "kubernetes" / "go.mod").write_text("\n".join(lines) + "\n)\n")
    (src / "kubernetes" / "go.sum").unlink(missing_ok=True)
    _run([go, "mod", "tidy"], src / "kubernetes", log, f"go mod tidy for Kubernetes {version}")


def _ldflags(version: str) -> str:
    # What upstream's hack/lib/version.sh sets, so `kubectl version` shows the real server version.
    major, minor = version[1:].split(".")[:2]
    base = "k8s.io/component-base/version"
    pairs = {"gitVersion": version, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean",
             "buildDate": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    return " ".join(f"-X {base}.{key}={value}" for key, value in pairs.items())


class _BuildLock:
    """An exclusive file lock so two processes never build the same version at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: IO[str] | None = None

    def __enter__(self) -> _BuildLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.handle = self.path.open("w")
        deadline = time.monotonic() + BUILD_TIMEOUT_S
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EnvironmentNotReady(f"another build holds {self.path}", fix="wait for it or remove the lock") from None
                time.sleep(1.0)

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            self.handle.close()


def build(version: str | None = None, progress: Progress | None = None, *, force: bool = False) -> BuildResult:
    """Build the four binaries for ``version`` into the cache (reused unless ``force``)."""
    version = version or pinned_version()
    if not VERSION_PATTERN.match(version):
        raise ConfigError(f"Kubernetes version {version!r} is not of the form v1.X.Y", fix="e.g. --version v1.34.4")
    say = progress or (lambda message: None)
    go = go_binary()
    root = version_dir(version)
    with _BuildLock(root / ".lock"):
        if is_built(version) and not force:
            return read_stamp(version)
        out, log, src = root / "bin", root / "build.log", root / "src"
        out.mkdir(parents=True, exist_ok=True)
        (out / STAMP).unlink(missing_ok=True)
        log.write_text("")
        started = time.monotonic()
        say(f"preparing wrapper modules for Kubernetes {version} and etcd {etcd_version()} (log: {log})")
        _prepare_sources(go, version, src, log)
        say("building etcd")
        _run([go, "build", "-trimpath", "-o", str(out / "etcd"), "go.etcd.io/etcd/server/v3"],
             src / "etcd", log, f"building etcd {etcd_version()}")
        say("building kube-apiserver, kube-controller-manager, kube-scheduler (a cold build takes many minutes)")
        # One invocation for the three commands, so their shared packages compile once.
        _run([go, "build", "-trimpath", "-tags", "selinux,notest", "-ldflags", _ldflags(version), "-o", f"{out}/",
              *(f"k8s.io/kubernetes/cmd/{name}" for name in KUBERNETES_COMMANDS)],
             src / "kubernetes", log, f"building Kubernetes {version}")
        go_version = subprocess.run([go, "version"], capture_output=True, text=True, timeout=60).stdout.strip()
        result = BuildResult(version=version, etcd_version=etcd_version(), bin_dir=str(out),
                             seconds=round(time.monotonic() - started, 1),
                             sizes={name: (out / name).stat().st_size for name in BINARIES}, go=go_version)
        (out / STAMP).write_text(json.dumps(asdict(result), indent=2))
        say(f"built in {result.seconds:.0f}s into {out}")
        return result


def build_metrics_server(version: str | None = None, progress: Progress | None = None) -> Path:
    """Install metrics-server into ``bin_dir(version)`` (reused when there); returns its path."""
    say = progress or (lambda message: None)
    go = go_binary()
    root = version_dir(version)
    target = root / "bin" / "metrics-server"
    with _BuildLock(root / ".lock"):
        if target.is_file():
            return target
        gobin, log = root / "gobin", root / "metrics-server-build.log"
        gobin.mkdir(parents=True, exist_ok=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
        say(f"building metrics-server {METRICS_SERVER_VERSION} (log: {log})")
        _run([go, "install", "-trimpath", "-ldflags=-s -w", f"{METRICS_SERVER}@{METRICS_SERVER_VERSION}"], root, log,
             f"building metrics-server {METRICS_SERVER_VERSION}", GOBIN=str(gobin))
        os.replace(gobin / "metrics-server", target)  # appears whole or not at all
        shutil.rmtree(gobin, ignore_errors=True)
        return target


def read_stamp(version: str | None = None) -> BuildResult:
    data = json.loads((bin_dir(version) / STAMP).read_text())
    return BuildResult(**data)


def ensure_binaries(version: str | None = None, progress: Progress | None = None) -> Path:
    """The bin dir holding etcd and the Kubernetes binaries, building them first if needed."""
    if not is_built(version):
        build(version, progress)
    return bin_dir(version)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from gameday.errors import GameDayError

    parser = argparse.ArgumentParser(prog="python -m gameday.cluster.build", description=__doc__.splitlines()[0])
    parser.add_argument("--version", default=None, help=f"Kubernetes version (default {pinned_version()})")
    parser.add_argument("--force", action="store_true", help="rebuild even when the cache holds a build")
    parser.add_argument("--metrics-server", action="store_true",
                        help=f"also install metrics-server {METRICS_SERVER_VERSION} (for `kubectl top`)")
    args = parser.parse_args(argv)
    try:
        result = build(args.version, lambda message: print(message, flush=True), force=args.force)
        if args.metrics_server:
            print(f"metrics-server in {build_metrics_server(args.version, lambda m: print(m, flush=True))}")
    except GameDayError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    sizes = ", ".join(f"{name} {size / 1e6:.0f} MB" for name, size in result.sizes.items())
    print(f"Kubernetes {result.version} + etcd {result.etcd_version} in {result.bin_dir} ({sizes})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
