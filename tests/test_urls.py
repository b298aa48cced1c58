"""scraper.urls: canonical form, http(s) checks, scope and link resolution."""

from __future__ import annotations

import pytest

from scraper.frontier import Scope
from scraper.urls import (
    LinkResolver,
    canonicalize,
    host_of,
    is_http_url,
    origin_of,
    resolve_link,
    robots_url,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # scheme and host lower-cased, path case kept
        ("HTTP://Example.COM/Path/To", "http://example.com/Path/To"),
        ("HTTPS://WWW.Example.Com", "https://www.example.com/"),
        # default ports dropped, other ports kept
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("http://example.com:8080/a", "http://example.com:8080/a"),
        ("https://example.com:80/a", "https://example.com:80/a"),
        ("http://example.com:443/a", "http://example.com:443/a"),
        ("http://user:pw@Example.com:80/", "http://user:pw@example.com/"),
        # fragment dropped
        ("http://example.com/a#section", "http://example.com/a"),
        ("http://example.com/#", "http://example.com/"),
        # query arguments sorted
        ("http://example.com/?b=2&a=1", "http://example.com/?a=1&b=2"),
        ("http://example.com/?a=1&a=0", "http://example.com/?a=0&a=1"),
        ("http://example.com/p?z=1&y=2#f", "http://example.com/p?y=2&z=1"),
        # percent-encoding normalized
        ("http://example.com/%7Euser", "http://example.com/~user"),
        ("http://example.com/%41", "http://example.com/A"),
        ("http://example.com/a%2fb", "http://example.com/a%2Fb"),
        ("http://example.com/%e2%82%ac", "http://example.com/%E2%82%AC"),
        ("http://example.com/\u20ac", "http://example.com/%E2%82%AC"),
        ("http://example.com/a b", "http://example.com/a%20b"),
        # IPv6 hosts
        ("http://[2001:DB8::1]:80/a", "http://[2001:db8::1]/a"),
        ("https://[::1]:443/", "https://[::1]/"),
        ("http://[2001:db8::1]:8080/a", "http://[2001:db8::1]:8080/a"),
        # surrounding whitespace
        ("  http://example.com/x \n", "http://example.com/x"),
    ],
)
def test_canonicalize(url, expected):
    assert canonicalize(url) == expected


def test_canonicalize_variants_are_equal():
    variants = [
        "http://example.com/p?b=2&a=1",
        "HTTP://EXAMPLE.COM:80/p?a=1&b=2#top",
        "http://Example.com/p?a=1&b=2#other",
    ]
    assert {canonicalize(url) for url in variants} == {"http://example.com/p?a=1&b=2"}


def test_canonicalize_keeps_path_case_distinct():
    assert canonicalize("http://example.com/A") != canonicalize("http://example.com/a")


def test_canonicalize_is_idempotent():
    once = canonicalize("HTTPS://Example.com:443/%7ex/Y?b=%20&a=1#f")
    assert canonicalize(once) == once


@pytest.mark.parametrize("url", ["http://example.com:99999/", "http://[::1/"])
def test_canonicalize_unparsable_raises_value_error(url):
    with pytest.raises(ValueError):
        canonicalize(url)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://example.com", True),
        ("https://example.com/x?y=1", True),
        ("HTTP://EXAMPLE.COM/", True),
        (" http://example.com/ ", True),
        ("http://[::1]:8080/", True),
        ("ftp://example.com/", False),
        ("mailto:someone@example.com", False),
        ("javascript:void(0)", False),
        ("/relative/path", False),
        ("example.com/path", False),
        ("http://", False),
        ("http://[::1", False),
        ("", False),
    ],
)
def test_is_http_url(url, expected):
    assert is_http_url(url) is expected


@pytest.mark.parametrize(
    ("host", "allowed", "expected"),
    [
        ("example.com", ["example.com"], True),
        ("www.example.com", ["example.com"], True),
        ("a.b.example.com", ["example.com"], True),
        ("notexample.com", ["example.com"], False),
        ("example.com.evil.org", ["example.com"], False),
        ("example.org", ["example.com"], False),
        ("example.com", ["www.example.com"], False),
        ("other.org", ["example.com", "other.org"], True),
        ("example.com", [], False),
        ("::1", ["::1"], True),
    ],
)
def test_scope_is_the_allowed_hosts_and_their_subdomains(host, allowed, expected):
    assert (host in Scope(tuple(allowed))) is expected


def test_host_origin_and_robots_helpers():
    assert host_of("http://Ex.COM:81/x") == "ex.com"
    assert host_of("http://[2001:DB8::1]:8080/") == "2001:db8::1"
    assert origin_of("https://example.com:8443/a/b?c") == "https://example.com:8443"
    assert robots_url("https://example.com:8443/x/y?z=1#f") == "https://example.com:8443/robots.txt"


BASE = "http://example.com/dir/page?x=1"


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("other", "http://example.com/dir/other"),
        ("../up", "http://example.com/up"),
        ("/root?b=2&a=1#frag", "http://example.com/root?a=1&b=2"),
        ("?q=1", "http://example.com/dir/page?q=1"),
        (".", "http://example.com/dir/"),
        ("  /spaced  ", "http://example.com/spaced"),
        ("//Other.COM/p", "http://other.com/p"),
        ("https://Other.com:443/p", "https://other.com/p"),
        ("http://example.com:8080/p", "http://example.com:8080/p"),
        ("mailto:someone@example.com", None),
        ("MAILTO:someone@example.com", None),
        ("javascript:void(0)", None),
        (" JavaScript:alert(1)", None),
        ("tel:+123", None),
        ("data:text/html,hi", None),
        ("ftp://example.com/file", None),
        ("#top", "http://example.com/dir/page?x=1"),  # the page itself, as a browser resolves it
        ("#", "http://example.com/dir/page?x=1"),
        ("", "http://example.com/dir/page?x=1"),
        ("   ", "http://example.com/dir/page?x=1"),
        ("http://[::1", None),
        ("http://example.com:99999/", None),
    ],
)
def test_resolve_link(href, expected):
    assert resolve_link(BASE, href) == expected


def test_resolve_link_protocol_relative_keeps_base_scheme():
    assert resolve_link("https://example.com/", "//cdn.example.org/x.js") == "https://cdn.example.org/x.js"


BASES = [
    "http://example.com/dir/page.html",
    "http://example.com/dir/",
    "http://example.com",
    "https://example.com:8443/a//b/./c",
    "http://EXAMPLE.com/a",  # not canonical: every link takes the slow path
    "http://example.com:80/a/b",
    "http://example.com/a%20b/c",
    "http://example.com/a?q=1",
]
HREFS = [
    "item.html", "./item.html", "../item.html", "../../../../up.html", "/abs/path", "sub/dir/",
    "a//b", ".", "..", "../.", "x/..", "#frag", "item.html#frag", "/#", "", "  spaced.html  ",
    "?q=1", "item.html?b=2&a=1", "//other.org/x", "http://example.com/a/../b", "HTTP://Example.com/x",
    "mailto:a@b.c", "javascript:void(0)", "caf\u00e9.html", "a b.html", "%7Euser/", "~user/",
    "http://[::1", "http://example.com:bad/", "\tTabbed.html", "a;b=c",
]


@pytest.mark.parametrize("base", BASES)
def test_link_resolver_gives_exactly_what_resolve_link_gives(base):
    resolver = LinkResolver(base)
    for href in HREFS:
        assert resolver.resolve(href) == resolve_link(base, href), href


def test_link_resolver_fast_path_covers_plain_links():
    resolver = LinkResolver("http://example.com/dir/page.html")
    assert resolver.origin == "http://example.com"  # a plain, canonical base: the fast path is on
    assert resolver.resolve("../a/./b/../c.html#x") == "http://example.com/a/c.html"
    assert resolver.resolve("../../../../x") == "http://example.com/x"
    assert LinkResolver("http://EXAMPLE.com/").origin is None
