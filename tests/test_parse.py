"""scraper.parse: content types, charset decoding, page fields and --select."""

from __future__ import annotations

import time

import pytest

from scraper.parse import compile_select, decode_html, is_html, parse_page, split_content_type

URL = "http://example.com/dir/page"

JAPANESE = "日本語のタイトル"
RUSSIAN = "Привет, мир"
FRENCH = "Café crème à l'été"


def html_page(title: str, meta_charset: str | None = None, body: str = "") -> str:
    meta = f'<meta charset="{meta_charset}">' if meta_charset else ""
    return f"<html><head>{meta}<title>{title}</title></head><body>{body}</body></html>"


def parse(body: bytes | str, content_type: str | None = "text/html", url: str = URL, **selects: str):
    if isinstance(body, str):
        body = body.encode("utf-8")
    return parse_page(body, content_type, url, {name: compile_select(css) for name, css in selects.items()})


# -- content types -------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, (None, None)),
        ("", (None, None)),
        ("text/html", ("text/html", None)),
        ("Text/HTML; charset=UTF-8", ("text/html", "UTF-8")),
        ('text/html;charset="iso-8859-1"', ("text/html", "iso-8859-1")),
        ("text/html; Charset='Shift_JIS'; foo=bar", ("text/html", "Shift_JIS")),
        ("text/html; foo=bar; charset=windows-1251", ("text/html", "windows-1251")),
        ("text/html; charset=", ("text/html", None)),
        ("  application/XHTML+xml  ", ("application/xhtml+xml", None)),
        ("image/png", ("image/png", None)),
    ],
)
def test_split_content_type(header, expected):
    assert split_content_type(header) == expected


@pytest.mark.parametrize(
    ("media_type", "body", "expected"),
    [
        ("text/html", b"", True),
        ("application/xhtml+xml", b"", True),
        ("text/plain", b"<html><body>x</body></html>", False),
        ("image/png", b"<html>", False),
        ("application/pdf", b"%PDF-1.4", False),
        # no header: sniff the first bytes
        (None, b"<!DOCTYPE html><p>x", True),
        (None, b"  \n<html>", True),
        (None, b"\xef\xbb\xbf<html>", True),
        (None, b"<!-- comment --> <head>", True),
        (None, b"<TITLE>x</TITLE>", True),
        (None, b"%PDF-1.4", False),
        (None, b"\x89PNG\r\n\x1a\n", False),
        (None, b"plain text", False),
        (None, b"", False),
    ],
)
def test_is_html(media_type, body, expected):
    assert is_html(media_type, body) is expected


# -- decoding ------------------------------------------------------------


def test_header_charset_wins_over_meta_when_both_decode():
    body = html_page(RUSSIAN, meta_charset="iso-8859-1").encode("windows-1251")
    assert f"<title>{RUSSIAN}</title>" in decode_html(body, "windows-1251")
    assert parse(body, "text/html; charset=windows-1251").title == RUSSIAN


def test_header_charset_wins_over_meta_latin1():
    body = html_page(FRENCH, meta_charset="windows-1251").encode("iso-8859-1")
    assert parse(body, "text/html; charset=ISO-8859-1").title == FRENCH


def test_header_charset_that_cannot_decode_falls_back_to_meta():
    body = html_page(JAPANESE, meta_charset="shift_jis").encode("shift_jis")
    assert parse(body, "text/html; charset=utf-8").title == JAPANESE


def test_unknown_header_charset_falls_back_to_meta():
    body = html_page(RUSSIAN, meta_charset="windows-1251").encode("windows-1251")
    assert parse(body, "text/html; charset=x-no-such-charset").title == RUSSIAN


@pytest.mark.parametrize(
    ("title", "charset"),
    [(JAPANESE, "shift_jis"), (RUSSIAN, "windows-1251"), (FRENCH, "iso-8859-1")],
)
def test_meta_charset_used_without_header_charset(title, charset):
    body = html_page(title, meta_charset=charset).encode(charset)
    assert parse(body, "text/html").title == title
    assert parse(body, None).title == title


def test_meta_http_equiv_charset():
    body = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1251">'
        f"<title>{RUSSIAN}</title></head></html>"
    ).encode("windows-1251")
    assert parse(body, "text/html").title == RUSSIAN


@pytest.mark.parametrize(
    ("title", "header"),
    [
        (JAPANESE, "text/html; charset=Shift_JIS"),
        (RUSSIAN, "text/html; charset=windows-1251"),
        (FRENCH, "text/html; charset=ISO-8859-1"),
        (JAPANESE, "text/html; charset=utf-8"),
    ],
)
def test_header_charset_titles(title, header):
    _, charset = split_content_type(header)
    body = html_page(title).encode(charset)
    assert parse(body, header).title == title


def test_iso_8859_1_label_decodes_windows_1252_smart_quotes():
    body = html_page("\u201cquoted\u201d \u2014 dash").encode("cp1252")
    assert parse(body, "text/html; charset=iso-8859-1").title == "\u201cquoted\u201d \u2014 dash"


def test_utf8_without_any_declaration():
    assert parse(html_page(JAPANESE).encode("utf-8"), "text/html").title == JAPANESE


def test_undeclared_legacy_charset_is_detected():
    text = "Съешь же ещё этих мягких французских булок, да выпей чаю. " * 4
    body = html_page(text.strip(), body=f"<p>{text}</p>").encode("windows-1251")
    assert parse(body, "text/html").title == text.strip()


def test_utf8_bom_without_header():
    body = b"\xef\xbb\xbf" + html_page(JAPANESE).encode("utf-8")
    assert decode_html(body, None).lstrip("\ufeff") == html_page(JAPANESE)
    assert parse(body, None).title == JAPANESE


def test_utf8_bom_wins_over_meta():
    body = b"\xef\xbb\xbf" + html_page(RUSSIAN, meta_charset="windows-1251").encode("utf-8")
    assert parse(body, "text/html").title == RUSSIAN


def test_utf8_bom_wins_over_header_charset():
    body = b"\xef\xbb\xbf" + f'<html lang="ru"><head><title>{RUSSIAN}</title></head></html>'.encode()
    page = parse(body, "text/html; charset=windows-1251")
    assert (page.title, page.lang) == (RUSSIAN, "ru")


def test_utf16_bom():
    body = ("\ufeff" + html_page(RUSSIAN)).encode("utf-16-le")
    assert parse(body, None).title == RUSSIAN


# -- page fields ---------------------------------------------------------

PAGE = """<!DOCTYPE html>
<html lang=" en-GB ">
<head>
  <meta NAME="Description" content="  A   short
     description ">
  <link rel="Canonical" href="/canon?b=2&amp;a=1#frag">
  <title>
    Hello
       World  </title>
</head>
<body>
  <svg><title>Not the title</title></svg>
  <a href="/first">1</a>
  <a href="second#frag">2</a>
  <a href="/first#elsewhere">duplicate of 1</a>
  <map><area href="/area" alt="area"></map>
  <a href="mailto:someone@example.com">mail</a>
  <a href="javascript:void(0)">js</a>
  <a href="#top">fragment only</a>
  <a href="ftp://example.com/file">ftp</a>
  <a>no href</a>
  <a href="">empty</a>
  <a href="https://Other.COM:443/p?z=1&amp;y=2">off-host</a>
  <a href="//cdn.example.org/c">protocol-relative</a>
  <a href="/FIRST">case differs</a>
  <link href="/not-a-link.css" rel="stylesheet">
</body>
</html>"""


def test_page_fields():
    page = parse(PAGE)
    assert page.title == "Hello World"
    assert page.description == "A short description"
    assert page.lang == "en-GB"
    assert page.canonical == "http://example.com/canon?a=1&b=2"
    assert page.links == [
        "http://example.com/first",
        "http://example.com/dir/second",
        "http://example.com/area",
        "http://example.com/dir/page",  # href="#top" and href="": the page itself (SPEC 4)
        "https://other.com/p?y=2&z=1",
        "http://cdn.example.org/c",
        "http://example.com/FIRST",
    ]
    # What differs from the canonical form is requested as linked (SPEC 3.1).
    assert page.link_urls == {"https://other.com/p?y=2&z=1": "https://other.com:443/p?z=1&y=2"}
    assert page.fields == {}


def test_fragment_and_empty_links_resolve_to_the_base_href():
    page = parse('<html><head><base href="/b/"></head><body><a href="#x">x</a><a href="">y</a></body></html>')
    assert page.links == ["http://example.com/b/"]


def test_links_join_to_the_url_as_requested():
    html = '<a href="?page=2">next</a><a href="x?u=https://a.b/">x</a>'
    page = parse_page(html.encode(), "text/html", "http://example.com/list?z=1&a=2", {})
    assert page.links == ["http://example.com/list?page=2", "http://example.com/x?u=https%3A%2F%2Fa.b%2F"]
    assert page.link_urls == {"http://example.com/x?u=https%3A%2F%2Fa.b%2F": "http://example.com/x?u=https://a.b/"}


def test_missing_fields_are_none():
    page = parse("<html><body><p>nothing here</p></body></html>")
    assert (page.title, page.description, page.lang, page.canonical) == (None, None, None, None)
    assert page.links == []


def test_svg_title_alone_is_not_the_title():
    assert parse("<html><body><svg><title>icon</title></svg><p>x</p></body></html>").title is None


def test_head_title_wins_over_earlier_svg_title():
    html = "<html><head></head><body><svg><title>icon</title></svg></body></html>"
    html = html.replace("<head></head>", "<head><title>Real</title></head>")
    assert parse(html).title == "Real"


def test_empty_title_and_lang_are_none():
    page = parse('<html lang=""><head><title>   </title></head><body></body></html>')
    assert page.title is None
    assert page.lang is None


def test_description_name_is_case_insensitive():
    page = parse('<html><head><meta name="DESCRIPTION" content="Upper"></head></html>')
    assert page.description == "Upper"


def test_base_href_is_honoured_for_links_and_canonical():
    html = (
        '<html><head><base href="http://other.com/base/"><link rel="canonical" href="c"></head>'
        '<body><a href="x">x</a><a href="/y">y</a><a href="http://abs.com/z">z</a></body></html>'
    )
    page = parse(html)
    assert page.links == ["http://other.com/base/x", "http://other.com/y", "http://abs.com/z"]
    assert page.canonical == "http://other.com/base/c"


def test_relative_base_href_is_resolved_against_the_page():
    page = parse('<html><head><base href="/sub/"></head><body><a href="x">x</a></body></html>')
    assert page.links == ["http://example.com/sub/x"]


def test_links_keep_document_order_and_first_occurrence():
    anchors = "".join(f'<a href="/p{i}">{i}</a>' for i in [3, 1, 2, 1, 3])
    assert parse(f"<html><body>{anchors}</body></html>").links == [
        "http://example.com/p3",
        "http://example.com/p1",
        "http://example.com/p2",
    ]


def test_links_are_canonical():
    html = '<html><body><a href="HTTP://Example.COM:80/a?b=2&amp;a=1#x">x</a></body></html>'
    assert parse(html).links == ["http://example.com/a?a=1&b=2"]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"\x00\x00\x00",
        b"<!-- only a comment -->",
        b"\xff\xfe\x00",
        bytes(range(256)) * 40,
        b"<html>\x00<title>a\x00b</title><a href='/x\x00y'>x</a>",
        b"<html><head><title>unclosed<body><a href=/x>",
    ],
)
@pytest.mark.parametrize("content_type", ["text/html", None, "application/xhtml+xml"])
def test_hostile_bodies_do_not_raise(body, content_type):
    page = parse(body, content_type, sel="a")
    assert isinstance(page.links, list)
    assert isinstance(page.fields["sel"], list)


def test_empty_body_gives_empty_fields():
    page = parse(b"", "text/html", h="h1")
    assert (page.title, page.links, page.fields) == (None, [], {"h": []})


def test_xhtml_with_xml_encoding_declaration():
    body = (
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n'
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" '
        '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" lang="fr"><head><title>Café</title></head>'
        '<body><a href="/x">x</a></body></html>'
    ).encode("iso-8859-1")
    page = parse(body, "application/xhtml+xml")
    assert (page.title, page.lang, page.links) == ("Café", "fr", ["http://example.com/x"])


def test_hundred_thousand_links():
    anchors = "".join(f'<a href="/p{i}">{i}</a>' for i in range(100_000))
    body = f"<html><body>{anchors}</body></html>".encode()
    started = time.perf_counter()
    page = parse(body)
    assert time.perf_counter() - started < 20
    assert len(page.links) == 100_000
    assert page.links[0] == "http://example.com/p0"
    assert page.links[-1] == "http://example.com/p99999"


# -- --select ------------------------------------------------------------


def test_select_fields_text_of_every_match():
    html = """<html><body>
      <p class="price"> 1 </p>
      <div><p class="price">2
        <b>3</b></p></div>
      <p>other</p>
      <ul><li>a</li><li></li></ul>
    </body></html>"""
    page = parse(html, price="p.price", items="ul li", missing="h6", title="title")
    assert page.fields == {"price": ["1", "2 3"], "items": ["a", ""], "missing": [], "title": []}


def test_select_on_attributes_and_structure():
    html = '<html><body><a class="x" href="/a">A</a><span><a href="/b">B</a></span></body></html>'
    page = parse(html, first="body > a", all="a[href]")
    assert page.fields == {"first": ["A"], "all": ["A", "B"]}


@pytest.mark.parametrize("css", ["p[", "", "a >", "!!", "a::before", ":nth-child(x)"])
def test_compile_select_rejects_bad_css(css):
    with pytest.raises(ValueError):
        compile_select(css)
