"""End-to-end crawls of a generated site on 127.0.0.1, through the library API and
the CLI, with every backend (thread, process-fork, process-spawn).

The expected result is computed independently: a breadth-first search over the
site's own link graph (tests/siteserver.py), honouring depth and robots.txt.
"""

from __future__ import annotations

import json
import multiprocessing
import re
import socket
import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import Backend, read_jsonl, wait_until
from siteserver import MISSING, MOVED, PRIVATE, REDIRECT_TARGET, SiteServer, expected_crawl

import scraper
from scraper import CrawlConfig, iter_crawl
from scraper.records import RECORD_FIELDS

WORKERS = 2
DEPTH = 3

pytestmark = pytest.mark.timeout(90)


# -- parse callbacks: top-level functions, so they pickle for spawned workers --------


def add_fields(record: dict[str, Any], tree: Any) -> dict[str, Any]:
    """A user's parse callback: the <h1> texts and the number of list items."""
    return {"h1": [h.text_content().strip() for h in tree.iter("h1")], "items": len(tree.xpath("//li"))}


def fail_below_root(record: dict[str, Any], tree: Any) -> dict[str, Any]:
    """A callback with a bug: it raises on every page but the root."""
    if urlsplit(record["url"]).path != "/":
        raise RuntimeError("callback failed on purpose")
    return {"root": True}


# -- checks ---------------------------------------------------------------------------


def check_crawl(
    records: list[dict[str, Any]],
    server: SiteServer,
    seeds: list[str],
    depth: int,
    backend: Backend | None,
) -> dict[str, dict[str, Any]]:
    """Every property a correct crawl of `server` has; the records by URL."""
    expected = expected_crawl(server, seeds, depth)
    found = [record["url"] for record in records]
    twice = sorted(url for url, n in Counter(found).items() if n > 1)
    assert not twice, f"recorded more than once: {twice}"
    missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    assert not missing and not extra, f"missing {missing[:10]}, unexpected {extra[:10]}"
    by_url = {record["url"]: record for record in records}
    for record in records:
        check_record(record, server, expected, seeds, backend)
    # Every page fetched is recorded (redirect hops aside). Not asserted here: that none is
    # fetched twice (see test_a_parse_that_just_ended_is_not_taken_for_a_hung_worker).
    assert set(server.page_paths()) == set(server.fetch_paths(found))
    assert server.count("/robots.txt") == 1
    assert PRIVATE not in server.paths()
    return by_url


def check_record(
    record: dict[str, Any],
    server: SiteServer,
    expected: dict[str, int],
    seeds: list[str],
    backend: Backend | None,
) -> None:
    url = record["url"]
    assert set(record) == set(RECORD_FIELDS), record
    assert record["depth"] == expected[url], record
    if record["depth"] == 0:
        assert url in seeds and record["parent"] is None, record
    else:
        parent = record["parent"]
        assert expected.get(parent) == record["depth"] - 1, record
        assert url in server.links(parent), f"{parent} does not link to {url}"
    if backend is not None:
        assert backend.worker_pattern.fullmatch(record["worker"]), record
    fetched_at = datetime.fromisoformat(record["fetched_at"].replace("Z", "+00:00"))
    assert fetched_at.utcoffset() == timedelta(0), record
    assert isinstance(record["elapsed_ms"], float) and record["elapsed_ms"] >= 0, record
    assert isinstance(record["parse_ms"], float) and record["parse_ms"] >= 0, record
    assert record["final_url"] == server.final_url(url), record
    if server.status(url) == 404:
        assert record["ok"] is False and record["error"] == "http_404" and record["status"] == 404, record
        assert record["links"] == [], record
        return
    body = server.site[urlsplit(server.final_url(url)).path]
    title = re.search(rb"<title>(.*?)</title>", body)[1].decode()
    assert record["ok"] is True and record["error"] is None and record["status"] == 200, record
    assert record["content_type"] == "text/html", record
    assert record["bytes"] == len(body), record
    assert record["title"] == title, record
    assert record["description"] == "Demo " + title.lower(), record
    assert record["lang"] == "en", record
    assert record["canonical"] is None, record
    assert record["links"] == server.links(url), record
    assert record["fields"] == {}, record


def dead_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (a port just bound and released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def worker_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if re.fullmatch(r"thread-\d+", t.name) and t.is_alive()]


def no_workers_left() -> bool:
    return not multiprocessing.active_children() and not worker_threads()


# -- the whole crawl, every backend ---------------------------------------------------


def test_library_crawl_matches_breadth_first_search(site, backend):
    seeds = [site.url("/")]
    records = scraper.crawl(seeds, workers=WORKERS, depth=DEPTH, **backend.kwargs)
    assert len(records) > 250  # the site is big enough to mean something
    by_url = check_crawl(records, site, seeds, DEPTH, backend)
    missing = by_url[site.url(MISSING)]
    assert (missing["depth"], missing["parent"], missing["ok"]) == (1, site.url("/"), False)
    moved = by_url[site.url(MOVED)]
    assert moved["final_url"] == site.url(REDIRECT_TARGET) and moved["ok"], moved


def test_cli_crawl_matches_breadth_first_search(site, backend, run_cli, write_seeds):
    seeds = [site.url("/")]
    result = run_cli(write_seeds(*seeds), "--depth", DEPTH, "-w", WORKERS, *backend.cli_args,
                     "-O", "out/records.jsonl", "-q")  # fmt: skip
    assert result.rc == 0, result
    assert len(result.records) > 250
    check_crawl(result.records, site, seeds, DEPTH, backend)


def test_thread_and_process_crawls_agree(site):
    seeds = [site.url("/"), site.url("/page/100.html")]
    threads = scraper.crawl(seeds, workers=3, backend="thread", depth=2)
    processes = scraper.crawl(seeds, workers=3, backend="process", depth=2)
    assert {(r["url"], r["depth"]) for r in threads} == {(r["url"], r["depth"]) for r in processes}
    assert len(threads) == len(processes) == len(expected_crawl(site, seeds, 2))


def test_crawl_with_config_object(small_site, backend):
    config = CrawlConfig(workers=WORKERS, depth=1, **backend.kwargs)
    seeds = [small_site.url("/")]
    records = scraper.crawl(seeds, config=config)
    check_crawl(records, small_site, seeds, 1, backend)


# -- streaming ---------------------------------------------------------------------------


def test_iter_crawl_streams_and_stops_when_the_loop_ends(serve, backend):
    server = serve(pages=300, delay=0.05)  # a whole crawl would take about 8 s
    seed = server.url("/")
    total = len(expected_crawl(server, [seed], DEPTH))
    first = None
    for record in iter_crawl([seed], workers=WORKERS, depth=DEPTH, **backend.kwargs):
        first = record
        break
    assert first is not None and first["url"] == seed  # breadth-first: the seed comes first
    assert wait_until(no_workers_left, 5), (multiprocessing.active_children(), backend)
    requested = len(server.page_paths())
    assert requested < total // 4, f"{requested} of {total} pages fetched: the crawl went on"
    time.sleep(0.5)
    assert len(server.page_paths()) == requested, "pages still fetched after the loop ended"


def test_iter_crawl_closed_after_some_records(small_site, backend):
    seed = small_site.url("/")
    records = iter_crawl([seed], workers=WORKERS, depth=2, **backend.kwargs)
    taken = [next(records) for _ in range(5)]
    records.close()
    assert len({record["url"] for record in taken}) == 5
    assert wait_until(no_workers_left, 5), multiprocessing.active_children()


# -- parse callbacks -----------------------------------------------------------------------


def test_parse_callback_adds_fields(small_site, backend):
    seeds = [small_site.url("/")]
    records = scraper.crawl(seeds, workers=WORKERS, depth=2, parse=add_fields, **backend.kwargs)
    assert len(records) == len(expected_crawl(small_site, seeds, 2))
    pages = [record for record in records if record["ok"]]
    assert len(pages) >= 10
    for record in pages:
        body = small_site.site[urlsplit(record["final_url"]).path]
        assert record["fields"] == {"h1": [record["title"]], "items": body.count(b"<li>")}, record
    assert all(record["fields"] == {} for record in records if not record["ok"])


def test_parse_callback_with_select(small_site, backend):
    seeds = [small_site.url("/")]
    records = scraper.crawl(seeds, workers=WORKERS, depth=1, parse=add_fields, select={"heading": "h1"},
                            **backend.kwargs)  # fmt: skip
    for record in (r for r in records if r["ok"]):
        assert record["fields"]["heading"] == record["fields"]["h1"] == [record["title"]], record


def test_failing_parse_callback_gives_parse_errors_and_the_crawl_completes(small_site, backend):
    seeds = [small_site.url("/")]
    records = scraper.crawl(seeds, workers=WORKERS, depth=1, parse=fail_below_root, **backend.kwargs)
    expected = expected_crawl(small_site, seeds, 1)
    assert sorted(r["url"] for r in records) == sorted(expected)
    for record in records:
        path = urlsplit(record["url"]).path
        if path == "/":
            assert record["ok"] is True and record["fields"] == {"root": True}, record
        elif path == MISSING:
            assert record["error"] == "http_404", record  # the callback never saw it
        else:
            assert record["ok"] is False, record
            assert record["error"].split(":")[0] == "parse", record
            assert "callback failed on purpose" in record["error"], record
            assert record["status"] == 200, record


# -- errors -----------------------------------------------------------------------------


def test_a_404_link_gives_an_http_404_record(small_site):
    records = scraper.crawl([small_site.url("/")], workers=WORKERS, backend="thread", depth=1)
    missing = [record for record in records if record["url"] == small_site.url(MISSING)]
    assert len(missing) == 1
    record = missing[0]
    assert record["ok"] is False and record["error"] == "http_404" and record["status"] == 404, record
    assert record["parent"] == small_site.url("/") and record["depth"] == 1, record


@pytest.mark.timeout(60)
def test_a_seed_whose_server_is_not_listening_gives_a_connection_error(small_site, backend):
    dead = dead_url()
    seeds = [dead, small_site.url("/")]
    started = time.monotonic()
    # Without --ignore-robots, its robots.txt does not answer: the origin is not crawled (RFC 9309).
    records = scraper.crawl(seeds, workers=WORKERS, **backend.kwargs, depth=0, retries=1, timeout=5,
                            ignore_robots=True)  # fmt: skip
    assert time.monotonic() - started < 30
    by_url = {record["url"]: record for record in records}
    assert sorted(by_url) == sorted(seeds)
    record = by_url[dead]
    assert record["ok"] is False and record["status"] is None, record
    assert record["error"].split(":")[0] == "connection", record
    assert by_url[small_site.url("/")]["ok"] is True


# -- output ----------------------------------------------------------------------------


def test_output_jsonl_equals_the_returned_records(small_site, tmp_path, backend):
    output = tmp_path / "sub" / "records.jsonl"
    records = scraper.crawl([small_site.url("/")], workers=WORKERS, depth=2, output=str(output),
                            **backend.kwargs)  # fmt: skip
    assert len(records) > 10
    assert read_jsonl(output) == records
    assert json.loads(json.dumps(records)) == records  # plain JSON types only


def test_library_writes_no_file_without_output(small_site, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    records = scraper.crawl([small_site.url("/")], workers=WORKERS, backend="thread", depth=1)
    assert records
    assert list(tmp_path.iterdir()) == []


# -- regressions: bugs these tests found -----------------------------------------------


@pytest.mark.parametrize("retries", [0, 2])
def test_an_error_response_does_not_spoil_the_next_request(serve, retries):
    # The 404's body follows its headers 0.3 s later, as from a server that flushes headers first.
    server = serve(pages=10, body_pauses={"/gone.html": 0.3})
    seeds = [server.url("/gone.html"), server.url("/page/1.html"), server.url("/page/2.html")]
    records = scraper.crawl(seeds, workers=1, backend="thread", retries=retries)
    errors = {record["url"]: record["error"] for record in records}
    assert errors == {seeds[0]: "http_404", seeds[1]: None, seeds[2]: None}
    assert Counter(server.page_paths()) == Counter(["/gone.html", "/page/1.html", "/page/2.html"])


@pytest.mark.timeout(60)
def test_every_worker_thread_stops_on_the_broadcast(small_site):
    # Eight idle workers at the end: one stop broadcast ends them all, none is left.
    records = scraper.crawl([small_site.url("/")], workers=8, backend="thread", depth=0)
    assert len(records) == 1
    assert wait_until(lambda: not worker_threads(), 2), "worker threads still running after crawl() returned"


class ParseEndsBetweenReads:
    """A worker's shared `parsing_since` array whose parse ends (value back to 0) just after
    the group's first read: the other process writes between two reads of shared memory."""

    def __init__(self) -> None:
        self.started = time.monotonic()  # a parse that began just now...
        self.reads = 0

    def _read(self) -> float:
        self.reads += 1
        return self.started if self.reads == 1 else 0.0  # ...and has just ended

    def __iter__(self):
        return iter([self._read()])

    def __getitem__(self, index: int) -> float:
        return self._read()

    def __len__(self) -> int:
        return 1


def test_a_parse_that_just_ended_is_not_taken_for_a_hung_worker():
    from scraper.backends.base import hung_failures
    from scraper.worker import Board

    parsing_since = ParseEndsBetweenReads()
    board = Board(task=[7], took_at=[time.monotonic()], parsing_since=parsing_since)
    activity = board.read("process-1", time.monotonic())
    assert parsing_since.reads == 1  # copied once: what the group judges is one consistent reading
    assert [a.task_id for a in activity] == [7]
    assert hung_failures(activity, hung_after=15) == []


def test_the_output_is_closed_when_the_workers_cannot_start(tmp_path, monkeypatch):
    from scraper.backends.thread import ThreadGroup
    from scraper.crawl import Crawl

    def refuse(self):
        raise OSError("no more threads")

    monkeypatch.setattr(ThreadGroup, "start", refuse)
    crawl = Crawl(CrawlConfig(backend="thread", output=str(tmp_path / "out.jsonl")), ["http://127.0.0.1:9/"])
    with pytest.raises(OSError, match="no more threads"):
        crawl.__enter__()
    # Workers start before the output opens: a refused start (a second coordinator of
    # a running redis crawl, same -O) must not truncate the output (issue 21).
    assert crawl.aggregator.journal is None and not (tmp_path / "out.jsonl").exists()
