"""Error strings: one line, cut at a word, in one place (errors.describe)."""

from scraper import errors


def test_a_short_detail_is_kept_whole():
    assert errors.describe("connection", "refused") == "connection: refused"
    assert errors.describe("timeout") == "timeout"


def test_a_long_detail_is_cut_at_a_word_on_one_line():
    detail = "Max retries exceeded with url: /x (Caused by\nNameResolutionError: " + "word " * 100
    text = errors.describe("connection", detail)
    assert len(text) <= errors.MAX_ERROR and "\n" not in text
    assert text.endswith("\u2026") and text[:-1] == text[:-1].rstrip()
    assert text.startswith("connection: Max retries exceeded")
    assert (text[:-1] + " ").rstrip().split(" ")[-1] in detail.split()  # no word cut in half
