"""A page's links in the form the frontier takes them: parsed once, where found.

The worker that parses a page knows every link's canonical form, the form to
request and its host; it sends them with the record, so that the coordinator
(one process for the whole crawl, on every backend) never parses a URL again.
Each link also gets a 64-bit fingerprint, the key of the frontier's seen-set
(seen.py): computed here, on the worker's CPU.

Pure functions: the worker builds a batch from its page, the coordinator
builds one the same way for the few URLs that do not come from a worker
(seeds, sitemap entries, the records of a resumed crawl).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import blake2b

_DEFAULT_PORTS = {"http:": ":80", "https:": ":443"}


def fingerprint(url: str) -> bytes:
    """8 bytes of BLAKE2b of the canonical URL: the seen-set's key (little-endian uint64).

    The same on every machine and Python version, so that workers on any
    host and a resumed crawl agree; docs/scaling.md gives the collision odds.
    """
    return blake2b(url.encode("utf-8", "surrogatepass"), digest_size=8).digest()


def canonical_host(url: str) -> str:
    """The host of a canonical URL (lower-case already; no port, no userinfo).

    A canonical URL is `scheme://[userinfo@]host[:port]/...`, so a split is
    enough; an IPv6 literal keeps no brackets, as urlsplit().hostname gives it.
    """
    netloc = url.split("/", 3)[2] if url.count("/") >= 2 else ""
    netloc = netloc.rpartition("@")[2]
    if netloc.startswith("["):
        return netloc[1:].partition("]")[0]
    return netloc.partition(":")[0]


@dataclass(frozen=True, slots=True)
class LinkBatch:
    """The links of one page (or of one seed list), in document order.

    `urls`: canonical URLs (the record's `links`); `fingerprints`: 8 bytes
    per URL, in the same order; `hosts`: the distinct hosts, and `host_index`
    which of them each URL is on (4 bytes per URL, little-endian); `as_linked`:
    URL index -> the URL as linked, where it differs from the canonical form.
    """

    urls: tuple[str, ...]
    fingerprints: bytes
    hosts: tuple[str, ...]
    host_index: bytes
    as_linked: dict[int, str]

    def __len__(self) -> int:
        return len(self.urls)

    def __reduce__(self) -> tuple:  # a slotted dataclass's default pickling is several times slower
        return (LinkBatch, (self.urls, self.fingerprints, self.hosts, self.host_index, self.as_linked))

    def is_consistent(self) -> bool:
        """Sizes agree (a batch from another machine is checked before use)."""
        n = len(self.urls)
        return (len(self.fingerprints) == 8 * n and len(self.host_index) == 4 * n
                and all(0 <= i < n for i in self.as_linked))  # fmt: skip


EMPTY = LinkBatch((), b"", (), b"", {})


def link_batch(urls: Sequence[str], as_linked: dict[str, str] | None = None) -> LinkBatch:
    """The batch of canonical `urls`; `as_linked` maps a canonical URL to the
    form to request where they differ (the first one wins)."""
    if not urls:
        return EMPTY
    hosts: dict[str, int] = {}
    index = bytearray()
    prints = bytearray()
    for url in urls:
        host = canonical_host(url)
        number = hosts.get(host)
        if number is None:
            number = hosts[host] = len(hosts)
        index += number.to_bytes(4, "little")
        prints += fingerprint(url)
    wire = {}
    if as_linked:
        wire = {i: as_linked[url] for i, url in enumerate(urls) if url in as_linked}
    return LinkBatch(tuple(urls), bytes(prints), tuple(hosts), bytes(index), wire)
