"""Per-request HTTP/1.1 forwarding, for Service ports governed by a VirtualService.

Istio balances HTTP per request, not per connection, so a keep-alive client still sees
the weight split.  This relay reads one request (head + Content-Length or chunked body),
picks a destination for it, forwards it on a fresh backend connection and relays exactly
one response back, then waits for the client's next request on the same connection.
Anything that does not look like HTTP/1.x (or an Upgrade) falls back to a raw byte pipe.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

MAX_HEAD = 64 * 1024
REQUEST_LINE = re.compile(rb"^[A-Z]+ \S+ HTTP/1\.[01]\r\n")

Backend = tuple[asyncio.StreamReader, asyncio.StreamWriter]
Connect = Callable[[], Awaitable["Backend | None"]]
OnActivity = Callable[[bool], None]  # True: a request is in flight, False: the response is done


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


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise NotHTTP("header too large") from None


async def _relay_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, headers: dict[str, str],
                      until_eof: bool) -> None:
    if "chunked" in headers.get("transfer-encoding", "").lower():
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
        while remaining > 0:
            chunk = await reader.read(min(remaining, 65536))
            if not chunk:
                raise asyncio.IncompleteReadError(b"", remaining)
            writer.write(chunk)
            remaining -= len(chunk)
            await writer.drain()
    elif until_eof:
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


async def relay_requests(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter,
                         connect: Connect, activity: OnActivity) -> None:
    """Serve the client's requests one at a time, each to a freshly picked backend."""
    while True:
        try:
            head = await _read_head(client_reader)
        except (asyncio.IncompleteReadError, NotHTTP, OSError):
            return  # the client closed (or sent garbage) between requests
        if not REQUEST_LINE.match(head):
            return
        activity(True)
        backend = await connect()
        if backend is None:
            client_writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 19\r\n"
                                b"Connection: close\r\n\r\nno healthy upstream")
            await client_writer.drain()
            return
        backend_reader, backend_writer = backend
        try:
            request_headers = _headers(head)
            backend_writer.write(head)
            await _relay_body(client_reader, backend_writer, request_headers, until_eof=False)
            response_head = await _read_head(backend_reader)
            client_writer.write(response_head)
            status = int(response_head.split(b" ", 2)[1])
            response_headers = _headers(response_head)
            if status == 101:  # protocol upgrade: from here on it is a byte stream
                await asyncio.gather(pipe(client_reader, backend_writer), pipe(backend_reader, client_writer))
                return
            bodiless = head.startswith(b"HEAD ") or status in (204, 304) or 100 <= status < 200
            closes = response_headers.get("connection", "").lower() == "close"
            if not bodiless:
                await _relay_body(backend_reader, client_writer, response_headers, until_eof=True)
            await client_writer.drain()
        finally:
            backend_writer.close()
        activity(False)
        wants_close = request_headers.get("connection", "").lower() == "close" or head.split(b"\r\n")[0].endswith(
            b"HTTP/1.0")
        if closes or wants_close or not (bodiless or "content-length" in response_headers
                                         or "chunked" in response_headers.get("transfer-encoding", "")):
            return
