"""scraper.download: one bounded fetch, redirects, retries; HTTP mocked with `responses`."""

from __future__ import annotations

import gzip
import socket
import time
from email.utils import formatdate

import brotli
import pytest
import requests
import responses
from hostile_server import HostileServer, TrickleServer, zstd

from scraper import deadline
from scraper.download import (
    MAX_RETRY_AFTER,
    Download,
    Limits,
    download,
    fetch_once,
    parse_retry_after,
    retry_delay,
)
from scraper.session import new_session

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


def test_statuses_outside_retry_statuses_are_not_retried(mock, session):
    """Pages leave 429 and 503 to the scheduler: returned at once, with their Retry-After."""
    mock.get(URL, status=503, headers={"Retry-After": "7"})
    limits = Limits(timeout=5.0, max_bytes=1000, retries=2, retry_statuses=frozenset({500, 502}))
    result, waits = fetch(session, limits=limits)
    assert (result.error, result.retry_after, waits, len(mock.calls)) == ("http_503", 7.0, [], 1)


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


COMPRESS = {"gzip": gzip.compress, "br": brotli.compress, "zstd": zstd.compress}


@pytest.mark.parametrize("encoding", sorted(COMPRESS))
def test_decompressed_body_over_max_bytes(mock, session, encoding):
    mock.get(URL, body=COMPRESS[encoding](b"a" * 5000), headers={"Content-Encoding": encoding})
    result, _ = fetch(session)
    assert result.error.startswith("too_large")


@pytest.mark.parametrize("encoding", ["br", "zstd"])
def test_br_and_zstd_bodies_are_decompressed(mock, session, encoding):
    html = b"<html><title>packed</title>" + b"a" * 900 + b"</html>"
    mock.get(URL, body=COMPRESS[encoding](html), headers={"Content-Encoding": encoding})
    result, _ = fetch(session)
    assert (result.error, result.body) == (None, html)


def test_accept_encoding_names_br_and_zstd(mock, session):
    mock.get(URL, body=b"ok")
    fetch(session)
    offered = mock.calls[0].request.headers["Accept-Encoding"].replace(" ", "").split(",")
    assert {"gzip", "br", "zstd"} <= set(offered)


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


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(3.0, 3.0), (0.0, 0.0), (MAX_RETRY_AFTER, MAX_RETRY_AFTER), (3600.0, MAX_RETRY_AFTER)],
)
def test_retry_delay_cuts_a_long_retry_after_to_the_cap(retry_after, expected):
    result = Download(url=URL, status=503, error="http_503", retry_after=retry_after)
    assert retry_delay(result, attempt=0, retries=2) == expected
    assert retry_delay(result, attempt=2, retries=2) is None  # retries used up
    assert retry_delay(result, attempt=0, retries=2, statuses=frozenset({500})) is None


# -- max_redirects=0: the redirect is returned, its target as linked -------------------

NO_FOLLOW = Limits(timeout=5.0, max_bytes=1000, retries=2, max_redirects=0)


@pytest.mark.parametrize(
    ("location", "redirect_to"),
    [
        (b"/a b/\xc3\xbc?u=https://x.y&b=2&a=1", "http://example.com/a%20b/%C3%BC?u=https://x.y&b=2&a=1"),
        (b"  HTTP://Other.example:80/p?z=1&a=%41#frag ", "http://other.example:80/p?z=1&a=%41"),
        (b"next?q=caf\xe9 au lait", "http://example.com/next?q=caf%E9%20au%20lait"),  # not UTF-8
    ],
)
def test_no_follow_returns_the_redirect_as_linked(mock, session, location, redirect_to):
    # http.client hands over a header's bytes decoded as Latin-1: so does this mock.
    mock.get(URL, status=302, headers={"Location": location.decode("latin-1")}, body=b"moved")
    result, waits = fetch(session, limits=NO_FOLLOW, in_scope=lambda url: False)
    assert (result.status, result.error, result.body, waits) == (302, None, b"", [])
    assert (result.final_url, result.redirect_to) == (URL, redirect_to)
    assert len(mock.calls) == 1


def test_no_follow_non_http_target_is_invalid_url(mock, session):
    mock.get(URL, status=301, headers={"Location": "javascript:alert(1)"})
    result, _ = fetch(session, limits=NO_FOLLOW)
    assert result.error.startswith("invalid_url") and result.redirect_to is None


def test_no_follow_plain_page_has_no_redirect_to(mock, session):
    mock.get(URL, body=b"here")
    result, _ = fetch(session, limits=NO_FOLLOW)
    assert (result.error, result.body, result.redirect_to) == (None, b"here", None)


def test_followed_hop_is_requested_as_linked(mock, session):
    mock.get(URL, status=301, headers={"Location": "/p?u=https://x.y&b=1&a=2"})
    mock.get("http://example.com/p?u=https://x.y&b=1&a=2", body=b"there")
    result, _ = fetch(session)
    assert (result.error, result.final_url) == (None, "http://example.com/p?u=https://x.y&b=1&a=2")
    assert mock.calls[1].request.url == "http://example.com/p?u=https://x.y&b=1&a=2"


# -- cut_at_max: robots.txt is cut, not dropped -----------------------------------------

CUT = Limits(timeout=5.0, max_bytes=1000, retries=2, cut_at_max=True)


@pytest.mark.parametrize("encoding", [None, "gzip"])
def test_cut_at_max_keeps_the_first_max_bytes(mock, session, encoding):
    body = bytes(range(256)) * 12  # 3072 bytes: Content-Length above max_bytes too
    headers = {"Content-Encoding": encoding} if encoding else {}
    mock.get(URL, body=gzip.compress(body) if encoding else body, headers=headers)
    result, _ = fetch(session, limits=CUT)
    assert (result.error, result.cut, result.body) == (None, True, body[:1000])


def test_cut_at_max_body_of_exactly_max_bytes_is_not_cut(mock, session):
    mock.get(URL, body=b"x" * 1000)
    result, _ = fetch(session, limits=CUT)
    assert (result.error, result.cut, len(result.body)) == (None, False, 1000)


# -- the total deadline, against real sockets on 127.0.0.1 --------------------------------

DEADLINE = Limits(timeout=1.0, max_bytes=100_000, retries=2)
SLACK = 1.5  # seconds past the deadline allowed on a busy machine


def timed_fetch(session, url, limits=DEADLINE):
    started = time.monotonic()
    result = download(session, url, limits, sleep=lambda seconds: None)
    return result, time.monotonic() - started


def live_pooled(session, url):
    """Connections waiting in the session's pools with an open socket."""
    pools = session.get_adapter(url).poolmanager.pools
    return [conn for key in pools.keys() for conn in list(pools[key].pool.queue)  # noqa: SIM118 (no __iter__)
            if conn is not None and conn.sock is not None]  # fmt: skip


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("path", "error"),
    [("/trickle-status", "timeout: headers"), ("/trickle-headers", "timeout: headers"),
     ("/trickle-body", "timeout: body"), ("/trickle", "timeout: body")],
)  # fmt: skip
def test_trickling_server_is_cut_at_the_deadline(session, path, error):
    with HostileServer() as server:
        result, took = timed_fetch(session, server.url(path))
        assert (result.error, result.body) == (error, b"")
        assert took < DEADLINE.timeout + SLACK
        assert server.hits[path] == 1  # the deadline was spent: no retry
        assert live_pooled(session, server.url("/ok")) == []  # its connection was dropped
        ok, _ = timed_fetch(session, server.url("/ok"))  # and the session goes on
        assert ok.error is None and len(live_pooled(session, server.url("/ok"))) == 1


@pytest.mark.timeout(30)
def test_kept_alive_connection_is_cut_at_the_deadline_of_its_next_fetch(session):
    with HostileServer() as server:
        for _ in range(3):
            assert timed_fetch(session, server.url("/ok"))[0].error is None
        result, took = timed_fetch(session, server.url("/trickle-headers"))
        assert (result.error, len(server.httpd.clients)) == ("timeout: headers", 1)  # one connection
        assert took < DEADLINE.timeout + SLACK


@pytest.mark.timeout(30)
def test_trickled_tls_handshake_is_cut_at_the_deadline(session):
    handshake_record = b"\x16\x03\x03\x40\x00"  # a 16 KiB TLS handshake record, then 1 byte per 0.3 s
    with TrickleServer(prefix=handshake_record) as server:
        result, took = timed_fetch(session, f"https://127.0.0.1:{server.port}/")
    assert result.error == "timeout: tls"
    assert took < DEADLINE.timeout + SLACK


@pytest.mark.timeout(30)
def test_slow_name_resolution_ends_in_timeout(session, monkeypatch):
    """getaddrinfo has no timeout: a resolver that takes longer than the deadline is not waited for."""
    real_getaddrinfo = socket.getaddrinfo

    def slow_getaddrinfo(host, *args, **kwargs):
        assert host in ("localhost", "127.0.0.1")  # never a real DNS lookup
        if host == "localhost":
            time.sleep(DEADLINE.timeout + 2)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow_getaddrinfo)
    monkeypatch.setattr(deadline, "_resolved", {})
    result, took = timed_fetch(session, "http://localhost:9/")
    assert (result.error, result.status) == ("timeout: resolve", None)
    assert took < DEADLINE.timeout + SLACK


@pytest.mark.timeout(30)
def test_resolved_name_and_kept_alive_connection_are_reused(session, monkeypatch):
    lookups: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def counting_getaddrinfo(host, *args, **kwargs):
        lookups.append(host)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", counting_getaddrinfo)
    monkeypatch.setattr(deadline, "_resolved", {})
    with HostileServer() as server, new_session("other/1.0") as other:
        url = server.url("/ok").replace("127.0.0.1", "localhost")
        results = [timed_fetch(one, url)[0] for one in (session, session, other, other)]
        assert [r.error for r in results] == [None] * 4
        assert len(server.httpd.clients) == 2  # one connection per session
    assert lookups.count("localhost") == 1  # the second session's connection used the cached answer


@pytest.mark.timeout(30)
def test_redirects_handed_back_and_error_pages_keep_their_connection(session):
    with HostileServer() as server:
        outcomes = [timed_fetch(session, server.url(path), limits=NO_FOLLOW)[0]
                    for path in ["/redirect", "/missing", "/redirect", "/ok", "/missing"]]  # fmt: skip
        assert [(r.status, r.error, r.redirect_to) for r in outcomes[:2]] == [
            (301, None, server.url("/ok")), (404, "http_404", None)]  # fmt: skip
        assert len(server.httpd.clients) == 1  # one connection for all


# -- issue 15: cookies and credentials per request ------------------------------------------


def _sent_headers(session: requests.Session, url: str) -> requests.structures.CaseInsensitiveDict:
    return session.prepare_request(requests.Request("GET", url)).headers


def test_host_only_cookies_stay_on_their_host_and_dotted_ones_reach_subdomains():
    """Without the DomainStrictNonDomain policy, http.cookiejar sends a host-only
    cookie to every subdomain too."""
    session = new_session("bot/1", cookies=[("example.org", "/", "host", "1", False),
                                            (".shared.org", "/", "dot", "2", False),
                                            ("example.org", "/", "tls", "3", True)])  # fmt: skip
    assert _sent_headers(session, "http://example.org/x").get("Cookie") == "host=1"
    assert _sent_headers(session, "https://example.org/x").get("Cookie") in ("host=1; tls=3", "tls=3; host=1")
    assert "Cookie" not in _sent_headers(session, "http://sub.example.org/x")
    assert _sent_headers(session, "http://a.shared.org/").get("Cookie") == "dot=2"


def test_credentials_go_to_the_private_origins_only():
    session = new_session("bot/1", headers=[("X-A", "1"), ("Authorization", "Bearer t")], auth="u:p",
                          private_origins=["http://example.org"])  # fmt: skip
    mine = _sent_headers(session, "http://EXAMPLE.org:80/page")
    assert mine["Authorization"] == "Basic dTpw" and mine["X-A"] == "1"  # --auth wins over -H
    for other in ("https://example.org/", "http://example.org:8080/", "http://evil.org/"):
        headers = _sent_headers(session, other)
        assert "Authorization" not in headers and headers["X-A"] == "1", other
    assert "u:p" not in repr(session.auth) and "dTpw" not in repr(session.auth)
# -- --since and --warc: conditional requests, validators, the body as received ------------

ARCHIVE = Limits(timeout=5.0, max_bytes=1000, retries=0, archive=True)


def test_validators_are_sent_and_a_304_that_answers_them_is_no_error(mock, session):
    mock.get(URL, status=304, headers={"ETag": '"v1"'})
    result = download(session, URL, LIMITS, headers={"If-None-Match": '"v1"'})
    assert mock.calls[0].request.headers["If-None-Match"] == '"v1"'
    assert (result.status, result.error, result.body, result.etag) == (304, None, b"", '"v1"')


def test_a_304_to_a_plain_request_is_still_an_error(mock, session):
    mock.get(URL, status=304)
    result, _ = fetch(session)
    assert (result.status, result.error) == (304, "http_304")


def test_etag_and_last_modified_are_read(mock, session):
    mock.get(URL, body=b"x", headers={"ETag": 'W/"a"', "Last-Modified": "Mon, 30 Nov 2026 10:00:00 GMT"})
    result, _ = fetch(session)
    assert (result.etag, result.last_modified) == ('W/"a"', "Mon, 30 Nov 2026 10:00:00 GMT")


@pytest.mark.parametrize("encoding", sorted(COMPRESS))
def test_archive_keeps_the_body_as_received_and_decodes_it(mock, session, encoding):
    html = b"<html>" + b"a" * 900 + b"</html>"
    mock.get(URL, body=COMPRESS[encoding](html), headers={"Content-Encoding": encoding})
    result = download(session, URL, ARCHIVE)
    assert (result.error, result.body) == (None, html)
    [exchange] = result.exchanges
    assert (exchange.body, exchange.truncated) == (COMPRESS[encoding](html), False)
    assert exchange.status_line == "200 OK"
    assert ("Content-Encoding", encoding) in exchange.response_headers


@pytest.mark.parametrize("encoding", sorted(COMPRESS))
def test_archive_still_bounds_a_decompression_bomb(mock, session, encoding):
    mock.get(URL, body=COMPRESS[encoding](b"a" * 5_000_000), headers={"Content-Encoding": encoding})
    result = download(session, URL, Limits(timeout=5.0, max_bytes=20_000, retries=0, archive=True))
    assert result.error.startswith("too_large") and result.body == b""
    assert not result.exchanges[0].truncated  # all of the small bomb was received


def test_archive_marks_a_body_cut_at_max_bytes(mock, session):
    mock.get(URL, body=b"x" * 5000)
    result = download(session, URL, ARCHIVE)
    assert result.error.startswith("too_large")
    assert result.exchanges[0].truncated and len(result.exchanges[0].body) <= 1000


def test_archive_keeps_every_hop_and_attempt(mock, session):
    sized = {"auto_calculate_content_length": True}
    mock.get(URL, status=301, headers={"Location": "/next"}, body=b"moved", **sized)
    mock.get(URL + "next", status=503, body=b"busy", **sized)
    result = download(session, URL, Limits(timeout=5.0, max_bytes=1000, retries=1, archive=True),
                      sleep=lambda s: None)  # fmt: skip
    assert [(e.url, e.status_line.split()[0], e.body) for e in result.exchanges] == [
        (URL, "301", b"moved"), (URL + "next", "503", b"busy"), (URL, "301", b"moved"),
        (URL + "next", "503", b"busy")]  # fmt: skip
    assert ("User-Agent", "testbot/1.0") in result.exchanges[0].request_headers
