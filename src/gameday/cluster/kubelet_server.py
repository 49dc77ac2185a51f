"""The kubelet's HTTPS endpoint: /healthz, /containerLogs (`kubectl logs`), /exec and
/portForward (`kubectl exec`, `kubectl port-forward`; served by kubelet_streams over SPDY/3.1)
and /metrics/resource (kubelet_metrics, for metrics-server and `kubectl top`).

The API server dials the node's InternalIP (127.0.0.1) and daemonEndpoints port,
and by default does not verify the kubelet's certificate; a self-signed one suffices.

Example::

    server = KubeletHTTPServer(10250, find_logs, workdir / "pki", streams=StreamBackend(...))
    server.start()  # ... server.stop() also ends open exec and port-forward sessions
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gameday.cluster.kubelet_spdy import SpdySession
from gameday.cluster.kubelet_streams import Job, StreamBackend, serve_upgrade

FOLLOW_POLL_SECONDS = 0.3


@dataclass(frozen=True)
class LogSource:
    path: Path
    alive: Callable[[], bool]  # while True, a follow keeps waiting for more lines


LogFinder = Callable[[str, str, "str | None", bool], "LogSource | None"]  # ns, pod, container, previous


def self_signed_cert(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gameday-process-kubelet")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host)),
                                                    x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "kubelet.crt", directory / "kubelet.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def select_lines(lines: list[bytes], *, tail: int | None, timestamps: bool, since: float | None) -> list[bytes]:
    """Apply sinceSeconds, tailLines and timestamps to stored '<RFC3339Nano> <line>' records."""
    if since is not None:
        cutoff = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=since)).strftime("%Y-%m-%dT%H:%M:%S.%f")
        lines = [line for line in lines if line[:26].decode(errors="replace") >= cutoff]
    if tail is not None:
        lines = lines[-tail:] if tail > 0 else []
    return lines if timestamps else [line.split(b" ", 1)[1] if b" " in line else line for line in lines]


class _Handler(BaseHTTPRequestHandler):
    server: KubeletHTTPServer
    # unbuffered reads: after a SPDY upgrade no byte of the connection may sit in a read buffer
    rbufsize = 0

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet by design
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        url = urlparse(self.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        if parts[0] == "healthz":
            self._reply(200, b"ok")
        elif parts == ["metrics", "resource"] and self.server.metrics is not None:
            self._reply(200, self.server.metrics(), "text/plain; version=0.0.4")
        elif parts[0] == "containerLogs" and len(parts) in (3, 4):
            self._logs(parts[1], parts[2], parts[3] if len(parts) == 4 else None, parse_qs(url.query))
        else:
            self.do_POST()

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        url = urlparse(self.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        if (parts[0], len(parts)) in (("exec", 3), ("exec", 4), ("portForward", 3)):
            serve_upgrade(self, self.server, self.server.streams, parts, parse_qs(url.query))
        elif parts[0] == "attach":
            self._reply(404, b"attach is not supported by the process kubelet: use kubectl exec or kubectl logs -f")
        else:
            self._reply(404, b"not found")

    def _reply(self, code: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _logs(self, namespace: str, pod: str, container: str | None, query: dict[str, list[str]]) -> None:
        def flag(name: str) -> bool:
            return query.get(name, ["false"])[0].lower() in ("true", "1")

        def number(name: str) -> int | None:
            value = query.get(name, [None])[0]
            return int(value) if value not in (None, "") else None

        source = self.server.find_logs(namespace, pod, container, flag("previous"))
        if source is None or not source.path.exists():
            what = f"{namespace}/{pod}" + (f" container {container}" if container else "")
            self._reply(404, f"no logs for {what}".encode())
            return
        data = source.path.read_bytes()
        records = select_lines(data.splitlines(), tail=number("tailLines"), timestamps=flag("timestamps"),
                               since=number("sinceSeconds"))
        limit = number("limitBytes")
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        out = b"".join(r + b"\n" for r in records)
        self.wfile.write(out[:limit] if limit else out)
        if flag("follow"):
            self._follow(source, len(data), flag("timestamps"))

    def _follow(self, source: LogSource, offset: int, timestamps: bool) -> None:
        while not self.server.stopping.is_set():
            with open(source.path, "rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]
            if complete:
                offset += len(complete)
                lines = select_lines(complete.splitlines(), tail=None, timestamps=timestamps, since=None)
                self.wfile.write(b"".join(line + b"\n" for line in lines))
                self.wfile.flush()
            elif not source.alive():
                return
            time.sleep(FOLLOW_POLL_SECONDS)


class KubeletHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, find_logs: LogFinder, cert_dir: Path, *,
                 streams: StreamBackend | None = None, metrics: Callable[[], bytes] | None = None) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.find_logs = find_logs
        self.streams = streams
        self.metrics = metrics  # /metrics/resource (kubelet_metrics), for metrics-server
        self.stopping = threading.Event()
        self._sessions: dict[SpdySession, tuple[Job, threading.Thread]] = {}
        self._sessions_lock = threading.Lock()
        cert, key = self_signed_cert(cert_dir)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        # the handshake happens lazily in the handler thread, so a stalled client never blocks accept()
        self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.5},
                                        name="kubelet-https", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> None:
        self._thread.start()

    # -- open exec / port-forward sessions (kubelet_streams.SessionRegistry) -----------------
    def track(self, session: SpdySession, job: Job) -> None:
        with self._sessions_lock:
            self._sessions[session] = (job, threading.current_thread())
        if self.stopping.is_set():
            job.stop()
            session.close(graceful=False)

    def untrack(self, session: SpdySession) -> None:
        with self._sessions_lock:
            self._sessions.pop(session, None)

    @property
    def session_count(self) -> int:
        with self._sessions_lock:
            return len(self._sessions)

    def describe_sessions(self) -> list[str]:
        """The open sessions, one line each (for messages when one lingers)."""
        with self._sessions_lock:
            jobs = [(session, job, thread) for session, (job, thread) in self._sessions.items()]
        return [f"{type(job).__name__} {getattr(job, 'argv', None) or getattr(job, 'pod', '')} "
                f"(session closed: {session.closed}, thread alive: {thread.is_alive()})"
                for session, job, thread in jobs]

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        with self._sessions_lock:
            sessions = list(self._sessions.items())
        for session, (job, _) in sessions:
            job.stop()  # kills exec'd commands, closes port-forward sockets
            session.close(graceful=False)
        deadline = time.monotonic() + 10
        for _, (job, thread) in sessions:
            thread.join(max(0.0, deadline - time.monotonic()))
            job.join(max(0.0, deadline - time.monotonic()))  # the thread running the command kills it
        self.server_close()
