"""Per-request HTTP/1.1 forwarding over pooled backend connections.

Istio balances HTTP per request, not per connection, so a keep-alive client still sees
the weight split.  This relay reads one request (head + Content-Length or chunked body),
picks a backend for it, forwards it and relays exactly one response back, then waits for
the client's next request on the same connection.  A request that is not HTTP/1.x ends
the client connection.

Backend connections are kept alive between requests, as Envoy's upstream pools do
(BackendPool): a small LIFO stack of idle connections per backend address, used only
for the backend the request was picked for, so a pooled connection never pins a client
to a backend.  A connection goes back to the pool only after a complete, delimited
response that did not say ``Connection: close``, to a request that did not ask to close,
while the backend has not closed it; idle ones close after IDLE_TIMEOUT_S, beyond
MAX_IDLE_PER_BACKEND, and when their backend leaves the routing table (``retain``).
A pooled connection the backend closed while it sat idle (a pod killed or replaced) is
noticed before the request is sent (EOF, reset or unasked bytes) and skipped; if it is
only noticed after sending (a failed write, or EOF/reset before any response byte), an
idempotent request whose body was buffered is sent once more on a fresh connection, so
a stale connection never becomes an error a fresh connection would not have given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import select
import socket
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

log = logging.getLogger("gameday.cluster.proxy")

MAX_HEAD = 64 * 1024
REQUEST_LINE = re.compile(rb"^[A-Z]+ \S+ HTTP/1\.[01]\r\n")
CONNECT_TIMEOUT_S = 2.0
MAX_IDLE_PER_BACKEND = 16  # idle keep-alive connections kept per backend address
IDLE_TIMEOUT_S = 10.0  # an idle pooled connection is closed after this long
MAX_REPLAY_BODY = 1024 * 1024  # request bodies up to this size are buffered, so the request can be resent
CANDIDATES = 3  # a refused connect tries up to this many backends of the picked destination
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
# the client's own "Connection: close" is hop-by-hop: honoured on the client's side, not forwarded
_CLIENT_CLOSE = re.compile(rb"\r\nconnection:[ \t]*close[ \t]*(?=\r\n)", re.IGNORECASE)
_KEEP_ALIVE_HEADERS = re.compile(rb"\r\n(?:connection|keep-alive):[^\r]*(?=\r\n)", re.IGNORECASE)

Address = tuple[str, int]
Pick = Callable[[], Sequence[Address] | None]  # the picked backend first, then its fallbacks


class NotHTTP(Exception):
    pass


def _headers(head: bytes) -> dict[str, str]:
    lines = head.split(b"\r\n")[1:]
    found: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(b":")
        if sep:
            found[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return found


def _tokens(headers: dict[str, str], name: str) -> set[str]:
    return {token.strip().lower() for token in headers.get(name, "").split(",")}


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise NotHTTP("header too large") from None


async def _relay_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, headers: dict[str, str],
                      until_eof: bool, *, prefix: bytes = b"") -> None:
    """Copy one message body; ``prefix`` (the message's head) goes out with its first bytes."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        writer.write(prefix)
        while True:
            size_line = await reader.readuntil(b"\r\n")
            writer.write(size_line)
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
                    writer.write(trailer)
                writer.write(b"\r\n")
                break
            writer.write(await reader.readexactly(size + 2))
            await writer.drain()
    elif "content-length" in headers:
        remaining = int(headers["content-length"])
        if remaining <= 0:
            writer.write(prefix)
        while remaining > 0:
            chunk = await reader.read(min(remaining, 65536))
            if not chunk:
                raise asyncio.IncompleteReadError(b"", remaining)
            writer.write(prefix + chunk if prefix else chunk)  # one segment for a small response
            prefix = b""
            remaining -= len(chunk)
            await writer.drain()
    else:
        writer.write(prefix)
        if until_eof:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
    await writer.drain()


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


def set_nodelay(writer: asyncio.StreamWriter) -> None:
    """No Nagle on this TCP connection: a small response never waits for the peer's delayed ACK."""
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def quick_ack(writer: asyncio.StreamWriter) -> None:
    """ACK the response's first segment at once (Linux TCP_QUICKACK, one-shot: set per request).

    A backend that writes its response in pieces without TCP_NODELAY (Python's http.server
    does) holds the second piece until the first is ACKed; a reused connection has left the
    kernel's quick-ACK start, so the ACK would wait up to 40 ms (delayed ACK) and every
    response would take ~44 ms.  A fresh connection would not have stalled: pooling must not
    add latency the service does not have through a fresh connection either."""
    sock = writer.get_extra_info("socket")
    option = getattr(socket, "TCP_QUICKACK", None)
    if sock is not None and option is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, option, 1)


def _readable(fd: int) -> bool:
    """Whether an idle connection has something to read (EOF, reset or bytes): it is no longer usable."""
    if fd < 0:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


@dataclass(eq=False)
class Upstream:
    """One connection to a backend, checked out for one request or idle in the pool."""

    address: Address
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    reused: bool = False  # taken from the pool for this request (so it may be stale)
    idle_since: float = field(default_factory=time.monotonic)
    fd: int = field(init=False, default=-1)

    def __post_init__(self) -> None:
        sock = self.writer.get_extra_info("socket")
        self.fd = sock.fileno() if sock is not None else -1

    def usable(self) -> bool:
        """Still open and quiet; checked before it serves a request, so nothing is sent on a dead one."""
        if self.writer.is_closing() or self.reader.at_eof() or self.reader.exception() is not None:
            return False
        if getattr(self.reader, "_buffer", None):  # bytes the backend sent unasked: out of step
            return False
        return not _readable(self.fd)

    def close(self) -> None:
        self.writer.close()


class BackendPool:
    """Idle keep-alive backend connections, per backend address (event-loop thread only)."""

    def __init__(self, *, max_idle: int = MAX_IDLE_PER_BACKEND, idle_timeout: float = IDLE_TIMEOUT_S,
                 connect_timeout: float = CONNECT_TIMEOUT_S) -> None:
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self.opened = 0  # connections dialled
        self.reused = 0  # requests sent on a pooled connection
        # requests whose backend connection failed before any response byte, by outcome:
        # "resent" (a stale pooled one; sent again on a fresh one), "pooled" (a pooled one, the
        # request could not be resent: the client sees the error), "fresh" (a new connection:
        # the client sees the error, as it would without a pool)
        self.failures: Counter[str] = Counter()
        self._idle: dict[Address, list[Upstream]] = {}
        self._busy: set[Upstream] = set()
        self._wanted: set[Address] | None = None  # None: every address
        self._closed = False

    def idle(self, address: Address | None = None) -> int:
        """Idle connections kept, for one address or in all."""
        if address is not None:
            return len(self._idle.get(address, ()))
        return sum(len(stack) for stack in self._idle.values())

    def busy(self) -> int:
        return len(self._busy)

    async def acquire(self, candidates: Sequence[Address], *, fresh: bool = False) -> Upstream | None:
        """A connection to the first candidate that takes one: a usable pooled one (unless
        ``fresh``), else a new one; the next candidate only when the connect is refused."""
        for address in candidates[:CANDIDATES]:
            if not fresh:
                pooled = self._take(address)
                if pooled is not None:
                    return pooled
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(*address), self.connect_timeout)
            except (OSError, asyncio.TimeoutError):  # noqa: UP041 - not the builtin on 3.10
                continue
            set_nodelay(writer)
            upstream = Upstream(address, reader, writer)
            self.opened += 1
            if self._closed:
                upstream.close()
                return None
            self._busy.add(upstream)
            return upstream
        return None

    def _take(self, address: Address) -> Upstream | None:
        stack = self._idle.get(address)
        now = time.monotonic()
        while stack:
            upstream = stack.pop()  # the most recently used: the others may idle out
            if now - upstream.idle_since < self.idle_timeout and upstream.usable():
                upstream.reused = True
                self.reused += 1
                self._busy.add(upstream)
                return upstream
            upstream.close()
        return None

    def release(self, upstream: Upstream, reusable: bool) -> None:
        """Back to the pool if ``reusable`` and still wanted and open; closed otherwise."""
        self._busy.discard(upstream)
        wanted = self._wanted is None or upstream.address in self._wanted
        if not (reusable and wanted and not self._closed and upstream.usable()):
            upstream.close()
            return
        upstream.reused = False
        upstream.idle_since = time.monotonic()
        stack = self._idle.setdefault(upstream.address, [])
        stack.append(upstream)
        while len(stack) > self.max_idle:
            stack.pop(0).close()

    def retain(self, addresses: set[Address]) -> None:
        """Only these backends are routed to now: idle connections to others close at once,
        busy ones after their response."""
        self._wanted = set(addresses)
        for address in [a for a in self._idle if a not in self._wanted]:
            for upstream in self._idle.pop(address):
                upstream.close()

    def prune(self) -> None:
        """Close idle connections past the idle timeout or closed by their backend."""
        now = time.monotonic()
        for address in list(self._idle):
            stack = self._idle[address]
            keep = [u for u in stack if now - u.idle_since < self.idle_timeout and u.usable()]
            for upstream in stack:
                if upstream not in keep:
                    upstream.close()
            if keep:
                self._idle[address] = keep
            else:
                del self._idle[address]

    def close(self) -> None:
        """Close every connection, idle or busy; nothing is pooled afterwards."""
        self._closed = True
        for stack in self._idle.values():
            for upstream in stack:
                upstream.close()
        self._idle.clear()
        for upstream in self._busy:
            upstream.close()
        self._busy.clear()


def _no_upstream(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 19\r\n"
                 b"Connection: close\r\n\r\nno healthy upstream")


def _closing(head: bytes) -> bytes:
    """A response head that says ``Connection: close`` (the proxy closes the client's connection)."""
    return _KEEP_ALIVE_HEADERS.sub(b"", head)[:-2] + b"Connection: close\r\n\r\n"


def _status(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


async def _send(upstream: Upstream, head: bytes, body: bytes | None, client_reader: asyncio.StreamReader,
                headers: dict[str, str]) -> bytes:
    """Write the request (``body`` None: stream it from the client) and read the response head."""
    writer = upstream.writer
    if body is None:
        writer.write(head)
        await _relay_body(client_reader, writer, headers, until_eof=False)
    else:
        writer.write(head + body if body else head)
    await writer.drain()
    quick_ack(writer)
    return await _read_head(upstream.reader)


async def relay_requests(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter,
                         pick: Pick, pool: BackendPool) -> None:
    """Serve the client's requests one at a time, each to a backend picked for it."""
    while True:
        try:
            head = await _read_head(client_reader)
        except (asyncio.IncompleteReadError, NotHTTP, OSError):
            return  # the client closed (or sent garbage) between requests
        if not REQUEST_LINE.match(head):
            return
        if not await _exchange(head, client_reader, client_writer, pick, pool):
            return


async def _exchange(head: bytes, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter,
                    pick: Pick, pool: BackendPool) -> bool:
    """Forward one request and relay its response; returns whether the client connection stays open."""
    request_line = head[:head.index(b"\r\n")]
    method, version = request_line.split(b" ", 1)[0], request_line.rsplit(b" ", 1)[1]
    headers = _headers(head)
    client_closes = version == b"HTTP/1.0" or "close" in _tokens(headers, "connection")
    forwarded, stripped = head, 0
    if version == b"HTTP/1.1" and headers.get("connection", "").lower() == "close":
        forwarded, stripped = _CLIENT_CLOSE.subn(b"", head, count=1)
    backend_keeps = version == b"HTTP/1.1" and (stripped == 1 or "close" not in _tokens(headers, "connection"))
    if headers.get("expect", "").lower() == "100-continue":
        # answered here, so the body can be read (and resent) before any backend is chosen
        forwarded = re.sub(rb"\r\nexpect:[^\r]*(?=\r\n)", b"", forwarded, count=1, flags=re.IGNORECASE)
        client_writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    length = 0 if chunked else int(headers.get("content-length") or 0)
    body: bytes | None = None  # None: too large to keep, streamed from the client once
    if not chunked and length <= MAX_REPLAY_BODY:
        body = await client_reader.readexactly(length) if length else b""
    candidates = pick()
    upstream: Upstream | None = None
    reusable = False
    try:
        for attempt in (1, 2):
            upstream = await pool.acquire(candidates, fresh=attempt > 1) if candidates else None
            if upstream is None:
                _no_upstream(client_writer)
                await client_writer.drain()
                return False
            try:
                response = await _send(upstream, forwarded, body, client_reader, headers)
                break
            except (OSError, asyncio.IncompleteReadError) as exc:
                got_bytes = isinstance(exc, asyncio.IncompleteReadError) and bool(exc.partial)
                stale = upstream.reused and not got_bytes
                address = upstream.address
                pool.release(upstream, reusable=False)
                upstream = None
                # a pooled connection the backend had closed: nothing of the response came
                # and the request can be sent again unchanged, on a fresh connection, once
                if attempt > 1 or not (stale and body is not None and method in IDEMPOTENT):
                    if not got_bytes:
                        pool.failures["pooled" if stale else "fresh"] += 1
                    log.debug("%s to %s:%d failed: %r", method.decode("latin-1"), *address, exc)
                    raise
                pool.failures["resent"] += 1
        assert upstream is not None
        status = _status(response)
        while 100 <= status < 200 and status != 101:  # interim responses (103 Early Hints) go through
            client_writer.write(response)
            response = await _read_head(upstream.reader)
            status = _status(response)
        if status == 101:  # protocol upgrade: from here on it is a byte stream
            client_writer.write(response)
            await asyncio.gather(pipe(client_reader, upstream.writer), pipe(upstream.reader, client_writer))
            return False
        response_headers = _headers(response)
        bodiless = method == b"HEAD" or status in (204, 304)
        delimited = bodiless or "content-length" in response_headers or \
            "chunked" in response_headers.get("transfer-encoding", "").lower()
        closes = "close" in _tokens(response_headers, "connection")
        if client_closes and not closes and version == b"HTTP/1.1":
            response = _closing(response)  # the backend never saw the client's close: say it here
        if bodiless:
            client_writer.write(response)
        else:
            await _relay_body(upstream.reader, client_writer, response_headers, until_eof=True, prefix=response)
        await client_writer.drain()
        reusable = delimited and backend_keeps and not closes and response.startswith(b"HTTP/1.1 ")
        return delimited and not closes and not client_closes
    finally:
        if upstream is not None:
            pool.release(upstream, reusable)
