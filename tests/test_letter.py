"""Issue 22, "to the letter": WARC request lines, sitemap <loc>s, parsel's strings,
the RFC 9309 product token, a deadline in the headers, -O and usage errors,
options that do nothing, --compare with nothing crawled, where --cookie goes,
the distribution's name and the words of README and --help.

Each test names its point of the issue.
"""

from __future__ import annotations

import gzip
from pathlib import Path

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
