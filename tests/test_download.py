"""scraper.download: one bounded fetch, redirects, retries; HTTP mocked with `responses`."""

from __future__ import annotations

import gzip
import time
from email.utils import formatdate

import pytest
import requests
import responses

from scraper.download import Limits, download, fetch_once, new_session, parse_retry_after

URL = "http://example.com/"
LIMITS = Limits(timeout=5.0, max_bytes=1000, retries=2)


@pytest.fixture
def mock():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def session():
    with new_session("testbot/1.0") as session:
        yield session


def fetch(session, url=URL, limits=LIMITS, in_scope=lambda url: True):
    """download() with a fake sleep; returns the Download and the waits it asked for."""
    waits: list[float] = []
    result = download(session, url, limits, in_scope, sleep=waits.append)
    return result, waits


def test_ok_body(mock, session):
    mock.get(URL, body=b"<html>hello</html>", content_type="text/html; charset=utf-8")
    result, waits = fetch(session)
    assert result.error is None
    assert (result.status, result.final_url, result.body) == (200, URL, b"<html>hello</html>")
    assert result.content_type == "text/html; charset=utf-8"
    assert result.elapsed_ms > 0
    assert waits == []


def test_sends_user_agent(mock, session):
    mock.get(URL, body=b"ok")
    fetch(session)
    assert mock.calls[0].request.headers["User-Agent"] == "testbot/1.0"


def test_gzip_body_is_decompressed(mock, session):
    html = b"<html>" + b"a" * 900 + b"</html>"
    mock.get(URL, body=gzip.compress(html), headers={"Content-Encoding": "gzip"})
    result, _ = fetch(session)
    assert (result.error, result.body) == (None, html)


def test_redirects_are_followed_as_linked_with_final_url(mock, session):
    """Hop targets go on the wire as linked (safe_url_string), not canonicalized."""
    mock.get(URL, status=301, headers={"Location": "/a"})
    mock.get("http://example.com/a", status=302, headers={"Location": "HTTP://Example.com:80/b?y=1&x=2#f"})
    mock.get("http://example.com:80/b?y=1&x=2", status=200, body=b"landed")
    result, _ = fetch(session)
    assert (result.error, result.status, result.body) == (None, 200, b"landed")
    assert result.final_url == "http://example.com:80/b?y=1&x=2"
    assert [call.request.url for call in mock.calls] == [
        URL,
        "http://example.com/a",
        "http://example.com:80/b?y=1&x=2",
    ]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_every_redirect_status_is_followed(mock, session, status):
    mock.get(URL, status=status, headers={"Location": "http://example.com/next"})
    mock.get("http://example.com/next", body=b"ok")
    result, _ = fetch(session)
    assert (result.error, result.final_url) == (None, "http://example.com/next")


def test_redirect_loop_gives_too_many_redirects(mock, session):
    mock.get(URL, status=302, headers={"Location": "http://example.com/other"})
    mock.get("http://example.com/other", status=302, headers={"Location": "/"})
    result, waits = fetch(session)
    assert result.error == "too_many_redirects"
    assert result.body == b""
    assert len(mock.calls) == LIMITS.max_redirects + 1
    assert waits == []


def test_offsite_redirect_is_not_followed(mock, session):
    mock.get(URL, status=301, headers={"Location": "https://evil.org/x"})
    mock.get("https://evil.org/x", body=b"should not be fetched")
    checked: list[str] = []

    def in_scope(url: str) -> bool:
        checked.append(url)
        return url.startswith("http://example.com/")

    result, _ = fetch(session, in_scope=in_scope)
    assert result.error == "offsite_redirect: https://evil.org/x"
    assert result.status == 301
    assert checked == ["https://evil.org/x"]
    assert [call.request.url for call in mock.calls] == [URL]


def test_in_scope_redirect_is_followed(mock, session):
    mock.get(URL, status=301, headers={"Location": "http://www.example.com/"})
    mock.get("http://www.example.com/", body=b"www")
    result, _ = fetch(session, in_scope=lambda url: "example.com" in url)
    assert (result.error, result.final_url, result.body) == (None, "http://www.example.com/", b"www")


def test_redirect_to_a_non_http_url_is_invalid_url(mock, session):
    mock.get(URL, status=302, headers={"Location": "mailto:someone@example.com"})
    result, _ = fetch(session)
    assert result.error == "invalid_url: redirect to 'mailto:someone@example.com'"
    assert len(mock.calls) == 1


def test_redirect_to_a_port_out_of_range_is_invalid_url(mock, session):
    mock.get(URL, status=302, headers={"Location": "http://example.com:99999/"})
    result, _ = fetch(session)
    assert result.error.startswith("invalid_url")
    assert result.status == 302


def test_redirect_to_a_broken_ipv6_url_is_invalid_url(mock, session):
    mock.get(URL, status=302, headers={"Location": "http://[::1"})
    result, _ = fetch(session)
    assert result.error.startswith("invalid_url")


def test_404_is_an_error_and_not_retried(mock, session):
    mock.get(URL, status=404, body=b"not here")
    result, waits = fetch(session)
    assert (result.error, result.status, result.body) == ("http_404", 404, b"")
    assert waits == []
    assert len(mock.calls) == 1


def test_redirect_to_404_keeps_final_url(mock, session):
    mock.get(URL, status=302, headers={"Location": "/gone"})
    mock.get("http://example.com/gone", status=410)
    result, _ = fetch(session)
    assert (result.error, result.status, result.final_url) == ("http_410", 410, "http://example.com/gone")


def test_503_then_200_is_retried(mock, session):
    mock.get(URL, status=503)
    mock.get(URL, status=200, body=b"fine")
    result, waits = fetch(session)
    assert (result.error, result.status, result.body) == (None, 200, b"fine")
    assert len(waits) == 1
    assert 0.5 <= waits[0] <= 1.0  # BACKOFF_BASE plus jitter
    assert len(mock.calls) == 2


def test_429_with_retry_after_seconds(mock, session):
    mock.get(URL, status=429, headers={"Retry-After": "3"})
    mock.get(URL, status=200, body=b"fine")
    result, waits = fetch(session)
    assert (result.error, result.body) == (None, b"fine")
    assert waits == [3.0]


def test_429_with_retry_after_http_date(mock, session):
    mock.get(URL, status=429, headers={"Retry-After": formatdate(time.time() + 30, usegmt=True)})
    mock.get(URL, status=200, body=b"fine")
    result, waits = fetch(session)
    assert result.error is None
    assert len(waits) == 1
    assert 27.0 <= waits[0] <= 30.0


def test_retry_after_above_the_cap_waits_the_cap_and_retries(mock, session):
    mock.get(URL, status=503, headers={"Retry-After": "3600"})
    mock.get(URL, status=200, body=b"back")
    result, waits = fetch(session)
    assert (result.error, result.body, waits, len(mock.calls)) == (None, b"back", [60.0], 2)


def test_retries_exhausted_give_the_last_error(mock, session):
    mock.get(URL, status=500)
    mock.get(URL, status=502)
    mock.get(URL, status=503)
    result, waits = fetch(session)
    assert (result.error, result.status) == ("http_503", 503)
    assert len(waits) == LIMITS.retries
    assert waits[0] < waits[1]  # exponential backoff: 0.5..1.0 then 1.0..1.5
    assert len(mock.calls) == 3


def test_retries_zero_means_one_attempt(mock, session):
    mock.get(URL, status=503)
    result, waits = fetch(session, limits=Limits(timeout=5.0, max_bytes=1000, retries=0))
    assert (result.error, waits, len(mock.calls)) == ("http_503", [], 1)


def test_connection_error(mock, session):
    mock.get(URL, body=requests.ConnectionError("connection refused"))
    result, waits = fetch(session)
    assert result.error.startswith("connection")
    assert "connection refused" in result.error
    assert (result.status, result.final_url, result.body) == (None, None, b"")
    assert len(waits) == LIMITS.retries
    assert len(mock.calls) == 3


def test_connection_error_then_ok(mock, session):
    mock.get(URL, body=requests.ConnectionError("reset"))
    mock.get(URL, body=b"back")
    result, waits = fetch(session)
    assert (result.error, result.body, len(waits)) == (None, b"back", 1)


def test_declared_content_length_above_max_bytes(mock, session):
    mock.get(URL, body=b"x" * 10, headers={"Content-Length": "5000"})
    result, waits = fetch(session)
    assert result.error.startswith("too_large")
    assert result.body == b""
    assert waits == []


def test_body_over_max_bytes(mock, session):
    mock.get(URL, body=b"x" * 1001)
    result, _ = fetch(session)
    assert result.error.startswith("too_large")
    assert result.body == b""


def test_body_of_exactly_max_bytes_is_ok(mock, session):
    mock.get(URL, body=b"x" * 1000)
    result, _ = fetch(session)
    assert (result.error, len(result.body)) == (None, 1000)


def test_decompressed_body_over_max_bytes(mock, session):
    mock.get(URL, body=gzip.compress(b"a" * 5000), headers={"Content-Encoding": "gzip"})
    result, _ = fetch(session)
    assert result.error.startswith("too_large")


def test_body_shorter_than_content_length_is_truncated(mock, session):
    mock.get(URL, body=b"x" * 10, headers={"Content-Length": "50"})
    result, _ = fetch(session)
    assert result.error.startswith("truncated")
    assert result.body == b""


def test_fetch_once_does_not_retry(mock, session):
    mock.get(URL, status=503)
    result = fetch_once(session, URL, LIMITS, lambda url: True)
    assert (result.error, result.status, len(mock.calls)) == ("http_503", 503, 1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 10.0),  # now is 10 s before
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past
        ("garbage", None),
        ("-5", None),
        ("1.5", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value, expected):
    now = 1445412470.0  # Wed, 21 Oct 2015 07:27:50 GMT
    assert parse_retry_after(value, now=now) == expected
