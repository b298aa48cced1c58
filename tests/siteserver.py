"""A test web site on 127.0.0.1 and the crawl a correct crawler makes of it.

`SiteServer` serves a {path: bytes} site (by default scraper.demo's generated
site, plus a 404 link and a redirect) from a thread, logs every request with
its headers, and can delay responses. Pages may send an ETag and a
Last-Modified (`etags`, `modified`), answered with 304 to a conditional
request that matches them, and be sent gzip-encoded (`gzipped`).

`expected_crawl()` is the oracle: a breadth-first search over the site's own
link graph, read from the HTML with a regular expression (not with the
crawler's parser), honouring the depth limit, the host scope and the
robots.txt Disallow rules.
"""

from __future__ import annotations

import gzip
import html
import random
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

from scraper.demo import generate_site

MISSING = "/missing.html"  # linked from "/", not served: a 404
MOVED = "/moved"  # linked from "/", a 301 to REDIRECT_TARGET
REDIRECT_TARGET = "/page/2.html"
PRIVATE = "/private/secret.html"  # linked from every page, disallowed by robots.txt

_HREF = re.compile(r"""<(?:a|area)\s[^>]*?href\s*=\s*["']([^"']*)["']""", re.IGNORECASE)


def build_site(pages: int = 300, fanout: int = 6) -> dict[str, bytes]:
    """The demo generator's site, with links to a missing page and a redirect on "/"."""
    site = generate_site(pages=pages, fanout=fanout)
    extra = f'<li><a href="{MISSING}">missing</a></li><li><a href="{MOVED}">moved</a></li>'
    site["/"] = site["/"].replace(b"</ul>", extra.encode() + b"</ul>", 1)
    assert MISSING.encode() in site["/"]
    return site


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    at: float = 0.0  # time.monotonic() when it arrived


@dataclass
class SiteServer:
    """`with SiteServer(site) as server: server.url("/")`; `server.requests` is the log."""

    site: dict[str, bytes]
    redirects: dict[str, str] = field(default_factory=lambda: {MOVED: REDIRECT_TARGET})
    delay: float = 0.0
    jitter: float = 0.0  # plus a random delay up to this, so that answers come in any order
    body_pauses: dict[str, float] = field(default_factory=dict)  # path -> pause between head and body
    # path -> answers (status, headers) given, in order, before the site's own: 503s, 429s...
    answers: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    content_types: dict[str, str] = field(default_factory=dict)  # path -> Content-Type header (sitemaps)
    etags: dict[str, str] = field(default_factory=dict)  # path -> its ETag header (quoted)
    modified: dict[str, str] = field(default_factory=dict)  # path -> its Last-Modified header
    gzipped: set[str] = field(default_factory=set)  # paths sent with Content-Encoding: gzip
    not_modified: int = 0  # 304s answered
    host: str = "127.0.0.1"  # another address (a veth's) for the multi-machine tests

    def __repr__(self) -> str:
        return f"SiteServer({self.origin}, {len(self.site)} paths, {len(self.requests)} requests)"

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server = _Server((self.host, 0), self._handler_class())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.origin + path

    def paths(self) -> list[str]:
        with self._lock:
            return [request.path for request in self.requests]

    def count(self, path: str) -> int:
        return self.paths().count(path)

    def headers_of(self, path: str) -> list[dict[str, str]]:
        """The headers of each request for `path`, in order."""
        with self._lock:
            return [request.headers for request in self.requests if request.path == path]

    def not_modified_since(self, path: str, headers: Any) -> bool:
        """RFC 9110 13.1: If-None-Match decides when sent; else If-Modified-Since (as equal dates)."""
        etag, modified = self.etags.get(path), self.modified.get(path)
        if headers.get("If-None-Match") is not None:
            return etag is not None and etag in [tag.strip() for tag in headers["If-None-Match"].split(",")]
        return modified is not None and headers.get("If-Modified-Since") == modified

    def page_paths(self) -> list[str]:
        return [path for path in self.paths() if path != "/robots.txt"]

    def start(self) -> SiteServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> SiteServer:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # -- the oracle ----------------------------------------------------------

    def disallowed_prefixes(self) -> list[str]:
        """Disallow paths of the `User-agent: *` group of robots.txt (simple reading)."""
        text = self.site.get("/robots.txt", b"").decode()
        prefixes, applies = [], False
        for line in text.splitlines():
            key, _, value = line.partition(":")
            key, value = key.strip().lower(), value.strip()
            if key == "user-agent":
                applies = value == "*"
            elif key == "disallow" and applies and value:
                prefixes.append(value)
        return prefixes

    def robots_allows(self, url: str) -> bool:
        path = urlsplit(url).path or "/"
        return not any(path.startswith(prefix) for prefix in self.disallowed_prefixes())

    def final_url(self, url: str) -> str:
        """Where `url` ends after the server's redirects."""
        for _ in range(10):
            parts = urlsplit(url)
            target = self.redirects.get(parts.path) if parts.netloc == urlsplit(self.origin).netloc else None
            if target is None:
                return url
            url = urljoin(url, target)
        return url

    def links(self, url: str) -> list[str]:
        """Absolute http(s) links of the page at `url`, in order, no fragment, no duplicates."""
        final = self.final_url(url)
        parts = urlsplit(final)
        if parts.netloc != urlsplit(self.origin).netloc:
            return []
        body = self.site.get(parts.path)
        if body is None or parts.path.endswith(".txt"):
            return []
        found: dict[str, None] = {}
        for href in _HREF.findall(body.decode("utf-8")):
            href = html.unescape(href).strip()  # "" and "#top" are the page itself (SPEC 4)
            link = urldefrag(urljoin(final, href))[0]
            if urlsplit(link).scheme in ("http", "https"):
                found[link] = None
        return list(found)

    def fetch_paths(self, urls: list[str]) -> list[str]:
        """Paths a crawler requests to fetch `urls` once each: redirect hops included."""
        paths = []
        for url in urls:
            path = urlsplit(url).path
            paths.append(path)
            for _ in range(10):
                if path not in self.redirects:
                    break
                path = urlsplit(urljoin(self.origin + path, self.redirects[path])).path
                paths.append(path)
        return paths

    def status(self, url: str) -> int:
        path = urlsplit(self.final_url(url)).path
        return 200 if path in self.site else 404

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                with server._lock:
                    server.requests.append(Request(self.path, dict(self.headers.items()), time.monotonic()))
                    canned = server.answers.get(self.path)
                    answer = canned.pop(0) if canned else None
                if server.delay or server.jitter:
                    time.sleep(server.delay + random.uniform(0, server.jitter))
                location = server.redirects.get(self.path)
                body = server.site.get(self.path)
                if answer is not None:
                    self._send_answer(*answer)
                    return
                extra = []
                if location is not None:
                    status, body = 301, b"moved"
                elif body is not None:
                    status, extra = 200, self._validators()
                    if server.not_modified_since(self.path, self.headers):
                        status, body = 304, b""
                        with server._lock:
                            server.not_modified += 1
                    elif self.path in server.gzipped:
                        body, extra = gzip.compress(body), [*extra, "Content-Encoding: gzip"]
                else:
                    status, body = 404, b"not found"
                kind = "text/plain" if self.path.endswith(".txt") or status != 200 else "text/html"
                kind = f"{kind}; charset=utf-8"
                if status == 200 and self.path in server.content_types:
                    kind = server.content_types[self.path]
                head = [f"HTTP/1.1 {status} {self.responses[status][0]}",
                        f"Content-Type: {kind}", f"Content-Length: {len(body)}", *extra]
                if location is not None:
                    head.append(f"Location: {location}")
                head_bytes = ("\r\n".join(head) + "\r\n\r\n").encode()
                pause = server.body_pauses.get(self.path)
                if pause is None:
                    # One write: a client never sees headers without the body that follows.
                    self.wfile.write(head_bytes + body)
                else:
                    self.wfile.write(head_bytes)
                    time.sleep(pause)
                    self.wfile.write(body)

            def _validators(self) -> list[str]:
                sent = {"ETag": server.etags.get(self.path), "Last-Modified": server.modified.get(self.path)}
                return [f"{name}: {value}" for name, value in sent.items() if value]

            def _send_answer(self, status: int, headers: dict[str, str]) -> None:
                body = f"{status}".encode()
                self.send_response(status)
                for name, value in {"Content-Type": "text/plain", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that close kept-alive connections are normal here


def expected_crawl(
    server: SiteServer, seeds: list[str], depth: int, obey_robots: bool = True
) -> dict[str, int]:
    """url -> hops from the nearest seed, for every page a correct crawl records.

    Links are followed only to the seeds' host names (any port); pages
    disallowed by robots.txt are neither recorded nor followed.
    """
    hosts = {urlsplit(seed).hostname for seed in seeds}
    found: dict[str, int] = {}
    seen: set[str] = set()
    queue: deque[str] = deque()
    for seed in seeds:
        if seed in seen:
            continue
        seen.add(seed)
        if obey_robots and not server.robots_allows(seed):
            continue
        found[seed] = 0
        queue.append(seed)
    while queue:
        url = queue.popleft()
        if found[url] >= depth:
            continue
        for link in server.links(url):
            if link in seen or urlsplit(link).hostname not in hosts:
                continue
            seen.add(link)
            if obey_robots and not server.robots_allows(link):
                continue
            found[link] = found[url] + 1
            queue.append(link)
    return found
