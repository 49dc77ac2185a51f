"""The kubelet's HTTPS endpoint: /healthz and /containerLogs, so `kubectl logs` works.

The API server dials the node's InternalIP (127.0.0.1) and daemonEndpoints port,
and by default does not verify the kubelet's certificate; a self-signed one suffices.
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

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet by design
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        url = urlparse(self.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        if parts[0] == "healthz":
            self._reply(200, b"ok")
        elif parts[0] == "containerLogs" and len(parts) in (3, 4):
            self._logs(parts[1], parts[2], parts[3] if len(parts) == 4 else None, parse_qs(url.query))
        else:
            self._reply(404, b"not found")

    def _reply(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
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

    def __init__(self, port: int, find_logs: LogFinder, cert_dir: Path) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.find_logs = find_logs
        self.stopping = threading.Event()
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

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()
