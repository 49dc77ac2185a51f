"""kubectl, as runbooks call it, pointed at the rehearsal cluster and journaled.

Every command runs the kubectl on PATH with the rehearsal kubeconfig (never the user's
own), a timeout, and an event in the journal with its exit code and duration.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from gameday.errors import ConfigError, HarnessPartDied, RehearsalFailed
from gameday.journal import Journal
from gameday.lifecycle import cancel_cleanup, on_cleanup, stop_process, wait_process


@dataclass
class KubectlResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    duration_s: float

    @property
    def first_error_line(self) -> str:
        lines = [line for line in (self.stderr or self.stdout).splitlines() if line.strip()]
        return lines[0].strip() if lines else f"exit code {self.returncode}"


class Kubectl:
    def __init__(self, kubeconfig: Path, *, namespace: str = "default", journal: Journal | None = None,
                 binary: str | None = None) -> None:
        self.kubeconfig = Path(kubeconfig)
        self.namespace = namespace
        self.journal = journal
        found = binary or shutil.which("kubectl")
        if not found:
            raise ConfigError("kubectl not found on PATH", fix="install kubectl 1.27 or newer")
        self.binary = found

    def run(self, *args: str, timeout: float = 60, check: bool = True, stdin: str | None = None) -> KubectlResult:
        argv = [self.binary, *args]
        if not any(a in ("-n", "--namespace", "-A", "--all-namespaces") or a.startswith("--namespace=") for a in args):
            argv += ["--namespace", self.namespace]
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig))
        began = time.monotonic()
        # its own session: a timeout or a dead harness part (etcd, the API server) kills it and its children
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                start_new_session=True)
        handle = on_cleanup(lambda: stop_process(proc, grace=1))
        try:
            out, err = wait_process(proc, timeout, what="kubectl " + shlex.join(args), input=stdin)
            result = KubectlResult(argv, proc.returncode, out, err, time.monotonic() - began)
        except subprocess.TimeoutExpired as exc:
            stop_process(proc, grace=1)
            result = KubectlResult(argv, -1, _text(exc.stdout), f"timed out after {timeout:g}s", time.monotonic() - began)
        except HarnessPartDied as exc:
            if self.journal is not None:
                self.journal.event("kubectl", "kubectl " + shlex.join(args), exit_code=-1,
                                   duration_s=round(time.monotonic() - began, 3), output=exc.one_line())
            raise
        finally:
            cancel_cleanup(handle)
        if self.journal is not None:
            self.journal.event("kubectl", "kubectl " + shlex.join(args), exit_code=result.returncode,
                               duration_s=round(result.duration_s, 3),
                               output=(result.stdout if result.returncode == 0 else result.stderr)[-2000:])
        if check and result.returncode != 0:
            raise RehearsalFailed(f"`kubectl {shlex.join(args)}` failed: {result.first_error_line}")
        return result

    def run_line(self, command: str, *, timeout: float = 120, check: bool = True) -> KubectlResult:
        """A runbook line such as ``kubectl rollout undo deployment/demo``."""
        words = shlex.split(command)
        if not words or words[0] != "kubectl":
            raise ConfigError(f"{command!r} is not a kubectl command", fix="start the command with kubectl")
        if any(w in ("--kubeconfig", "--context", "--server") or w.startswith(("--kubeconfig=", "--context=", "--server="))
               for w in words):
            raise ConfigError(f"{command!r} points kubectl at another cluster",
                              fix="drop --kubeconfig/--context/--server: rehearsals act only on the rehearsal cluster")
        return self.run(*words[1:], timeout=timeout, check=check)

    def apply(self, manifest: str, *, timeout: float = 60) -> KubectlResult:
        return self.run("apply", "-f", "-", stdin=manifest, timeout=timeout)

    def jsonpath(self, resource: str, path: str, *, timeout: float = 30) -> str:
        return self.run("get", resource, "-o", f"jsonpath={path}", timeout=timeout).stdout.strip()


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value
