"""The parser: body bytes -> decoded text -> lxml tree -> record fields.

The only module that imports lxml, cssselect, w3lib.encoding (to read <meta>
charsets) or bs4 (to detect the charset of the rest).
"""

from __future__ import annotations

import codecs
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import lxml.etree
import lxml.html
from w3lib.encoding import html_body_declared_encoding

from .urls import LinkResolver, resolve_link, resolve_link_as_linked

HTML_TYPES = ("text/html", "application/xhtml+xml")

# WHATWG decodes these labels with a superset; pages rely on it (smart quotes
# in "iso-8859-1" pages are really windows-1252, and so on).
_SUPERSETS = {
    "ascii": "cp1252",
    "latin_1": "cp1252",
    "iso8859_1": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "shift_jis": "cp932",
    "euc_kr": "cp949",
}

_SNIFF_HTML = re.compile(rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body|title)", re.I | re.S)

# The elements extract() reads, found in one walk over the tree.
_TAGS = ("title", "meta", "link", "base", "a", "area")
_XML_SPACE = re.compile(r"[ \t\r\n]+")  # XPath's normalize-space()

_local = threading.local()

# The sitemap protocol's own limit of entries per file (sitemaps.org); more are left out.
MAX_SITEMAP_ENTRIES = 50_000


@dataclass
class ParsedPage:
    """What the parser extracts from one page."""

    title: str | None = None
    description: str | None = None
    lang: str | None = None
    canonical: str | None = None
    links: list[str] = field(default_factory=list)
    fields: dict[str, list[str]] = field(default_factory=dict)
    tree: Any = None  # the lxml tree, for a user's parse callback
    link_urls: dict[str, str] = field(default_factory=dict)  # canonical link -> as linked, where they differ


def split_content_type(header: str | None) -> tuple[str | None, str | None]:
    """`'Text/HTML; charset=UTF-8'` -> `('text/html', 'UTF-8')`."""
    if not header:
        return None, None
    media, _, params = header.partition(";")
    charset = None
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip("'\"") or None
    return media.strip().lower() or None, charset


def is_html(media_type: str | None, body: bytes) -> bool:
    """HTML by header, or by sniffing the first bytes when there is no header."""
    if media_type is not None:
        return media_type in HTML_TYPES
    return bool(_SNIFF_HTML.match(body[:1024].lstrip(codecs.BOM_UTF8)))


_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))


def decode_html(body: bytes, header_charset: str | None) -> str:
    """Text of an HTML body: BOM, then header charset, then <meta>, then
    UTF-8, then detection (BeautifulSoup's UnicodeDammit).

    A BOM decides, as in browsers (WHATWG) and w3lib. Otherwise the header
    wins over <meta> when both decode the body; a charset that cannot decode
    the body (or is unknown) is skipped.
    """
    return _decode(body, header_charset)[0]


def _decode(body: bytes, header_charset: str | None) -> tuple[str, str]:
    """decode_html(), and the codec that decoded the body."""
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            return body[len(bom):].decode(encoding, errors="replace"), encoding
    for label in _candidate_charsets(body, header_charset):
        name = _codec_name(label) if label else None
        if name is None:
            continue
        try:
            return body.decode(name), name
        except (UnicodeDecodeError, LookupError):
            continue
    return body.decode("cp1252", errors="replace"), "cp1252"


def _candidate_charsets(body: bytes, header_charset: str | None) -> Iterator[str | None]:
    yield header_charset
    yield html_body_declared_encoding(body)
    yield "utf-8"
    yield _detected_charset(body)


def _detected_charset(body: bytes) -> str | None:
    # Imported here: few pages get this far, and bs4 would add ~90 ms to the
    # start of every crawl. It detects with charset-normalizer, which requests brings.
    from bs4.dammit import UnicodeDammit

    return UnicodeDammit(body, is_html=True).original_encoding


def _codec_name(label: str) -> str | None:
    try:
        name = codecs.lookup(label).name.replace("-", "_")
    except LookupError:
        return None
    return _SUPERSETS.get(name, name)


def parse_tree(text: str | bytes) -> Any:
    """An lxml HTML tree of text (or of UTF-8 bytes), or None for a document with no elements."""
    if not hasattr(_local, "parser"):  # lxml parsers must not be shared between threads
        # collect_ids=False: no hash table of id attributes (ids are found by XPath anyway)
        _local.parser = lxml.html.HTMLParser(encoding="utf-8", collect_ids=False)
    # Bytes input: lxml refuses str with an XML encoding declaration; libxml2
    # also copes with NUL and control characters this way.
    data = text if isinstance(text, bytes) else text.encode("utf-8", errors="replace")
    try:
        return lxml.html.document_fromstring(data, parser=_local.parser)
    except (lxml.etree.ParserError, ValueError):
        return None


class Select:
    """A compiled --select selector; called on a tree, its list of strings (selects.py).

    Elements that plain CSS matches give their whitespace-collapsed text; every
    other match gives what parsel's `getall()` gives for it."""

    __slots__ = ("xpath", "markup")

    def __init__(self, xpath: lxml.etree.XPath, markup: bool) -> None:
        self.xpath = xpath
        self.markup = markup  # xpath: an element is its HTML, as parsel serializes it

    def __call__(self, tree: Any) -> list[str]:
        found = self.xpath(tree)
        if not isinstance(found, list):
            return [_xpath_scalar(found)]
        return [self._text(match) for match in found]

    def _text(self, match: Any) -> str:
        if isinstance(match, str):  # a text node or an attribute's value, as it is
            return str(match)
        if self.markup or not hasattr(match, "text_content"):
            return str(lxml.etree.tostring(match, method="html", encoding="unicode", with_tail=False))
        return collapse(match.text_content()) or ""


def compile_select(selector: str) -> Select:
    """Compile a --select selector (selects.py: CSS, ::text, ::attr(), xpath:);
    ValueError if it is not valid."""
    from .selects import is_xpath, selector_xpath  # the --select syntax, shared with config (no lxml)

    try:
        return Select(lxml.etree.XPath(selector_xpath(selector)), markup=is_xpath(selector))
    except Exception as exc:  # cssselect raises SelectorError or ExpressionError
        raise ValueError(str(exc) or type(exc).__name__) from None


def collapse(text: str | None) -> str | None:
    """Whitespace runs become one space; None stays None."""
    return None if text is None else " ".join(text.split())


def extract(tree: Any, url: str, selects: dict[str, Select]) -> ParsedPage:
    """Title, description, lang, canonical, links and --select fields of a page
    at `url` (the URL it was fetched from)."""
    found = _walk(tree)
    base = _base_url(found.base_hrefs, url)
    resolver = LinkResolver(base)
    links = unique_links(found.hrefs, resolver)
    return ParsedPage(
        title=collapse(found.title.text_content()) or None if found.title is not None else None,
        description=collapse(found.description) or None,
        lang=collapse(tree.getroottree().getroot().get("lang")) or None,
        canonical=resolve_link(base, found.canonical) if found.canonical is not None else None,
        links=links,
        fields={name: select(tree) for name, select in selects.items()},
        tree=tree,
        link_urls=resolver.as_linked,
    )


@dataclass
class _Found:
    title: Any = None
    description: str | None = None
    canonical: str | None = None
    base_hrefs: list[str] = field(default_factory=list)
    hrefs: list[str] = field(default_factory=list)


def _walk(tree: Any) -> _Found:
    """The first <title> (not one of an <svg>), the first description and
    canonical, and every <base>, <a> and <area> href, in document order."""
    found = _Found()
    for element in tree.iter(_TAGS):
        tag = element.tag
        if tag == "a" or tag == "area":
            href = element.get("href")
            if href is not None:
                found.hrefs.append(href)
        elif tag == "title":
            if found.title is None and _is_page_title(element):
                found.title = element
        elif tag == "meta":
            if found.description is None and (element.get("name") or "").lower() == "description":
                found.description = element.get("content")
        elif tag == "link":
            if found.canonical is None and _is_canonical(element):
                found.canonical = element.get("href")
        elif tag == "base" and element.get("href") is not None:
            found.base_hrefs.append(element.get("href"))
    return found


def _is_page_title(element: Any) -> bool:
    parent = element.getparent()
    if parent is not None and parent.tag == "head":
        return True
    return next(element.iterancestors("svg"), None) is None


def _is_canonical(element: Any) -> bool:
    if element.get("href") is None:
        return False
    rel = _XML_SPACE.split((element.get("rel") or "").lower())
    return "canonical" in rel


def unique_links(hrefs: list[str], resolver: LinkResolver) -> list[str]:
    """Canonical absolute http(s) links, in order, without duplicates."""
    links: dict[str, None] = {}
    resolved: dict[str, str | None] = {}
    for href in hrefs:
        if href not in resolved:
            resolved[href] = resolver.resolve(href)
        link = resolved[href]
        if link is not None:
            links[link] = None
    return list(links)


def _xpath_scalar(value: Any) -> str:
    """A number, string or boolean an XPath gives (`count(//a)`), as parsel writes it."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _base_url(base_hrefs: list[str], url: str) -> str:
    """The first usable <base href>, as linked (relative links join to it), or `url`."""
    for href in base_hrefs:
        base = resolve_link_as_linked(url, href)
        if base is not None:
            return base[1]
    return url


def parse_page(
    body: bytes,
    content_type: str | None,
    url: str,
    selects: dict[str, Select],
) -> ParsedPage:
    """Everything the record needs from an HTML body (not called for other types)."""
    _, charset = split_content_type(content_type)
    text, codec = _decode(body, charset)
    # A body that is UTF-8 (or ASCII) goes to lxml as it is: no need to encode the text again.
    tree = parse_tree(body if codec == "utf_8" or body.isascii() else text)
    if tree is None:
        return ParsedPage(fields={name: [] for name in selects})
    return extract(tree, url, selects)



def parse_sitemap(body: bytes) -> dict[str, list[str]]:
    """The <loc>s of a sitemap: {"urls": pages of a <urlset>, "sitemaps": sitemaps
    of a <sitemapindex>}, as listed. XML is read with entities and the network off
    (no XXE, no billion laughs); a text sitemap is one URL per line."""
    text_start = body.lstrip(codecs.BOM_UTF8).lstrip()[:1]
    if text_start != b"<":
        lines = (line.strip() for line in body.decode("utf-8", errors="replace").splitlines())
        return {"urls": [line for line in lines if line][:MAX_SITEMAP_ENTRIES], "sitemaps": []}
    root = lxml.etree.fromstring(body, parser=_sitemap_parser())
    if root is None:
        raise ValueError("not a sitemap: no XML element")
    kind = "sitemaps" if lxml.etree.QName(root).localname == "sitemapindex" else "urls"
    # Only <url>/<loc> (or <sitemap>/<loc>) in the sitemap's own namespace names a
    # page (or a sitemap), as Scrapy reads them: <image:loc> and the other
    # extensions, and xhtml:link alternates, are not pages.
    namespace = lxml.etree.QName(root).namespace
    ns = f"{{{namespace}}}" if namespace else ""
    entry = "sitemap" if kind == "sitemaps" else "url"
    locs = []
    for loc in root.iterfind(f"{ns}{entry}/{ns}loc"):
        value = collapse(loc.text)
        if value:
            locs.append(value)
            if len(locs) >= MAX_SITEMAP_ENTRIES:
                break
    return {"urls": [], "sitemaps": []} | {kind: locs}


def _sitemap_parser() -> lxml.etree.XMLParser:
    if not hasattr(_local, "sitemap_parser"):  # lxml parsers must not be shared between threads
        _local.sitemap_parser = lxml.etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
            recover=True, remove_comments=True, remove_pis=True,
        )  # fmt: skip
    return _local.sitemap_parser
