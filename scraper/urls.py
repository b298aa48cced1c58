"""Pure URL helpers: canonical form, scheme checks, host keys and scope."""

from __future__ import annotations

import functools
import re
from urllib.parse import urldefrag, urljoin, urlsplit, urlunsplit

from w3lib.url import canonicalize_url, safe_url_string

HTTP_SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonicalize(url: str) -> str:
    """The form Scrapy de-duplicates on, without the default port.

    w3lib lower-cases scheme and host, sorts the query, normalizes
    percent-encoding and drops the fragment; it keeps `:80`, so we drop it.
    Raises ValueError for a URL that cannot be parsed (bad port, bad IPv6).
    """
    canonical = canonicalize_url(url.strip())
    parts = urlsplit(canonical)
    if parts.port is not None and _DEFAULT_PORTS.get(parts.scheme) == parts.port:
        host = parts.hostname or ""
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@{host}" if userinfo else host
        canonical = urlunsplit(parts._replace(netloc=netloc))
    return canonical


def wire_url(url: str) -> str:
    """`url` as it goes on the wire: percent-encoded only where it must be, as
    Scrapy sends it (w3lib's safe_url_string), without its fragment. Unlike
    the canonical form, the query keeps its order and its `:` and `/`."""
    return safe_url_string(urldefrag(url.strip())[0])


def location_as_sent(header: str) -> str:
    """A Location header's URL as its bytes meant it: http.client decoded them
    as Latin-1; w3lib reads them as UTF-8 and percent-encodes the bytes that
    are not, as Scrapy does."""
    location = header.strip()
    try:
        return safe_url_string(location.encode("latin-1"))
    except UnicodeEncodeError:  # text that did not come from the wire
        return location


def is_http_url(url: str) -> bool:
    """True for an absolute http(s) URL with a host."""
    try:
        parts = urlsplit(url.strip())
        return parts.scheme.lower() in HTTP_SCHEMES and bool(parts.hostname)
    except ValueError:
        return False


@functools.lru_cache(maxsize=4096)  # the scheduler asks several times per URL
def host_of(url: str) -> str:
    """Lower-case host name without port: the key of per-host politeness."""
    return (urlsplit(url).hostname or "").lower()


def robots_url(url: str) -> str:
    """The robots.txt URL of the scheme, host and port of `url`."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/robots.txt", "", ""))


@functools.lru_cache(maxsize=4096)
def origin_of(url: str) -> str:
    """scheme://host[:port] in lower case, without a default port: robots.txt
    rules apply per origin, whether the URL is canonical or as linked."""
    parts = urlsplit(url)
    scheme, netloc = parts.scheme.lower(), parts.netloc.lower()
    default = _DEFAULT_PORTS.get(scheme)
    if default is not None and netloc.endswith(f":{default}"):
        netloc = netloc[: -len(str(default)) - 1]
    return f"{scheme}://{netloc}"


def resolve_link(base: str, href: str) -> str | None:
    """Absolute canonical http(s) URL of `href` on a page at `base`, or None.

    An empty href or a bare fragment (`#top`) is the page itself (or its
    `<base href>`), as a browser resolves it.
    """
    resolved = resolve_link_as_linked(base, href)
    return None if resolved is None else resolved[0]


def resolve_link_as_linked(base: str, href: str) -> tuple[str, str] | None:
    """(canonical form, form to request) of `href` on a page at `base`, or None."""
    try:
        absolute = urljoin(base, href.strip())
        if not is_http_url(absolute):
            return None
        return canonicalize(absolute), wire_url(absolute)
    except ValueError:
        return None


# A path of only these characters (RFC 3986's unreserved ones, and "/") is
# left as it is by canonicalize_url: joining it to the base is all there is to do.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9._~/-]*\Z")
_PLAIN_URL = re.compile(r"(https?://[a-z0-9.-]+(?::[0-9]+)?)(/[A-Za-z0-9._~/-]*)\Z")


class LinkResolver:
    """resolve_link() for the links of one page at `base`, fast for plain links.

    Most links of a page are relative paths of plain characters; for those,
    the result of urljoin and canonicalize_url is computed directly (about 15
    times faster, the same string), and it is also the URL to request. Every
    other link takes resolve_link_as_linked(); where the form to request
    differs from the canonical one, `as_linked` keeps it (the first href wins).
    """

    def __init__(self, base: str) -> None:
        self.base = base
        self.as_linked: dict[str, str] = {}
        self.origin: str | None = None
        match = _PLAIN_URL.match(base)
        if match and canonicalize(base) == base:
            self.origin, path = match.groups()
            self.base_segments = path.split("/")
            if self.base_segments[-1]:
                del self.base_segments[-1]  # the last segment is not a directory

    def resolve(self, href: str) -> str | None:
        """Absolute canonical http(s) URL of `href`, or None."""
        href = href.strip()
        path = href.partition("#")[0]
        if self.origin is not None and path and _PLAIN_PATH.match(path) and path[:2] != "//":
            return self.origin + _join_path(self.base_segments, path)
        resolved = resolve_link_as_linked(self.base, path)
        if resolved is None:
            return None
        canonical, wire = resolved
        if wire != canonical and canonical not in self.as_linked:
            self.as_linked[canonical] = wire
        return canonical


def _join_path(base_segments: list[str], path: str) -> str:
    """urljoin's path resolution (RFC 3986 dot segments, as CPython does it)."""
    if path[:1] == "/":
        segments = path.split("/")
    else:
        segments = base_segments + path.split("/")
        segments[1:-1] = filter(None, segments[1:-1])
    resolved: list[str] = []
    for segment in segments:
        if segment == "..":
            if resolved:
                resolved.pop()
        elif segment != ".":
            resolved.append(segment)
    if segments[-1] in (".", ".."):
        resolved.append("")
    joined = "/".join(resolved)
    return joined if joined[:1] == "/" else "/" + joined  # as urlunsplit does
