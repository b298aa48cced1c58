"""The frontier on disk (store.py, seen.py): bounded memory, exact de-duplication,
breadth-first order beyond the in-memory window, and resume from the store."""

from __future__ import annotations

import os
import random
import shutil
import signal
from collections import Counter, deque

import numpy as np
import pytest
import redis
from conftest import backend_params, read_jsonl, session_redis, wait_until

import scraper.frontier
import scraper.seen
from scraper import crawl
from scraper.backends.streams import Keys
from scraper.errors import ScraperError
from scraper.frontier import Frontier
from scraper.linkbatch import canonical_host, fingerprint, link_batch
from scraper.seen import BlockedBloom, SeenSet
from scraper.store import STORE_SUFFIX, Store, resumable_offset

SITE = "http://example.com"


def fingerprints(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.uint64)


# -- the seen-set ---------------------------------------------------------------------


@pytest.mark.parametrize("threads", [False, True], ids=["at-once", "in-threads"])
def test_the_seen_set_is_exact_through_merges_persists_and_reopens(tmp_path, monkeypatch, threads):
    monkeypatch.setattr(scraper.seen, "MERGE_CHUNK", 64)  # merges of many chunks
    monkeypatch.setattr(scraper.seen, "SMALL", 0 if threads else 1 << 22)  # the Bloom filter's rebuild
    monkeypatch.setattr(scraper.seen, "BACKGROUND_MERGE", 2000 if threads else 1 << 22)  # large merges
    rng = np.random.default_rng(7)
    values = rng.integers(0, 2**64 - 1, size=20_000, dtype=np.uint64)
    folder = tmp_path / "live"
    folder.mkdir()
    seen = SeenSet(str(folder))
    reference: set[int] = set()
    for start in range(0, len(values), 250):
        batch = values[start:start + 250]
        if start:  # some repeats, of older batches and within the batch
            batch = np.concatenate([batch, values[start - 300:start - 290], batch[:5]])
        want, within = [], set()
        for value in batch.tolist():
            want.append(value not in reference and value not in within)
            within.add(value)
        assert seen.add_new(batch).tolist() == want, start
        reference |= within
        if start % 2500 == 0:
            names = seen.persist()
            seen.committed()
            copy = tmp_path / f"copy-{start}"  # what a crash now leaves, opened beside the live set
            copy.mkdir()
            for name in names:
                shutil.copy(folder / name, copy / name)
            again = SeenSet(str(copy), names)
            assert len(again) == len(reference)
            assert again.contains(fingerprints(sorted(reference)[:100])).all()
    assert len(seen) == len(reference)
    seen.wait_for_merges()
    assert len(seen.persist()) < 12  # merged: O(log n) runs, not one per commit
    names = seen.persist()
    seen.committed()
    seen.wait_for_merges()  # before another set opens the folder (it would take the merge's file for a stray)
    assert len(SeenSet(str(folder), names)) == len(reference)


def test_files_written_after_the_last_commit_are_not_part_of_the_set(tmp_path):
    seen = SeenSet(str(tmp_path))
    seen.add_new(fingerprints([1, 2, 3]))
    committed = seen.persist()
    seen.committed()
    seen.add_new(fingerprints([4]))
    seen.persist()  # written, never committed: a crash before the store's commit
    again = SeenSet(str(tmp_path), committed)
    assert again.contains(fingerprints([1, 2, 3, 4])).tolist() == [True, True, True, False]
    assert sorted(os.listdir(tmp_path)) == sorted(committed)


def test_the_bloom_filter_never_says_no_to_a_key_it_holds():
    bloom = BlockedBloom(1000)
    keys = np.random.default_rng(1).integers(0, 2**64 - 1, size=1000, dtype=np.uint64)
    assert bloom.add(keys)
    assert bloom.maybe(keys).all()
    others = np.random.default_rng(2).integers(0, 2**64 - 1, size=100_000, dtype=np.uint64)
    assert bloom.maybe(others).mean() < 0.02  # false "maybe"s only skip no lookup
    assert not bloom.add(np.arange(bloom.capacity, dtype=np.uint64))  # full: rebuild larger


def test_fingerprints_and_hosts_are_those_of_the_canonical_url():
    assert fingerprint("http://a.org/x") == fingerprint("http://a.org/x") != fingerprint("http://a.org/y")
    assert len(fingerprint("http://a.org/x")) == 8
    assert canonical_host("https://user:pw@a.org:8443/p?q") == "a.org"
    assert canonical_host("http://[::1]:8080/") == "::1"
    batch = link_batch(["http://a.org/1", "http://b.org/2", "http://a.org/3"], {"http://b.org/2": "http://B.org/2"})
    assert batch.hosts == ("a.org", "b.org")
    assert batch.host_index == b"".join(n.to_bytes(4, "little") for n in (0, 1, 0))
    assert batch.as_linked == {1: "http://B.org/2"} and batch.is_consistent()


# -- the frontier over the store ------------------------------------------------------


def make(store: Store | None = None, **overrides) -> Frontier:
    settings = dict(allowed_hosts=("example.com", "a.org", "b.org", "c.org"), max_depth=4, max_pages=None,
                    per_host=2, delay=0.0, user_agent="testbot", obey_robots=False, store=store)  # fmt: skip
    settings.update(overrides)
    return Frontier(**settings)


def graph(pages: int, seed: int) -> dict[str, list[str]]:
    """A random site over three hosts: each page links to a few others, some of them twice."""
    rng = random.Random(seed)
    urls = [f"http://{rng.choice('abc')}.org/{n}" for n in range(pages)]
    return {url: rng.sample(urls, rng.randint(0, 6)) for url in urls}


def bfs_depths(links: dict[str, list[str]], seeds: list[str], max_depth: int) -> dict[str, int]:
    depths = {seed: 0 for seed in seeds}
    queue = deque(seeds)
    while queue:
        url = queue.popleft()
        if depths[url] < max_depth:
            for link in links[url]:
                if link not in depths:
                    depths[link] = depths[url] + 1
                    queue.append(link)
    return depths


def crawl_in_memory(frontier: Frontier, links: dict[str, list[str]], rng: random.Random,
                    stop_after: int | None = None) -> list:
    """Hand tasks out and finish them in a random order, as workers would; the pages done."""
    done, in_flight = [], []
    while frontier.has_pending() and (stop_after is None or len(done) < stop_after):
        while len(in_flight) < 8 and (task := frontier.next_ready(0.0)) is not None:
            in_flight.append(task)
        assert in_flight, "pages pending but none handed out"
        task = in_flight.pop(rng.randrange(len(in_flight)))
        frontier.done(task, 0.0)
        done.append(task)
        if task.depth < frontier.max_depth and links[task.url]:
            frontier.offer_links(link_batch(links[task.url]), task.depth + 1, task.url, task.id)
    return done


@pytest.mark.parametrize("seed", range(4))
def test_a_frontier_larger_than_its_window_keeps_breadth_first_order_and_exact_depths(
        tmp_path, monkeypatch, seed):  # fmt: skip
    monkeypatch.setattr(scraper.frontier, "HOST_WINDOW", 4)  # a window of a few tasks per host...
    monkeypatch.setattr(scraper.frontier, "WINDOW", 10)  # ...and in all: most of it lives in the store
    links = graph(400, seed)
    seeds = list(links)[:3]
    frontier = make(Store(str(tmp_path / "f"), fresh=True))
    frontier.offer_links(link_batch(seeds), 0, seed=True)
    done = crawl_in_memory(frontier, links, random.Random(seed))
    want = bfs_depths(links, seeds, 4)
    counts = Counter(task.url for task in done)
    assert set(counts) == set(want) and max(counts.values()) == 1  # every page once
    assert {task.url: task.depth for task in done} == want  # the true depths
    handed_out = [task.depth for task in done]
    assert max(handed_out[:handed_out.index(2)]) <= 1  # nothing two levels ahead of the first level


def test_the_store_round_trip_resumes_where_the_commit_left_off(tmp_path):
    links = graph(300, 11)
    seeds = list(links)[:2]
    folder = str(tmp_path / "f")
    rng = random.Random(5)
    first = make(Store(folder, fresh=True))
    first.offer_links(link_batch(seeds), 0, seed=True)
    done = crawl_in_memory(first, links, rng, stop_after=60)
    first.commit(journal_offset=123, done_pages=len(done))
    first.store.close()  # then a crash: nothing in flight is lost, nothing done comes again
    assert resumable_offset(folder, 123) == 123 and resumable_offset(folder, 100) is None
    again = make(Store(folder, fresh=False))
    assert again.store.get("done_pages") == len(done)
    rest = crawl_in_memory(again, links, rng)
    want = bfs_depths(links, seeds, 4)
    before, after = Counter(task.url for task in done), Counter(task.url for task in rest)
    assert not set(before) & set(after)  # nothing done before the commit comes again
    assert max((before + after).values()) == 1 and set(before + after) == set(want)  # the rest, once
    assert {task.url: task.depth for task in rest} == {url: want[url] for url in {t.url for t in rest}}


def test_pages_recorded_after_the_last_commit_are_not_handed_out_again(tmp_path):
    folder = str(tmp_path / "f")
    first = make(Store(folder, fresh=True), max_depth=1)
    first.offer_links(link_batch([f"{SITE}/"]), 0, seed=True)
    seed = first.next_ready(0.0)
    first.done(seed, 0.0)
    first.offer_links(link_batch([f"{SITE}/{n}" for n in range(5)]), 1, seed.url, seed.id)
    first.commit(journal_offset=0, done_pages=1)
    first.store.close()
    again = make(Store(folder, fresh=False), max_depth=1)
    for n in (1, 3):  # recorded in the output past the store's last commit
        again.mark_done(f"{SITE}/{n}")
    handed_out = []
    while (task := again.next_ready(0.0)) is not None:
        again.done(task, 0.0)
        handed_out.append(task.url)
    assert handed_out == [f"{SITE}/{n}" for n in (0, 2, 4)]
    assert again.has_pending() is False


# -- end to end: SIGKILL at random points, then --resume from the store -------------------


def line_count(path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


@pytest.mark.timeout(300)
@pytest.mark.parametrize("backend", backend_params("process")[:1] + backend_params("redis"))
def test_sigkill_at_random_points_and_resume_write_every_page_once(
        serve, expected, write_seeds, start_cli, run_cli, cli_cwd, backend):  # fmt: skip
    server = serve(pages=300, delay=0.01)
    seeds = write_seeds(server.url("/"))
    want = set(expected(server, [server.url("/")], depth=10))
    out = cli_cwd / "out.jsonl"
    args = (seeds, "-o", out, "--depth", "10", "-w", "2", "--resume", *backend.cli_args)
    crawl_id = f"kill-{os.getpid()}-{random.randrange(10**6)}"
    if backend.name == "redis":
        args += ("--crawl-id", crawl_id)
    rng = random.Random(20)
    for cycle in range(10):
        cli = start_cli(*args)
        target = line_count(out) + rng.randint(1, 25)
        assert wait_until(lambda: line_count(out) >= target or cli.popen.poll() is not None, 60)  # noqa: B023
        if cli.popen.poll() is not None:
            break  # finished before this kill
        if cycle % 2:  # the main process only: its workers must leave on their own
            os.kill(cli.pid, signal.SIGKILL)
            assert wait_until(lambda: not [p for p in cli.processes() if p != cli.pid], 15)  # noqa: B023
        else:  # the whole group: a power cut
            cli.signal_group(signal.SIGKILL)
        cli.popen.wait(10)
        if line_count(out) < len(want):  # (a crawl killed as it ended has removed its store)
            assert (cli_cwd / ("out.jsonl" + STORE_SUFFIX)).is_dir()  # the frontier, beside its output
        if backend.name == "redis":  # a --resume is refused while the dead coordinator's lock lives
            lock = redis.Redis.from_url(session_redis()).exists
            assert wait_until(lambda: not lock(Keys(crawl_id).lock), 10)  # noqa: B023
    result = run_cli(*args, timeout=120)
    assert result.rc == 0, result
    assert_exactly_once(read_jsonl(out), want)
    assert not (cli_cwd / ("out.jsonl" + STORE_SUFFIX)).exists()  # a finished crawl leaves its output only


def assert_exactly_once(records: list[dict], want: set[str]) -> None:
    counts = Counter(record["url"] for record in records)
    assert [url for url, n in counts.items() if n > 1] == []
    assert set(counts) == want


@pytest.mark.timeout(120)
def test_resume_from_the_store_does_not_read_the_output_before_its_last_commit(
        serve, expected, write_seeds, start_cli, run_cli, cli_cwd):  # fmt: skip
    server = serve(pages=300, delay=0.05)
    seeds = write_seeds(server.url("/"))
    out = cli_cwd / "out.jsonl"
    args = (seeds, "-o", out, "--depth", "10", "-w", "2", "--per-host", "2", "--resume")  # 7 s or more
    cli = start_cli(*args)
    store = cli_cwd / ("out.jsonl" + STORE_SUFFIX)
    # killed once the store has committed past the first records (it commits once a second)
    committed = lambda: (resumable_offset(str(store), 1 << 40) or 0) > 2000  # noqa: E731
    assert wait_until(lambda: committed() or cli.popen.poll() is not None, 60)
    assert cli.popen.poll() is None
    cli.signal_group(signal.SIGKILL)
    cli.popen.wait(10)
    # The seed's record gets a link (of the same length, so that the store's offset
    # still falls between lines) that only a replay of the whole output would follow:
    # the store committed the seed's real links long ago.
    data = out.read_bytes()
    seed_line = next(line for line in data.split(b"\n") if b'"depth": 0' in line)
    assert b"/page/1.html" in seed_line
    out.write_bytes(data.replace(seed_line, seed_line.replace(b"/page/1.html", b"/xage/1.html", 1), 1))
    result = run_cli(*args, timeout=120)
    assert result.rc == 0, result
    urls = [record["url"] for record in read_jsonl(out)]
    assert not [url for url in urls if "/xage/" in url]
    assert len(urls) == len(set(urls))


def test_an_output_without_a_store_resumes_by_replaying_it(serve, expected, write_seeds, start_cli, run_cli,
                                                           cli_cwd):  # fmt: skip
    server = serve(pages=200, delay=0.02)
    seeds = write_seeds(server.url("/"))
    want = set(expected(server, [server.url("/")], depth=10))
    out = cli_cwd / "out.jsonl"
    args = (seeds, "-o", out, "--depth", "10", "-w", "2", "--resume")
    cli = start_cli(*args)
    assert wait_until(lambda: line_count(out) >= 50 or cli.popen.poll() is not None, 60)
    cli.signal_group(signal.SIGKILL)
    cli.popen.wait(10)
    store = cli_cwd / ("out.jsonl" + STORE_SUFFIX)
    for name in os.listdir(store):  # an output of a version before the store
        os.remove(store / name)
    store.rmdir()
    result = run_cli(*args, timeout=120)
    assert result.rc == 0, result
    assert_exactly_once(read_jsonl(out), want)


def test_a_store_that_cannot_be_written_ends_the_crawl_and_its_output_stays_valid(
        serve, tmp_path, monkeypatch):  # fmt: skip
    server = serve(pages=60, delay=0.01)
    out = tmp_path / "out.jsonl"  # the store beside it fails at its first commit, whenever that is

    def full_disk(self):  # a full disk, as the store's commit sees it
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(scraper.seen.SeenSet, "persist", full_disk)
    with pytest.raises(ScraperError, match="cannot write the frontier store .*No space left on device"):
        crawl([server.url("/")], output=str(out), depth=5, workers=1, backend="thread")
    records = read_jsonl(out)  # whole lines, each a record
    assert records and len({record["url"] for record in records}) == len(records)
    assert (tmp_path / ("out.jsonl" + STORE_SUFFIX)).is_dir()  # kept: --resume continues from its last commit
