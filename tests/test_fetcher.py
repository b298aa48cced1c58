"""scraper.fetcher.Fetcher.handle: one task -> one complete record; HTTP mocked with `responses`."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta, timezone

import pytest
import requests
import responses

from scraper.config import CrawlConfig
from scraper.crawl import worker_spec
from scraper.fetcher import Fetcher
from scraper.records import PAGE, RECORD_FIELDS, ROBOTS, Result, Task

SITE = "http://example.com"
PAGE_HTML = """<!DOCTYPE html>
<html lang="fr"><head>
<meta charset="iso-8859-1">
<title>  Caf\u00e9
   du coin </title>
<meta name="description" content="Un caf\u00e9">
<link rel="canonical" href="/canon">
</head><body>
<h1>Menu</h1><p class="price">2 \u20ac</p><p class="price">3 \u20ac</p>
<a href="/a?b=2&amp;a=1#x">a</a><a href="b">b</a><a href="http://other.org/">o</a><a href="mailto:x@y">m</a>
</body></html>"""


# Parse callbacks are top-level functions, as the spec asks (they must pickle).
def add_headings(record, tree):
    return {"headings": [h.text_content() for h in tree.iter("h1")], "seen_url": record["url"]}


def returns_none(record, tree):
    return None


def raises(record, tree):
    raise RuntimeError("callback exploded")


def returns_set(record, tree):
    return {"tags": {"a", "b"}}


def returns_list(record, tree):
    return ["not", "a", "dict"]


def returns_nan(record, tree):
    return {"score": float("nan")}


@pytest.fixture
def mock():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def make_fetcher(**settings) -> Fetcher:
    settings.setdefault("retries", 0)  # handle() sleeps for real between retries
    config = CrawlConfig(workers=1, backend="thread", user_agent="testbot/1.0", **settings)
    return Fetcher(worker_spec(config), "thread-7")


def handle(fetcher: Fetcher, url: str, depth: int = 0, parent: str | None = None) -> dict:
    result = fetcher.handle(Task(42, url, depth, parent))
    assert isinstance(result, Result)
    assert result.task.url == url
    assert set(result.record) == set(RECORD_FIELDS)
    json.dumps(result.record)  # every record must be writable as JSON
    return result.record


def test_html_page_record_has_every_field_with_the_right_value(mock):
    body = PAGE_HTML.replace("\u20ac", "EUR").encode("iso-8859-1")
    mock.get(f"{SITE}/page", body=body, content_type="Text/HTML; Charset=ISO-8859-1")
    before = datetime.now(timezone.utc)
    record = handle(make_fetcher(select={"prices": "p.price"}), f"{SITE}/page", 2, f"{SITE}/parent")
    after = datetime.now(timezone.utc)
    assert record["url"] == f"{SITE}/page"
    assert record["final_url"] == f"{SITE}/page"
    assert record["status"] == 200
    assert record["ok"] is True
    assert record["error"] is None
    assert record["depth"] == 2
    assert record["parent"] == f"{SITE}/parent"
    assert record["fetched_at"].endswith("Z")
    fetched_at = datetime.fromisoformat(record["fetched_at"].replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) <= fetched_at <= after + timedelta(seconds=1)
    assert isinstance(record["elapsed_ms"], float) and record["elapsed_ms"] > 0
    assert isinstance(record["parse_ms"], float) and record["parse_ms"] >= 0
    assert record["content_type"] == "text/html"
    assert record["bytes"] == len(body)
    assert record["title"] == "Caf\u00e9 du coin"
    assert record["description"] == "Un caf\u00e9"
    assert record["lang"] == "fr"
    assert record["canonical"] == f"{SITE}/canon"
    assert record["links"] == [f"{SITE}/a?a=1&b=2", f"{SITE}/b", "http://other.org/"]
    assert record["fields"] == {"prices": ["2 EUR", "3 EUR"]}
    assert record["worker"] == "thread-7"


def test_utf8_page_and_user_agent(mock):
    mock.get(f"{SITE}/", body=PAGE_HTML.replace("iso-8859-1", "utf-8").encode(), content_type="text/html")
    record = handle(make_fetcher(select={"prices": "p.price"}), f"{SITE}/")
    assert record["title"] == "Caf\u00e9 du coin"
    assert record["fields"] == {"prices": ["2 \u20ac", "3 \u20ac"]}
    assert mock.calls[0].request.headers["User-Agent"] == "testbot/1.0"


def test_bytes_is_the_decompressed_size(mock):
    body = b"<html><head><title>zipped</title></head><body>" + b"x" * 3000 + b"</body></html>"
    mock.get(f"{SITE}/", body=gzip.compress(body), content_type="text/html",
             headers={"Content-Encoding": "gzip"})  # fmt: skip
    record = handle(make_fetcher(), f"{SITE}/")
    assert (record["ok"], record["bytes"], record["title"]) == (True, len(body), "zipped")


def test_redirect_goes_back_to_the_scheduler_as_linked(mock):
    # The fetcher does not follow: the scheduler checks the target like a link.
    mock.get(f"{SITE}/old", status=301, headers={"Location": "/dir/new?u=https://x.y&b=1&a=2"})
    result = make_fetcher().handle(Task(42, f"{SITE}/old"))
    assert result.redirect_to == f"{SITE}/dir/new?u=https://x.y&b=1&a=2"
    assert (result.record["status"], result.record["error"]) == (301, None)
    assert len(mock.calls) == 1


def test_a_429_goes_back_to_the_scheduler_with_its_retry_after(mock):
    mock.get(f"{SITE}/busy", status=429, headers={"Retry-After": "7"})
    result = make_fetcher(retries=3).handle(Task(42, f"{SITE}/busy"))
    assert (result.record["error"], result.retry_after) == ("http_429", 7.0)
    assert len(mock.calls) == 1  # not retried by the fetch thread: the scheduler slows the host


def test_the_url_as_linked_is_requested(mock):
    mock.get(f"{SITE}/p?u=https://x.y&b=1", body=b"<title>t</title>", content_type="text/html")
    canonical = f"{SITE}/p?b=1&u=https%3A%2F%2Fx.y"
    result = make_fetcher().handle(Task(42, canonical, fetch_url=f"{SITE}/p?u=https://x.y&b=1"))
    assert mock.calls[0].request.url == f"{SITE}/p?u=https://x.y&b=1"
    record = result.record
    assert (record["url"], record["final_url"], record["ok"]) == (canonical, canonical, True)


def test_redirect_status_without_location_is_not_ok(mock):
    mock.get(f"{SITE}/", status=301, body=b"<title>moved</title>", content_type="text/html")
    record = handle(make_fetcher(), f"{SITE}/")
    assert record["status"] == 301
    assert record["ok"] is False
    assert record["error"] is not None


def test_http_error_record(mock):
    mock.get(f"{SITE}/missing", status=404, body=b"<title>Not found</title>", content_type="text/html")
    record = handle(make_fetcher(retries=2), f"{SITE}/missing")
    assert record["ok"] is False
    assert record["error"] == "http_404"
    assert record["status"] == 404
    assert record["content_type"] == "text/html"
    assert (record["bytes"], record["title"], record["links"]) == (0, None, [])
    assert len(mock.calls) == 1


def test_connection_error_record(mock):
    mock.get(f"{SITE}/", body=requests.ConnectionError("refused"))
    record = handle(make_fetcher(), f"{SITE}/")
    assert record["ok"] is False
    assert record["error"].startswith("connection")
    assert (record["status"], record["final_url"], record["content_type"]) == (None, None, None)
    assert (record["bytes"], record["links"]) == (0, [])


def test_too_large_record(mock):
    mock.get(f"{SITE}/", body=b"<html>" + b"x" * 200, content_type="text/html")
    record = handle(make_fetcher(max_bytes=100), f"{SITE}/")
    assert record["ok"] is False
    assert record["error"].startswith("too_large")
    assert (record["bytes"], record["links"]) == (0, [])


HTML_LOOKING = b'<html><head><title>no</title></head><body><a href="/x">x</a></body></html>'


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("image/png", b"\x89PNG\r\n\x1a\n" + HTML_LOOKING),
        ("application/pdf", b"%PDF-1.4 " + HTML_LOOKING),
        ("text/plain; charset=utf-8", HTML_LOOKING),
        ("application/json", b'{"html": "<a href=\\"/x\\">"}'),
        ("text/html", b""),
        (None, b""),
    ],
)
def test_non_html_and_empty_bodies_get_no_links_and_no_title(mock, content_type, body):
    mock.get(f"{SITE}/file", body=body, content_type=content_type)
    record = handle(make_fetcher(select={"anchors": "a"}), f"{SITE}/file")
    assert (record["ok"], record["error"], record["status"]) == (True, None, 200)
    assert record["bytes"] == len(body)
    assert record["content_type"] == (content_type.split(";")[0] if content_type else None)
    assert (record["title"], record["description"], record["lang"], record["canonical"]) == (None,) * 4
    assert record["links"] == []


def test_html_without_content_type_is_sniffed(mock):
    mock.get(f"{SITE}/", body=HTML_LOOKING, content_type=None)
    record = handle(make_fetcher(), f"{SITE}/")
    assert (record["content_type"], record["title"], record["links"]) == (None, "no", [f"{SITE}/x"])


def test_xhtml_content_type_is_parsed(mock):
    mock.get(f"{SITE}/", body=HTML_LOOKING, content_type="application/xhtml+xml")
    record = handle(make_fetcher(), f"{SITE}/")
    assert (record["content_type"], record["title"]) == ("application/xhtml+xml", "no")


# -- parse callbacks ------------------------------------------------------------


def test_parse_callback_result_is_merged_into_fields(mock):
    mock.get(f"{SITE}/", body=PAGE_HTML.encode("utf-8"), content_type="text/html; charset=utf-8")
    record = handle(make_fetcher(select={"prices": "p.price"}, parse=add_headings), f"{SITE}/")
    assert record["ok"] is True
    assert record["fields"] == {
        "prices": ["2 \u20ac", "3 \u20ac"],
        "headings": ["Menu"],
        "seen_url": f"{SITE}/",
    }


def test_parse_callback_returning_none_changes_nothing(mock):
    mock.get(f"{SITE}/", body=PAGE_HTML.encode("utf-8"), content_type="text/html; charset=utf-8")
    record = handle(make_fetcher(select={"h": "h1"}, parse=returns_none), f"{SITE}/")
    assert (record["ok"], record["fields"]) == (True, {"h": ["Menu"]})


@pytest.mark.parametrize("callback", [raises, returns_set, returns_list])
def test_parse_callback_failure_is_a_parse_error(mock, callback):
    mock.get(f"{SITE}/", body=PAGE_HTML.encode("utf-8"), content_type="text/html; charset=utf-8")
    record = handle(make_fetcher(parse=callback), f"{SITE}/")
    assert record["ok"] is False
    assert record["error"].startswith("parse")
    assert record["status"] == 200


def test_parse_callback_error_names_the_exception(mock):
    mock.get(f"{SITE}/", body=PAGE_HTML.encode("utf-8"), content_type="text/html; charset=utf-8")
    record = handle(make_fetcher(parse=raises), f"{SITE}/")
    assert record["error"] == "parse: RuntimeError: callback exploded"


def test_parse_callback_returning_nan_is_a_parse_error(mock):
    mock.get(f"{SITE}/", body=PAGE_HTML.encode("utf-8"), content_type="text/html; charset=utf-8")
    record = handle(make_fetcher(parse=returns_nan), f"{SITE}/")
    assert record["ok"] is False
    assert record["error"].startswith("parse")


def test_parse_callback_not_called_for_non_html(mock):
    mock.get(f"{SITE}/img", body=b"\x89PNG", content_type="image/png")
    record = handle(make_fetcher(parse=raises), f"{SITE}/img")
    assert (record["ok"], record["error"]) == (True, None)


# -- robots.txt tasks -------------------------------------------------------------


def test_robots_task_returns_the_body(mock):
    mock.get(f"{SITE}/robots.txt", body=b"User-agent: *\nDisallow: /private\n", content_type="text/plain")
    result = make_fetcher().handle(Task(1, f"{SITE}/robots.txt", kind=ROBOTS))
    assert result.task.kind == ROBOTS
    assert result.robots_body == b"User-agent: *\nDisallow: /private\n"
    assert result.record["status"] == 200


def test_missing_robots_txt_gives_its_status(mock):
    mock.get(f"{SITE}/robots.txt", status=404)
    result = make_fetcher().handle(Task(1, f"{SITE}/robots.txt", kind=ROBOTS))
    assert (result.record["status"], result.robots_body) == (404, b"")


def test_robots_txt_redirects_are_followed_and_a_long_file_is_cut(mock):
    mock.get(f"{SITE}/robots.txt", status=301, headers={"Location": "http://other.org/robots.txt"})
    mock.get("http://other.org/robots.txt", body=b"Disallow: /x\n" * 100_000, content_type="text/plain")
    result = make_fetcher().handle(Task(1, f"{SITE}/robots.txt", kind=ROBOTS))
    assert (result.record["status"], result.record["error"]) == (200, None)
    assert len(result.robots_body) == 512 * 1024  # RFC 9309 2.5: at least 500 KiB is parsed


def test_page_result_carries_no_robots_text(mock):
    mock.get(f"{SITE}/", body=b"<title>x</title>", content_type="text/html")
    result = make_fetcher().handle(Task(1, f"{SITE}/", kind=PAGE))
    assert result.robots_body is None
