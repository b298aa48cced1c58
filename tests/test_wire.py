"""The versioned JSON form of the messages: round trips, and what is refused."""

from __future__ import annotations

import json
import pickle

import pytest

from scraper.linkbatch import link_batch
from scraper.records import RECORD_FIELDS, Result, Task, WorkerSpec, new_record
from scraper.wire import (
    MAX_MESSAGE,
    VERSION,
    WireError,
    dump_result,
    dump_spec,
    dump_task,
    load_result,
    load_spec,
    load_task,
)

TASK = Task(7, "http://example.com/p?a=1", depth=2, parent="http://example.com/", attempt=1,
            fetch_url="http://example.com/p?a=1&u=https://x.y", hops=1, spent_ms=12.5, retries=1,
            if_none_match='W/"abc"', if_modified_since="Mon, 30 Nov 2026 10:00:00 GMT")  # fmt: skip
SPEC = WorkerSpec(timeout=10.0, max_bytes=1024, retries=2, user_agent="bot/1", select=(("h", "h1"),),
                  parse="my_module:my_parse", threads=32, headers=(("X-Token", "t"),),
                  cookies=(("127.0.0.1", "/", "sid", "1", False), (".example.org", "/a", "s", "", True)),
                  auth="user:pass", private_origins=("http://127.0.0.1:8080",),
                  warc="/var/archive")  # fmt: skip


def test_task_spec_and_result_survive_a_round_trip():
    assert load_task(dump_task(TASK)) == TASK
    assert load_spec(dump_spec(SPEC)) == SPEC
    links = ["http://example.com/x", "http://other.org/p?a=1&b=2"]
    record = {**new_record(TASK, "host-a:1/2"), "title": "caf\u00e9 \u2603", "links": links,
              "etag": '"e"', "sha256": "ab" * 32, "unchanged": True}
    record["warc"] = {"file": "w.warc.gz", "offset": 9}
    batch = link_batch(links, {links[1]: "http://other.org/p?b=2&a=1"})
    result = Result(TASK, record, robots_body=b"User-agent: *\n\xff", cpu_ms=1.5, wall_ms=3.0,
                    redirect_to="http://example.com/y", retry_after=2.0, links=batch)  # fmt: skip
    back = load_result(dump_result(result))
    assert (back.task, back.record, back.robots_body, back.redirect_to, back.links) == (
        TASK, record, b"User-agent: *\n\xff", "http://example.com/y", batch)  # fmt: skip
    assert back.links is not None and back.links.as_linked == {1: "http://other.org/p?b=2&a=1"}


@pytest.mark.parametrize("change", [
    {"fingerprints": ""},  # one fingerprint short
    {"host_index": "AAAAAAEAAAA="},  # a host number beyond the hosts
    {"as_linked": {"7": "http://x.y/"}},  # an index beyond the links
    {"hosts": [1]},
])  # fmt: skip
def test_a_link_batch_that_does_not_match_its_record_is_refused(change):
    record = {**new_record(TASK, "w"), "links": ["http://example.com/x", "http://example.com/y"]}
    message = json.loads(dump_result(Result(TASK, record, links=link_batch(record["links"]))))
    message["links"].update(change)
    with pytest.raises(WireError):
        load_result(json.dumps(message).encode())


def test_a_task_round_trip_keeps_the_validators_and_pickles_them_too():
    assert load_task(dump_task(TASK)).validators == TASK.validators == {
        "If-None-Match": 'W/"abc"', "If-Modified-Since": "Mon, 30 Nov 2026 10:00:00 GMT"}  # fmt: skip
    assert pickle.loads(pickle.dumps(TASK)) == TASK


def test_every_message_carries_the_version():
    assert json.loads(dump_task(TASK))["v"] == VERSION


@pytest.mark.parametrize(
    "data, why",
    [
        (b"\x80\x04K\x01.", "not JSON"),  # a pickle: never unpickled
        (pickle.dumps(TASK), "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (json.dumps({**json.loads(dump_task(TASK)), "v": VERSION + 1}).encode(), "version"),
        (dump_task(TASK).replace(b'"id":7', b'"id":"7"'), "id has the wrong type"),
        (dump_task(TASK).replace(b'"id":7', b'"id":true'), "id has the wrong type"),
        (dump_task(TASK).replace(b',"hops":1', b""), "expected the fields"),
        (dump_task(TASK).replace(b'"hops":1', b'"hops":1,"evil":"__import__(os)"'), "expected the fields"),
        (b" " * (MAX_MESSAGE + 1), "larger than"),
    ],
)
def test_a_bad_task_message_is_refused_with_one_line(data, why):
    with pytest.raises(WireError, match=why) as caught:
        load_task(data)
    assert "\n" not in str(caught.value)


def test_a_result_without_a_full_record_is_refused():
    message = json.loads(dump_result(Result(TASK, new_record(TASK, "w"))))
    del message["record"]["links"]
    with pytest.raises(WireError, match="record"):
        load_result(json.dumps(message).encode())
    assert set(RECORD_FIELDS) <= set(new_record(TASK, "w"))


def test_a_spec_with_a_bad_select_is_refused():
    message = json.loads(dump_spec(SPEC))
    message["select"] = [["h"]]
    with pytest.raises(WireError, match="select"):
        load_spec(json.dumps(message).encode())


@pytest.mark.parametrize("name, value", [
    ("headers", [["X-Token"]]),
    ("cookies", [["127.0.0.1", "/", "sid", "1", "false"]]),  # secure must be a bool
    ("private_origins", [1]),
    ("auth", 42),
])  # fmt: skip
def test_a_spec_with_bad_credentials_is_refused(name, value):
    message = json.loads(dump_spec(SPEC))
    message[name] = value
    with pytest.raises(WireError, match=name):
        load_spec(json.dumps(message).encode())


def test_a_sitemap_result_survives_a_round_trip_and_bad_entries_are_refused():
    task = Task(3, "http://example.com/sitemap.xml", kind="sitemap")
    entries = {"urls": ["http://example.com/a"], "sitemaps": ["http://example.com/s2.xml.gz"]}
    result = Result(task, new_record(task, "w"), sitemap=entries)
    assert load_result(dump_result(result)).sitemap == entries
    assert load_result(dump_result(Result(TASK, new_record(TASK, "w")))).sitemap is None
    message = json.loads(dump_result(result))
    message["sitemap"] = {"urls": [1]}
    with pytest.raises(WireError, match="sitemap"):
        load_result(json.dumps(message).encode())
