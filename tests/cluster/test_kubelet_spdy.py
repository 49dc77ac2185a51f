"""SPDY/3.1 framing and the exec / port-forward jobs over a local socket pair (no cluster).

The peer here is a minimal SPDY client written with the same frame helpers; the real
interop (client-go and kubectl through the kube-apiserver) is in test_kubelet_streams.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from gameday.cluster.kubelet_spdy import (
    DATA,
    DICTIONARY,
    DICTIONARY_ADLER32,
    FLAG_FIN,
    GOAWAY,
    PING,
    RST_STREAM,
    SYN_REPLY,
    SYN_STREAM,
    FrameParser,
    HeaderCodec,
    SpdySession,
    control_frame,
    data_frame,
    decode_header_block,
    encode_header_block,
)
from gameday.cluster.kubelet_streams import ExecJob, ExecTarget, ForwardJob, exec_argv, negotiate, status_json


def test_dictionary_is_the_spdy3_one() -> None:
    assert len(DICTIONARY) == 1423 and zlib.adler32(DICTIONARY) == DICTIONARY_ADLER32
    assert DICTIONARY.startswith(b"\x00\x00\x00\x07options") and DICTIONARY.endswith(b"enq=0.")


def test_header_blocks_survive_shared_compression_contexts() -> None:
    sender, receiver = HeaderCodec(), HeaderCodec()
    first = {"streamtype": "error", "port": "8080", "requestid": "0"}
    second = {"streamtype": "data", "port": "8080", "requestid": "0"}
    assert receiver.decode(sender.encode(first)) == first
    assert receiver.decode(sender.encode(second)) == second  # second block reuses the zlib window
    assert receiver.decode(sender.encode({})) == {}
    raw = encode_header_block({"X-Mixed": "a"})
    assert raw == struct.pack(">I", 1) + struct.pack(">I", 7) + b"x-mixed" + struct.pack(">I", 1) + b"a"
    assert decode_header_block(struct.pack(">II", 1, 1) + b"a" + struct.pack(">I", 3) + b"x\x00y") == {"a": "x,y"}


def test_frame_parser_handles_split_and_batched_frames() -> None:
    wire = control_frame(PING, 0, struct.pack(">I", 1)) + data_frame(3, FLAG_FIN, b"hello")
    parser = FrameParser()
    assert parser.feed(wire[:5]) == []
    frames = parser.feed(wire[5:])
    assert frames == [(PING, 0, 1, struct.pack(">I", 1)), (DATA, FLAG_FIN, 3, b"hello")]


def test_negotiation_argv_rewrites_and_status_payloads(tmp_path: Path) -> None:
    assert negotiate(["v5.channel.k8s.io, v4.channel.k8s.io", "v3.channel.k8s.io"],
                     ("v4.channel.k8s.io",)) == "v4.channel.k8s.io"
    assert negotiate(["v5.channel.k8s.io"], ("v4.channel.k8s.io",)) is None
    target = ExecTarget(env={}, cwd="/", host="127.9.8.7", mounts={"/etc/app": tmp_path})
    assert exec_argv(["curl", "localhost:8080/health", "http://127.0.0.1/x", "/etc/app/c.yaml", "mylocalhost:1",
                      "pg_isready -h localhost; echo 127.0.0.10 localhost.localdomain"], target) == [
        "curl", "127.9.8.7:8080/health", "http://127.9.8.7/x", f"{tmp_path}/c.yaml", "mylocalhost:1",
        "pg_isready -h 127.9.8.7; echo 127.0.0.10 localhost.localdomain"]
    assert json.loads(status_json(0)) == {"metadata": {}, "status": "Success"}
    failed = json.loads(status_json(3))
    assert failed["reason"] == "NonZeroExitCode" and failed["details"]["causes"] == [
        {"reason": "ExitCode", "message": "3"}]
    assert json.loads(status_json(None, "boom"))["reason"] == "InternalError"


class Client:
    """The client end: opens streams, collects what the server sends, per stream."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.codec = HeaderCodec()
        self.parser = FrameParser()
        self.next_id = 1
        self.data: dict[int, bytes] = {}
        self.fin: set[int] = set()
        self.replies: set[int] = set()
        self.resets: set[int] = set()
        self.other: list[tuple[int, bytes]] = []

    def open(self, **headers: str) -> int:
        stream_id, self.next_id = self.next_id, self.next_id + 2
        payload = struct.pack(">IIH", stream_id, 0, 0) + self.codec.encode(headers)
        self.sock.sendall(control_frame(SYN_STREAM, 0, payload))
        return stream_id

    def send(self, stream_id: int, data: bytes, fin: bool = False) -> None:
        self.sock.sendall(data_frame(stream_id, FLAG_FIN if fin else 0, data))

    def pump_until(self, done: object, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        self.sock.settimeout(0.2)
        while not done():  # type: ignore[operator]
            assert time.monotonic() < deadline, f"timed out; got {self.data} fin={self.fin}"
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                return
            for kind, flags, stream_id, payload in self.parser.feed(chunk):
                if kind == DATA:
                    self.data[stream_id] = self.data.get(stream_id, b"") + payload
                    if flags & FLAG_FIN:
                        self.fin.add(stream_id)
                elif kind == SYN_REPLY:
                    self.codec.decode(payload[4:])
                    self.replies.add(stream_id)
                elif kind == RST_STREAM:
                    self.resets.add(stream_id)
                else:
                    self.other.append((kind, payload))


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    yield server, client
    server.close()
    client.close()


def serve(job: ExecJob | ForwardJob, sock: socket.socket) -> tuple[SpdySession, threading.Thread]:
    session = SpdySession(sock, job.on_stream)
    job.session = session
    job.start()
    thread = threading.Thread(target=session.run, daemon=True)
    thread.start()
    return session, thread


def test_exec_job_runs_the_command_with_stdin_and_reports_the_exit_code(pair, tmp_path: Path) -> None:
    server, peer = pair
    script = "import os, sys; line = sys.stdin.readline(); print('got', line.strip(), os.environ['HOST']); " \
             "print('oops', file=sys.stderr); sys.exit(4)"
    target = ExecTarget(env={"HOST": "127.9.8.7"}, cwd=str(tmp_path), host="127.9.8.7")
    job = ExecJob(target, [sys.executable, "-c", script], stdin=True, stdout=True, stderr=True, tty=False)
    session, thread = serve(job, server)
    client = Client(peer)
    error, stdin = client.open(streamtype="error"), client.open(streamtype="stdin")
    stdout, stderr = client.open(streamtype="stdout"), client.open(streamtype="stderr")
    client.sock.sendall(control_frame(PING, 0, struct.pack(">I", 1)))
    client.send(stdin, b"hello\n", fin=True)
    client.pump_until(lambda: error in client.fin)
    assert client.replies == {error, stdin, stdout, stderr}
    assert client.data[stdout] == b"got hello 127.9.8.7\n" and client.data[stderr] == b"oops\n"
    assert json.loads(client.data[error])["details"]["causes"][0]["message"] == "4"
    assert {stdout, stderr, stdin} <= client.fin
    client.pump_until(lambda: any(kind == GOAWAY for kind, _ in client.other))
    assert (PING, struct.pack(">I", 1)) in client.other  # our ping echoed
    peer.shutdown(socket.SHUT_RDWR)
    thread.join(5)
    assert not thread.is_alive() and session.closed


def test_exec_job_reports_a_missing_command(pair, tmp_path: Path) -> None:
    server, peer = pair
    job = ExecJob(ExecTarget(env={"PATH": "/nonexistent"}, cwd=str(tmp_path), host="127.0.0.1"),
                  ["no-such-command"], stdin=False, stdout=True, stderr=True, tty=False)
    _, thread = serve(job, server)
    client = Client(peer)
    error = client.open(streamtype="error")
    client.open(streamtype="stdout")
    client.open(streamtype="stderr")
    client.pump_until(lambda: error in client.fin)
    status = json.loads(client.data[error])
    assert status["reason"] == "InternalError" and "executable file not found" in status["message"]
    peer.close()
    thread.join(5)
    assert not thread.is_alive()


def test_exec_job_kills_the_command_when_stopped(pair, tmp_path: Path) -> None:
    server, peer = pair
    job = ExecJob(ExecTarget(env={}, cwd=str(tmp_path), host="127.0.0.1"),
                  [sys.executable, "-c", "import time; time.sleep(600)"], stdin=False, stdout=True, stderr=False,
                  tty=False)
    session, thread = serve(job, server)
    client = Client(peer)
    error = client.open(streamtype="error")
    client.open(streamtype="stdout")
    client.pump_until(lambda: len(client.replies) == 2)
    started = time.monotonic()
    job.stop()
    session.close(graceful=False)
    thread.join(5)
    job.join(5)
    assert not thread.is_alive() and all(not t.is_alive() for t in job.threads)
    assert time.monotonic() - started < 5
    assert error not in client.fin or b"137" in client.data.get(error, b"")


def test_forward_job_pairs_streams_and_copies_both_ways(pair) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def echo_once() -> None:
        conn, _ = listener.accept()
        with conn:
            data = b""
            while not data.endswith(b"\n"):
                data += conn.recv(1024)
            conn.sendall(b"echo:" + data)

    echo = threading.Thread(target=echo_once, daemon=True)
    echo.start()
    server, peer = pair
    job = ForwardJob("127.0.0.1", "ns/pod")
    _, thread = serve(job, server)
    client = Client(peer)
    error = client.open(streamtype="error", port=str(port), requestid="0")
    data = client.open(streamtype="data", port=str(port), requestid="0")
    client.send(data, b"ping\n")
    client.pump_until(lambda: data in client.fin and error in client.fin)
    assert client.data[data] == b"echo:ping\n" and not client.data.get(error)
    closed = client.open(streamtype="error", port="1", requestid="1")
    client.open(streamtype="data", port="1", requestid="1")
    client.pump_until(lambda: closed in client.fin)
    assert client.data[closed] \
        == b"error forwarding port 1 to pod ns/pod: dial tcp 127.0.0.1:1: connect: connection refused"
    peer.close()
    thread.join(5)
    job.join(5)
    listener.close()
    echo.join(5)
    assert not thread.is_alive()
