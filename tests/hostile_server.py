"""A local HTTP server whose endpoints misbehave the ways real servers do.

Each endpoint is a function registered with @endpoint(path); the server runs
on 127.0.0.1 with a free port in a thread, and logs every request.
"""

from __future__ import annotations

import functools
import gzip
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import brotli

try:
    from compression import zstd  # Python 3.14
except ImportError:
    from backports import zstd

ENDPOINTS: dict[str, Callable[[Any], None]] = {}
BOMB_SIZE = 2 * 1024**3  # what each decompression bomb expands to
TRICKLE_INTERVAL = 0.3  # seconds between two bytes of the trickling endpoints
TRICKLE_BYTES = 200  # 60 s of trickling: far longer than any test's deadline


def endpoint(path: str) -> Callable:
    def register(function: Callable[[Any], None]) -> Callable[[Any], None]:
        ENDPOINTS[path] = function
        return function

    return register


def send(handler: Any, status: int, body: bytes, content_type: str = "text/html", **headers: str) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.end_headers()
    handler.wfile.write(body)


def page(title: str, charset: str = "utf-8", meta: str | None = None, bom: bytes = b"") -> bytes:
    declared = f'<meta charset="{meta}">' if meta else ""
    html = f"<html><head>{declared}<title>{title}</title></head><body><p>{title}</p></body></html>"
    return bom + html.encode(charset)


@endpoint("/robots.txt")
def robots(h: Any) -> None:
    if h.server.robots is None:
        send(h, 404, b"no robots here", "text/plain")
    else:
        send(h, 200, h.server.robots, "text/plain")


def slow(h: Any) -> None:
    """Any /slow/... path: 0.2 s per response, counting requests in flight."""
    server = h.server
    with server.hits_lock:
        server.in_flight += 1
        server.max_in_flight = max(server.max_in_flight, server.in_flight)
        server.starts.append(time.monotonic())
    try:
        time.sleep(0.2)
    finally:
        # Counted out before the answer goes: once the client has read it, the
        # crawler may start the next request before this thread runs again.
        with server.hits_lock:
            server.in_flight -= 1
    send(h, 200, page(f"slow {h.path}"))


@endpoint("/ok")
def ok(h: Any) -> None:
    send(h, 200, page("fine"))


@endpoint("/hang")
def hang(h: Any) -> None:
    time.sleep(30)  # never answers within any test's deadline


@endpoint("/hang-body")
def hang_body(h: Any) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "text/html")
    h.send_header("Content-Length", "100000")
    h.end_headers()
    h.wfile.write(b"<html><title>slow</title>")
    h.wfile.flush()
    time.sleep(30)


@endpoint("/trickle")
def trickle(h: Any) -> None:
    """One byte every 0.2 s, for ever (until the client gives up)."""
    h.send_response(200)
    h.send_header("Content-Type", "text/html")
    h.end_headers()
    try:
        for _ in range(600):
            h.wfile.write(b"x")
            h.wfile.flush()
            time.sleep(0.2)
    except OSError:
        pass


def trickle_bytes(h: Any, data: bytes) -> None:
    """Write `data` one byte every TRICKLE_INTERVAL, until done or the client gives up."""
    try:
        for byte in data:
            h.wfile.write(bytes([byte]))
            h.wfile.flush()
            time.sleep(TRICKLE_INTERVAL)
    except OSError:
        pass
    h.close_connection = True


@endpoint("/trickle-status")
def trickle_status(h: Any) -> None:
    """The status line itself one byte at a time (a read timeout restarts with each byte)."""
    trickle_bytes(h, b"HTTP/1.1 200 " + b"O" * TRICKLE_BYTES + b"K\r\n\r\n")


@endpoint("/trickle-headers")
def trickle_headers(h: Any) -> None:
    """A prompt status line, then one header byte at a time."""
    h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n")
    h.wfile.flush()
    trickle_bytes(h, b"X-Slow: " + b"a" * TRICKLE_BYTES + b"\r\n\r\n")


@endpoint("/trickle-body")
def trickle_body(h: Any) -> None:
    """Headers with a Content-Length, then the body one byte at a time."""
    h.send_response(200)
    h.send_header("Content-Type", "text/html")
    h.send_header("Content-Length", str(TRICKLE_BYTES))
    h.end_headers()
    h.wfile.flush()
    trickle_bytes(h, b"x" * TRICKLE_BYTES)


class TrickleServer:
    """A bare TCP server on 127.0.0.1 that sends `prefix`, then one byte of
    `filler` every TRICKLE_INTERVAL on each connection (e.g. a TLS handshake
    record that never ends): `with TrickleServer(prefix) as server: server.port`."""

    def __init__(self, prefix: bytes = b"", filler: bytes = b"\0") -> None:
        self.prefix, self.filler = prefix, filler
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed by __exit__
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.sendall(self.prefix)
                for _ in range(TRICKLE_BYTES):
                    time.sleep(TRICKLE_INTERVAL)
                    conn.sendall(self.filler)
            except OSError:
                pass

    def __enter__(self) -> TrickleServer:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.listener.close()


def _gzip_bomb() -> bytes:
    """A few MB that expand to BOMB_SIZE: gzip members may be concatenated."""
    member = gzip.compress(b"\0" * (16 * 1024 * 1024), compresslevel=9)
    return member * (BOMB_SIZE // (16 * 1024 * 1024))


_BOMB = _gzip_bomb()


@endpoint("/bomb")
def bomb(h: Any) -> None:
    send(h, 200, _BOMB, "text/html", Content_Encoding="gzip")


@functools.cache
def _br_bomb() -> bytes:
    """About 400 KB of brotli that expand to BOMB_SIZE (built on first use: 0.3 s)."""
    compressor = brotli.Compressor(quality=1)
    block = b"\0" * (16 * 1024 * 1024)
    parts = [compressor.process(block) for _ in range(BOMB_SIZE // len(block))]
    return b"".join([*parts, compressor.finish()])


@functools.cache
def _zstd_bomb() -> bytes:
    """About 70 KB of zstd frames that expand to BOMB_SIZE: frames may be concatenated."""
    block = b"\0" * (16 * 1024 * 1024)
    return zstd.compress(block) * (BOMB_SIZE // len(block))


@endpoint("/bomb-br")
def bomb_br(h: Any) -> None:
    send(h, 200, _br_bomb(), "text/html", Content_Encoding="br")


@endpoint("/bomb-zstd")
def bomb_zstd(h: Any) -> None:
    send(h, 200, _zstd_bomb(), "text/html", Content_Encoding="zstd")


@endpoint("/br")
def br_page(h: Any) -> None:
    send(h, 200, brotli.compress(page("brotli page")), "text/html", Content_Encoding="br")


@endpoint("/zstd")
def zstd_page(h: Any) -> None:
    send(h, 200, zstd.compress(page("zstd page")), "text/html", Content_Encoding="zstd")


@endpoint("/huge")
def huge(h: Any) -> None:
    """50 MB, streamed with no Content-Length (chunked by connection close)."""
    h.send_response(200)
    h.send_header("Content-Type", "text/html")
    h.send_header("Connection", "close")
    h.end_headers()
    block = b"<p>" + b"a" * 65530 + b"</p>"
    try:
        for _ in range(50 * 16):
            h.wfile.write(block)
    except OSError:
        pass
    h.close_connection = True


@endpoint("/huge-declared")
def huge_declared(h: Any) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "text/html")
    h.send_header("Content-Length", str(50 * 1024 * 1024))
    h.end_headers()
    h.close_connection = True


@endpoint("/truncated")
def truncated(h: Any) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "text/html")
    h.send_header("Content-Length", "1000")
    h.end_headers()
    h.wfile.write(b"<html><title>cut</title>")
    h.close_connection = True


@endpoint("/throttled")
def throttled(h: Any) -> None:
    """429 with Retry-After: 1 on the first request, then 200."""
    if h.server.hits["/throttled"] == 1:
        send(h, 429, b"slow down", "text/plain", Retry_After="1")
    else:
        send(h, 200, page("after throttle"))


@endpoint("/flaky")
def flaky(h: Any) -> None:
    """500 twice, then 200."""
    if h.server.hits["/flaky"] <= 2:
        send(h, 500, b"oops", "text/plain")
    else:
        send(h, 200, page("flaky but fine"))


@endpoint("/always-503")
def always_503(h: Any) -> None:
    send(h, 503, b"down", "text/plain")


@endpoint("/missing")
def missing(h: Any) -> None:
    send(h, 404, b"not here")


@endpoint("/loop")
def loop(h: Any) -> None:
    send(h, 302, b"", Location="/loop2")


@endpoint("/loop2")
def loop2(h: Any) -> None:
    send(h, 302, b"", Location="/loop")


@endpoint("/redirect")
def redirect(h: Any) -> None:
    send(h, 301, b"", Location="/ok")


@endpoint("/redirect-offsite")
def redirect_offsite(h: Any) -> None:
    send(h, 302, b"", Location="http://elsewhere.invalid/")


@endpoint("/shift_jis")
def shift_jis(h: Any) -> None:
    send(h, 200, page("日本語のページ", "shift_jis"), "text/html; charset=Shift_JIS")


@endpoint("/windows-1251")
def windows_1251(h: Any) -> None:
    send(h, 200, page("Привет, мир", "windows-1251", meta="windows-1251"), "text/html")


@endpoint("/latin-1")
def latin_1(h: Any) -> None:
    send(h, 200, page("Café crème", "iso-8859-1"), "text/html; charset=ISO-8859-1")


@endpoint("/utf-8-bom")
def utf_8_bom(h: Any) -> None:
    send(h, 200, page("Ünïcödé with BOM", bom=b"\xef\xbb\xbf"), "text/html")


@endpoint("/header-beats-meta")
def header_beats_meta(h: Any) -> None:
    body = page("Ĉu ŝanĝita?", "utf-8", meta="windows-1252")
    send(h, 200, body, "text/html; charset=utf-8")


@endpoint("/image.png")
def image(h: Any) -> None:
    send(h, 200, b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10, "image/png")


@endpoint("/doc.pdf")
def pdf(h: Any) -> None:
    send(h, 200, b"%PDF-1.4\n" + b"<a href='/x'>" * 10, "application/pdf")


@endpoint("/plain.txt")
def plain(h: Any) -> None:
    send(h, 200, b"<html><title>not html</title></html>", "text/plain")


@endpoint("/empty")
def empty(h: Any) -> None:
    send(h, 200, b"")


@endpoint("/nul")
def nul(h: Any) -> None:
    send(h, 200, b"<html><title>nul\0bytes</title><body>\0\0<a href='/ok'>x</a>\xff\xfe</body>")


@endpoint("/malformed")
def malformed(h: Any) -> None:
    send(h, 200, b"<html><head><title>broken<title><body><a href='/ok'<p><div></span></table>")


@endpoint("/many-links")
def many_links(h: Any) -> None:
    links = "".join(f'<a href="/l/{i}">{i}</a>' for i in range(100_000))
    send(h, 200, f"<html><title>many</title><body>{links}</body></html>".encode())


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that give up (timeouts, too_large) reset connections: expected here


class HostileServer:
    """`with HostileServer() as server: server.url("/hang")`."""

    def __init__(self, robots: bytes | None = None) -> None:
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.robots = robots
        self.httpd.in_flight = 0
        self.httpd.max_in_flight = 0
        self.httpd.starts = []
        self.httpd.hits = Counter()
        self.httpd.clients = set()  # (host, port) of every connection that sent a request
        self.httpd.times = defaultdict(list)  # path -> monotonic times of its requests
        self.httpd.hits_lock = threading.Lock()
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    @property
    def hits(self) -> Counter:
        return self.httpd.hits

    def __enter__(self) -> HostileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:  # noqa: N802
        with self.server.hits_lock:
            self.server.hits[self.path] += 1
            self.server.clients.add(self.client_address)
            self.server.times[self.path].append(time.monotonic())
        handler = slow if self.path.startswith("/slow/") else ENDPOINTS.get(self.path)
        if handler is None:
            send(self, 404, b"no such endpoint")
        else:
            handler(self)

    def log_message(self, *args: Any) -> None:
        pass
