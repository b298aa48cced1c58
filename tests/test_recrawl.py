"""Re-crawl (--since OLD.jsonl, SPEC 3.3) against a real local server, on every backend.

The site has pages that send an ETag, a Last-Modified, both or neither;
some change between the two crawls, and some pages are linked only from
pages that answer 304 the second time, so the second crawl reaches them only
through the old record's links.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from conftest import Backend, read_jsonl
from siteserver import SiteServer

import scraper

pytestmark = pytest.mark.timeout(90)

MODIFIED = "Mon, 30 Nov 2026 10:00:00 GMT"


def page(title: str, *links: str) -> bytes:
    anchors = "".join(f'<a href="{link}">{link}</a>' for link in links)
    return f'<!doctype html><html lang="en"><title>{title}</title><body>{anchors}</body></html>'.encode()


def build_site() -> dict[str, bytes]:
    return {
        "/robots.txt": b"User-agent: *\nDisallow: /private/\n",
        "/": page("home", "/etag.html", "/modified.html", "/both.html", "/neither.html", "/changes.html",
                  "/new-etag.html"),
        "/etag.html": page("etag", "/etag-child.html"),  # 304 the second time
        "/etag-child.html": page("only linked from etag.html"),
        "/modified.html": page("modified", "/modified-child.html"),  # 304
        "/modified-child.html": page("only linked from modified.html"),
        "/both.html": page("both", "/both-child.html"),  # 304
        "/both-child.html": page("only linked from both.html"),
        "/neither.html": page("neither"),  # no validator, the same body: unchanged by its hash
        "/changes.html": page("changes"),  # no validator, another body the second time
        "/new-etag.html": page("new etag"),  # its ETag and body change: a 200
    }  # fmt: skip


@pytest.fixture
def recrawl_site(serve: Any) -> SiteServer:
    server: SiteServer = serve(site=build_site())
    server.etags.update({"/etag.html": '"e1"', "/both.html": '"b1"', "/new-etag.html": '"n1"'})
    server.modified.update({"/modified.html": MODIFIED, "/both.html": MODIFIED})
    return server


def change_site(server: SiteServer) -> None:
    """What happens on the server between the two crawls."""
    server.site["/changes.html"] = page("changes, changed")
    server.site["/new-etag.html"] = page("new etag, changed")
    server.etags["/new-etag.html"] = '"n2"'


def by_path(records: list[dict[str, Any]], server: SiteServer) -> dict[str, dict[str, Any]]:
    return {record["url"][len(server.origin) :]: record for record in records}


def first_crawl(server: SiteServer, backend: Backend, old: Path) -> dict[str, dict[str, Any]]:
    scraper.crawl([server.url("/")], depth=2, workers=2, output=str(old), **backend.kwargs)
    return by_path(read_jsonl(old), server)


def test_records_carry_validators_and_the_body_hash(recrawl_site: SiteServer, backend: Backend, tmp_path):
    # Without the feature: KeyError 'etag' (the records had no such fields).
    old = first_crawl(recrawl_site, backend, tmp_path / "old.jsonl")
    assert len(old) == len(build_site()) - 1 and all(record["ok"] for record in old.values())
    assert (old["/etag.html"]["etag"], old["/etag.html"]["last_modified"]) == ('"e1"', None)
    assert (old["/modified.html"]["etag"], old["/modified.html"]["last_modified"]) == (None, MODIFIED)
    assert (old["/both.html"]["etag"], old["/both.html"]["last_modified"]) == ('"b1"', MODIFIED)
    assert (old["/neither.html"]["etag"], old["/neither.html"]["last_modified"]) == (None, None)
    for path, record in old.items():
        assert record["sha256"] == hashlib.sha256(recrawl_site.site[path]).hexdigest()
        assert record["unchanged"] is False and record["warc"] is None


def test_a_recrawl_asks_what_changed_and_walks_through_unchanged_pages(
    recrawl_site: SiteServer, backend: Backend, tmp_path: Path
):
    # Without the feature: no If-None-Match in the log, every page a 200, and
    # (with the server's 304s but no old links) the *-child pages never reached.
    server = recrawl_site
    old = first_crawl(server, backend, tmp_path / "old.jsonl")
    change_site(server)
    first_requests = len(server.requests)
    scraper.crawl([server.url("/")], depth=2, workers=2, output=str(tmp_path / "new.jsonl"),
                  since=str(tmp_path / "old.jsonl"), **backend.kwargs)  # fmt: skip
    new = by_path(read_jsonl(tmp_path / "new.jsonl"), server)

    sent = {request.path: request.headers for request in server.requests[first_requests:]}
    assert sent["/etag.html"].get("If-None-Match") == '"e1"' and "If-Modified-Since" not in sent["/etag.html"]
    assert sent["/modified.html"].get("If-Modified-Since") == MODIFIED
    assert "If-None-Match" not in sent["/modified.html"]
    assert (sent["/both.html"].get("If-None-Match"), sent["/both.html"].get("If-Modified-Since")) == (
        '"b1"', MODIFIED)  # fmt: skip
    assert sent["/new-etag.html"].get("If-None-Match") == '"n1"'
    for path in ("/", "/neither.html", "/changes.html", "/robots.txt"):
        assert not {"If-None-Match", "If-Modified-Since"} & set(sent[path]), path
    assert server.not_modified == 3

    assert set(new) == set(old), "the children of 304 pages are reached through the old links"
    for path in ("/etag.html", "/modified.html", "/both.html"):
        record = new[path]
        assert (record["status"], record["ok"], record["error"]) == (304, True, None)
        assert record["unchanged"] is True
        for name in ("title", "description", "lang", "canonical", "links", "fields", "etag", "last_modified",
                     "sha256"):  # fmt: skip
            assert record[name] == old[path][name], (path, name)
    assert new["/neither.html"]["status"] == 200 and new["/neither.html"]["unchanged"] is True
    assert new["/"]["unchanged"] is True
    assert new["/changes.html"]["unchanged"] is False and new["/changes.html"]["title"] == "changes, changed"
    assert (new["/new-etag.html"]["status"], new["/new-etag.html"]["etag"]) == (200, '"n2"')
    assert new["/new-etag.html"]["unchanged"] is False
    for path in ("/etag-child.html", "/modified-child.html", "/both-child.html"):
        assert new[path]["unchanged"] is True and new[path]["depth"] == 2


def test_the_summary_counts_unchanged_pages_and_since_works_with_resume(
    recrawl_site: SiteServer, backend: Backend, run_cli: Any, write_seeds: Any, cli_cwd: Path
):
    # Without the feature: argparse refuses --since (exit 2).
    server = recrawl_site
    seeds = write_seeds(server.url("/"))
    first = run_cli(seeds, "-o", "old.jsonl", "--depth", "2", "-w", "2", *backend.cli_args)
    assert first.rc == 0, first
    change_site(server)
    # An interrupted re-crawl, as --resume finds it: its output holds its first pages only.
    part = run_cli(seeds, "-o", "new.jsonl", "--since", "old.jsonl", "--depth", "2", "--max-pages", "4",
                   "-w", "2", *backend.cli_args)  # fmt: skip
    assert part.rc == 0 and len(part.records) == 4, part
    rest = run_cli(seeds, "-o", "new.jsonl", "--since", "old.jsonl", "--depth", "2", "--resume",
                   "-w", "2", *backend.cli_args)  # fmt: skip
    assert rest.rc == 0, rest
    records = rest.records
    assert sorted(record["url"] for record in records) == sorted(record["url"] for record in first.records)
    unchanged = {record["url"][len(server.origin) :] for record in records if record["unchanged"]}
    assert unchanged == set(build_site()) - {"/robots.txt", "/changes.html", "/new-etag.html"}
    done_first = sum(record["unchanged"] for record in part.records)
    assert f"unchanged since the last crawl: {len(unchanged) - done_first} pages" in rest.stderr


@pytest.mark.parametrize(
    "content, why",
    [(None, "cannot read --since"), ("{not json\n{}\n", "line 1 is not a scraper record"),
     ('{"url": "http://x/", "sha256": 5}\n', "line 1 is not a scraper record")],
)  # fmt: skip
def test_a_missing_or_bad_old_file_is_exit_2_in_one_line(
    run_cli: Any, write_seeds: Any, cli_cwd: Path, content: str | None, why: str
):
    # Without the feature: argparse's "unrecognized arguments" (exit 2 too, but no such line).
    if content is not None:
        (cli_cwd / "old.jsonl").write_text(content, encoding="utf-8")
    result = run_cli(write_seeds("http://127.0.0.1:9/"), "--since", "old.jsonl", "-o", "new.jsonl")
    assert result.rc == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and why in lines[0] and "Traceback" not in result.stderr, result
