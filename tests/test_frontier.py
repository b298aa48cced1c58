"""scraper.frontier.Frontier: pure scheduling state, driven with a fake clock."""

from __future__ import annotations

import pytest

from scraper.frontier import (
    SKIP_DEPTH,
    SKIP_DUPLICATE,
    SKIP_FILTERED,
    SKIP_MAX_PAGES,
    SKIP_OFFSITE,
    SKIP_ROBOTS,
    Frontier,
    UrlFilter,
)
from scraper.politeness import MAX_PAUSE, MIN_BACKOFF, Politeness
from scraper.records import PAGE, ROBOTS, SITEMAP, Task
from scraper.sitemaps import MAX_SITEMAP_NESTING

UA = "testbot/1.0"
SITE = "http://example.com"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(**overrides) -> Frontier:
    settings = dict(
        allowed_hosts=("example.com",), max_depth=3, max_pages=None, per_host=8,
        delay=0.0, user_agent=UA, obey_robots=False,
    )  # fmt: skip
    settings.update(overrides)
    return Frontier(**settings)


def drain(frontier: Frontier, now: float) -> list:
    """Every task next_ready() hands out at `now`."""
    tasks = []
    while (task := frontier.next_ready(now)) is not None:
        tasks.append(task)
    return tasks


def urls(tasks) -> list[str]:
    return [task.url for task in tasks]


# -- offering ----------------------------------------------------------------------


def test_duplicates_are_rejected_and_counted():
    frontier = make()
    assert frontier.offer(f"{SITE}/a", 0) is True
    assert frontier.offer(f"{SITE}/a", 0) is False
    assert frontier.offer(f"{SITE}/a", 1, parent=f"{SITE}/b") is False
    assert frontier.skipped == {SKIP_DUPLICATE: 2}
    assert urls(drain(frontier, 0.0)) == [f"{SITE}/a"]


def test_mark_done_urls_are_never_scheduled():
    frontier = make()
    frontier.mark_done(f"{SITE}/a")
    assert frontier.offer(f"{SITE}/a", 0) is False
    assert frontier.has_pending() is False


def test_depth_limit():
    frontier = make(max_depth=1)
    assert frontier.offer(f"{SITE}/d1", 1) is True
    assert frontier.offer(f"{SITE}/d2", 2) is False
    assert frontier.skipped == {SKIP_DEPTH: 1}


def test_depth_zero_means_seeds_only():
    frontier = make(max_depth=0)
    assert frontier.offer(f"{SITE}/", 0) is True
    assert frontier.offer(f"{SITE}/link", 1) is False
    assert frontier.skipped == {SKIP_DEPTH: 1}


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("http://example.com/x", True),
        ("https://www.example.com/x", True),
        ("http://example.com:8080/x", True),
        ("http://notexample.com/x", False),
        ("http://example.com.evil.org/x", False),
        ("http://other.org/x", False),
    ],
)
def test_offsite_rejected(url, accepted):
    frontier = make()
    assert frontier.offer(url, 0) is accepted
    assert frontier.skipped == ({} if accepted else {SKIP_OFFSITE: 1})


def test_max_pages_counts_only_admitted_pages():
    frontier = make(max_pages=2)
    frontier.offer(f"{SITE}/a", 0)
    frontier.offer(f"{SITE}/a", 0)  # duplicate: not counted
    frontier.offer("http://elsewhere.org/", 0)  # offsite: not counted
    frontier.offer(f"{SITE}/b", 0)
    frontier.offer(f"{SITE}/c", 0)  # the third page handed out would be one too many
    assert urls(drain(frontier, 0.0)) == [f"{SITE}/a", f"{SITE}/b"]
    assert frontier.admitted == 2
    assert frontier.skipped == {SKIP_DUPLICATE: 1, SKIP_OFFSITE: 1, SKIP_MAX_PAGES: 1}
    assert frontier.has_pending() is True  # a and b are in flight


def test_max_pages_does_not_count_robots_disallowed_pages():
    frontier = make(max_pages=2, obey_robots=True)
    for path in ("/private/1", "/a", "/private/2", "/b", "/c"):
        frontier.offer(SITE + path, 0)
    robots = frontier.next_ready(0.0)
    frontier.robots_arrived(robots, 200, b"User-agent: *\nDisallow: /private\n")
    assert urls(drain(frontier, 0.0)) == [f"{SITE}/a", f"{SITE}/b"]
    assert frontier.admitted == 2
    assert frontier.skipped == {SKIP_ROBOTS: 2, SKIP_MAX_PAGES: 1}


def test_max_pages_is_spent_in_breadth_first_order():
    frontier = make(max_pages=3)
    frontier.offer(f"{SITE}/", 0)
    seed = frontier.next_ready(0.0)
    frontier.offer(f"{SITE}/a", 1, parent=f"{SITE}/")
    frontier.offer(f"{SITE}/b", 1, parent=f"{SITE}/")
    assert frontier.next_ready(0.0) is None  # a level waits until the one before it is done
    frontier.done(seed, 0.0)
    a, b = drain(frontier, 0.0)
    frontier.offer(f"{SITE}/a/deep", 2, parent=a.url)
    frontier.done(a, 0.0)
    frontier.done(b, 0.0)
    assert drain(frontier, 0.0) == []
    assert frontier.skipped[SKIP_MAX_PAGES] == 1
    assert frontier.has_pending() is False


LINKS = {"/1": ["/1a", "/1b", "/shared"], "/2": ["/shared", "/2a"]}


@pytest.mark.parametrize("answers", [["/1", "/2"], ["/2", "/1"]])
def test_max_pages_takes_the_same_pages_whichever_answer_comes_first(answers):
    frontier = make(max_pages=5)
    for seed in ("/1", "/2"):
        frontier.offer(SITE + seed, 0)
    seeds = {task.url: task for task in drain(frontier, 0.0)}
    for seed in answers:  # the seeds' links, offered as their answers arrive
        for link in LINKS[seed]:
            frontier.offer(SITE + link, 1, parent=SITE + seed)
        frontier.done(seeds[SITE + seed], 0.0)
    admitted = drain(frontier, 0.0)
    # breadth-first: the first seed's links in link order, then the second's
    assert sorted(urls(admitted)) == [f"{SITE}/1a", f"{SITE}/1b", f"{SITE}/shared"]
    assert {task.url: task.parent for task in admitted}[f"{SITE}/shared"] == f"{SITE}/1"  # found first
    assert frontier.skipped == {SKIP_DUPLICATE: 1, SKIP_MAX_PAGES: 1}


# -- robots.txt ----------------------------------------------------------------------


def test_robots_task_first_and_pages_wait_for_it():
    clock = FakeClock()
    frontier = make(obey_robots=True)
    frontier.offer(f"{SITE}/a", 0)
    frontier.offer(f"{SITE}/b", 0)
    robots = frontier.next_ready(clock.now)
    assert robots.kind == ROBOTS
    assert robots.url == f"{SITE}/robots.txt"
    clock.advance(100)
    assert frontier.next_ready(clock.now) is None  # pages wait for robots.txt
    assert frontier.has_pending() is True
    frontier.done(robots, 0.0)
    frontier.robots_arrived(robots, 200, b"User-agent: *\nDisallow:\n")
    tasks = drain(frontier, clock.now)
    assert urls(tasks) == [f"{SITE}/a", f"{SITE}/b"]
    assert {task.kind for task in tasks} == {PAGE}


def test_one_robots_task_per_origin():
    frontier = make(obey_robots=True)
    for url in (f"{SITE}/a", f"{SITE}/b", "https://example.com/c", "http://example.com:8080/d"):
        frontier.offer(url, 0)
    robots = drain(frontier, 0.0)
    assert urls(robots) == [
        f"{SITE}/robots.txt",
        "https://example.com/robots.txt",
        "http://example.com:8080/robots.txt",
    ]
    assert {task.kind for task in robots} == {ROBOTS}


def test_robots_of_one_origin_admits_only_its_pages():
    frontier = make(obey_robots=True)
    frontier.offer(f"{SITE}/a", 0)
    frontier.offer("http://www.example.com/b", 0)
    first, second = drain(frontier, 0.0)
    frontier.robots_arrived(second, 404, b"")
    assert urls(drain(frontier, 0.0)) == ["http://www.example.com/b"]
    frontier.robots_arrived(first, 404, b"")
    assert urls(drain(frontier, 0.0)) == [f"{SITE}/a"]


def test_disallowed_pages_are_skipped_and_counted():
    frontier = make(obey_robots=True)
    for path in ("/public", "/private/x", "/private", "/other"):
        frontier.offer(SITE + path, 0)
    robots = frontier.next_ready(0.0)
    frontier.robots_arrived(robots, 200, f"User-agent: {UA.split('/')[0]}\nDisallow: /private\n".encode())
    assert urls(drain(frontier, 0.0)) == [f"{SITE}/public", f"{SITE}/other"]
    assert frontier.skipped == {SKIP_ROBOTS: 2}
    # pages offered after robots.txt arrived are checked as they are read into the window
    frontier.offer(f"{SITE}/private/later", 0)
    assert frontier.next_ready(0.0) is None
    assert frontier.skipped == {SKIP_ROBOTS: 3}


def test_rules_for_other_agents_do_not_apply():
    frontier = make(obey_robots=True)
    frontier.offer(f"{SITE}/page", 0)
    robots = frontier.next_ready(0.0)
    frontier.robots_arrived(robots, 200, b"User-agent: otherbot\nDisallow: /\n")
    assert urls(drain(frontier, 0.0)) == [f"{SITE}/page"]


def test_missing_robots_txt_allows_everything():
    frontier = make(obey_robots=True)
    frontier.offer(f"{SITE}/page", 0)
    frontier.robots_arrived(frontier.next_ready(0.0), 404, b"")
    assert urls(drain(frontier, 0.0)) == [f"{SITE}/page"]


def test_everything_disallowed_leaves_nothing_pending():
    frontier = make(obey_robots=True)
    frontier.offer(f"{SITE}/a", 0)
    frontier.offer(f"{SITE}/b", 0)
    robots = frontier.next_ready(0.0)
    frontier.done(robots, 0.0)
    frontier.robots_arrived(robots, 200, b"User-agent: *\nDisallow: /\n")
    assert frontier.skipped == {SKIP_ROBOTS: 2}
    assert frontier.next_ready(0.0) is None
    assert frontier.has_pending() is False


def test_ignore_robots_hands_out_pages_directly():
    frontier = make(obey_robots=False)
    frontier.offer(f"{SITE}/a", 0)
    task = frontier.next_ready(0.0)
    assert (task.kind, task.url) == (PAGE, f"{SITE}/a")


# -- politeness ----------------------------------------------------------------------


def test_per_host_caps_tasks_in_flight():
    frontier = make(per_host=2)
    for index in range(4):
        frontier.offer(f"{SITE}/{index}", 0)
    frontier.offer("http://other.org/x", 0)  # offsite, ignored
    first = drain(frontier, 0.0)
    assert urls(first) == [f"{SITE}/0", f"{SITE}/1"]
    frontier.done(first[0], 0.0)
    assert urls(drain(frontier, 0.0)) == [f"{SITE}/2"]
    frontier.done(first[1], 0.0)
    assert urls(drain(frontier, 0.0)) == [f"{SITE}/3"]


def test_queue_ahead_hands_out_more_tasks_than_the_cap_but_not_with_a_delay():
    frontier = make(per_host=2, queue_ahead=3)
    for index in range(8):
        frontier.offer(f"{SITE}/{index}", 0)
    assert len(drain(frontier, 0.0)) == 5
    slow = make(per_host=2, queue_ahead=3, delay=1.0)
    for index in range(8):
        slow.offer(f"{SITE}/{index}", 0)
    assert len(drain(slow, 0.0)) == 1


def test_per_host_cap_is_per_host():
    frontier = make(per_host=1, allowed_hosts=("a.org", "b.org"))
    for url in ("http://a.org/1", "http://a.org/2", "http://b.org/1", "http://b.org/2"):
        frontier.offer(url, 0)
    assert urls(drain(frontier, 0.0)) == ["http://a.org/1", "http://b.org/1"]


def test_delay_spaces_requests_to_one_host_one_at_a_time():
    clock = FakeClock()
    frontier = make(delay=2.0, allowed_hosts=("example.com", "other.org"))
    for url in (f"{SITE}/1", f"{SITE}/2", "http://other.org/1"):
        frontier.offer(url, 0)
    first, other = drain(frontier, clock.now)
    assert urls([first, other]) == [f"{SITE}/1", "http://other.org/1"]
    clock.advance(2.0)
    assert frontier.next_ready(clock.now) is None  # /1 is still in flight
    frontier.done(first, clock.now)
    clock.advance(1.9)
    assert frontier.next_ready(clock.now) is None
    clock.advance(0.1)
    assert frontier.next_ready(clock.now).url == f"{SITE}/2"


def test_delay_counts_from_the_end_of_the_previous_request():
    clock = FakeClock()
    frontier = make(delay=1.0)
    frontier.offer(f"{SITE}/1", 0)
    frontier.offer(f"{SITE}/2", 0)
    first = frontier.next_ready(clock.now)
    clock.advance(0.5)
    frontier.done(first, clock.now)  # a task may wait in the queue: its end is what we know
    clock.advance(0.9)
    assert frontier.next_ready(clock.now) is None
    clock.advance(0.1)
    assert frontier.next_ready(clock.now).url == f"{SITE}/2"


def test_huge_crawl_delay_is_capped():
    clock = FakeClock()
    frontier = make(obey_robots=True)
    frontier.offer(f"{SITE}/1", 0)
    frontier.offer(f"{SITE}/2", 0)
    robots = frontier.next_ready(clock.now)
    frontier.robots_arrived(robots, 200, b"User-agent: *\nCrawl-delay: 86400\n")
    frontier.done(frontier.next_ready(clock.now), clock.now)
    clock.advance(60.0)
    assert frontier.next_ready(clock.now).url == f"{SITE}/2"


@pytest.mark.parametrize(("configured", "crawl_delay", "effective"), [(0.0, 5, 5.0), (3.0, 1, 3.0)])
def test_crawl_delay_from_robots_raises_the_delay(configured, crawl_delay, effective):
    clock = FakeClock()
    frontier = make(obey_robots=True, delay=configured)
    frontier.offer(f"{SITE}/1", 0)
    frontier.offer(f"{SITE}/2", 0)
    robots = frontier.next_ready(clock.now)
    frontier.robots_arrived(robots, 200, f"User-agent: *\nCrawl-delay: {crawl_delay}\n".encode())
    first = frontier.next_ready(clock.now)
    assert first.url == f"{SITE}/1"
    frontier.done(first, clock.now)
    clock.advance(effective - 0.5)
    assert frontier.next_ready(clock.now) is None
    clock.advance(0.5)
    assert frontier.next_ready(clock.now).url == f"{SITE}/2"


# -- breadth-first levels --------------------------------------------------------------


def test_the_next_level_goes_while_one_is_in_flight_but_not_the_one_after():
    frontier = make(max_depth=3)
    frontier.offer(f"{SITE}/", 0)
    seed = frontier.next_ready(0.0)
    frontier.offer(f"{SITE}/a", 1, parent=seed.url)
    frontier.offer(f"{SITE}/b", 1, parent=seed.url)
    assert frontier.current_level() == 0
    a, b = drain(frontier, 0.0)  # depth 1 goes while the seed (depth 0) is in flight
    assert (a.url, a.depth, a.parent) == (f"{SITE}/a", 1, f"{SITE}/")
    frontier.offer(f"{SITE}/a/deep", 2, parent=a.url)
    assert frontier.next_ready(0.0) is None  # depth 2 waits for the seed...
    frontier.done(seed, 0.0)
    assert frontier.current_level() == 1
    deep = frontier.next_ready(0.0)  # ...and no longer once it is done
    assert (deep.url, deep.depth, deep.parent) == (f"{SITE}/a/deep", 2, f"{SITE}/a")
    frontier.offer(f"{SITE}/a/deep/er", 3, parent=deep.url)
    assert frontier.next_ready(0.0) is None  # depth 3 waits: a and b (depth 1) are in flight


def test_links_two_levels_ahead_wait_so_a_shorter_path_gives_the_true_depth():
    frontier = make(max_depth=2)
    frontier.offer(f"{SITE}/", 0)
    seed = frontier.next_ready(0.0)
    frontier.offer(f"{SITE}/a", 1, parent=seed.url)
    a = frontier.next_ready(0.0)
    frontier.offer(f"{SITE}/x", 2, parent=a.url)  # found from depth 1 first: held while the seed runs
    frontier.done(a, 0.0)
    assert frontier.offer(f"{SITE}/x", 1, parent=seed.url) is True  # ...then from the seed
    x = frontier.next_ready(0.0)
    assert (x.url, x.depth, x.parent) == (f"{SITE}/x", 1, f"{SITE}/")
    assert frontier.next_ready(0.0) is None  # and only once
    frontier.done(seed, 0.0)
    assert frontier.next_ready(0.0) is None  # the held link is a duplicate now
    assert frontier.skipped == {SKIP_DUPLICATE: 1}
    frontier.done(x, 0.0)
    assert frontier.has_pending() is False
    assert frontier.offer(f"{SITE}/x", 1) is False  # handed out: a plain duplicate now


def test_held_links_keep_their_depth_and_wait_for_robots_txt():
    frontier = make(max_depth=3, obey_robots=True)
    frontier.offer(f"{SITE}/", 0)
    robots = frontier.next_ready(0.0)
    frontier.robots_arrived(robots, 404, b"")
    seed = frontier.next_ready(0.0)
    frontier.offer(f"{SITE}/a", 1, parent=seed.url)
    a = frontier.next_ready(0.0)
    frontier.offer("http://sub.example.com/y", 2, parent=a.url)  # held: the seed is not done
    frontier.done(a, 0.0)
    frontier.done(seed, 0.0)
    robots = frontier.next_ready(0.0)  # the held link is released: its origin's robots.txt first
    assert robots.kind == ROBOTS and robots.url == "http://sub.example.com/robots.txt"
    frontier.robots_arrived(robots, 404, b"")
    tasks = drain(frontier, 0.0)
    assert [(t.url, t.depth, t.parent) for t in tasks] == [("http://sub.example.com/y", 2, f"{SITE}/a")]


def test_lower_depth_goes_first_across_hosts():
    frontier = make(allowed_hosts=("a.org", "b.org"))
    frontier.offer("http://a.org/deep", 2)
    frontier.offer("http://a.org/next", 1)
    frontier.offer("http://b.org/seed", 0)
    assert urls(drain(frontier, 0.0)) == ["http://b.org/seed", "http://a.org/next"]


def test_has_pending():
    frontier = make(obey_robots=True)
    assert frontier.has_pending() is False
    frontier.offer(f"{SITE}/a", 0)
    assert frontier.has_pending() is True
    robots = frontier.next_ready(0.0)
    assert frontier.has_pending() is True  # the page waits for robots.txt
    frontier.done(robots, 0.0)
    frontier.robots_arrived(robots, 404, b"")
    page = frontier.next_ready(0.0)
    assert frontier.has_pending() is True  # handed out, not done
    frontier.done(page, 0.0)
    assert frontier.has_pending() is False
    assert frontier.next_ready(0.0) is None


def test_task_ids_are_unique():
    frontier = make(obey_robots=True)
    for index in range(5):
        frontier.offer(f"{SITE}/{index}", 0)
    robots = frontier.next_ready(0.0)
    frontier.robots_arrived(robots, 404, b"")
    tasks = [robots, *drain(frontier, 0.0)]
    assert len({task.id for task in tasks}) == 6


# -- issue 15: --allow/--deny and sitemaps ---------------------------------------------------


def test_allow_and_deny_filter_links_not_seeds():
    frontier = make(url_filter=UrlFilter(allow=(r"/keep/",), deny=(r"\.pdf$",)))
    assert frontier.offer(f"{SITE}/", 0, seed=True)  # seeds are exempt (wpull#321)
    assert frontier.offer(f"{SITE}/keep/a", 1)
    assert not frontier.offer(f"{SITE}/other", 1)
    assert not frontier.offer(f"{SITE}/keep/a.pdf", 1)  # deny wins
    assert frontier.skipped[SKIP_FILTERED] == 2


def test_a_redirect_the_filters_refuse_ends_the_page():
    frontier = make(url_filter=UrlFilter(deny=(r"/login",)))
    frontier.offer(f"{SITE}/", 0, seed=True)
    [task] = drain(frontier, 0.0)
    frontier.redirect(task, f"{SITE}/login?next=/", spent_ms=1.0)
    [(ended, error)] = frontier.take_refused()
    assert ended.id == task.id and error.startswith("filtered_redirect: ")


def test_sitemaps_of_a_seed_origin_are_read_once_and_their_entries_offered():
    frontier = make()
    frontier.want_sitemaps(f"{SITE}/a")
    frontier.want_sitemaps(f"{SITE}/b")  # same origin: once
    [sitemap] = drain(frontier, 0.0)
    assert (sitemap.kind, sitemap.url) == (SITEMAP, f"{SITE}/sitemap.xml")  # no robots.txt: the fallback
    frontier.sitemap_arrived(sitemap, {"sitemaps": ["/s1.xml", "http://elsewhere.org/s.xml"], "urls": []})
    [child] = drain(frontier, 0.0)
    assert (child.url, child.depth, child.parent) == (f"{SITE}/s1.xml", 1, sitemap.url)
    frontier.sitemap_arrived(child, {"urls": [f"{SITE}/p", "http://elsewhere.org/x", "ftp://x/y", "p2"]})
    pages = drain(frontier, 0.0)
    assert [(t.url, t.depth, t.parent, t.kind) for t in pages] == [
        (f"{SITE}/p", 0, child.url, PAGE), (f"{SITE}/p2", 0, child.url, PAGE)]  # fmt: skip
    assert frontier.sitemap_urls == 4
    assert frontier.skipped[SKIP_OFFSITE] == 2  # the off-site sitemap and the off-site page
    deep = child
    for _ in range(MAX_SITEMAP_NESTING + 1):  # a chain of indexes ends
        frontier.sitemap_arrived(deep, {"sitemaps": [f"{deep.url}x"]})
        found = drain(frontier, 0.0)
        if not found:
            break
        [deep] = found
    assert deep.depth == MAX_SITEMAP_NESTING


def test_sitemaps_wait_for_robots_and_follow_its_sitemap_lines():
    frontier = make(obey_robots=True)
    frontier.offer(f"{SITE}/", 0, seed=True)
    frontier.want_sitemaps(f"{SITE}/")
    [robots] = drain(frontier, 0.0)
    assert robots.kind == ROBOTS
    frontier.robots_arrived(robots, 200, b"Sitemap: /maps/a.xml\nSitemap: https://example.com/b.xml.gz\n")
    tasks = drain(frontier, 0.0)
    assert urls(tasks) == [f"{SITE}/maps/a.xml", "https://example.com/b.xml.gz", f"{SITE}/"]
    assert frontier.has_pending()


def test_no_sitemaps_from_an_origin_whose_robots_txt_is_unavailable():
    frontier = make(obey_robots=True)
    frontier.want_sitemaps(f"{SITE}/")
    [robots] = drain(frontier, 0.0)
    frontier.robots_arrived(robots, 503, b"Sitemap: /s.xml\n")
    assert drain(frontier, 0.0) == []


# -- slow-downs (scraper.politeness) --------------------------------------------------


def test_a_pause_without_retry_after_doubles_once_per_pause_and_halves_on_success():
    politeness = Politeness(per_host=1, delay=0.0)
    assert politeness.slow_down("a.org", 0.0, None) == MIN_BACKOFF
    assert politeness.slow_down("a.org", 0.5, None) == MIN_BACKOFF  # still paused: the same step
    assert politeness.slow_down("a.org", 5.0, None) == 2 * MIN_BACKOFF
    politeness.speed_up("a.org")
    assert politeness.slow_down("a.org", 10.0, None) == 2 * MIN_BACKOFF
    politeness.speed_up("a.org")
    politeness.speed_up("a.org")  # below MIN_BACKOFF: no pause is left to halve
    assert politeness.slow_down("a.org", 20.0, None) == MIN_BACKOFF
    assert politeness.slowed == {"a.org": 5}


def test_retry_after_is_capped_and_holds_the_host_back():
    frontier = make()
    frontier.offer(f"{SITE}/a", 0)
    [task] = drain(frontier, 0.0)
    assert frontier.retry_later(task, 0.0, retry_after=10 * MAX_PAUSE) == MAX_PAUSE
    frontier.release(task, 0.0)
    assert frontier.next_ready(MAX_PAUSE - 1) is None
    assert frontier.next_ready(MAX_PAUSE).retries == 1


def test_a_host_whose_tasks_ran_out_starts_again_when_new_ones_come():
    slots = Politeness(per_host=1, delay=0.0)
    first, second = Task(1, "http://a.org/1"), Task(2, "http://b.org/1")
    slots.push(first)
    slots.push(second)
    assert slots.start_next(0.0, 0) is first
    assert slots.start_next(0.0, 0) is second
    assert slots.start_next(0.0, 0) is None  # both hosts ran out
    slots.release(first, 1.0)
    later = Task(3, "http://a.org/2")
    slots.push(later)
    assert slots.start_next(1.0, 0) is later
