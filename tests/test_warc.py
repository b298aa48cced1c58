"""The WARC archive (--warc DIR, SPEC 3.3) of a real crawl, on every backend.

The crawl meets robots.txt, a redirect, a 404, a gzip-encoded page and a
page cut at --max-bytes; the files must pass `warcio check` and `warcio
index` (run as the commands), and every record's `warc` offset must open
the response record of that record's URL.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import Backend
from siteserver import SiteServer
from warcio.archiveiterator import ArchiveIterator

import scraper

pytestmark = pytest.mark.timeout(90)

WARCIO = str(Path(sys.executable).with_name("warcio"))
MAX_BYTES = 4000


def page(title: str, *links: str, size: int = 0) -> bytes:
    anchors = "".join(f'<a href="{link}">{link}</a>' for link in links)
    return f"<html><title>{title}</title><body>{anchors}<p>{'x' * size}</p></body></html>".encode()


@pytest.fixture
def warc_site(serve: Any) -> SiteServer:
    site = {
        "/robots.txt": b"User-agent: *\nDisallow: /private/\n",
        "/": page("home", "/moved", "/missing.html", "/zipped.html", "/big.html", "/private/x.html"),
        "/target.html": page("target"),  # /moved is a 301 to it
        "/zipped.html": page("zipped", size=1000),  # gzip on the wire
        "/big.html": page("big", size=2 * MAX_BYTES),  # cut at --max-bytes: too_large
    }  # fmt: skip
    server: SiteServer = serve(site=site, redirects={"/moved": "/target.html"})
    server.gzipped.add("/zipped.html")
    return server


def read_record_at(path: Path, offset: int) -> tuple[Any, bytes, bytes]:
    """The WARC record at `offset`: (record, raw payload, decoded payload)."""
    with path.open("rb") as file:
        file.seek(offset)
        record = next(iter(ArchiveIterator(file)))
        raw = record.raw_stream.read()
    decoded = gzip.decompress(raw) if record.http_headers.get_header("Content-Encoding") == "gzip" else raw
    return record, raw, decoded


def test_every_exchange_is_archived_and_every_record_points_to_its_response(
    warc_site: SiteServer, backend: Backend, tmp_path: Path
):
    # Without the feature: CrawlConfig refuses `warc` (TypeError), and no record has a `warc` field.
    server, folder = warc_site, tmp_path / "warc"
    records = scraper.crawl([server.url("/")], depth=1, workers=2, warc=str(folder), max_bytes=MAX_BYTES,
                            **backend.kwargs)  # fmt: skip
    files = sorted(folder.glob("*.warc.gz"))
    assert 1 <= len(files) <= 2, "one file per worker process (one for the thread backend)"
    if backend.name == "thread":
        assert len(files) == 1

    for file in files:  # the tools' own checks: digests, record syntax
        check = subprocess.run([WARCIO, "check", "-v", str(file)], capture_output=True, text=True)
        assert check.returncode == 0 and "digest pass" in check.stdout, check.stdout + check.stderr
    index = [json.loads(line) for file in files for line in subprocess.run(
        [WARCIO, "index", "-f", "warc-type,warc-target-uri,http:status,offset", str(file)],
        capture_output=True, text=True, check=True).stdout.splitlines()]  # fmt: skip
    responses = {(row["warc-target-uri"], row["http:status"]) for row in index
                 if row["warc-type"] == "response"}  # fmt: skip
    requests = {row["warc-target-uri"] for row in index if row["warc-type"] == "request"}
    hops = {server.url(path) for path in ("/robots.txt", "/", "/moved", "/target.html", "/missing.html",
                                          "/zipped.html", "/big.html")}  # fmt: skip
    assert hops <= requests
    assert {(server.url("/moved"), "301"), (server.url("/missing.html"), "404"),
            (server.url("/robots.txt"), "200"), (server.url("/target.html"), "200")} <= responses  # fmt: skip
    assert not any("/private/" in uri for uri in requests), "a page robots.txt forbids is not fetched"

    assert {record["url"] for record in records} == {server.url(p) for p in (
        "/", "/moved", "/missing.html", "/zipped.html", "/big.html")}  # fmt: skip
    for record in records:
        path = folder / record["warc"]["file"]
        assert path in files
        warc, raw, decoded = read_record_at(path, record["warc"]["offset"])
        assert warc.rec_type == "response"
        assert warc.rec_headers.get_header("WARC-Target-URI") == (record["final_url"] or record["url"])
        assert warc.http_headers.get_statuscode() == str(record["status"])
        if record["ok"]:
            assert hashlib.sha256(decoded).hexdigest() == record["sha256"]

    by_url = {record["url"]: record for record in records}
    moved = by_url[server.url("/moved")]
    assert moved["final_url"] == server.url("/target.html") and moved["status"] == 200
    zipped = by_url[server.url("/zipped.html")]["warc"]
    _, raw, decoded = read_record_at(folder / zipped["file"], zipped["offset"])
    assert raw[:2] == b"\x1f\x8b", "the body as received: still gzip-encoded"
    assert decoded == server.site["/zipped.html"]
    big_record = by_url[server.url("/big.html")]
    assert big_record["error"].startswith("too_large")
    big, raw, _ = read_record_at(folder / big_record["warc"]["file"], big_record["warc"]["offset"])
    assert big.rec_headers.get_header("WARC-Truncated") == "length"
    assert len(raw) <= MAX_BYTES


def test_a_folder_that_cannot_be_made_is_exit_2(run_cli: Any, write_seeds: Any, cli_cwd: Path):
    # Without the feature: argparse's "unrecognized arguments".
    (cli_cwd / "file").write_text("", encoding="utf-8")
    result = run_cli(write_seeds("http://127.0.0.1:9/"), "--warc", "file/sub", "-o", "out.jsonl")
    assert result.rc == 2 and "--warc" in result.stderr and "Traceback" not in result.stderr, result


# -- the writer alone ---------------------------------------------------------------


def exchange(url: str, body: bytes = b"hello", **changes: Any) -> Any:
    from scraper.download import Exchange

    fields = dict(url=url, sent_at=1_796_000_000.5, request_headers=[("Host", "a"), ("User-Agent", "t/1")],
                  protocol="HTTP/1.1", status_line="200 OK",
                  response_headers=[("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
                  body=body)  # fmt: skip
    return Exchange(**{**fields, **changes})


def test_fetch_threads_share_their_process_file_and_each_offset_opens_its_record(tmp_path: Path):
    import threading

    from scraper.warc import close_warc, open_warc

    folder = tmp_path / "w"
    files = [open_warc(str(folder)) for _ in range(4)]  # four fetch threads of one process
    assert len({id(file) for file in files}) == 1
    offsets: dict[str, int] = {}

    def write(thread: int) -> None:
        for n in range(25):
            url = f"http://a/{thread}/{n}"
            offsets[url] = files[thread].write(exchange(url, body=url.encode() * 40))

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for file in files:
        close_warc(file)
    [path] = folder.glob("*.warc.gz")
    for url, offset in offsets.items():
        record, raw, _ = read_record_at(path, offset)
        assert (record.rec_type, record.rec_headers.get_header("WARC-Target-URI"), raw) == (
            "response", url, url.encode() * 40)  # fmt: skip
    check = subprocess.run([WARCIO, "check", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_chunked_response_is_stored_unchunked_with_its_header_renamed(tmp_path: Path):
    from scraper.warc import WarcFile

    warc = WarcFile(str(tmp_path))
    headers = [("Content-Type", "text/plain"), ("Transfer-Encoding", "chunked")]
    offset = warc.write(exchange("http://a/", response_headers=headers, truncated=True))
    warc.close()
    record, raw, _ = read_record_at(tmp_path / warc.name, offset)
    assert raw == b"hello" and record.http_headers.get_header("Transfer-Encoding") is None
    assert record.http_headers.get_header("X-Archive-Orig-Transfer-Encoding") == "chunked"
    assert record.rec_headers.get_header("WARC-Truncated") == "length"
    check = subprocess.run([WARCIO, "check", str(tmp_path / warc.name)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
