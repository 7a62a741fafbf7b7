"""The limits a web server needs and uvicorn does not set: how big and how slow a request may be.

uvicorn's httptools protocol reads a request head of any size with any number of headers (a 1 MB
header is kept in memory and answered), and has no clock on a request being received: a client
that sends one byte every few seconds (slow loris) holds its connection forever. `LimitedHttp` is
that protocol with a cap on the head's bytes and header count (431, before the head is held in
memory) and a clock on each request (408 and closed when it is not received within
REQUEST_SECONDS). `RequestGuard` is ASGI middleware for what the app can check per request: the
Host header (present, well formed, and a loopback name when the server listens on loopback, so a
web page's DNS-rebinding trick cannot reach it), the declared body size (413), and HEAD answered
as GET without its body. `Pool` is a bounded pool of threads for the CPU work of requests, so the
event loop only moves bytes; `uvicorn_settings` is how `serve` runs uvicorn with all of these.

    uvicorn.run(RequestGuard(app, loopback=True), **uvicorn_settings())
"""
from __future__ import annotations

import asyncio
import copy
import ipaddress
import re
from concurrent.futures import ThreadPoolExecutor

import orjson
from fastapi import HTTPException
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEADER_BYTES = 32 * 1024  # the request line and headers (nginx's default buffers: 4 x 8 KB)
MAX_HEADERS = 100             # Apache's LimitRequestFields; a browser sends about 15
REQUEST_SECONDS = 20.0        # from the first byte a request may start to its last: slow clients are cut off
LINGER_SECONDS = 2.0          # after a refusal, how long the rest of the request is read (and dropped)
MAX_BODY_BYTES = 2 * 1024 * 1024  # a drawing is a few KB; a photo of a digit fits comfortably
WORKER_THREADS = 2  # threads for the CPU work of requests (serve's inference itself runs one at a time)
MAX_PENDING = 256  # requests in the pool or waiting for it; beyond, 429 (each holds at most MAX_BODY_BYTES)
MAX_CONNECTIONS = 1000  # uvicorn's limit_concurrency: open connections (slow clients included)
REASONS = {400: "Bad Request", 408: "Request Timeout", 413: "Content Too Large", 431: "Request Header Fields Too Large"}
HOST = re.compile(r"(?P<name>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]+)(?::(?P<port>[0-9]{1,5}))?")


def error_bytes(status: int, detail: str) -> bytes:
    """A whole HTTP/1.1 error response that closes the connection, with the app's `{"detail": ...}` body."""
    body = orjson.dumps({"detail": detail})
    return (f"HTTP/1.1 {status} {REASONS[status]}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode("ascii") + body


class LimitedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol, with MAX_HEADER_BYTES, MAX_HEADERS and REQUEST_SECONDS enforced."""

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._clock = self._closing_at = None
        self._refusal = None  # (status, detail) once a limit is hit: what send_400_response sends instead
        self._received = self._head_bytes = self._headers = 0  # head bytes as received, as parsed; headers
        self._in_head = True
        self._start_clock()

    def _start_clock(self) -> None:
        self._stop_clock()
        self._clock = self.loop.call_later(REQUEST_SECONDS, self._too_slow)

    def _stop_clock(self) -> None:
        if self._clock is not None:
            self._clock.cancel()
            self._clock = None

    def _too_slow(self) -> None:
        self._clock = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and self.cycle.response_started:
            return self.transport.close()
        if self.cycle is not None:
            self.cycle.disconnected = True  # the app stops waiting for the rest of the body
            self.cycle.message_event.set()
        self._refuse(408, f"request not received within {REQUEST_SECONDS:g} s")

    def connection_lost(self, exc) -> None:
        self._stop_clock()
        if self._closing_at is not None:
            self._closing_at.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._closing_at is not None:
            return  # refused: what the client still sends is read and dropped until it reads our answer
        head_before = self._in_head
        super().data_received(data)
        if head_before and self._in_head and self._closing_at is None and not self.transport.is_closing():
            # all of `data` was head
            self._received += len(data)
            if self._received > MAX_HEADER_BYTES:  # one header still being read: httptools would keep it all
                self._refuse(431, f"request headers over {MAX_HEADER_BYTES:,} bytes")

    def _refuse(self, status: int, detail: str) -> None:
        """Answer `status` and close, gently: closing on unread bytes would reset the connection before
        the client reads the answer, so the rest of its request is read and dropped for LINGER_SECONDS."""
        self.logger.info(f"refused a request: {detail}")
        self._stop_clock()
        self.transport.write(error_bytes(status, detail))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._closing_at = self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def send_400_response(self, msg: str) -> None:  # uvicorn's answer to a parser error, ours when we stopped it
        if self._refusal is None:
            return super().send_400_response(msg)
        self._refuse(*self._refusal)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._received = self._head_bytes = self._headers = 0
        self._in_head = True

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._count(len(url), 0)

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._count(len(name) + len(value) + 4, 1)

    def _count(self, size: int, headers: int) -> None:
        self._head_bytes += size
        self._headers += headers
        if self._headers > MAX_HEADERS:
            self._refusal = (431, f"more than {MAX_HEADERS} request headers")
        elif self._head_bytes > MAX_HEADER_BYTES:
            self._refusal = (431, f"request headers over {MAX_HEADER_BYTES:,} bytes")
        if self._refusal:
            raise ValueError(self._refusal[1])  # stops the parser: uvicorn then calls send_400_response

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._stop_clock()  # received in time; the answer may take as long as it takes
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self._start_clock()  # the next request on this connection gets its own REQUEST_SECONDS


def loopback_name(name: str) -> bool:
    """localhost, *.localhost, 127.x.x.x or [::1]: names that only ever mean this machine."""
    name = name.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


class RequestGuard:
    """ASGI middleware: a missing, doubled or malformed Host (or, with `loopback`, one that is not a
    loopback name) gets 400; a declared body over MAX_BODY_BYTES gets 413 before it is read; HEAD is
    answered as GET, without the body."""

    def __init__(self, app, loopback: bool = False):
        self.app, self.loopback = app, loopback

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        problem = self.problem(scope)
        if problem:
            status, detail = problem
            return await _answer(send, status, detail)
        if scope["method"] == "HEAD":
            return await self.app({**scope, "method": "GET"}, receive, _without_body(send))
        await self.app(scope, receive, send)

    def problem(self, scope) -> tuple[int, str] | None:
        hosts = [value for name, value in scope["headers"] if name == b"host"]
        if len(hosts) > 1:
            return 400, "more than one Host header"
        if not hosts:
            return (400, "no Host header") if scope.get("http_version") != "1.0" else None
        host = HOST.fullmatch(hosts[0].decode("latin-1"))
        if host is None or (host["port"] and int(host["port"]) > 65535):
            return 400, "malformed Host header"
        if self.loopback and not loopback_name(host["name"]):
            return 400, "Host header names another machine; this server answers only to localhost"
        lengths = [value for name, value in scope["headers"] if name == b"content-length"]
        if lengths and (len(lengths) > 1 or not lengths[0].isdigit() or int(lengths[0]) > MAX_BODY_BYTES):
            return 413, f"request body over {MAX_BODY_BYTES} bytes"
        return None


async def _answer(send, status: int, detail: str) -> None:
    body = orjson.dumps({"detail": detail})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _without_body(send):
    async def send_head(message):
        if message["type"] == "http.response.body":
            if message.get("more_body"):
                return  # the parts of a streamed body: dropped until the last
            message = {"type": "http.response.body", "body": b""}
        await send(message)
    return send_head


class Pool:
    """A bounded pool of worker threads for the CPU work of requests, awaited from the event loop."""

    def __init__(self, threads: int = WORKER_THREADS, pending: int = MAX_PENDING):
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="tinydigits-request")
        self.pending, self.limit = 0, pending

    async def run(self, work, *args):
        if self.pending >= self.limit:
            raise HTTPException(429, f"{self.limit} requests are already waiting; try again in a moment")
        self.pending += 1  # only the event loop's thread counts: no lock needed
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, work, *args)
        finally:
            self.pending -= 1


def uvicorn_settings(log_level: str = "warning") -> dict:
    """What `serve` gives uvicorn.run: the protocol with our limits, a cap on connections, and a log that
    shows tinydigits' own INFO lines (a client that went away) beside uvicorn's warnings."""
    from uvicorn.config import LOGGING_CONFIG

    logging_config = copy.deepcopy(LOGGING_CONFIG)
    logging_config["loggers"]["tinydigits"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return {"http": LimitedHttp, "limit_concurrency": MAX_CONNECTIONS, "timeout_keep_alive": 5,
            "proxy_headers": False,  # no proxy in front: X-Forwarded-For is not believed (and not parsed)
            "access_log": False, "log_level": log_level, "log_config": logging_config}
