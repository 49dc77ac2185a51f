"""SPDY/3.1, server side, as much as the kube-apiserver and kubectl use towards a kubelet.

The v1.34 apiserver reaches the kubelet's /exec and /portForward over SPDY/3.1 only: its
stream translator turns kubectl's WebSocket (v5.channel.k8s.io) into a client-go SPDY
executor, and its tunneling handler passes kubectl's SPDY frames (carried in WebSocket
messages) through to the kubelet.  Frames and header compression follow moby/spdystream,
the library on the other end.  spdystream neither sends nor honours WINDOW_UPDATE, so no
flow-control window is kept here either: a stream whose reader falls behind pauses
reading from the connection instead.

One ``SpdySession`` owns one upgraded TLS socket; its ``run()`` loop (one thread) does all
socket I/O, so other threads only queue frames (``Stream.write``) and never touch the TLS
object concurrently.

Example::

    def on_stream(stream: Stream) -> None:  # called in the I/O thread: hand work to a thread
        threading.Thread(target=lambda: (stream.write(b"hi"), stream.close())).start()

    SpdySession(tls_socket, on_stream).run()  # until the peer hangs up or close()
"""

from __future__ import annotations

import collections
import contextlib
import logging
import selectors
import socket
import ssl
import struct
import threading
import time
import zlib
from collections.abc import Callable

log = logging.getLogger("gameday.cluster.kubelet")

VERSION = 3
DATA, SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 0, 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
RST_PROTOCOL_ERROR, RST_INVALID_STREAM, RST_CANCEL = 1, 2, 5
MAX_DATA_FRAME = 32 * 1024
OUTBOX_LIMIT = 4 * 1024 * 1024  # queued bytes before writers wait
INBOX_LIMIT = 8 * 1024 * 1024  # buffered bytes in one stream before reading pauses
SEND_TIMEOUT_S = 60.0  # a peer that reads nothing for this long is cut off
LINGER_S = 2.0  # after a graceful close, how long to wait for the peer to hang up
TLS_CHUNK = 16 * 1024

# The SPDY/3 header compression dictionary (draft-mbelshe-httpbis-spdy-00, section 2.6.10.1):
# length-prefixed words, then a run of text.  ``DICTIONARY_ADLER32`` pins it.
_WORDS = (
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding",
    "accept-language", "accept-ranges", "age", "allow", "authorization", "cache-control", "connection",
    "content-base", "content-encoding", "content-language", "content-length", "content-location",
    "content-md5", "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host",
    "if-match", "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified",
    "location", "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer",
    "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via",
    "warning", "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url",
    "public", "set-cookie", "keep-alive", "origin",
)
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
    "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + _TAIL.encode()
DICTIONARY_ADLER32 = 3821447106


class ProtocolError(Exception):
    """The peer sent something that is not SPDY/3."""


# -- frames ------------------------------------------------------------------------------
def control_frame(kind: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload


def data_frame(stream_id: int, flags: int, data: bytes) -> bytes:
    return struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(data)) + data


def encode_header_block(headers: dict[str, str]) -> bytes:
    out = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        raw_name, raw_value = name.lower().encode(), value.encode()
        out += [struct.pack(">I", len(raw_name)), raw_name, struct.pack(">I", len(raw_value)), raw_value]
    return b"".join(out)


def decode_header_block(raw: bytes) -> dict[str, str]:
    """Name -> value (several values of one name, NUL-separated on the wire, are kept joined by ',')."""
    try:
        (count,) = struct.unpack_from(">I", raw, 0)
        offset, headers = 4, {}
        for _ in range(count):
            (size,) = struct.unpack_from(">I", raw, offset)
            name = raw[offset + 4:offset + 4 + size].decode()
            offset += 4 + size
            (size,) = struct.unpack_from(">I", raw, offset)
            value = raw[offset + 4:offset + 4 + size].decode()
            offset += 4 + size
            headers[name.lower()] = value.replace("\x00", ",")
    except (struct.error, UnicodeDecodeError) as exc:
        raise ProtocolError(f"bad SPDY header block: {exc}") from None
    return headers


class HeaderCodec:
    """One zlib context per direction for the whole connection, as SPDY/3 requires."""

    def __init__(self) -> None:
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS, 8, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)

    def decode(self, block: bytes) -> dict[str, str]:
        try:
            raw = self._inflate.decompress(block)
        except zlib.error as exc:
            raise ProtocolError(f"bad SPDY header compression: {exc}") from None
        return decode_header_block(raw)

    def encode(self, headers: dict[str, str]) -> bytes:
        return self._deflate.compress(encode_header_block(headers)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)


class FrameParser:
    """Bytes in, (kind, flags, stream_id, payload) out; kind DATA (0) or a control type."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, int, int, bytes]]:
        self._buf += data
        frames = []
        while len(self._buf) >= 8:
            first, second = struct.unpack_from(">II", self._buf, 0)
            length = second & 0xFFFFFF
            if len(self._buf) < 8 + length:
                break
            payload = bytes(self._buf[8:8 + length])
            del self._buf[:8 + length]
            flags = second >> 24
            if first & 0x80000000:
                if (first >> 16) & 0x7FFF != VERSION:
                    raise ProtocolError(f"SPDY version {(first >> 16) & 0x7FFF} is not supported")
                kind = first & 0xFFFF
                stream_id = struct.unpack_from(">I", payload, 0)[0] & 0x7FFFFFFF if len(payload) >= 4 else 0
                frames.append((kind, flags, stream_id, payload))
            else:
                frames.append((DATA, flags, first & 0x7FFFFFFF, payload))
        return frames


# -- streams -----------------------------------------------------------------------------
class Stream:
    """One SPDY stream opened by the peer: ``read`` what it sends, ``write``/``close`` our half."""

    def __init__(self, session: SpdySession, stream_id: int, headers: dict[str, str], fin: bool) -> None:
        self.session = session
        self.id = stream_id
        self.headers = headers
        self._inbox: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._cond = threading.Condition()
        self.remote_closed = fin  # the peer sent FIN: no more data from it
        self.was_reset = False
        self.local_closed = False

    def read(self, timeout: float) -> bytes | None:
        """Next chunk; b"" at end of stream (FIN or reset); None if nothing came within ``timeout``."""
        with self._cond:
            if not self._inbox and not self.remote_closed and not self.was_reset:
                self._cond.wait(timeout)
            if self._inbox:
                data = self._inbox.popleft()
                self._buffered -= len(data)
                paused = self._buffered + len(data) > INBOX_LIMIT >= self._buffered
            elif self.remote_closed or self.was_reset:
                return b""
            else:
                return None
        if paused:
            self.session.wake()  # the I/O loop may read again
        return data

    def write(self, data: bytes) -> bool:
        """Queue ``data`` to the peer (waits while the connection's outbox is full); False once closed."""
        for start in range(0, len(data), MAX_DATA_FRAME):
            if self.was_reset or self.local_closed:
                return False
            if not self.session.send(data_frame(self.id, 0, data[start:start + MAX_DATA_FRAME])):
                return False
        return not self.was_reset

    def close(self) -> None:
        """Half-close our side (FIN); the peer may still send."""
        if not self.local_closed and not self.was_reset:
            self.local_closed = True
            self.session.send(data_frame(self.id, FLAG_FIN, b""), block=False)
            self.session.forget_if_done(self)

    def reset(self, status: int = RST_CANCEL) -> None:
        if not self.was_reset:
            self.session.send(control_frame(RST_STREAM, 0, struct.pack(">II", self.id, status)), block=False)
            self._on_reset()

    @property
    def overfull(self) -> bool:
        return self._buffered > INBOX_LIMIT

    # called by the session's I/O thread
    def _on_data(self, data: bytes, fin: bool) -> None:
        with self._cond:
            if data and not self.was_reset:
                self._inbox.append(data)
                self._buffered += len(data)
            if fin:
                self.remote_closed = True
            self._cond.notify_all()

    def _on_reset(self) -> None:
        with self._cond:
            self.was_reset = True
            self._inbox.clear()
            self._buffered = 0
            self._cond.notify_all()
        self.session.forget_if_done(self)


# -- the connection ----------------------------------------------------------------------
class SpdySession:
    """The server end of one SPDY/3.1 connection; ``on_stream`` gets each stream the peer opens."""

    def __init__(self, sock: socket.socket, on_stream: Callable[[Stream], None]) -> None:
        self._sock = sock
        self._on_stream = on_stream
        self._codec = HeaderCodec()
        self._parser = FrameParser()
        self.streams: dict[int, Stream] = {}
        self._out = bytearray()
        self._inflight = b""  # a TLS write to retry with exactly the same bytes
        self._lock = threading.Condition()
        self._closing = False  # graceful: flush, GOAWAY, linger
        self._closed = False  # hard: stop now
        self._goaway_sent = False
        self._last_stream = 0
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_w.setblocking(False)

    # -- API for other threads ---------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed or self._closing

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def send(self, frame: bytes, *, block: bool = True) -> bool:
        """Queue one frame; waits (bounded) while the outbox is full.  False once the session is over."""
        with self._lock:
            deadline = time.monotonic() + SEND_TIMEOUT_S
            while block and len(self._out) > OUTBOX_LIMIT and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.info("spdy peer read nothing for %gs; closing the connection", SEND_TIMEOUT_S)
                    self._closed = True
                    break
                self._lock.wait(min(remaining, 1.0))
            if self._closed or self._goaway_sent:
                return False
            self._out += frame
        self.wake()
        return True

    def close(self, graceful: bool = True) -> None:
        """Graceful: send what is queued plus GOAWAY, then hang up.  Otherwise: hang up now."""
        with self._lock:
            if graceful and not self._closing and not self._closed:
                self._out += control_frame(GOAWAY, 0, struct.pack(">II", self._last_stream, 0))
                self._goaway_sent = True
                self._closing = True
            elif not graceful:
                self._closed = True
            self._lock.notify_all()
        self.wake()

    def forget_if_done(self, stream: Stream) -> None:
        if stream.was_reset or (stream.local_closed and stream.remote_closed):
            with self._lock:
                self.streams.pop(stream.id, None)

    # -- the I/O loop ------------------------------------------------------------------
    def run(self) -> None:
        """Serve the connection in this thread until the peer hangs up or the session is closed."""
        selector = selectors.DefaultSelector()
        linger_until: float | None = None
        registered = selectors.EVENT_READ
        try:
            self._sock.setblocking(False)
            selector.register(self._wake_r, selectors.EVENT_READ)
            selector.register(self._sock, registered)
            while not self._closed:
                self._flush()
                paused = self._overfull()
                if not paused and not self._read_available():
                    break  # the peer hung up
                self._flush()
                with self._lock:
                    pending = bool(self._out or self._inflight)
                    if self._closing and not pending:
                        linger_until = linger_until or time.monotonic() + LINGER_S
                        if time.monotonic() >= linger_until:
                            break
                wanted = (0 if paused else selectors.EVENT_READ) | (selectors.EVENT_WRITE if pending else 0)
                if wanted != registered:
                    if registered:
                        selector.unregister(self._sock)
                    if wanted:
                        selector.register(self._sock, wanted)
                    registered = wanted
                for key, _ in selector.select(0.5):
                    if key.fileobj is self._wake_r:
                        with contextlib.suppress(OSError):
                            self._wake_r.recv(4096)
        except (OSError, ValueError, struct.error, ProtocolError) as exc:
            log.debug("spdy connection ended: %s", exc)
        finally:
            selector.close()
            self._teardown()

    def _read_available(self) -> bool:
        while True:
            try:
                data = self._sock.recv(65536)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                return True
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError, ConnectionError):
                return False
            if not data:
                return False
            for frame in self._parser.feed(data):
                self._dispatch(*frame)
            if self._overfull():
                return True

    def _overfull(self) -> bool:
        with self._lock:
            return any(s.overfull for s in self.streams.values())

    def _flush(self) -> None:
        while True:
            with self._lock:
                if not self._inflight:
                    if not self._out:
                        self._lock.notify_all()
                        return
                    self._inflight = bytes(self._out[:TLS_CHUNK])
                    del self._out[:TLS_CHUNK]
                    self._lock.notify_all()
                chunk = self._inflight
            try:
                sent = self._sock.send(chunk)
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                return
            with self._lock:
                self._inflight = chunk[sent:]

    def _dispatch(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        fin = bool(flags & FLAG_FIN)
        with self._lock:
            stream = self.streams.get(stream_id)
        if kind == DATA:
            if stream is None:
                return  # already reset or finished: drop, as spdystream does
            stream._on_data(payload, fin)
            self.forget_if_done(stream)
        elif kind == SYN_STREAM:
            headers = self._codec.decode(payload[10:])  # always decode: the zlib context is shared
            if stream is not None or stream_id % 2 == 0 or stream_id <= self._last_stream:
                self.send(control_frame(RST_STREAM, 0, struct.pack(">II", stream_id, RST_PROTOCOL_ERROR)),
                          block=False)
                return
            self._last_stream = stream_id
            stream = Stream(self, stream_id, headers, fin)
            with self._lock:
                self.streams[stream_id] = stream
            reply = struct.pack(">I", stream_id) + self._codec.encode({})
            self.send(control_frame(SYN_REPLY, 0, reply), block=False)
            self._on_stream(stream)
        elif kind in (HEADERS, SYN_REPLY):
            self._codec.decode(payload[4:])
        elif kind == RST_STREAM:
            if stream is not None:
                stream._on_reset()
        elif kind == PING:
            (ping_id,) = struct.unpack_from(">I", payload, 0)
            if ping_id % 2 == 1:  # the peer's ping: echo it; even ids would be our own
                self.send(control_frame(PING, 0, payload[:4]), block=False)
        elif kind == GOAWAY:
            log.debug("spdy peer sent GOAWAY")
        # SETTINGS, WINDOW_UPDATE and unknown types: nothing to do (no flow control, see above)

    def _teardown(self) -> None:
        with self._lock:
            self._closed = True
            self._out.clear()
            self._inflight = b""
            streams = list(self.streams.values())
            self.streams.clear()
            self._lock.notify_all()
        for stream in streams:
            stream._on_reset()
        for end in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                end.close()
