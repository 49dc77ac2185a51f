"""The fault wrapper: a reverse proxy in front of one container's process that breaks
what its fault says (see gameday.faults).

Started exactly as the real command would be ($HOST, $PORT and the pod's env), it runs
the real command on a free port of the same $HOST and serves HTTP/1.1 on $HOST:$PORT,
refusing connections until the service accepts them:

    HOST=127.0.0.5 PORT=8080 python -m gameday.faults --fault error-rate=0.5 \\
        --ready-path /ready --live-path /health -- node server.js

Probe paths get neither error-rate nor latency (a bad release passes its probes);
``never-ready`` answers 503 on the readiness path.  With ``flag=NAME`` the error rate and
latency apply only while ``$GAMEDAY_MOUNT_GAMEDAY_FLAGS/NAME`` says on (a missing key is off,
as a feature flag's default is; a pod without the flags volume keeps the fault on, said once).  SIGTERM and SIGINT go on to the
service, the wrapper exits with its exit code, and the service dies with the wrapper.
``$GAMEDAY_FAULT_SEED`` seeds the error-rate dice.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shlex
import signal
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus

from gameday.cluster.kubelet_volumes import mount_env_name
from gameday.cluster.proxy_http import (
    REQUEST_LINE,
    NotHTTP,
    _headers,
    _read_head,
    _relay_body,
    pipe,
    quick_ack,
)
from gameday.errors import ConfigError
from gameday.faults import FLAG_ON, FLAGS_VOLUME, FaultSpec, parse_fault
from gameday.lifecycle import die_with_parent, free_port

NAME = "gameday fault wrapper"
WAIT_HINT_SECONDS = 30.0  # say once that the service has not opened its port after this long
BROKEN = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, NotHTTP, ValueError, IndexError)


@dataclass(frozen=True)
class Options:
    fault: FaultSpec
    command: list[str]
    ready_path: str | None = None
    live_path: str | None = None


def parse_args(args: Sequence[str]) -> Options:
    """``--fault F [--ready-path P] [--live-path P] -- CMD...``; a bad fault is a ConfigError."""
    args = list(args)
    own, command = (args[:args.index("--")], args[args.index("--") + 1:]) if "--" in args else (args, [])
    parser = argparse.ArgumentParser(prog="python -m gameday.faults",
                                     description="Run CMD behind an HTTP proxy that injects a fault.")
    parser.add_argument("--fault", required=True, help="e.g. error-rate=0.5,latency-ms=400")
    parser.add_argument("--ready-path", help="the readiness probe's path (never-ready answers 503 there)")
    parser.add_argument("--live-path", help="the liveness probe's path (exempt from the fault)")
    parsed = parser.parse_args(own)
    if not command:
        parser.error("give the service's command after --")
    return Options(parse_fault(parsed.fault, where="--fault"), command, parsed.ready_path, parsed.live_path)


def main(args: Sequence[str] | None = None) -> int:
    try:
        options = parse_args(sys.argv[1:] if args is None else args)
    except ConfigError as exc:
        _log(f"{NAME}: {exc.one_line()}")
        return 2
    shown = shlex.join(options.command)
    if options.fault.crash_on_start:
        _log(f"{NAME}: fault {options.fault.describe()} makes the container exit 1 at start ({shown} not started)")
        return 1
    port = os.environ.get("PORT", "")
    if not port.isdigit():
        _log(f"{NAME}: no $PORT to serve, so fault {options.fault.describe()} cannot apply; running {shown} as is")
        try:
            os.execvp(options.command[0], options.command)
        except OSError as exc:
            _log(f"{NAME}: cannot start {shown}: {exc.strerror or exc}")
            return 127
    return asyncio.run(Wrapper(options, os.environ.get("HOST") or "127.0.0.1", int(port)).run())


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Wrapper:
    """The service as a child process, and the faulty proxy in front of it."""

    def __init__(self, options: Options, host: str, port: int, env: Mapping[str, str] = os.environ) -> None:
        self.fault = options.fault
        self.command = options.command
        self.shown = shlex.join(options.command)
        self.host, self.port = host, port
        self.env = dict(env)
        self.ready_path = _path(options.ready_path) if options.ready_path else None
        self.probe_paths = {_path(p) for p in (options.ready_path, options.live_path) if p}
        self.dice = random.Random(env.get("GAMEDAY_FAULT_SEED"))
        flags = env.get(mount_env_name(FLAGS_VOLUME))
        self.flag_file = os.path.join(flags, self.fault.flag) if flags and self.fault.flag else None
        if self.fault.flag and not flags:
            _log(f"{NAME}: fault {self.fault.describe()} is behind flag {self.fault.flag}, but the pod has no "
                 f"{FLAGS_VOLUME} volume to read it from: the fault stays on")
        self.internal = 0
        self.child: asyncio.subprocess.Process | None = None

    async def run(self) -> int:
        # Bound but not listening: connections are refused (like a process still starting)
        # until the service accepts them, and the port stays ours meanwhile.
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP
        # (without it, a head and a body written apart wait out the peer's delayed ACK: 40 ms).
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self.port))
        except OSError as exc:
            listener.close()
            _log(f"{NAME}: cannot listen on {self.host}:{self.port}: {exc.strerror or exc}")
            return 1
        self.internal = free_port(self.host)
        exempt = ", ".join(sorted(self.probe_paths)) or "none"
        _log(f"{NAME}: applying fault {self.fault.describe() or 'none'} on http://{self.host}:{self.port} in front of "
             f"{self.shown} (its $PORT is {self.internal}; probe paths exempt: {exempt})")
        if self.fault.never_ready and self.ready_path is None:
            _log(f"{NAME}: never-ready has no effect: no readiness path (--ready-path)")
        try:
            child = await asyncio.create_subprocess_exec(
                *self.command, env={**self.env, "PORT": str(self.internal)}, preexec_fn=die_with_parent)
        except OSError as exc:
            listener.close()
            _log(f"{NAME}: cannot start {self.shown}: {exc.strerror or exc}")
            return 127 if isinstance(exc, FileNotFoundError) else 126
        self.child = child
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._forward, signum)
        serving = asyncio.create_task(self._serve(listener))
        try:
            code = await child.wait()
        finally:
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serving
            if child.returncode is None:
                child.kill()
                await child.wait()
        if code < 0:
            _log(f"{NAME}: {self.shown} was killed by {signal.Signals(-code).name}")
            return 128 - code
        _log(f"{NAME}: {self.shown} exited with code {code}")
        return code

    def _flag_on(self) -> bool:
        """Whether the fault's flag is on now: the file is read per request (a few microseconds), since
        a file's mtime is too coarse to tell two quick flips apart."""
        if self.flag_file is None:
            return True
        try:
            with open(self.flag_file) as f:
                return f.read().strip().lower() in FLAG_ON
        except OSError:
            return False  # no such flag: off

    def _forward(self, signum: int) -> None:
        if self.child is not None and self.child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.child.send_signal(signum)

    async def _serve(self, listener: socket.socket) -> None:
        server = None
        try:
            await self._wait_for_service()
            server = await asyncio.start_server(self._handle, sock=listener)
            await asyncio.Event().wait()  # until cancelled: the service exited
        finally:
            if server is not None:
                server.close()
            else:
                listener.close()

    async def _wait_for_service(self) -> None:
        started, hinted = time.monotonic(), False
        while True:
            try:
                _, writer = await asyncio.open_connection(self.host, self.internal)
            except OSError:
                if not hinted and time.monotonic() - started > WAIT_HINT_SECONDS:
                    hinted = True
                    _log(f"{NAME}: {self.shown} does not accept connections on {self.host}:{self.internal} "
                         f"yet (does it listen on $HOST:$PORT?)")
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = _Upstream(self.host, self.internal)
        first = True
        try:
            while True:
                try:
                    head = await _read_head(reader)
                except BROKEN:
                    return  # the client closed (or sent garbage) between requests
                if not REQUEST_LINE.match(head):
                    if first:  # not HTTP/1.x: a plain byte pipe, no fault
                        await self._pipe(head, reader, writer)
                    return
                first = False
                if not await self._exchange(head, reader, writer, upstream):
                    return
        except BROKEN:
            return
        except asyncio.CancelledError:
            # The service exited and asyncio.run cancels what is left; ending quietly keeps
            # Python 3.11's stream callback from logging the cancellation as an error.
            return
        finally:
            upstream.close()
            writer.close()

    async def _exchange(self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        upstream: _Upstream) -> bool:
        """Serve one request; returns whether the client's connection stays open."""
        method, target, version = head[:head.index(b"\r\n")].split(b" ")
        headers = _headers(head)
        has_body = ("chunked" in headers.get("transfer-encoding", "").lower()
                    or headers.get("content-length", "0").strip() not in ("", "0"))
        client_keeps = _keeps_alive(version, headers)
        path = _path(target.decode("latin-1"))
        if self.fault.never_ready and path == self.ready_path:
            keep = client_keeps and not has_body  # the body is not read: close after it
            writer.write(_response(503, b"not ready\n", close=not keep))
            await writer.drain()
            return keep
        failing = False
        if path not in self.probe_paths and self._flag_on():
            failing = self.fault.error_rate > 0 and self.dice.random() < self.fault.error_rate
            if self.fault.latency_ms:
                await asyncio.sleep(self.fault.latency_ms / 1000)
        if headers.get("expect", "").lower() == "100-continue":
            head = _without(head, {b"expect"})  # answered here, so the service never waits for the body
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        response = await self._send(head, headers, has_body, reader, upstream)
        if response is None:
            writer.write(_response(503, f"{self.shown} is not accepting connections\n".encode(), close=True))
            await writer.drain()
            return False
        assert upstream.reader is not None and upstream.writer is not None
        status = _status(response)
        while 100 <= status < 200 and status != 101:  # interim responses (103 Early Hints) go through
            writer.write(response)
            response = await _read_head(upstream.reader)
            status = _status(response)
        if status == 101:  # protocol upgrade: from here on it is a byte stream, no fault
            writer.write(response)
            await writer.drain()
            await asyncio.gather(pipe(reader, upstream.writer), pipe(upstream.reader, writer))
            return False
        response_headers = _headers(response)
        bodiless = method == b"HEAD" or status in (204, 304)
        delimited = bodiless or "content-length" in response_headers or "chunked" in response_headers.get(
            "transfer-encoding", "").lower()
        if failing:
            response = _as_server_error(response, empty=status in (204, 304))
        writer.write(response)
        if not bodiless:
            await _relay_body(upstream.reader, writer, response_headers, until_eof=True)
        await writer.drain()
        response_version = response.split(b" ", 1)[0]
        if not (delimited and _keeps_alive(response_version, response_headers)):
            upstream.close()
        return client_keeps and delimited and _keeps_alive(response_version, response_headers) and (
            version != b"HTTP/1.0" or "keep-alive" in response_headers.get("connection", "").lower())

    async def _send(self, head: bytes, headers: dict[str, str], has_body: bool, reader: asyncio.StreamReader,
                    upstream: _Upstream) -> bytes | None:
        """Forward the request; the response head, or None when the service refuses connections."""
        while True:
            try:
                reused = await upstream.open()
            except OSError:
                return None
            assert upstream.reader is not None and upstream.writer is not None
            try:
                upstream.writer.write(head)
                if has_body:
                    await _relay_body(reader, upstream.writer, headers, until_eof=False)
                await upstream.writer.drain()
                quick_ack(upstream.writer)  # a service keeping Nagle must not stall on a reused connection
                return await _read_head(upstream.reader)
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                upstream.close()
                # A kept-alive connection the service closed as we sent: retry once, if nothing
                # was lost (no body, no response bytes).
                got_bytes = isinstance(exc, asyncio.IncompleteReadError) and bool(exc.partial)
                if not reused or has_body or got_bytes:
                    raise

    async def _pipe(self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(self.host, self.internal)
        except OSError:
            return
        upstream_writer.write(head)
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


class _Upstream:
    """One client connection's connection to the service, kept alive between requests."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> bool:
        """Connect unless a live connection is kept; returns whether it was kept."""
        if self.writer is not None and self.reader is not None:
            if not (self.reader.at_eof() or self.writer.is_closing()):
                return True
            self.close()
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return False

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def _path(target: str) -> str:
    """``/ready?x=1`` and ``http://host/ready`` -> ``/ready``."""
    if "://" in target:
        target = "/" + target.split("://", 1)[1].partition("/")[2]
    return target.partition("?")[0] or "/"


def _status(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


def _keeps_alive(version: bytes, headers: dict[str, str]) -> bool:
    tokens = {t.strip() for t in headers.get("connection", "").lower().split(",")}
    if "close" in tokens:
        return False
    return version != b"HTTP/1.0" or "keep-alive" in tokens


def _without(head: bytes, names: set[bytes], extra: bytes = b"") -> bytes:
    """``head`` without the named header fields (lower-case names), plus ``extra`` lines."""
    first, _, rest = head.partition(b"\r\n")
    kept = [line for line in rest.split(b"\r\n") if line and line.split(b":", 1)[0].strip().lower() not in names]
    return b"\r\n".join([first, *kept]) + b"\r\n" + extra + b"\r\n"


def _as_server_error(head: bytes, *, empty: bool) -> bytes:
    """The response head with its status replaced by 500; headers kept (so is the body)."""
    version, _, rest = head.partition(b" ")
    head = version + b" 500 Internal Server Error\r\n" + rest.partition(b"\r\n")[2]
    if empty:  # a 204/304 had no body; a 500 must say it has none
        head = _without(head, {b"content-length", b"transfer-encoding"}, b"Content-Length: 0\r\n")
    return head


def _response(status: int, body: bytes, *, close: bool) -> bytes:
    head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n" + ("Connection: close\r\n" if close else "") + "\r\n")
    return head.encode("latin-1") + body
