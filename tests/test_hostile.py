"""Fetching against a server that misbehaves: every page ends as one correct record, in time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from conftest import backend_params
from hostile_server import ENDPOINTS, HostileServer

from scraper import crawl

TIMEOUT = 2.0
# Generous: the deadline plus scheduling slack on a loaded 2-core machine.
DEADLINE_SLACK_MS = 3000


# path -> (error kind or None, title or None)
EXPECTED = {
    "/ok": (None, "fine"),
    "/hang": ("timeout", None),
    "/hang-body": ("timeout", None),
    "/trickle": ("timeout", None),
    "/trickle-status": ("timeout", None),
    "/trickle-headers": ("timeout", None),
    "/trickle-body": ("timeout", None),
    "/bomb": ("too_large", None),
    "/bomb-br": ("too_large", None),
    "/bomb-zstd": ("too_large", None),
    "/br": (None, "brotli page"),
    "/zstd": (None, "zstd page"),
    "/huge": ("too_large", None),
    "/huge-declared": ("too_large", None),
    "/truncated": ("truncated", None),
    "/throttled": (None, "after throttle"),
    "/flaky": (None, "flaky but fine"),
    "/always-503": ("http_503", None),
    "/missing": ("http_404", None),
    "/loop": ("too_many_redirects", None),
    "/loop2": ("too_many_redirects", None),
    "/redirect": (None, "fine"),
    "/redirect-offsite": ("offsite_redirect", None),
    "/shift_jis": (None, "日本語のページ"),
    "/windows-1251": (None, "Привет, мир"),
    "/latin-1": (None, "Café crème"),
    "/utf-8-bom": (None, "Ünïcödé with BOM"),
    "/header-beats-meta": (None, "Ĉu ŝanĝita?"),
    "/image.png": (None, None),
    "/doc.pdf": (None, None),
    "/plain.txt": (None, None),
    "/empty": (None, None),
    "/nul": (None, "nul\ufffdbytes"),
    "/malformed": (None, "broken<title><body><a href='/ok'<p><div></span></table>"),
    "/many-links": (None, "many"),
}


def kind(record: dict) -> str | None:
    return record["error"].split(":", 1)[0] if record["error"] else None


@pytest.fixture(scope="module", params=backend_params())
def hostile_crawl(request):
    """One crawl of every hostile endpoint per backend: (records by path, server)."""
    with HostileServer() as server:
        records = crawl(
            [server.url(path) for path in EXPECTED],
            workers=4, **request.param.kwargs, timeout=TIMEOUT, retries=2,
        )  # fmt: skip
        yield {record["url"].split(str(server.httpd.server_address[1]), 1)[1]: record
               for record in records}, server  # fmt: skip


def test_every_endpoint_is_covered():
    assert set(EXPECTED) == set(ENDPOINTS) - {"/robots.txt"}


@pytest.mark.timeout(90)
def test_one_record_per_url(hostile_crawl):
    by_path, _ = hostile_crawl
    assert sorted(by_path) == sorted(EXPECTED)


@pytest.mark.parametrize("path", sorted(EXPECTED))
def test_outcome(hostile_crawl, path):
    record = hostile_crawl[0][path]
    error, title = EXPECTED[path]
    assert (kind(record), record["title"]) == (error, title), record["error"]
    assert record["ok"] is (error is None)


STALLING = ["/hang", "/hang-body", "/trickle", "/trickle-status", "/trickle-headers", "/trickle-body"]


@pytest.mark.parametrize("path", STALLING)
def test_deadline_bounds_a_stalling_server(hostile_crawl, path):
    record = hostile_crawl[0][path]
    assert record["elapsed_ms"] < TIMEOUT * 1000 + DEADLINE_SLACK_MS
    assert hostile_crawl[1].hits[path] == 1  # it already cost the whole deadline: no retry


def test_retry_after_is_honoured(hostile_crawl):
    by_path, server = hostile_crawl
    assert server.hits["/throttled"] == 2 and by_path["/throttled"]["status"] == 200
    first, second = server.httpd.times["/throttled"]
    assert second - first >= 0.95  # Retry-After: 1, whether the fetch or the scheduler waits


def test_5xx_retried_then_recorded(hostile_crawl):
    by_path, server = hostile_crawl
    assert server.hits["/flaky"] == 3 and by_path["/flaky"]["status"] == 200
    assert server.hits["/always-503"] == 3 and by_path["/always-503"]["status"] == 503


def test_4xx_not_retried(hostile_crawl):
    assert hostile_crawl[1].hits["/missing"] == 1


def test_redirects(hostile_crawl):
    by_path, server = hostile_crawl
    assert by_path["/redirect"]["final_url"] == server.url("/ok")
    assert by_path["/redirect"]["status"] == 200
    assert server.hits["/loop"] + server.hits["/loop2"] <= 2 * 11  # 10 hops per attempt, no retry


@pytest.mark.parametrize(
    "path, content_type, size",
    [("/image.png", "image/png", 2568), ("/doc.pdf", "application/pdf", 139),
     ("/plain.txt", "text/plain", 36), ("/empty", "text/html", 0)],
)  # fmt: skip
def test_non_html_bodies_are_not_parsed(hostile_crawl, path, content_type, size):
    record = hostile_crawl[0][path]
    assert (record["content_type"], record["bytes"], record["links"]) == (content_type, size, [])


def test_many_links_and_nul_bytes(hostile_crawl):
    by_path, server = hostile_crawl
    links = by_path["/many-links"]["links"]
    assert len(links) == 100_000 and links[0] == server.url("/l/0")
    assert by_path["/nul"]["links"] == [server.url("/ok")]


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_trickling_servers_end_the_run_in_time(tmp_path, backend):
    """The status line, the headers or the body one byte every 0.3 s for a minute:
    `--timeout 2` holds for each page, and the whole run ends soon after."""
    paths = ["/trickle-status", "/trickle-headers", "/trickle-body", "/trickle"]
    with HostileServer() as server:
        seeds = tmp_path / "seeds.txt"
        seeds.write_text("\n".join(server.url(p) for p in paths))
        out = tmp_path / "out.jsonl"
        started = time.monotonic()
        run = subprocess.run(
            [sys.executable, "-m", "scraper", str(seeds), "-O", str(out), "-q", "-w", "4",
             "--timeout", str(TIMEOUT), *backend.cli_args],
            capture_output=True, text=True, timeout=60, cwd=tmp_path,
        )  # fmt: skip
        took = time.monotonic() - started
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["url"].rsplit("/", 1)[1] for r in records) == sorted(p[1:] for p in paths)
    assert [kind(r) for r in records] == ["timeout"] * len(paths), [r["error"] for r in records]
    assert all(r["elapsed_ms"] < TIMEOUT * 1000 + DEADLINE_SLACK_MS for r in records)
    assert took < TIMEOUT + 8, f"the run took {took:.1f} s"


PEAK_RSS_SCRIPT = """
import resource, sys
from scraper.cli import main
status = main(sys.argv[1:])
peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
           resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(peak // 1024, file=sys.stderr)
sys.exit(status)
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", ["process", "thread"])
def test_bombs_and_huge_bodies_keep_memory_small(tmp_path, backend):
    """2 GiB gzip, br and zstd bombs and 50 MB bodies cost no more than --max-bytes each."""
    paths = ["/bomb", "/bomb-br", "/bomb-zstd", "/huge", "/many-links", "/ok"]
    with HostileServer() as server:
        seeds = tmp_path / "seeds.txt"
        seeds.write_text("\n".join(server.url(p) for p in paths))
        out = tmp_path / "out.jsonl"
        run = subprocess.run(
            [sys.executable, "-c", PEAK_RSS_SCRIPT, str(seeds), "-O", str(out), "-q",
             "-w", "4", "--backend", backend, "--timeout", "10"],
            capture_output=True, text=True, timeout=100, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    assert run.returncode == 0, run.stderr
    peak_mb = int(run.stderr.strip().splitlines()[-1])
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(kind(r) or "ok" for r in records) == ["ok", "ok"] + ["too_large"] * 4
    print(f"peak RSS of one process ({backend}): {peak_mb} MB")
    assert peak_mb < 400


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", ["process", "thread"])
def test_per_host_limit_across_workers(backend):
    with HostileServer() as server:
        urls = [server.url(f"/slow/{i}") for i in range(12)]
        records = crawl(urls, workers=6, backend=backend, per_host=2)
    assert len(records) == 12 and all(r["ok"] for r in records)
    assert server.httpd.max_in_flight == 2


@pytest.mark.timeout(60)
@pytest.mark.parametrize("robots, delay, expected_gap", [
    (None, 0.3, 0.3),                                    # --delay
    (b"User-agent: *\nCrawl-delay: 0.5\n", 0.1, 0.5),   # Crawl-delay wins when larger
])  # fmt: skip
def test_delay_between_requests_to_one_host(robots, delay, expected_gap):
    with HostileServer(robots=robots) as server:
        urls = [server.url(f"/slow/{i}") for i in range(5)]
        records = crawl(urls, workers=4, backend="thread", delay=delay)
    assert len(records) == 5
    starts = server.httpd.starts
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    # Lower bounds only: the scheduler spaces request starts; a busy machine only widens gaps.
    assert min(gaps) > expected_gap * 0.6, gaps
    assert starts[-1] - starts[0] >= expected_gap * 4 * 0.9
