"""robots.txt (RFC 9309), redirects checked like links, and slow-downs after 429,
end to end: both backends against a real server whose log shows what was requested."""

from __future__ import annotations

import pytest
from siteserver import SiteServer

from scraper import crawl

pytestmark = pytest.mark.timeout(90)


def html(*hrefs: str, title: str = "t") -> bytes:
    links = "".join(f'<a href="{href}">{href}</a>' for href in hrefs)
    return f"<html><head><title>{title}</title></head><body>{links}</body></html>".encode()


def run(server: SiteServer, backend, *paths: str, **settings) -> dict[str, dict]:
    settings = {"workers": 2, "retries": 0, **backend.kwargs, **settings}
    records = crawl([server.url(path) for path in paths], **settings)
    by_url = {record["url"]: record for record in records}
    assert len(by_url) == len(records), "a page recorded twice"
    return by_url


def test_urls_are_requested_as_linked_and_robots_txt_matches_them(serve, backend):
    site = {
        "/robots.txt": b"User-agent: *\nDisallow: /p?u=https:\n",
        "/": html("/p?u=https://x.y", "/r?u=https://x.y&b=2&a=1", "/s%7e1"),
        "/r?u=https://x.y&b=2&a=1": html(title="r"),
        "/s~1": html(title="s"),
    }
    server = serve(site=site)
    records = run(server, backend, "/", depth=1)
    # As Scrapy sends them (w3lib's safe_url_string): the query untouched, %7e as the "~" it means.
    assert sorted(server.page_paths()) == sorted(["/", "/r?u=https://x.y&b=2&a=1", "/s~1"])
    canonical = server.url("/r?a=1&b=2&u=https%3A%2F%2Fx.y")
    assert records[canonical]["title"] == "r" and records[server.url("/s~1")]["title"] == "s"
    assert len(records) == 3


@pytest.mark.parametrize("answer", [500, 503])
def test_robots_txt_that_fails_disallows_its_origin(serve, backend, answer, caplog):
    server = serve(site={"/": html("/a"), "/a": html()}, answers={"/robots.txt": [(answer, {})] * 10})
    records = run(server, backend, "/", "/a", retries=1)
    assert records == {}
    assert set(server.paths()) == {"/robots.txt"}  # retried, then nothing of the origin
    assert sum("robots.txt" in message and server.origin in message for message in caplog.messages) == 1


def test_redirect_into_a_disallowed_path_is_not_followed(serve, backend):
    site = {"/robots.txt": b"User-agent: *\nDisallow: /private\n", "/private/x": html(),
            "/ok": html(title="ok")}  # fmt: skip
    server = serve(site=site, redirects={"/go": "/private/x", "/fine": "/ok"})
    records = run(server, backend, "/go", "/fine")
    target = server.url("/private/x")
    assert records[server.url("/go")]["error"] == f"robots_disallowed: disallowed by robots.txt: {target}"
    assert records[server.url("/fine")]["title"] == "ok"
    assert "/private/x" not in server.paths()


def test_a_host_that_answers_429_gets_no_request_before_its_retry_after(serve, backend):
    pages = {f"/{i}": html(title=str(i)) for i in range(6)}
    server = serve(site={"/robots.txt": b"", **pages}, answers={"/2": [(429, {"Retry-After": "2"})]})
    records = run(server, backend, *pages, retries=2, per_host=1)
    assert all(record["ok"] for record in records.values()) and len(records) == 6
    log = [request for request in server.requests if request.path != "/robots.txt"]
    first_429 = next(i for i, request in enumerate(log) if request.path == "/2")
    # --per-host 1: the next request can only start once the 429 was seen, and then not before 2 s.
    assert log[first_429 + 1].at - log[first_429].at >= 2.0
    assert [request.path for request in log].count("/2") == 2


@pytest.mark.parametrize("delay", [0.01, 0.06])
def test_a_delay_is_met_within_a_few_ms_not_rounded_up_to_a_tick(serve, backend, delay):
    """--delay D: requests to one host start D apart (from the end of the one before),
    not at the next turn of a 50 ms loop (0.06 gave 105 ms, 0.01 gave 55 ms)."""
    html_site = {"/": html(*(f"/p{n}" for n in range(16)))} | {f"/p{n}": html() for n in range(16)}
    server = serve(site=html_site)
    records = run(server, backend, "/", depth=1, delay=delay, ignore_robots=True)
    assert len(records) == 17
    times = sorted(request.at for request in server.requests)
    gaps = sorted(b - a for a, b in zip(times, times[1:], strict=False))
    median = gaps[len(gaps) // 2]
    assert delay * 0.9 <= median <= delay + 0.03, [round(gap, 3) for gap in gaps]


def test_robots_txt_of_the_seeds_goes_out_before_the_seeds_pass_the_seen_set(serve, monkeypatch):
    """A new crawl hands out robots.txt of its seeds' origins first, so that it is
    fetched while the seen-set's numpy finishes loading (the seeds wait for it)."""
    from scraper import CrawlConfig
    from scraper.crawl import Crawl
    from scraper.records import ROBOTS
    from scraper.scheduler import Scheduler

    server = serve(site={"/robots.txt": b"", "/": html("/a"), "/a": html()})
    out_before_seeds = []
    add_seeds = Scheduler.add_seeds

    def spy(self, urls):
        out_before_seeds.extend(self.in_flight.values())
        add_seeds(self, urls)

    monkeypatch.setattr(Scheduler, "add_seeds", spy)
    with Crawl(CrawlConfig(backend="thread", workers=1, depth=1), [server.url("/")]) as crawl:
        records = list(crawl.run())
    assert [(task.kind, task.url) for task in out_before_seeds] == [(ROBOTS, server.url("/robots.txt"))]
    assert sorted(record["url"] for record in records) == [server.url("/"), server.url("/a")]
    assert server.paths().count("/robots.txt") == 1
