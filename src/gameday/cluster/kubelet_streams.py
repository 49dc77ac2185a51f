"""`kubectl exec` and `kubectl port-forward` on the process kubelet (server side, SPDY/3.1).

The apiserver calls ``POST /exec/{ns}/{pod}/{container}?command=..&input=1&output=1&error=1&tty=1``
and ``/portForward/{ns}/{pod}`` with ``Upgrade: SPDY/3.1`` (see kubelet_spdy for why SPDY).
Exec negotiates ``v4.channel.k8s.io``: the client opens error/stdin/stdout/stderr/resize
streams (``streamType`` header); the command runs as a local process with the container's
env and work dir, and its exit status goes to the error stream as a metav1.Status.  Port-
forward pairs an error and a data stream per ``requestID`` and connects the data stream
to the pod's real address (127.b.x.y) on the ``port`` header.

In exec'd commands, ``localhost`` and ``127.0.0.1`` (as a whole host, also inside ``sh -c``
scripts and URLs) become the pod's own address, and mountPaths local directories, so
runbook commands such as ``curl localhost:8080/health`` reach the pod they are run in.

Example::

    backend = StreamBackend(exec_target=lambda ns, pod, c: ..., forward_host=lambda ns, pod: "127.9.0.2")
    KubeletHTTPServer(port, find_logs, cert_dir, streams=backend)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import pty
import re
import select
import socket
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Protocol

from gameday.cluster.kubelet_containers import kill_group
from gameday.cluster.kubelet_spdy import SpdySession, Stream
from gameday.cluster.kubelet_volumes import rewrite_paths
from gameday.lifecycle import cancel_cleanup, die_with_parent, on_cleanup

log = logging.getLogger("gameday.cluster.kubelet")

EXEC_PROTOCOLS = ("v4.channel.k8s.io",)
FORWARD_PROTOCOLS = ("portforward.k8s.io",)
STREAM_CREATION_TIMEOUT_S = 30.0
OUTPUT_DRAIN_S = 2.0  # after the command exits, how long its output may still flow
POLL_S = 0.25
JOIN_S = 5.0
_LOOPBACK = re.compile(r"(?<![\w.-])(?:localhost|127\.0\.0\.1)(?![\w.-])")  # a whole host token


@dataclass(frozen=True)
class ExecTarget:
    """Where an exec'd command runs: the container's env, work dir, pod address and mounts."""

    env: dict[str, str]
    cwd: str
    host: str
    mounts: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamBackend:
    """Lookups into the kubelet; both raise LookupError with a one-line reason."""

    exec_target: Callable[[str, str, str | None], ExecTarget]  # ns, pod, container
    forward_host: Callable[[str, str], str]  # ns, pod -> the pod's local address


class Job(Protocol):
    session: SpdySession | None

    def on_stream(self, stream: Stream) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def join(self, timeout: float) -> None: ...


class SessionRegistry(Protocol):
    def track(self, session: SpdySession, job: Job) -> None: ...
    def untrack(self, session: SpdySession) -> None: ...


def exec_argv(command: list[str], target: ExecTarget) -> list[str]:
    return [_LOOPBACK.sub(target.host, rewrite_paths(arg, target.mounts)) for arg in command]


def negotiate(offered: list[str], supported: tuple[str, ...]) -> str | None:
    """The first protocol the client offers that we speak (headers may repeat or hold lists)."""
    protocols = [p.strip() for value in offered for p in value.split(",") if p.strip()]
    return next((p for p in protocols if p in supported), None)


def status_json(code: int | None, error: str = "") -> bytes:
    """The v4 error-stream payload: Success, NonZeroExitCode with the exit code, or InternalError."""
    if error:
        message = f"error executing command in container: {error}"
        status: dict[str, Any] = {"metadata": {}, "status": "Failure", "message": f"Internal error occurred: {message}",
                                  "reason": "InternalError", "details": {"causes": [{"message": message}]},
                                  "code": 500}
    elif code == 0:
        status = {"metadata": {}, "status": "Success"}
    else:
        status = {"metadata": {}, "status": "Failure",
                  "message": f"command terminated with non-zero exit code: exit status {code}",
                  "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}
    return json.dumps(status, separators=(",", ":")).encode()


def serve_upgrade(handler: BaseHTTPRequestHandler, registry: SessionRegistry, backend: StreamBackend | None,
                  parts: list[str], query: dict[str, list[str]]) -> None:
    """Answer one /exec or /portForward request: refuse it with a one-line error, or upgrade and serve."""

    def refuse(code: int, message: str) -> None:
        body = message.encode()
        handler.send_response(code)
        handler.send_header("Content-Type", "text/plain; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    kind = parts[0]
    if backend is None:
        return refuse(404, f"{kind} is not served by this kubelet")
    upgrade = (handler.headers.get("Upgrade") or "").lower()
    if "spdy/3.1" not in upgrade or "upgrade" not in (handler.headers.get("Connection") or "").lower():
        return refuse(400, f"unable to upgrade: the process kubelet serves {kind} over SPDY/3.1 only"
                           f" (request asked for {upgrade or 'no upgrade'})")
    supported = EXEC_PROTOCOLS if kind == "exec" else FORWARD_PROTOCOLS
    protocol = negotiate(handler.headers.get_all("X-Stream-Protocol-Version") or [], supported)
    if protocol is None:
        return refuse(403, f"unable to upgrade: unable to negotiate protocol: server accepts {list(supported)}")
    job: Job
    try:
        if kind == "exec":
            namespace, pod = parts[1], parts[2]
            container = parts[3] if len(parts) > 3 else None
            target = backend.exec_target(namespace, pod, container)
            command = query.get("command") or []
            if not command:
                return refuse(400, "you must specify at least 1 command")

            def flag(name: str) -> bool:
                return (query.get(name) or ["0"])[0].lower() in ("1", "true")

            tty = flag("tty")
            job = ExecJob(target, exec_argv(command, target), stdin=flag("input"), stdout=flag("output"),
                          stderr=flag("error") and not tty, tty=tty)
        else:
            namespace, pod = parts[1], parts[2]
            job = ForwardJob(backend.forward_host(namespace, pod), f"{namespace}/{pod}")
    except LookupError as exc:
        return refuse(404, str(exc.args[0] if exc.args else exc))
    handler.send_response(101, "Switching Protocols")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Upgrade", "SPDY/3.1")
    handler.send_header("X-Stream-Protocol-Version", protocol)
    handler.end_headers()
    handler.close_connection = True
    session = SpdySession(handler.connection, job.on_stream)
    job.session = session
    registry.track(session, job)
    job.start()
    try:
        session.run()
    finally:
        job.stop()
        job.join(JOIN_S)
        registry.untrack(session)


# -- helpers shared by the jobs ------------------------------------------------------------
def write_fd(fd: int, data: bytes, stopped: Callable[[], bool]) -> bool:
    """Write all of ``data`` to a (possibly slow) pipe, pty or socket; False if it closed or we stopped."""
    view = memoryview(data)
    while view:
        if stopped():
            return False
        _, ready, _ = select.select([], [fd], [], POLL_S)
        if not ready:
            continue
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            continue
        except OSError:
            return False
        view = view[written:]
    return True


def pump_fd(fd: int, stream: Stream, stopped: Callable[[], bool]) -> None:
    """Copy a process's output (pipe, pty master) or a socket into a stream until EOF or stop."""
    while not stopped():
        ready, _, _ = select.select([fd], [], [], POLL_S)
        if not ready:
            continue
        try:
            data = os.read(fd, 32 * 1024)
        except BlockingIOError:
            continue
        except OSError:  # EIO on a pty master once the last slave fd closed
            return
        if not data or not stream.write(data):
            return


def _tty_child() -> None:
    die_with_parent()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # the pty becomes the controlling terminal


def set_winsize(fd: int, width: int, height: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


class _Threads:
    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.session: SpdySession | None = None

    def spawn(self, target: Callable[..., None], *args: Any, name: str) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self.threads.append(thread)
        thread.start()
        return thread

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in list(self.threads):
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    def stop(self) -> None:
        self.stopping.set()


# -- exec -----------------------------------------------------------------------------------
class ExecJob(_Threads):
    def __init__(self, target: ExecTarget, argv: list[str], *, stdin: bool, stdout: bool, stderr: bool,
                 tty: bool) -> None:
        super().__init__()
        self.target = target
        self.argv = argv
        self.tty = tty
        self.expected = {"error"} | {name for name, wanted in (("stdin", stdin), ("stdout", stdout),
                                                               ("stderr", stderr), ("resize", tty)) if wanted}
        self.streams: dict[str, Stream] = {}
        self._ready = threading.Event()

    def on_stream(self, stream: Stream) -> None:
        kind = stream.headers.get("streamtype", "")
        if kind not in self.expected or kind in self.streams:
            stream.reset()
            return
        self.streams[kind] = stream
        if set(self.streams) == self.expected:
            self._ready.set()

    def start(self) -> None:
        self.spawn(self._run, name="kubelet-exec")

    def _run(self) -> None:
        session = self.session
        assert session is not None
        deadline = time.monotonic() + STREAM_CREATION_TIMEOUT_S
        while not self._ready.wait(POLL_S):
            if self.stopping.is_set() or session.closed or time.monotonic() > deadline:
                log.info("exec %s: the client did not open its streams", self.argv[:1])
                session.close(graceful=False)
                return
        try:
            code, error = self._execute()
        except Exception:  # never leave the client hanging
            log.exception("exec %s failed", self.argv[:1])
            code, error = None, "the process kubelet failed to run the command"
        for name in ("stdout", "stderr", "stdin", "resize"):
            if name in self.streams:
                self.streams[name].close()
        self.streams["error"].write(status_json(code, error))
        self.streams["error"].close()
        session.close(graceful=True)

    def _execute(self) -> tuple[int | None, str]:
        env = dict(self.target.env)
        master = slave = -1
        try:
            if self.tty:
                env.setdefault("TERM", "xterm")
                master, slave = pty.openpty()
                proc = subprocess.Popen(self.argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                        cwd=self.target.cwd, start_new_session=True, preexec_fn=_tty_child)
                os.close(slave)
            else:
                pipe = subprocess.PIPE
                proc = subprocess.Popen(
                    self.argv, env=env, cwd=self.target.cwd, start_new_session=True, preexec_fn=die_with_parent,
                    stdin=pipe if "stdin" in self.streams else subprocess.DEVNULL,
                    stdout=pipe if "stdout" in self.streams else subprocess.DEVNULL,
                    stderr=pipe if "stderr" in self.streams else subprocess.DEVNULL)
        except OSError as exc:
            for fd in (master, slave):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            if isinstance(exc, FileNotFoundError):
                return None, f'exec: "{self.argv[0]}": executable file not found in $PATH'
            return None, f"exec: {exc.strerror or exc}"
        cleanup = on_cleanup(lambda: kill_group(proc, 1.0))
        done = threading.Event()  # this command is over: its helper threads stop
        try:
            return self._attend(proc, master, done), ""
        finally:
            done.set()
            self.join(JOIN_S)  # no helper may touch a descriptor after it is closed below
            cancel_cleanup(cleanup)
            for handle in (proc.stdin, proc.stdout, proc.stderr):
                if handle is not None:
                    with contextlib.suppress(OSError):
                        handle.close()
            if master >= 0:
                os.close(master)

    def _attend(self, proc: subprocess.Popen[bytes], master: int, done: threading.Event) -> int:
        """Pump stdin/stdout/stderr/resize until the process exits (or we stop); returns its exit code."""
        output_done = threading.Event()

        def over() -> bool:
            return self.stopping.is_set() or done.is_set()

        def output_over() -> bool:
            return over() or output_done.is_set()

        pumps = []
        if self.tty:
            if "stdin" in self.streams:
                self.spawn(self._feed_stdin, self.streams["stdin"], master, None, over, name="exec-stdin")
            self.spawn(self._resize, self.streams["resize"], master, over, name="exec-resize")
            if "stdout" in self.streams:
                pumps.append(self.spawn(pump_fd, master, self.streams["stdout"], output_over, name="exec-tty"))
        else:
            if proc.stdin is not None:
                self.spawn(self._feed_stdin, self.streams["stdin"], proc.stdin.fileno(), proc.stdin.close, over,
                           name="exec-stdin")
            for name, handle in (("stdout", proc.stdout), ("stderr", proc.stderr)):
                if handle is not None:
                    pumps.append(self.spawn(pump_fd, handle.fileno(), self.streams[name], output_over,
                                            name=f"exec-{name}"))
        while proc.poll() is None:
            if self.stopping.is_set():
                kill_group(proc, 1.0)
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(POLL_S)
        deadline = time.monotonic() + OUTPUT_DRAIN_S
        for pump in pumps:  # the rest of its output; a background child may hold the pipe longer
            pump.join(max(0.0, deadline - time.monotonic()))
        output_done.set()
        code = proc.wait(5)
        return code if code >= 0 else 128 - code

    def _feed_stdin(self, stream: Stream, fd: int, at_eof: Callable[[], None] | None,
                    over: Callable[[], bool]) -> None:
        while not over():
            data = stream.read(POLL_S)
            if data is None:
                continue
            if not data:  # EOF reaches the command (echo hi | kubectl exec -i POD -- cat)
                if at_eof is not None:
                    with contextlib.suppress(OSError):
                        at_eof()
                return
            if not write_fd(fd, data, over):
                return

    def _resize(self, stream: Stream, master: int, over: Callable[[], bool]) -> None:
        decoder, buffer = json.JSONDecoder(), ""
        while not over():
            data = stream.read(POLL_S)
            if data is None:
                continue
            if not data:
                return
            buffer += data.decode(errors="replace")
            while buffer.strip():
                try:
                    size, end = decoder.raw_decode(buffer.lstrip())
                except ValueError:
                    break
                buffer = buffer.lstrip()[end:]
                if isinstance(size, dict):
                    set_winsize(master, int(size.get("Width") or 0), int(size.get("Height") or 0))


# -- port-forward ---------------------------------------------------------------------------
class ForwardJob(_Threads):
    def __init__(self, host: str, pod: str) -> None:
        super().__init__()
        self.host = host
        self.pod = pod
        self._pairs: dict[str, dict[str, Stream]] = {}

    def on_stream(self, stream: Stream) -> None:
        kind = stream.headers.get("streamtype", "")
        request = stream.headers.get("requestid") or str(stream.id if kind == "error" else stream.id - 2)
        pair = self._pairs.setdefault(request, {})
        if kind not in ("error", "data") or kind in pair:
            stream.reset()
            return
        pair[kind] = stream
        if len(pair) == 2:
            del self._pairs[request]
            self.spawn(self._forward, pair["error"], pair["data"], name=f"port-forward-{request}")

    def start(self) -> None:
        pass

    def _forward(self, error: Stream, data: Stream) -> None:
        port_text = data.headers.get("port", "")
        try:
            port = int(port_text)
            if not 0 < port < 65536:
                raise ValueError(port_text)
            conn = socket.create_connection((self.host, port), timeout=5)
        except (OSError, ValueError) as exc:
            reason = f"invalid port {port_text!r}" if isinstance(exc, ValueError) else \
                f"dial tcp {self.host}:{port_text}: connect: {(getattr(exc, 'strerror', None) or str(exc)).lower()}"
            error.write(f"error forwarding port {port_text} to pod {self.pod}: {reason}".encode())
            error.close()
            data.reset()
            return
        done = threading.Event()

        def over() -> bool:
            return self.stopping.is_set() or done.is_set()

        upstream = None
        try:
            conn.setblocking(False)
            upstream = self.spawn(self._upstream, data, conn, over, name="port-forward-up")
            pump_fd(conn.fileno(), data, over)
        finally:
            done.set()
            if upstream is not None:
                upstream.join(JOIN_S)  # it writes to conn: closed only after it is gone
            data.close()
            error.close()
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _upstream(self, data: Stream, conn: socket.socket, over: Callable[[], bool]) -> None:
        """What the client sends goes to the pod; at its FIN, half-close towards the pod."""
        while not over():
            chunk = data.read(POLL_S)
            if chunk is None:
                continue
            if not chunk:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR if data.was_reset else socket.SHUT_WR)
                return
            if not write_fd(conn.fileno(), chunk, over):
                return
