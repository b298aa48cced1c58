"""End-to-end tests of the command line: `python -m scraper ...` in a subprocess
against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import BACKENDS, Result, processes_with_token, read_jsonl, wait_until
from siteserver import MISSING, PRIVATE

import scraper
from scraper.records import RECORD_FIELDS

pytestmark = pytest.mark.timeout(60)


def assert_usage_error(result: Result, *words: str, allow: str = r"usage: |\s") -> str:
    """Exit 2, exactly one `scraper: error:` line, last, naming `words`; no traceback.

    Lines before it may only be argparse's usage (or what `allow` matches).
    """
    assert result.rc == 2, result
    assert "Traceback" not in result.stderr, result
    lines = result.stderr.rstrip("\n").splitlines()
    errors = [line for line in lines if line.startswith("scraper: error:")]
    assert len(errors) == 1, result
    assert lines[-1] == errors[0], result
    for word in words:
        assert word in errors[0], result
    usage = False
    for line in lines[:-1]:
        usage = usage or line.startswith("usage: ")
        assert usage or re.match(allow, line), f"unexpected stderr line {line!r}\n{result}"
    assert result.records == [], "a usage error must not crawl"
    assert result.stdout == ""
    return errors[0]


def urls(records: list[dict]) -> list[str]:
    return [record["url"] for record in records]


# -- usage errors -----------------------------------------------------------------


def test_no_arguments_is_a_one_line_error_and_exits_2(run_cli):
    result = run_cli()
    error = assert_usage_error(result, "SEEDS", "see scraper --help")
    assert result.stderr.strip() == error  # no usage block (issue 22)


def test_missing_seed_file_is_a_one_line_error(run_cli, tmp_path):
    missing = tmp_path / "no-such-seeds.txt"
    result = run_cli(missing, "-O", "out.jsonl")
    error = assert_usage_error(result, "no-such-seeds.txt")
    assert result.stderr.strip() == error  # no usage line: the arguments were fine
    assert not (result.output and result.output.exists())


def test_seed_file_that_is_a_directory_is_a_one_line_error(run_cli, tmp_path):
    result = run_cli(tmp_path, "-O", "out.jsonl")
    assert_usage_error(result, str(tmp_path))


def test_seed_file_with_only_bad_lines_exits_2(run_cli, write_seeds):
    seeds = write_seeds("# only junk here", "not a url", "", "ftp://example.org/file", "http://")
    result = run_cli(seeds, "-O", "out.jsonl")
    assert_usage_error(result, "no valid seed", allow=r"scraper: .*skipped line \d+")
    for number, text in ((2, "not a url"), (4, "ftp://example.org/file"), (5, "http://")):
        assert any(f"line {number}" in line and text in line for line in result.stderr.splitlines()), result


def test_empty_seed_file_exits_2(run_cli, write_seeds):
    result = run_cli(write_seeds("", "# nothing", "   "), "-O", "out.jsonl")
    assert_usage_error(result, "no valid seed")


BAD_OPTIONS = [
    (["--workers", "0"], "--workers"),
    (["--workers", "2.5"], "--workers"),
    (["--timeout", "-1"], "--timeout"),
    (["--timeout", "nan"], "--timeout"),
    (["--depth", "x"], "--depth"),
    (["--depth", "-1"], "--depth"),
    (["--max-pages", "0"], "--max-pages"),
    (["--delay", "-0.5"], "--delay"),
    (["--backend", "fibers"], "--backend"),
    (["--select", "title"], "NAME=CSS"),
    (["--select", "=h1"], "NAME=CSS"),
    (["--select", "x=a[["], "bad selector"),
    (["--select", "ok=h1", "--select", "bad=p:nth-child("], "bad selector"),
    (["--allow-domain", "a b"], "domain"),
    (["-o", "a.jsonl", "-O", "b.jsonl"], "-O"),
    (["--user-agent", ""], "--user-agent must not be empty"),
    (["--resume", "-O", "b.jsonl"], "give it with -o/--output, not -O/--overwrite-output"),
    (["--select", "a=h1", "--select", "a=h2"], "--select names the field 'a' twice"),
    (["--parse", "no_such_module_xyz:extract"], "--parse cannot import module 'no_such_module_xyz'"),
    (["--parse", "json:__doc__"], "--parse must name a function"),
    (["--demo"], "--demo crawls a site of its own"),
    (["--compare", "--resume"], "--resume continues one crawl"),
]


@pytest.mark.parametrize(("args", "word"), BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS])
def test_bad_option_value_is_a_one_line_usage_error(run_cli, write_seeds, small_site, args, word):
    seeds = write_seeds(small_site.url("/"))  # valid: only the option is wrong
    extra = ["-q"] if "--backend" in args else ["--backend", "thread", "-q"]
    result = run_cli(seeds, *args, *extra)
    assert_usage_error(result, word)
    assert small_site.paths() == [], "nothing may be fetched after a usage error"


# -- seed files -------------------------------------------------------------------------


def test_bad_seed_lines_are_reported_and_good_ones_crawled(run_cli, write_seeds, small_site):
    root, page = small_site.url("/"), small_site.url("/page/3.html")
    seeds = write_seeds(
        "# a comment",          # 1
        "",                     # 2
        root,                   # 3
        "not a url",            # 4
        f"   {page}   ",        # 5: surrounding whitespace is stripped
        "ftp://example.org/x",  # 6
        root,                   # 7: a duplicate, crawled once
        "mailto:a@b.example",   # 8
        "/relative/path.html",  # 9
    )  # fmt: skip
    result = run_cli(seeds, "-O", "out.jsonl", "-w", "2")
    assert result.rc == 0, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    for number, text in ((4, "not a url"), (6, "ftp://example.org/x"), (8, "mailto:a@b.example"),
                         (9, "/relative/path.html")):  # fmt: skip
        assert any(re.search(rf"\bline {number}\b", line) and text in line for line in lines), result
    for number in (1, 2, 3, 5, 7):
        assert not any(re.search(rf"\bline {number}\b", line) for line in lines), result
    assert sorted(urls(result.records)) == sorted([root, page])
    assert all(record["depth"] == 0 and record["parent"] is None for record in result.records)


def test_seeds_from_stdin(run_cli, small_site):
    result = run_cli("-", "-O", "out.jsonl", "-q", "--backend", "thread", stdin=small_site.url("/") + "\n")
    assert result.rc == 0, result
    assert urls(result.records) == [small_site.url("/")]


# -- output, summary, scope -----------------------------------------------------------------


def test_summary_on_stderr(run_cli, write_seeds, small_site):
    seeds = write_seeds(small_site.url("/"), small_site.url(MISSING), small_site.url("/page/4.html"))
    result = run_cli(seeds, "-O", "out.jsonl", "-w", "2")
    assert result.rc == 0, result
    assert result.stdout == ""
    assert len(result.records) == 3
    summary = result.stderr
    assert re.search(r"\b3 pages\b", summary), result
    assert re.search(r"\b2 ok\b", summary), result
    assert re.search(r"\b1 errors?\b", summary), result
    assert "http_404" in summary, result
    assert "pages/s" in summary, result


def test_quiet_prints_no_summary(run_cli, write_seeds, small_site):
    result = run_cli(write_seeds(small_site.url("/")), "-O", "out.jsonl", "-q", "--backend", "thread")
    assert result.rc == 0, result
    assert result.stderr == "", result


def test_output_appends_and_overwrite_truncates(run_cli, write_seeds, small_site, cli_cwd):
    seeds = write_seeds(small_site.url("/"), small_site.url("/page/1.html"))
    target = Path("deep", "er", "records.jsonl")  # folders that do not exist yet
    first = run_cli(seeds, "-o", target, "-q", "-w", "2")
    assert first.rc == 0, first
    assert (cli_cwd / target).is_file()
    assert len(first.records) == 2
    second = run_cli(seeds, "--output", target, "-q", "-w", "2")
    assert second.rc == 0, second
    assert len(second.records) == 4  # a new crawl appended after the old one
    assert Counter(urls(second.records)) == Counter(urls(first.records) * 2)
    third = run_cli(seeds, "-O", target, "-q", "-w", "2")
    assert third.rc == 0, third
    assert sorted(urls(third.records)) == sorted(urls(first.records))
    fourth = run_cli(seeds, f"--overwrite-output={target}", "-q", "-w", "2")
    assert len(fourth.records) == 2


def test_default_output_is_data_records_jsonl(run_cli, write_seeds, small_site, cli_cwd):
    result = run_cli(write_seeds(small_site.url("/")), "-q", "-w", "1")
    assert result.rc == 0, result
    assert result.output == cli_cwd / "data" / "records.jsonl"
    assert urls(read_jsonl(result.output)) == [small_site.url("/")]


@pytest.mark.parametrize("pages", [1, 7, 20])
def test_max_pages_gives_exactly_n_records(run_cli, write_seeds, small_site, expected, pages):
    result = run_cli(write_seeds(small_site.url("/")), "--depth", "3", "--max-pages", pages, "-w", "4",
                     "-O", "out.jsonl", "-q")  # fmt: skip
    assert result.rc == 0, result
    found = urls(result.records)
    assert len(found) == pages, result
    assert len(set(found)) == pages
    bfs = expected(small_site, [small_site.url("/")], 3)
    assert len(bfs) > 20
    assert set(found) <= set(bfs)
    assert small_site.url("/") in found
    assert all(record["depth"] == bfs[record["url"]] for record in result.records)
    assert set(small_site.page_paths()) == set(small_site.fetch_paths(found))  # none beyond the limit


def test_depth_zero_fetches_only_the_seeds(run_cli, write_seeds, small_site):
    seeds = [small_site.url("/"), small_site.url("/page/5.html")]
    result = run_cli(write_seeds(*seeds), "--depth", "0", "-w", "2", "-O", "out.jsonl", "-q")
    assert result.rc == 0, result
    assert sorted(urls(result.records)) == sorted(seeds)
    assert all(record["depth"] == 0 and record["parent"] is None for record in result.records)
    assert all(record["links"] for record in result.records)  # links were there, and not followed
    assert sorted(small_site.page_paths()) == ["/", "/page/5.html"]


@pytest.mark.parametrize("workers", [1, 4])
def test_robots_txt_fetched_once_per_crawl_and_obeyed(run_cli, write_seeds, small_site, expected, workers):
    seeds = [small_site.url("/"), small_site.url("/page/1.html"), small_site.url("/page/2.html")]
    result = run_cli(write_seeds(*seeds), "--depth", "2", "-w", workers, "-O", "out.jsonl", "-q")
    assert result.rc == 0, result
    assert small_site.count("/robots.txt") == 1, small_site.paths()
    assert small_site.paths()[0] == "/robots.txt"  # asked before any page of the host
    assert PRIVATE not in small_site.paths()  # linked from every page, never requested
    assert small_site.url(PRIVATE) not in urls(result.records)
    assert sorted(urls(result.records)) == sorted(expected(small_site, seeds, 2))


def test_ignore_robots_fetches_disallowed_pages(run_cli, write_seeds, small_site, expected):
    seed = small_site.url("/")
    result = run_cli(write_seeds(seed), "--depth", "1", "--ignore-robots", "-w", "2", "-O", "out.jsonl", "-q")
    assert result.rc == 0, result
    assert "/robots.txt" not in small_site.paths()
    assert small_site.count(PRIVATE) == 1
    by_url = {record["url"]: record for record in result.records}
    assert by_url[small_site.url(PRIVATE)]["ok"] is True
    assert by_url[small_site.url(PRIVATE)]["title"] == "secret"
    assert sorted(by_url) == sorted(expected(small_site, [seed], 1, obey_robots=False))


def test_select_fills_fields(run_cli, write_seeds, small_site):
    result = run_cli(write_seeds(small_site.url("/")), "--depth", "1", "-w", "2", "-O", "out.jsonl", "-q",
                     "--select", "heading=h1", "--select", "second = li:nth-of-type(2) a",
                     "--select", "none=table td")  # fmt: skip
    assert result.rc == 0, result
    html_pages = [record for record in result.records if record["ok"]]
    assert len(html_pages) >= 8
    for record in html_pages:
        number = re.fullmatch(r"Page (\d+)", record["title"])
        assert number, record
        assert record["fields"] == {"heading": [f"Page {number[1]}"], "second": ["link 1"], "none": []}


PARSE_MODULE = """\
def extract(record, tree):
    return {"shout": [h.text_content().upper() for h in tree.xpath("//h1")], "seen_url": record["url"]}
"""


def test_parse_callback_by_name_runs_in_the_workers(run_cli, write_seeds, small_site, cli_cwd, backend):
    (cli_cwd / "my_parse.py").write_text(PARSE_MODULE, encoding="utf-8")  # found in the current folder
    result = run_cli(write_seeds(small_site.url("/")), "--depth", "1", "-w", "2", *backend.cli_args,
                     "--parse", "my_parse:extract", "--select", "heading=h1",
                     "-O", "out.jsonl", "-q")  # fmt: skip
    assert result.rc == 0, result
    pages = [record for record in result.records if record["ok"]]
    assert len(pages) >= 8, result
    for record in pages:
        heading = record["fields"]["heading"]
        assert heading and heading[0].startswith("Page "), record
        expected = {"heading": heading, "shout": [heading[0].upper()], "seen_url": record["url"]}
        assert record["fields"] == expected, record


def test_user_agent_reaches_the_server(run_cli, write_seeds, small_site):
    agent = "e2e-test-bot/1.0 (+http://127.0.0.1/bot)"
    result = run_cli(write_seeds(small_site.url("/")), "--depth", "1", "-w", "2", "--user-agent", agent,
                     "-O", "out.jsonl", "-q")  # fmt: skip
    assert result.rc == 0, result
    assert len(small_site.requests) > 5
    agents = {request.headers.get("User-Agent") for request in small_site.requests}
    assert agents == {agent}, agents  # robots.txt included


def test_default_user_agent_names_the_scraper(run_cli, write_seeds, small_site):
    result = run_cli(write_seeds(small_site.url("/")), "-w", "1", "-O", "out.jsonl", "-q")
    assert result.rc == 0, result
    agents = {request.headers.get("User-Agent") for request in small_site.requests}
    assert len(agents) == 1
    assert agents.pop().startswith(f"scraper/{scraper.__version__} (+http")


@pytest.mark.timeout(150)
def test_demo_compares_the_backends_offline(run_cli, tmp_path):
    """`--demo` serves two generated sites (I/O-bound, CPU-bound) on 127.0.0.1 and compares
    serial, threads and processes on each (spec section 6)."""
    output = tmp_path / "demo.jsonl"
    result = run_cli("--demo", "-O", output, "-q", timeout=140)
    assert result.rc == 0, result
    assert "Traceback" not in result.stderr, result
    table = result.stdout.lower()
    assert "serial" in table and "thread" in table and "process" in table, result
    files = sorted(tmp_path.glob("demo*.jsonl"))
    assert files, f"no JSONL beside {output}: {sorted(p.name for p in tmp_path.iterdir())}"
    sites: dict[str, dict[str, set[str]]] = {}
    for path in files:
        records = read_jsonl(path)
        found = urls(records)
        assert len(found) >= 100, path.name
        assert len(set(found)) == len(found), f"{path.name}: a page recorded twice"
        assert all(set(record) == set(RECORD_FIELDS) and record["ok"] for record in records), path.name
        origin = urlsplit(found[0]).netloc
        assert origin.startswith("127.0.0.1:"), found[0]
        sites.setdefault(origin, {})[path.name] = set(found)
    assert len(sites) == 2, sorted(sites)  # the I/O-bound and the CPU-bound flavour
    for runs in sites.values():
        assert len({frozenset(pages) for pages in runs.values()}) == 1, f"runs differ: {sorted(runs)}"


# -- signals ----------------------------------------------------------------------------


def _interrupt_mid_crawl(start_cli, serve, write_seeds, expected, backend, signum, to_group):
    """Start a crawl of a slow site, wait for its first records, signal it; the Result."""
    server = serve(pages=300, delay=0.2)
    seed = server.url("/")
    process = start_cli(write_seeds(seed), "--depth", "4", "-w", "2", *backend.cli_args,
                        "-O", "out.jsonl", "--timeout", "5")  # fmt: skip
    output = process.cwd / "out.jsonl"

    def crawling() -> bool:
        return output.exists() and output.read_text(encoding="utf-8").count("\n") >= 3

    assert wait_until(crawling, 40), process.wait(1)
    if backend.name == "process":  # the CLI and its workers carry the token: the leak check can see them
        assert len(process.processes()) >= 3, process.processes()
    seen = set(process.processes())
    assert process.pid in seen
    if to_group:
        process.signal_group(signum)
    else:
        os.kill(process.pid, signum)
    signalled = time.monotonic()
    result = process.wait(30)
    stop_time = time.monotonic() - signalled
    gone = wait_until(lambda: not (set(processes_with_token(process.token)) & seen), 5)
    assert gone, f"processes left behind: {processes_with_token(process.token)}"
    bfs = expected(server, [seed], 4)
    found = urls(result.records)  # read_jsonl already checked that every line is complete JSON
    assert found, result
    assert len(found) == len(set(found)), "a page recorded twice"
    assert len(found) < len(bfs), "the crawl was not interrupted"
    assert set(found) <= set(bfs)
    assert "Traceback" not in result.stderr, result
    return result, stop_time


@pytest.mark.timeout(90)
def test_ctrl_c_stops_the_crawl_cleanly(start_cli, serve, write_seeds, expected, backend):
    result, stop_time = _interrupt_mid_crawl(start_cli, serve, write_seeds, expected, backend,
                                             signal.SIGINT, to_group=True)  # fmt: skip
    assert result.rc == 130, result
    assert stop_time < 8, f"took {stop_time:.1f} s to stop after Ctrl-C"


@pytest.mark.timeout(90)
def test_sigterm_stops_the_crawl_cleanly(start_cli, serve, write_seeds, expected):
    fork = BACKENDS["process-fork"]
    result, stop_time = _interrupt_mid_crawl(start_cli, serve, write_seeds, expected, fork,
                                             signal.SIGTERM, to_group=False)  # fmt: skip
    assert result.rc == 143, result
    assert stop_time < 8, f"took {stop_time:.1f} s to stop after SIGTERM"
