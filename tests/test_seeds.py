"""scraper.seeds.parse_seeds: the seed-file rules of the spec (section 3)."""

from __future__ import annotations

import io

import pytest

from scraper.seeds import SeedProblem, parse_seeds


def test_whitespace_blank_lines_and_comments():
    lines = [
        "  http://example.com/a  \n",
        "\n",
        "   \t \n",
        "# a comment\n",
        "   # an indented comment\n",
        "\thttps://example.org/b\t\n",
    ]
    assert parse_seeds(lines) == (["http://example.com/a", "https://example.org/b"], [])


def test_reads_a_file_object_with_crlf_lines():
    seeds, problems = parse_seeds(io.StringIO("http://a.com/\r\nhttp://b.com/x\r\n"))
    assert seeds == ["http://a.com/", "http://b.com/x"]
    assert problems == []


def test_seeds_are_kept_as_written_made_safe_and_in_file_order():
    # Requested as given (RFC 9309 matches what is requested); only the key is canonical.
    lines = ["HTTP://Example.COM:80/Path?b=2&a=1&u=https://x.y#frag", "https://z.org/a b", "http://a.org/"]
    seeds, _ = parse_seeds(lines)
    assert seeds == ["http://example.com:80/Path?b=2&a=1&u=https://x.y", "https://z.org/a%20b", "http://a.org/"]


def test_duplicates_are_kept_once_including_canonical_variants():
    lines = [
        "http://example.com/p?a=1&b=2",
        "http://example.com/other",
        "http://example.com/p?a=1&b=2",
        "HTTP://EXAMPLE.COM:80/p?b=2&a=1#top",
        "  http://example.com/p?a=1&b=2  ",
    ]
    seeds, problems = parse_seeds(lines)
    assert seeds == ["http://example.com/p?a=1&b=2", "http://example.com/other"]  # the first spelling
    assert problems == []


def test_bad_lines_are_reported_with_one_based_line_numbers():
    lines = [
        "# header",  # 1
        "http://good.example/",  # 2
        "ftp://files.example/x",  # 3
        "",  # 4
        "/relative/path",  # 5
        "example.com/no-scheme",  # 6
        "mailto:someone@example.com",  # 7
        "http://example.com:99999/",  # 8: port out of range
        "https://also-good.example/",  # 9
    ]
    seeds, problems = parse_seeds(lines)
    assert seeds == ["http://good.example/", "https://also-good.example/"]
    assert [(p.line, p.text) for p in problems] == [
        (3, "ftp://files.example/x"),
        (5, "/relative/path"),
        (6, "example.com/no-scheme"),
        (7, "mailto:someone@example.com"),
        (8, "http://example.com:99999/"),
    ]
    assert all(isinstance(p, SeedProblem) and p.reason for p in problems)


def test_problem_text_is_stripped_and_str_names_the_line():
    _, problems = parse_seeds(["http://ok.example/", "   ftp://x.example/  "])
    assert len(problems) == 1
    assert problems[0].line == 2
    assert problems[0].text == "ftp://x.example/"
    assert str(problems[0]).startswith("line 2: ")
    assert "ftp://x.example/" in str(problems[0])


@pytest.mark.parametrize("line", ["ftp://example.com/", "relative/page.html", "//example.com/x", "http://"])
def test_non_http_or_relative_urls_are_rejected(line):
    seeds, problems = parse_seeds([line])
    assert seeds == []
    assert [p.line for p in problems] == [1]


def test_empty_input():
    assert parse_seeds([]) == ([], [])
    assert parse_seeds(["", "# only comments", "   "]) == ([], [])
