"""The standards, to the letter (issue 22): WARC request lines, sitemap <loc>s, parsel's strings,
the RFC 9309 product token, a deadline in the headers, -O and usage errors,
options that do nothing, --compare with nothing crawled, where --cookie goes,
the distribution's name and the words of README and --help.

Each test names its point of the issue.
"""

from __future__ import annotations

import gzip
import logging
import re
import socket
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent


# -- 1. a WARC request record holds a whole HTTP request message ---------------------------


def test_a_warc_request_record_starts_with_a_whole_request_line(tmp_path: Path):
    from scraper.download import Exchange
    from scraper.warc import WarcFile

    warc = WarcFile(str(tmp_path))
    warc.write(Exchange(url="http://a.test/3/index.html?x=1", sent_at=1_796_000_000.5,
                        request_headers=[("Host", "a.test"), ("User-Agent", "t/1")], protocol="HTTP/1.1",
                        status_line="200 OK", response_headers=[("Content-Length", "2")], body=b"hi"))
    warc.close()
    stored = gzip.decompress((tmp_path / warc.name).read_bytes())  # every record, as written
    request = stored[stored.index(b"WARC-Type: request"):]
    block = request[request.index(b"\r\n\r\n") + 4:]
    # RFC 9112 3: request-line = method SP request-target SP HTTP-version CRLF
    assert block.startswith(b"GET /3/index.html?x=1 HTTP/1.1\r\nHost: a.test\r\n"), block[:80]


# -- 2. only <url>/<loc> and <sitemap>/<loc> name pages and sitemaps ---------------------------

URLSET = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
        xmlns:image="http://www.google.com/schemas/sitemap-image/1.1"
        xmlns:video="http://www.google.com/schemas/sitemap-video/1.1"
        xmlns:news="http://www.google.com/schemas/sitemap-news/0.9"
        xmlns:xhtml="http://www.w3.org/1999/xhtml">
  <url>
    <loc>https://a.test/page.html</loc>
    <xhtml:link rel="alternate" hreflang="de" href="https://a.test/de/page.html"/>
    <image:image><image:loc>https://a.test/photo.jpg</image:loc></image:image>
    <video:video><video:content_loc>https://a.test/v.mp4</video:content_loc>
      <video:player_loc>https://a.test/player</video:player_loc></video:video>
    <news:news><news:publication><news:name>A</news:name></news:publication></news:news>
  </url>
  <url><loc> https://a.test/second.html </loc></url>
</urlset>"""

INDEX = b"""<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
              xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">
  <sitemap><loc>https://a.test/s1.xml</loc><image:loc>https://a.test/not-a-sitemap.jpg</image:loc></sitemap>
</sitemapindex>"""


def test_sitemap_extensions_and_alternates_are_not_pages():
    from scraper.parse import parse_sitemap

    assert parse_sitemap(URLSET) == {"urls": ["https://a.test/page.html", "https://a.test/second.html"],
                                     "sitemaps": []}
    assert parse_sitemap(INDEX) == {"urls": [], "sitemaps": ["https://a.test/s1.xml"]}


# -- 3. ::text, ::attr() and xpath: give exactly parsel's strings ----------------------------

PARSEL_PAGE = """<!DOCTYPE html>
<html lang="en"><head>
  <title>
    A   title  &amp; more
  </title>
  <meta name="description" content="  spaced
     out  ">
</head><body>
  <p class="intro">First <i>inner</i>   second
  </p>
  <p> </p><p>\u00a0nbsp\u00a0</p>
  <div><p>in a div<!-- a comment --> after</p><span> s </span></div>
  <ul><li class=" a  b "><a href=" /one "> One </a></li><li><a href="two.html">Two</a></li></ul>
  <img src="
   /img.png"><svg><text>svg text</text></svg>
  <table><tr><td>cell</td></tr></table>
</body></html>"""

PARSEL_SELECTORS = [
    "p::text", "title::text", "meta::attr(content)", "a::attr(href)", "img::attr(src)", "li::attr(class)",
    "li a::text", "div > p::text", "div *::text", "*::text", "p.intro::text", 'a::attr("href")',
    "xpath://h1", "xpath://p", "xpath://div/node()", "xpath://a/@href", "xpath://title/text()",
    "xpath:count(//a)", "xpath:count(//nothing)", "xpath:boolean(//a)", "xpath:boolean(//h1)",
    "xpath:string(//title)", "xpath:normalize-space(//title)", "xpath://comment()", "xpath:1 div 3",
]


@pytest.mark.parametrize("selector", PARSEL_SELECTORS)
def test_pseudo_elements_and_xpath_give_parsels_strings(selector: str):
    from parsel import Selector

    from scraper.parse import compile_select, parse_page

    parsel = Selector(text=PARSEL_PAGE)
    found = parsel.xpath(selector[6:]) if selector.startswith("xpath:") else parsel.css(selector)
    theirs = found.getall()
    page = parse_page(PARSEL_PAGE.encode(), "text/html; charset=utf-8", "http://a.test/",
                      {"f": compile_select(selector)})  # fmt: skip
    assert page.fields["f"] == theirs


def test_plain_css_still_gives_each_elements_collapsed_text():
    from scraper.parse import compile_select, parse_page

    page = parse_page(PARSEL_PAGE.encode(), "text/html", "http://a.test/", {"f": compile_select("p")})
    assert page.fields["f"] == ["First inner second", "", "nbsp", "in a div after"]


# -- 4. the product token of a Mozilla-compatible agent (RFC 9309 2.2.1's own example) -------

RFC_EXAMPLE_AGENT = "Mozilla/5.0 (compatible; ExampleBot/0.1; https://www.example.com/bot.html)"


@pytest.mark.parametrize(("agent", "token"), [
    (RFC_EXAMPLE_AGENT, "examplebot"),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "googlebot"),
    ("FooBot/2.1 (+http://x)", "foobot"),
    ("Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0", "mozilla"),  # not a compatible crawler
])  # fmt: skip
def test_the_product_token_is_the_crawlers_name(agent: str, token: str):
    from scraper.robots import RobotsRules, product_token

    assert product_token(agent) == token
    rules = RobotsRules.parse(b"User-agent: *\nAllow: /\n\nUser-agent: ExampleBot\nDisallow: /private\n",
                              product_token(RFC_EXAMPLE_AGENT))
    assert not rules.allowed("http://a.test/private/x")


def test_help_says_how_the_product_token_is_found(capsys: pytest.CaptureFixture[str]):
    from scraper.cli import build_parser

    text = " ".join(build_parser().format_help().split())
    assert "compatible;" in text and "examplebot" in text


# -- 7. -O empties its file only once the crawl has started --------------------------------------


def test_overwrite_output_is_left_as_it_was_when_the_start_fails(run_cli, write_seeds, small_site, cli_cwd):
    kept = cli_cwd / "keep.jsonl"
    old = "".join(f'{{"url": "http://old.test/{n}"}}\n' for n in range(297))
    kept.write_text(old)
    seeds = write_seeds(small_site.url("/"))
    unreachable = "redis://127.0.0.1:1/0"
    refused = run_cli(seeds, "-O", kept.name, "--backend", "redis", "--redis", unreachable, "-w", "0")
    assert refused.rc == 2 and "Redis" in refused.stderr, refused
    assert kept.read_text() == old, "a crawl that did not start must not empty -O's file"
    started = run_cli(seeds, "-O", kept.name, "--backend", "thread", "-q")
    assert started.rc == 0 and [r["url"] for r in started.records] == [small_site.url("/")]


# -- 8. a usage error is one line, then "see scraper --help"; no abbreviations ------------------
# -- 9. options that do nothing together are refused ---------------------------------------------


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The whole stderr of `scraper ARGV`, which must be one error line and exit 2."""
    from scraper import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main(list(argv))
    stderr = capsys.readouterr().err
    assert exit_info.value.code == 2, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("scraper: error: "), stderr
    assert stderr.rstrip().endswith("see scraper --help"), stderr
    return stderr


@pytest.mark.parametrize(("argv", "words"), [
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["--select", "h1"], "NAME=CSS"),
    (["-O", "SEEDS"], "is the seed file"),
    (["--allow", "[z-a"], "bad regular expression"),
    (["-w", "0"], "--workers"),
    (["--dept", "3"], "unrecognized arguments: --dept"),  # not --depth: no abbreviations
    ([], "SEEDS"),
])  # fmt: skip
def test_a_usage_error_is_one_line(capsys, tmp_path: Path, argv: list[str], words: str):
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("http://127.0.0.1:9/\n")
    argv = [str(seeds) if arg == "SEEDS" else arg for arg in argv]
    assert words in usage_error(capsys, *([str(seeds)] if argv else []), *argv)


@pytest.mark.parametrize("argv", [
    ["--compare", "--backend", "redis"],
    ["--redis", "redis://127.0.0.1:1/0"],
    ["--crawl-id", "default"],
    ["--crawl-id=x", "--backend", "process"],
    ["-q", "-v"],
    ["--backend", "thread", "--start-method", "spawn"],
])  # fmt: skip
def test_options_that_do_nothing_are_refused(capsys, tmp_path: Path, argv: list[str]):
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("http://127.0.0.1:9/\n")
    usage_error(capsys, str(seeds), *argv, "-O", str(tmp_path / "out.jsonl"))
    assert not (tmp_path / "out.jsonl").exists()


def test_options_that_do_something_together_are_still_accepted():
    from scraper.cli import build_parser, given_options, refuse_contradictions

    for argv in (["s.txt", "--backend", "redis", "--redis", "redis://h", "--crawl-id", "x"],
                 ["s.txt", "--compare", "--start-method", "spawn"], ["s.txt", "-v", "-v"]):
        args = build_parser().parse_args(argv)
        args.given = given_options(argv)
        refuse_contradictions(build_parser(), args)  # no SystemExit


# -- 5. a deadline in the headers: no urllib3 traceback, the phase `headers` --------------------

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"


def fetch_logged(caplog: pytest.LogCaptureFixture, prefix: bytes, filler: bytes) -> tuple[Any, list[Any]]:
    """download() from a TrickleServer (`prefix`, then `filler` every 0.3 s), a 1 s deadline;
    the result and every log record of the fetch."""
    from hostile_server import TrickleServer

    from scraper.download import Limits, download
    from scraper.session import new_session

    caplog.set_level(logging.DEBUG)
    with TrickleServer(prefix=prefix, filler=filler) as server, new_session("t/1") as session:
        limits = Limits(timeout=1.0, max_bytes=1000, retries=0)
        result = download(session, f"http://127.0.0.1:{server.port}/", limits, sleep=lambda seconds: None)
    return result, [r for r in caplog.records if r.name.startswith(("urllib3", "scraper"))]


def test_a_deadline_that_cuts_a_header_name_is_timeout_headers_and_says_nothing_more(caplog):
    # cut inside "X-Slowaaa...": a header line without a colon, which urllib3 cannot parse
    result, logged = fetch_logged(caplog, HEAD + b"X-Slow", b"a")
    assert result.error == "timeout: headers"
    assert [(r.levelname, r.getMessage()) for r in logged if r.levelno >= logging.INFO] == []
    assert not any(r.exc_info for r in logged), "no traceback"


def test_headers_urllib3_cannot_parse_are_one_verbose_line(caplog):
    result, logged = fetch_logged(caplog, HEAD + b"Content-Length: 2\r\nNo colon here\r\n\r\nhi", b"")
    assert (result.error, result.body) == (None, b"hi")
    lines = [(r.levelname, r.getMessage()) for r in logged if r.levelno >= logging.INFO]
    assert len(lines) == 1 and lines[0][0] == "INFO" and "headers" in lines[0][1], lines
    assert not any(r.exc_info for r in logged), "no traceback"


# -- 10. --compare with nothing crawled names the cause -------------------------------------------


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_compare_with_the_server_down_names_the_cause(run_cli, write_seeds):
    port = closed_port()
    seeds = write_seeds(f"http://127.0.0.1:{port}/", f"http://127.0.0.1:{port}/a")
    done = run_cli(seeds, "--compare", "-w", "2", "-o", "out.jsonl", "--retries", "0", timeout=90)
    assert done.rc == 0 and "Traceback" not in done.stderr, done
    assert "No conclusion: nothing was crawled" in done.stdout, done.stdout
    assert f"127.0.0.1:{port}/robots.txt did not answer" in done.stdout, done.stdout
    assert "pages failed" not in done.stdout and "0 of 0" not in done.stdout, done.stdout


# -- 11. --cookie goes to the seeds' hosts (any port and scheme, not subdomains), said one way ------


@pytest.mark.parametrize(("url", "sent"), [
    ("http://a.test:8000/page", True),   # the seed itself
    ("http://a.test:9000/other", True),  # the seed's host on another port
    ("https://a.test/secure", True),     # and another scheme
    ("http://www.a.test:8000/", False),  # not a subdomain
    ("http://b.test:8000/", False),      # nor another host
])  # fmt: skip
def test_cookie_goes_to_the_seeds_hosts_on_any_port(url: str, sent: bool):
    import responses

    from scraper.config import CrawlConfig
    from scraper.crawl import worker_spec
    from scraper.session import new_session

    spec = worker_spec(CrawlConfig(cookie=["sid=42"]), ["http://a.test:8000/"])
    with responses.RequestsMock() as mock, new_session("t/1", cookies=spec.cookies) as session:
        mock.get(url, body="ok")
        session.get(url)
        assert (mock.calls[0].request.headers.get("Cookie") == "sid=42") is sent


def test_the_docs_and_help_give_one_rule_for_cookie():
    from scraper.cli import build_parser

    help_text = " ".join(build_parser().format_help().split())
    start, end = help_text.index("--cookie name=value cookie"), help_text.index("--cookies FILE cookies")
    cookie_help = help_text[start:end]
    assert "seeds' hosts" in cookie_help and "any port" in cookie_help and "subdomains" in cookie_help
    for doc in ("README.md", "docs/crawling.md"):
        text = " ".join((ROOT / doc).read_text().split())
        mentions = [m.start() for m in re.finditer(r"`--cookie( name=value)?`", text)]
        assert mentions, doc
        for at in mentions:  # each mention says where the cookie goes, and the same thing
            assert "seeds' hosts" in text[at:at + 60], (doc, text[at:at + 60])


# -- 12. a distribution name of its own, and install lines that work as written ---------------------

INSTALL_DOCS = ("README.md", "docs/scaling.md", "docs/crawling.md", "docs/design.md", "docs/performance.md",
                "benchmarks/README.md")  # fmt: skip


def test_the_distribution_is_not_pypis_scraper_and_every_install_line_names_what_installs():
    from scraper import __version__
    from scraper.demo import CHART_HINT

    [name] = re.findall(r'(?m)^name = "([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert name == "scraper-jsonl"  # "scraper" on PyPI is an unrelated 2012 project
    wheel = f"./{name.replace('-', '_')}-{__version__}-py3-none-any.whl"
    lines = 0
    for doc in INSTALL_DOCS:
        for line in (ROOT / doc).read_text().splitlines():
            for command in re.findall(r"pip install ([^`#&\n]*)", line):
                lines += 1
                # the clone (editable) or the wheel built from it: no name that PyPI gives another project
                for target in (word.strip("'\"") for word in command.split() if not word.startswith("-")):
                    assert target.startswith("."), (doc, line)
                    assert "whl" not in target or target.startswith(wheel), (doc, line)
    assert lines >= 5
    assert "scraper[" not in CHART_HINT


# -- 13. README's demo tables are the real output's; help speaks to users ------------------------


def test_readmes_comparison_tables_have_the_real_columns():
    from scraper.compare import HEADER

    text = (ROOT / "README.md").read_text()
    tables = re.findall(r"(?m)^(run +backend .*)\n(-[- ]+)\n((?:[^`\n].*\n)+)", text)
    assert len(tables) == 2, "the demo's two tables"
    for header, dashes, rows in tables:
        assert re.split(r"\s{2,}", header.strip()) == list(HEADER)
        assert len(dashes.split()) == len(HEADER)
        for row in rows.splitlines():
            assert len(re.split(r"\s{2,}", row.strip())) == len(HEADER), row


@pytest.mark.parametrize("command", [[], ["worker"], ["status"]])
def test_help_speaks_to_users(capsys, command: list[str]):
    from scraper import cli

    with pytest.raises(SystemExit):
        cli.main([*command, "--help"])
    text = capsys.readouterr().out
    assert text.startswith("usage: scraper")
    assert not re.search(r"\bSPEC\b|\bissue \d", text), text
