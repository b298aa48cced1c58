"""The offline demo: a generated site served on 127.0.0.1, and a crawl of it."""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .compare import plot, report, run_comparison
from .config import CrawlConfig
from .errors import CrawlInterrupted
from .interrupts import stop_on_signals

ROBOTS_TXT = b"User-agent: *\nDisallow: /private/\n"


def generate_site(pages: int = 200, fanout: int = 6, seed: int = 7, padding: int = 0) -> dict[str, bytes]:
    """path -> HTML of a site: a tree of pages (page i links to its children
    i*fanout+1 ...), plus a few random links back, a fragment and a duplicate,
    and one link into /private/ (disallowed by robots.txt) and one off-site.
    `padding` adds that many paragraphs (every tenth with a link) to make
    pages heavier to parse.
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
        site[_path(i)] = (
            f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Page {i}</title><meta name=\"description\" content=\"Demo page {i}\">"
            f"</head><body><h1>Page {i}</h1><ul>{links}</ul>{_padding(i, padding, pages)}</body></html>"
        ).encode()
    site["/private/secret.html"] = b"<html><title>secret</title></html>"
    return site


def _padding(page: int, paragraphs: int, pages: int) -> str:
    """Article text with links, as on a news page: a few into the site, many out of it."""
    parts = []
    for p in range(paragraphs):
        link = ""
        if p % 10 == 0:
            link = f' <a href="{_path((page * 7 + p) % pages)}">see also</a>'
        elif p % 5 == 0:
            link = f' <a href="https://news{p % 7}.example/story/{page}-{p}.html">source</a>'
        parts.append(f"<p class=\"text\">Paragraph <b>{p}</b> of page {page}: <i>lorem</i> ipsum "
                     f"dolor sit amet, <span>consectetur</span> adipiscing elit.{link}</p>")
    return "".join(parts)


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


def _serve(site_options: dict[str, Any], delay: float, connection: Any) -> None:
    # Ctrl-C in a terminal reaches the whole process group: the crawler stops
    # this server when it stops (the pipe), so the server takes no part in it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with SiteServer(generate_site(**site_options), delay=delay) as server:
        connection.send(server.url("/"))
        connection.recv()  # any message, or EOF when the parent is gone: stop


@contextlib.contextmanager
def serve_in_process(site_options: dict[str, Any], delay: float = 0.0) -> Iterator[str]:
    """Serve a generated site from a separate process, so that the server does not
    share the crawler's GIL or CPU accounting; yields its start URL."""
    context = multiprocessing.get_context("spawn")
    parent_end, child_end = context.Pipe()
    process = context.Process(target=_serve, args=(site_options, delay, child_end), daemon=True)
    process.start()
    child_end.close()
    try:
        if not parent_end.poll(30):
            raise RuntimeError("the demo server did not start")
        yield parent_end.recv()
    finally:
        with contextlib.suppress(OSError):
            parent_end.send("stop")
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join()
        parent_end.close()


# (title, site options, delay per response, workers when -w is not given)
FLAVOURS = [
    ("I/O-bound site (light pages, 60 ms per response)",
     {"pages": 150}, 0.06, 8),
    ("CPU-bound site (300 KB pages, no delay)",
     {"pages": 300, "padding": 1500}, 0.0, None),
]  # fmt: skip


def run_demo(args: argparse.Namespace, config: CrawlConfig, workers: int | None) -> int:
    """Compare serial, threads and processes on an I/O-bound and a CPU-bound local site."""
    output = config.output_path or os.path.join("data", "demo.jsonl")
    stem = os.path.splitext(output)[0]
    sections = []
    with stop_on_signals() as interrupts:
        try:
            for index, (title, site, delay, default_workers) in enumerate(FLAVOURS):
                if interrupts.received:
                    break
                n = workers or default_workers or config.workers
                run_config = config.replace(workers=n, depth=max(config.depth, 20), allow_domain=())
                print(f"demo {index + 1}/{len(FLAVOURS)}: {title}: serial, {n} threads, {n} processes ...",
                      file=sys.stderr)  # fmt: skip
                with serve_in_process(site, delay) as url:
                    results = run_comparison(run_config, [url], f"{stem}.{('io', 'cpu')[index]}.jsonl",
                                             interrupts)  # fmt: skip
                if interrupts.received:
                    break  # no table of runs cut short
                print(report(results, title) + "\n")
                sections.append((title.split(" (")[0], results))
        except CrawlInterrupted:
            pass  # a second signal: the run under way was closed at once
    if interrupts.exit_status is not None:
        return interrupts.exit_status
    chart = plot(sections, f"{stem}.compare.png")
    print(f"chart: {chart}" if chart else CHART_HINT)
    return 0


CHART_HINT = "chart: not drawn (matplotlib is missing): pip install matplotlib"
