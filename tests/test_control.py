"""Crawl control (issue 15), end to end against real local servers whose request
logs say what was requested and with which headers: --sitemaps, --allow/--deny,
-H/--cookie/--cookies/--auth, and the --select forms."""

from __future__ import annotations

import base64
import gzip
import tracemalloc
import zlib
from collections.abc import Callable

from siteserver import SiteServer

import scraper

WORKERS = 2


def page(title: str, *hrefs: str) -> bytes:
    links = "".join(f'<li><a href="{href}">{href}</a></li>' for href in hrefs)
    head = f"<html><head><title>{title}</title></head>"
    return f"{head}<body><h1>{title}</h1><ul>{links}</ul></body></html>".encode()


def urlset(*locs: str) -> bytes:
    entries = "".join(f"<url><loc>{loc}</loc></url>" for loc in locs)
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/'
            f'sitemap/0.9">{entries}</urlset>').encode()  # fmt: skip


def sitemap_index(*locs: str) -> bytes:
    entries = "".join(f"<sitemap><loc>{loc}</loc></sitemap>" for loc in locs)
    return (f'<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            f"{entries}</sitemapindex>").encode()  # fmt: skip


def by_url(records: list[dict]) -> dict[str, dict]:
    return {record["url"]: record for record in records}


# -- sitemaps (SPEC 3.2) ---------------------------------------------------------------------


def test_sitemap_index_and_gzip_urlset_go_through_scope_filters_and_robots(
    serve: Callable[..., SiteServer], backend, run_cli, write_seeds
):
    """Without the feature (no --sitemaps) only the seed is crawled; with the
    relative Sitemap: line left unresolved, or .xml.gz not gunzipped, no entry
    is; with the filters skipped, /denied/ and /private/ are requested."""
    server = serve(site={})
    origin = server.origin
    offsite = f"http://localhost:{server.port}/offsite.html"  # another host name: out of scope
    server.site.update({
        "/robots.txt": b"User-agent: *\nDisallow: /private/\nSitemap: /maps/index.xml\n",
        "/": page("Home"),  # links to nothing: every other page comes from the sitemaps
        "/maps/index.xml": sitemap_index(f"{origin}/maps/pages.xml.gz", "/maps/more.xml"),
        "/maps/pages.xml.gz": gzip.compress(urlset(
            f"{origin}/a.html", f"{origin}/b.html?x=1&amp;y=2", f"{origin}/private/p.html",
            f"{origin}/denied/d.html", offsite, "mailto:someone@example.org")),
        "/maps/more.xml": urlset(f"{origin}/c.html", f"{origin}/a.html"),
        **{path: page(path) for path in ("/a.html", "/b.html?x=1&y=2", "/c.html", "/private/p.html",
                                         "/denied/d.html", "/offsite.html")},
    })  # fmt: skip
    server.content_types.update({
        "/maps/pages.xml.gz": "application/gzip", "/maps/index.xml": "application/xml",
        "/maps/more.xml": "text/xml",
    })  # fmt: skip
    result = run_cli(write_seeds(server.url("/")), "--sitemaps", "--deny", "/denied/", "-w", str(WORKERS),
                     *backend.cli_args, "-O", "out.jsonl")  # fmt: skip
    assert result.rc == 0, result
    records = by_url(result.records)
    assert set(records) == {f"{origin}/", f"{origin}/a.html", f"{origin}/b.html?x=1&y=2", f"{origin}/c.html"}
    assert all(record["ok"] and record["depth"] == 0 for record in records.values()), records
    assert records[f"{origin}/b.html?x=1&y=2"]["parent"] == f"{origin}/maps/pages.xml.gz"
    assert records[f"{origin}/c.html"]["parent"] == f"{origin}/maps/more.xml"
    assert records[f"{origin}/"]["parent"] is None
    paths = server.paths()
    for never in ("/private/p.html", "/denied/d.html", "/offsite.html"):
        assert never not in paths, paths
    for path in ("/robots.txt", "/maps/index.xml", "/maps/pages.xml.gz", "/maps/more.xml", "/a.html"):
        assert paths.count(path) == 1, (path, paths)  # each sitemap read once, a.html listed twice
    assert "sitemaps: 8 URLs given" in result.stderr, result.stderr  # 6 + 2, scheduled or not


def test_sitemap_xml_is_the_fallback_and_entities_stay_off(serve: Callable[..., SiteServer], tmp_path):
    """Without the fallback nothing but the seed is crawled; with entities
    resolved (lxml's resolve_entities=True) the local file's secret is sent
    to the server in a requested URL (XXE)."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET", encoding="utf-8")
    server = serve(site={})
    server.site.update({
        "/robots.txt": b"User-agent: *\nDisallow:\n",
        "/": page("Home"),
        "/sitemap.xml": (b'<?xml version="1.0"?><!DOCTYPE urlset [<!ENTITY s SYSTEM "'
                         + secret.as_uri().encode() + b'">]><urlset><url><loc>'
                         + server.url("/e.html").encode() + b"?q=&s;</loc></url><url><loc>"
                         + server.url("/f.html").encode() + b"</loc></url></urlset>"),
        "/f.html": page("F"),
    })  # fmt: skip
    records = scraper.crawl([server.url("/")], sitemaps=True, workers=1, backend="thread")
    assert {record["url"] for record in records} >= {server.url("/"), server.url("/f.html")}
    assert server.count("/sitemap.xml") == 1
    assert not any("TOPSECRET" in path for path in server.paths()), server.paths()


def test_a_gzip_bomb_sitemap_is_cut_at_max_bytes_with_flat_memory(serve: Callable[..., SiteServer]):
    """Read whole (gzip.decompress), the bomb costs 256 MiB; tracemalloc sees
    the peak stay near --max-bytes instead."""
    inflated = 256 * 1024 * 1024
    deflater = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"<url><loc>http://127.0.0.1/x</loc></url>" * 25_000  # ~1 MiB
    bomb = b"".join(deflater.compress(chunk) for _ in range(inflated // len(chunk))) + deflater.flush()
    assert len(bomb) < 2 * 1024 * 1024
    server = serve(site={"/robots.txt": b"Sitemap: /bomb.xml.gz\n", "/": page("Home"), "/bomb.xml.gz": bomb},
                   content_types={"/bomb.xml.gz": "application/gzip"})  # fmt: skip
    tracemalloc.start()
    try:
        records = scraper.crawl([server.url("/")], sitemaps=True, workers=1, backend="thread",
                                max_bytes=4 * 1024 * 1024)  # fmt: skip
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [record["url"] for record in records] == [server.url("/")]
    assert server.count("/bomb.xml.gz") == 1
    assert peak < 40 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB"


# -- --allow / --deny ----------------------------------------------------------------------------


def test_allow_and_deny_on_links_and_redirects(serve: Callable[..., SiteServer], backend):
    """Without the filter on redirect targets (Scrapy's miss, scrapy/scrapy#1744)
    /skip/3.html is requested through /go-skip; without filters on links,
    /skip/2.html and /keep/skip/5.html are."""
    site = {
        "/robots.txt": b"",
        "/": page("Home", "/keep/1.html", "/skip/2.html", "/keep/go-skip", "/keep/go-keep",
                  "/keep/skip/5.html", "/other.html"),
        **{path: page(path) for path in ("/keep/1.html", "/skip/2.html", "/skip/3.html", "/keep/4.html",
                                         "/keep/skip/5.html", "/other.html")},
    }  # fmt: skip
    server = serve(site=site, redirects={"/keep/go-skip": "/skip/3.html", "/keep/go-keep": "/keep/4.html"})
    seed = server.url("/")
    records = by_url(scraper.crawl([seed], depth=1, allow=[r"/keep/"], deny=[r"/skip/"], workers=WORKERS,
                                   **backend.kwargs))  # fmt: skip
    assert set(records) == {seed, server.url("/keep/1.html"), server.url("/keep/go-skip"),
                            server.url("/keep/go-keep")}  # the seed is exempt from --allow
    assert records[server.url("/keep/go-skip")]["error"].startswith("filtered_redirect: ")
    assert records[server.url("/keep/go-keep")]["ok"]
    assert records[server.url("/keep/go-keep")]["final_url"] == server.url("/keep/4.html")
    paths = server.paths()
    for never in ("/skip/2.html", "/skip/3.html", "/keep/skip/5.html", "/other.html"):
        assert never not in paths, paths  # deny wins over allow; no --allow match: not followed


# -- headers, cookies, auth ---------------------------------------------------------------------


def test_headers_cookies_and_auth_go_only_where_they_belong(
    serve: Callable[..., SiteServer], backend, run_cli, write_seeds, tmp_path
):
    """Without PrivateHeaders' per-request check (auth on every request of the
    session), Authorization reaches the other origin by the redirect and by the
    link; before issue 15 the options did not exist (exit 2)."""
    other = serve(site={"/robots.txt": b"", "/landing.html": page("Landing"), "/linked.html": page("Linked")})
    far = serve(site={"/robots.txt": b"", "/far.html": page("Far"), "/far-landing.html": page("Far landing")})
    far_origin = f"http://localhost:{far.port}"  # another host name (allowed with --allow-domain)
    seed_site = {
        "/robots.txt": b"User-agent: *\nDisallow:\n",
        "/": page("Home", "/a.html", other.url("/linked.html"), f"{far_origin}/far.html", "/to-other",
                  "/to-far"),
        "/a.html": page("A"),
    }  # fmt: skip
    server = serve(site=seed_site, redirects={"/to-other": other.url("/landing.html"),
                                              "/to-far": f"{far_origin}/far-landing.html"})  # fmt: skip
    cookie_file = tmp_path / "cookies.txt"
    cookie_file.write_text("# Netscape HTTP Cookie File\n"
                           "127.0.0.1\tFALSE\t/\tFALSE\t0\tfromfile\tf1\n"
                           "localhost\tFALSE\t/nowhere/\tFALSE\t0\tpathonly\tp1\n",
                           encoding="utf-8")  # fmt: skip
    password = "s3cret-pa:ss"
    result = run_cli(write_seeds(server.url("/")), "--depth", "1", "-w", str(WORKERS), *backend.cli_args,
                     "--allow-domain", "localhost", "-H", "X-Crawl: e2e", "--cookie", "sid=42",
                     "--cookies", str(cookie_file), "--auth", f"me:{password}",
                     "-O", "out.jsonl", "-vv")  # fmt: skip
    assert result.rc == 0, result
    assert len(result.records) == 6, result  # /, /a.html, 2 links and 2 redirects to the other servers
    assert all(record["ok"] for record in result.records), result.records
    basic = "Basic " + base64.b64encode(f"me:{password}".encode()).decode()
    for request in server.requests:  # every request to the seed's origin, robots.txt included
        assert request.headers.get("Authorization") == basic, request
        assert request.headers.get("X-Crawl") == "e2e", request
        assert sorted(request.headers.get("Cookie", "").split("; ")) == ["fromfile=f1", "sid=42"], request
    assert {"/landing.html", "/linked.html"} <= set(other.paths())  # by the redirect and by the link
    for request in other.requests:  # the seed's host, another port: another origin
        assert "Authorization" not in request.headers, request
        assert request.headers.get("X-Crawl") == "e2e", request
        assert sorted(request.headers.get("Cookie", "").split("; ")) == ["fromfile=f1", "sid=42"], request
    assert {"/far.html", "/far-landing.html"} <= set(far.paths())
    for request in far.requests:  # another host: neither credentials nor the seed host's cookies
        assert "Authorization" not in request.headers and "Cookie" not in request.headers, request
        assert request.headers.get("X-Crawl") == "e2e", request
    output = (result.stdout + result.stderr + "".join(map(str, result.records)))
    assert password not in output and basic.split()[1] not in output


def test_secret_headers_given_with_h_stay_with_the_seeds_origin(serve: Callable[..., SiteServer]):
    """-H 'Authorization: ...' is kept from other origins like --auth (curl does the same on redirects)."""
    other = serve(site={"/robots.txt": b"", "/landing.html": page("Landing")})
    server = serve(site={"/robots.txt": b"", "/": page("Home", "/to-other")},
                   redirects={"/to-other": other.url("/landing.html")})  # fmt: skip
    records = scraper.crawl([server.url("/")], depth=1, workers=1, backend="thread",
                            header=["Authorization: Bearer t0ken", "X-Plain: 1"])  # fmt: skip
    assert len(records) == 2 and all(record["ok"] for record in records)
    assert {request.headers.get("Authorization") for request in server.requests} == {"Bearer t0ken"}
    assert all("Authorization" not in request.headers for request in other.requests)
    assert {request.headers.get("X-Plain") for request in other.requests} == {"1"}


# -- --select --------------------------------------------------------------------------------------

SELECT_PAGE = b"""<html><head><title>T</title></head><body>
<h1>The <b>title</b></h1>
<p class="intro">First <i>inner</i> second</p>
<a href="/one" data-id="1">One</a> <a href="two.html">Two</a>
</body></html>"""


def test_each_select_form(serve: Callable[..., SiteServer], backend):
    """Before issue 15, ::text, ::attr() and xpath: were refused as bad CSS."""
    server = serve(site={"/robots.txt": b"", "/": SELECT_PAGE})
    selects = {
        "css": "h1", "own_text": "p.intro::text", "href": "a::attr(href)", "quoted": 'a::attr("data-id")',
        "xpath_text": "xpath://a/text()", "xpath_element": "xpath://h1", "count": "xpath:count(//a)",
        "none": "xpath://table",
    }  # fmt: skip
    [record] = scraper.crawl([server.url("/")], select=selects, workers=1, **backend.kwargs)
    assert record["fields"] == {
        "css": ["The title"], "own_text": ["First ", " second"], "href": ["/one", "two.html"],
        "quoted": ["1"], "xpath_text": ["One", "Two"], "xpath_element": ["<h1>The <b>title</b></h1>"],
        "count": ["2.0"], "none": [],  # the strings of parsel's getall() (issue 22), plain CSS aside
    }  # fmt: skip

