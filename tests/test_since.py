"""--since OLD.jsonl, the pure part: what is kept of OLD, which task asks what, what a record becomes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scraper.errors import UsageError
from scraper.records import ROBOTS, Task, new_record
from scraper.since import Since

SHA = "ab" * 32


def old_record(url: str, **fields: Any) -> dict[str, Any]:
    record = {**new_record(Task(1, url), "w"), "ok": True, "status": 200, "final_url": url, "sha256": SHA,
              "title": f"title of {url}", "links": [url + "child"]}  # fmt: skip
    return {**record, **fields}


@pytest.fixture
def write_old(tmp_path: Path) -> Any:
    opened: list[Since] = []

    def write(*records: dict[str, Any], tail: str = "") -> Since:
        path = tmp_path / "old.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail, encoding="utf-8")
        opened.append(Since(str(path)))
        return opened[-1]

    yield write
    for since in opened:
        since.close()


def test_old_is_read_into_small_entries_the_latest_record_of_a_url_counting(write_old):
    since = write_old(
        old_record("http://a/1", etag='"1"'),
        old_record("http://a/2", last_modified="Mon, 30 Nov 2026 10:00:00 GMT"),
        old_record("http://a/3", ok=False, error="http_404", sha256=None),  # nothing to ask
        old_record("http://a/1", etag='"1b"'),  # a later crawl appended to the same file
        old_record("http://a/2", ok=False, error="timeout", sha256=None),  # the latest failed
        tail='{"url": "http://a/torn',  # a killed crawl's torn last line: skipped, as --resume does
    )
    assert set(since.entries) == {"http://a/1"}
    entry = since.entries["http://a/1"]
    assert (entry.etag, entry.sha256, entry.final_url) == ('"1b"', bytes.fromhex(SHA), None)


def test_a_task_carries_the_validators_of_the_url_it_requests(write_old):
    since = write_old(
        old_record("http://a/1", etag='"1"', last_modified="Mon, 30 Nov 2026 10:00:00 GMT"),
        old_record("http://a/moved", etag='"t"', final_url="http://a/target"),  # a redirect: the target's
        old_record("http://a/plain"),  # no validator: fetched normally
    )
    task = since.conditional(Task(1, "http://a/1"))
    assert task.validators == {"If-None-Match": '"1"', "If-Modified-Since": "Mon, 30 Nov 2026 10:00:00 GMT"}
    # the first hop of a page that redirected: the validators are of its target
    assert since.conditional(Task(2, "http://a/moved")).validators == {}
    hop = since.conditional(Task(2, "http://a/moved", fetch_url="http://a/target", hops=1))
    assert hop.validators == {"If-None-Match": '"t"'}
    assert since.conditional(Task(3, "http://a/plain")).validators == {}
    assert since.conditional(Task(4, "http://a/1", kind=ROBOTS)).validators == {}
    assert since.conditional(Task(5, "http://a/new")).validators == {}


def test_a_304_gets_the_old_content_and_a_200_with_the_old_hash_is_unchanged(write_old):
    since = write_old(old_record("http://a/1", etag='"1"', fields={"h": ["x"]}), old_record("http://a/2"))
    not_modified = {**new_record(Task(1, "http://a/1"), "w"), "status": 304, "ok": True, "unchanged": True}
    since.settle(not_modified)
    assert (not_modified["title"], not_modified["links"], not_modified["etag"]) == (
        "title of http://a/1", ["http://a/1child"], '"1"')  # fmt: skip
    assert (not_modified["sha256"], not_modified["fields"]) == (SHA, {"h": ["x"]})
    assert not_modified["status"] == 304
    same = {**new_record(Task(2, "http://a/2"), "w"), "status": 200, "ok": True, "sha256": SHA}
    other = {**same, "sha256": "cd" * 32}
    since.settle(same)
    since.settle(other)
    assert (same["unchanged"], other["unchanged"]) == (True, False)


@pytest.mark.parametrize("line", ["not json", "[1]", '{"no": "url"}', '{"url": "u", "etag": 3}',
                                  '{"url": "u", "sha256": "short"}'])  # fmt: skip
def test_a_bad_old_file_is_a_usage_error_naming_the_line(tmp_path: Path, line: str):
    path = tmp_path / "old.jsonl"
    path.write_text(json.dumps(old_record("http://a/")) + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(UsageError, match="line 2 is not a scraper record"):
        Since(str(path))


def test_a_missing_old_file_is_a_usage_error(tmp_path: Path):
    with pytest.raises(UsageError, match="cannot read --since"):
        Since(str(tmp_path / "nothing.jsonl"))


def test_an_old_file_rewritten_during_the_crawl_costs_the_content_not_the_crawl(write_old, tmp_path, caplog):
    since = write_old(old_record("http://a/1", etag='"1"'))
    (tmp_path / "old.jsonl").write_text("", encoding="utf-8")  # the same inode, emptied
    record = {**new_record(Task(1, "http://a/1"), "w"), "status": 304, "ok": True, "unchanged": True}
    since.settle(record)
    assert (record["title"], record["links"], record["unchanged"]) == (None, [], True)
    assert "changed during the crawl" in caplog.text
