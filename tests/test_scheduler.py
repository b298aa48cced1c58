"""The scheduler and a fetcher in one thread, HTTP mocked with `responses`.

No processes and no real clock: `run()` hands each task the scheduler puts
out to a Fetcher and its result back, advancing a fake clock when nothing is
ready (a host paused after a 429), so redirects, robots.txt and slow-downs
are checked exactly, request by request.
"""

from __future__ import annotations

from collections import deque

import pytest
import responses

from scraper.config import CrawlConfig
from scraper.crawl import allowed_hosts, worker_spec
from scraper.fetcher import Fetcher
from scraper.frontier import MAX_REDIRECTS
from scraper.politeness import MAX_PAUSE
from scraper.scheduler import Scheduler

SITE = "http://example.com"
HTML = "text/html"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Run:
    """A crawl run task by task: its records, the scheduler and when each request was sent."""

    def __init__(self, seeds: list[str], **settings: object) -> None:
        settings = {"workers": 1, "backend": "thread", "retries": 0, "user_agent": "TestBot/2.1 (+x)",
                    **settings}  # fmt: skip
        config = CrawlConfig(**settings)
        self.clock = FakeClock()
        self.queue: deque = deque()
        self.scheduler = Scheduler(config, allowed_hosts(seeds, config.allow_domain), clock=self.clock)
        self.fetcher = Fetcher(worker_spec(config), "thread-1")
        self.records: list[dict] = []
        self.sent: list[tuple[float, str]] = []  # (fake time, URL requested)
        self.scheduler.add_seeds(seeds)

    def run(self, max_steps: int = 1000) -> Run:
        for _ in range(max_steps):
            if self.scheduler.finished():
                return self
            self.queue.extend(self.scheduler.fill(capacity=5))
            if not self.queue:
                self.clock.now += 0.5  # nothing may start yet (a paused host)
                continue
            task = self.queue.popleft()
            self.sent.append((self.clock.now, task.target))
            for settled in self.scheduler.complete(self.fetcher.handle(task)):
                self.records.append(settled.record)
        raise AssertionError("the crawl did not end")

    def by_url(self) -> dict[str, dict]:
        assert len({record["url"] for record in self.records}) == len(self.records), "a page recorded twice"
        return {record["url"]: record for record in self.records}


@pytest.fixture
def mock():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def page(mock: responses.RequestsMock, url: str, body: str = "<title>t</title>", **kwargs: object) -> None:
    mock.get(url, body=body.encode(), content_type=HTML, **kwargs)


def robots(mock: responses.RequestsMock, text: str | None, origin: str = SITE, status: int = 200) -> None:
    if text is None:
        mock.get(f"{origin}/robots.txt", status=status)
    else:
        mock.get(f"{origin}/robots.txt", body=text.encode(), content_type="text/plain")


def requested(mock: responses.RequestsMock) -> list[str]:
    return [call.request.url for call in mock.calls]


# -- URLs as linked ---------------------------------------------------------------


def test_links_are_requested_as_linked_and_recorded_canonical(mock):
    robots(mock, None, status=404)
    page(mock, f"{SITE}/", '<a href="/p?u=https://x.y&amp;b=1">p</a>')
    page(mock, f"{SITE}/p?u=https://x.y&b=1")
    records = Run([f"{SITE}/"], depth=1).run().by_url()
    assert f"{SITE}/p?u=https://x.y&b=1" in requested(mock)
    assert records[f"{SITE}/p?b=1&u=https%3A%2F%2Fx.y"]["ok"]


def test_robots_txt_matches_the_url_as_linked_not_its_canonical_form(mock):
    # Canonically the query is sorted and its ':' '/' are encoded: neither rule would match that.
    robots(mock, "User-agent: *\nDisallow: /p?u=https:\nDisallow: /q?z\n")
    page(mock, f"{SITE}/", '<a href="/p?u=https://x.y">p</a><a href="/q?z=1&amp;a=2">q</a>'
                           '<a href="/r?u=https://x.y">r</a>')  # fmt: skip
    page(mock, f"{SITE}/r?u=https://x.y")
    run = Run([f"{SITE}/"], depth=1).run()
    assert sorted(run.by_url()) == [f"{SITE}/", f"{SITE}/r?u=https%3A%2F%2Fx.y"]
    assert run.scheduler.frontier.skipped["robots"] == 2
    assert not any("/p?" in url or "/q?" in url for url in requested(mock))


def test_product_token_of_the_user_agent_is_matched(mock):
    robots(mock, "User-agent: testbot\nDisallow: /private\n\nUser-agent: *\nDisallow: /\n")
    page(mock, f"{SITE}/", '<a href="/private/x">x</a><a href="/public">y</a>')
    page(mock, f"{SITE}/public")
    records = Run([f"{SITE}/"], depth=1).run().by_url()  # user agent "TestBot/2.1 (+x)"
    assert sorted(records) == [f"{SITE}/", f"{SITE}/public"]


# -- robots.txt that does not answer ---------------------------------------------


@pytest.mark.parametrize("status", [500, 503])
def test_robots_txt_5xx_disallows_the_whole_origin(mock, status, caplog):
    robots(mock, None, status=status)
    page(mock, f"{SITE}/")
    run = Run([f"{SITE}/", f"{SITE}/a"], retries=0).run()
    assert run.records == []
    assert run.scheduler.frontier.skipped["robots_unavailable"] == 2
    assert requested(mock) == [f"{SITE}/robots.txt"]
    assert sum(SITE in message and "robots.txt" in message for message in caplog.messages) == 1


def test_robots_txt_that_does_not_answer_disallows_the_whole_origin(mock):
    mock.get(f"{SITE}/robots.txt", body=ConnectionError("refused"))
    run = Run([f"{SITE}/"]).run()
    assert run.records == []
    assert run.scheduler.frontier.skipped["robots_unavailable"] == 1


@pytest.mark.parametrize("status", [401, 403, 404, 410])
def test_robots_txt_4xx_allows_everything(mock, status):
    robots(mock, None, status=status)
    page(mock, f"{SITE}/")
    assert [r["url"] for r in Run([f"{SITE}/"]).run().records] == [f"{SITE}/"]


def test_robots_txt_with_a_bom_keeps_its_first_group(mock):
    body = b"\xef\xbb\xbfUser-agent: *\nDisallow: /private\n"
    mock.get(f"{SITE}/robots.txt", body=body, content_type="text/plain")
    page(mock, f"{SITE}/", '<a href="/private/x">x</a>')
    run = Run([f"{SITE}/"], depth=1).run()
    assert run.scheduler.frontier.skipped["robots"] == 1


def test_a_long_robots_txt_is_cut_not_dropped(mock):
    text = "User-agent: *\nDisallow: /private\n" + "# filler line of a long robots.txt\n" * 20_000
    robots(mock, text)
    page(mock, f"{SITE}/", '<a href="/private/x">x</a>')
    run = Run([f"{SITE}/"], depth=1).run()
    assert run.scheduler.frontier.skipped["robots"] == 1


# -- redirects are checked like links --------------------------------------------


def test_a_redirect_is_followed_and_links_join_to_its_target(mock):
    robots(mock, None, status=404)
    mock.get(f"{SITE}/old", status=301, headers={"Location": "/dir/new"})
    page(mock, f"{SITE}/dir/new", '<a href="sibling">s</a>')
    page(mock, f"{SITE}/dir/sibling")
    records = Run([f"{SITE}/old"], depth=1).run().by_url()
    old = records[f"{SITE}/old"]
    assert (old["final_url"], old["status"], old["ok"]) == (f"{SITE}/dir/new", 200, True)
    assert old["links"] == [f"{SITE}/dir/sibling"]
    assert records[f"{SITE}/dir/sibling"]["parent"] == f"{SITE}/old"


def test_a_redirect_into_what_robots_txt_disallows_is_not_fetched(mock):
    robots(mock, "User-agent: *\nDisallow: /private\n")
    mock.get(f"{SITE}/go", status=302, headers={"Location": "/private/x"})
    run = Run([f"{SITE}/go"]).run()
    record = run.by_url()[f"{SITE}/go"]
    assert record["error"].startswith("robots_disallowed")
    assert (record["status"], record["ok"]) == (302, False)
    assert f"{SITE}/private/x" not in requested(mock)


def test_a_redirect_to_a_new_origin_fetches_its_robots_txt_first(mock):
    robots(mock, None, status=404)
    robots(mock, "User-agent: *\nDisallow: /no\n", origin="http://www.example.com")
    mock.get(f"{SITE}/a", status=301, headers={"Location": "http://www.example.com/no/a"})
    mock.get(f"{SITE}/b", status=301, headers={"Location": "http://www.example.com/yes/b"})
    page(mock, "http://www.example.com/yes/b", "<title>yes</title>")
    records = Run([f"{SITE}/a", f"{SITE}/b"]).run().by_url()
    assert records[f"{SITE}/a"]["error"].startswith("robots_disallowed")
    assert (records[f"{SITE}/b"]["title"], records[f"{SITE}/b"]["final_url"]) == ("yes", "http://www.example.com/yes/b")
    calls = requested(mock)
    assert calls.count("http://www.example.com/robots.txt") == 1
    assert calls.index("http://www.example.com/robots.txt") < calls.index("http://www.example.com/yes/b")
    assert "http://www.example.com/no/a" not in calls


def test_an_offsite_redirect_is_not_followed(mock):
    robots(mock, None, status=404)
    mock.get(f"{SITE}/out", status=302, headers={"Location": "http://other.org/"})
    record = Run([f"{SITE}/out"]).run().by_url()[f"{SITE}/out"]
    assert (record["error"], record["status"]) == ("offsite_redirect: http://other.org/", 302)
    assert record["ok"] is False
    assert "http://other.org/" not in requested(mock)


def test_a_redirect_loop_ends_with_too_many_redirects(mock):
    robots(mock, None, status=404)
    mock.get(f"{SITE}/a", status=302, headers={"Location": "/b"})
    mock.get(f"{SITE}/b", status=302, headers={"Location": "/a"})
    run = Run([f"{SITE}/a"]).run()
    assert [r["error"] for r in run.records] == ["too_many_redirects"]
    assert len(requested(mock)) == 1 + MAX_REDIRECTS + 1  # robots.txt, then the first try and each hop


def test_a_redirect_target_keeps_its_query_as_linked(mock):
    robots(mock, None, status=404)
    mock.get(f"{SITE}/a", status=301, headers={"Location": "/b?u=https://x.y&z=1&a=2"})
    page(mock, f"{SITE}/b?u=https://x.y&z=1&a=2")
    record = Run([f"{SITE}/a"]).run().by_url()[f"{SITE}/a"]
    assert requested(mock)[-1] == f"{SITE}/b?u=https://x.y&z=1&a=2"
    assert record["final_url"] == f"{SITE}/b?a=2&u=https%3A%2F%2Fx.y&z=1"


# -- a host that says "slow down" ------------------------------------------------


def test_a_429_pauses_the_host_for_its_retry_after_then_retries(mock):
    robots(mock, None, status=404)
    mock.get(f"{SITE}/a", status=429, headers={"Retry-After": "30"})
    page(mock, f"{SITE}/a")
    page(mock, f"{SITE}/b")
    run = Run([f"{SITE}/a", f"{SITE}/b"], retries=2).run()
    records = run.by_url()
    assert records[f"{SITE}/a"]["ok"] and records[f"{SITE}/b"]["ok"]
    first_429 = next(at for at, url in run.sent if url == f"{SITE}/a")
    later = [at for at, url in run.sent if at > first_429]
    # /b was queued while /a was fetched here, so it may go at once; the retry waits 30 s.
    retry_at = [at for at, url in run.sent if url == f"{SITE}/a"][1]
    assert retry_at - first_429 >= 30
    assert later and run.scheduler.frontier.slowed == {"example.com": 1}


def test_a_retry_after_above_the_cap_waits_the_cap_and_still_retries(mock):
    robots(mock, None, status=404)
    mock.get(f"{SITE}/a", status=503, headers={"Retry-After": "86400"})
    page(mock, f"{SITE}/a")
    run = Run([f"{SITE}/a"], retries=1).run()
    assert run.by_url()[f"{SITE}/a"]["ok"]
    times = [at for at, url in run.sent if url == f"{SITE}/a"]
    assert MAX_PAUSE <= times[1] - times[0] <= MAX_PAUSE + 1


def test_no_other_page_of_a_paused_host_starts_before_the_pause_ends(mock):
    robots(mock, None, status=404)
    mock.get(f"{SITE}/0", status=429)  # no Retry-After: an exponential pause
    mock.get(f"{SITE}/0", status=429)
    for i in range(6):
        page(mock, f"{SITE}/{i}")
    run = Run([f"{SITE}/{i}" for i in range(6)], retries=3, workers=1, concurrency=1).run()
    assert all(record["ok"] for record in run.records) and len(run.records) == 6
    page_times = [at for at, url in run.sent if url.startswith(SITE) and "robots" not in url]
    gaps = [b - a for a, b in zip(page_times, page_times[1:], strict=False)]
    assert gaps[0] >= 1.0 and gaps[1] >= 2.0  # 1 s, then 2 s: no request while paused


def test_retries_of_429_are_bounded_and_the_last_answer_recorded(mock):
    robots(mock, None, status=404)
    mock.get(f"{SITE}/a", status=429, headers={"Retry-After": "1"})
    run = Run([f"{SITE}/a"], retries=2).run()
    assert [r["error"] for r in run.records] == ["http_429"]
    assert len([url for _, url in run.sent if url == f"{SITE}/a"]) == 3
