"""The offline demo: a generated site served on 127.0.0.1, and a crawl of it."""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .config import CrawlConfig

ROBOTS_TXT = b"User-agent: *\nDisallow: /private/\n"


def generate_site(pages: int = 200, fanout: int = 6, seed: int = 7, padding: int = 0) -> dict[str, bytes]:
    """path -> HTML of a site: a tree of pages (page i links to its children
    i*fanout+1 ...), plus a few random links back, a fragment and a duplicate,
    and one link into /private/ (disallowed by robots.txt) and one off-site.
    `padding` adds that many paragraphs to make pages heavier to parse.
    """
    rng = random.Random(seed)
    site = {"/robots.txt": ROBOTS_TXT}
    for i in range(pages):
        children = [c for c in range(i * fanout + 1, i * fanout + fanout + 1) if c < pages]
        extra = [rng.randrange(pages) for _ in range(2)]
        hrefs = [_path(c) for c in children] + [_path(e) for e in extra]
        hrefs += [_path(children[0]) + "#top" if children else "/", "/private/secret.html",
                  "http://offsite.invalid/"]  # fmt: skip
        links = "".join(f'<li><a href="{h}">link {n}</a></li>' for n, h in enumerate(hrefs))
        body = "".join(f"<p>Paragraph {p} of page {i}: {'lorem ipsum ' * 8}</p>" for p in range(padding))
        site[_path(i)] = (
            f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Page {i}</title><meta name=\"description\" content=\"Demo page {i}\">"
            f"</head><body><h1>Page {i}</h1><ul>{links}</ul>{body}</body></html>"
        ).encode()
    site["/private/secret.html"] = b"<html><title>secret</title></html>"
    return site


def _path(i: int) -> str:
    return "/" if i == 0 else f"/page/{i}.html"


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up early (a stopped crawl) is not the server's error


class SiteServer:
    """Serves a {path: bytes} site on 127.0.0.1 (a free port) from a thread.

    `delay` seconds are waited before each response (an I/O-bound site).
    `with SiteServer(site) as server: server.url("/")`.
    """

    def __init__(self, site: dict[str, bytes], delay: float = 0.0) -> None:
        self.site = site
        self.delay = delay
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> SiteServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else 40 ms delayed-ACK stalls per response

            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                with server._lock:
                    server.requests.append(self.path)
                if server.delay:
                    time.sleep(server.delay)
                body = server.site.get(self.path)
                status = 200 if body is not None else 404
                body = body if body is not None else b"not found"
                kind = "text/plain" if self.path.endswith(".txt") else "text/html; charset=utf-8"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


def run_demo(args: argparse.Namespace, config: CrawlConfig) -> int:
    """Serve a 200-page site and crawl it with the configured backend."""
    from .cli import run_crawl  # the demo is a CLI feature; imported late to keep layers one-way

    output = config.output_path or "data/demo.jsonl"
    config = config.replace(
        depth=max(config.depth, 10), output=None, overwrite_output=output, allow_domain=()
    )
    with SiteServer(generate_site()) as server:
        print(f"demo: serving a 200-page site on {server.url()}; crawling it with "
              f"{config.workers} {config.backend} workers", file=sys.stderr)  # fmt: skip
        return run_crawl(config, [server.url("/")], show_progress=not args.quiet)
