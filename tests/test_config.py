"""scraper.config.CrawlConfig: validation, normalization, immutability."""

from __future__ import annotations

import dataclasses

import pytest

from scraper.config import DEFAULT_USER_AGENT, CrawlConfig
from scraper.errors import ScraperError, UsageError


def top_level_parse(record, tree):
    return {}


def test_defaults():
    config = CrawlConfig()
    assert config.workers >= 1
    assert (config.backend, config.depth, config.max_pages) == ("process", 0, None)
    assert (config.timeout, config.retries, config.delay) == (10.0, 2, 0.0)
    assert (config.per_host, config.max_bytes) == (8, 10 * 1024 * 1024)
    assert config.user_agent == DEFAULT_USER_AGENT
    assert config.user_agent.startswith("scraper/")
    assert (config.allow_domain, config.select, config.ignore_robots, config.resume) == ((), (), False, False)
    assert config.output_path is None


def test_usage_error_is_a_value_error():
    assert issubclass(UsageError, ValueError)
    assert issubclass(UsageError, ScraperError)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("workers", 0),
        ("workers", -1),
        ("workers", 1.5),
        ("workers", True),
        ("workers", "2"),
        ("workers", None),
        ("backend", "threads"),
        ("backend", ""),
        ("depth", -1),
        ("depth", 1.0),
        ("depth", None),
        ("max_pages", 0),
        ("max_pages", -3),
        ("max_pages", 2.5),
        ("max_pages", False),
        ("timeout", 0),
        ("timeout", -1),
        ("timeout", float("nan")),
        ("retries", -1),
        ("retries", 1.5),
        ("delay", -0.1),
        ("delay", float("nan")),
        ("per_host", 0),
        ("per_host", 2.0),
        ("max_bytes", 0),
        ("max_bytes", 1.5),
        ("user_agent", ""),
        ("user_agent", "   "),
        ("start_method", "fork2"),
        ("allow_domain", ""),
        ("allow_domain", "example.com/path"),
        ("allow_domain", "exa mple.com"),
        ("allow_domain", "."),
        ("allow_domain", ("ok.com", "  ")),
        ("select", ["no-equals-sign"]),
        ("select", ["=p"]),
        ("select", ["name="]),
        ("select", {"x": "p["}),
        ("select", [("x", "")]),
        ("select", ["x=a >"]),
        ("parse", 42),
        ("parse", "module.function"),
    ],
)
def test_bad_value_raises_usage_error(name, value):
    with pytest.raises(UsageError):
        CrawlConfig(**{name: value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("timeout", "soon"),  # ValueError from float()
        ("delay", None),  # TypeError from float()
        ("user_agent", None),  # AttributeError: .strip()
        ("allow_domain", [3]),  # AttributeError: .strip()
        ("select", [3]),  # TypeError: cannot unpack
        ("select", [("a", "b", "c")]),  # ValueError: too many values to unpack
    ],
)
def test_bad_value_of_wrong_type_raises_usage_error(name, value):
    with pytest.raises(UsageError):
        CrawlConfig(**{name: value})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"output": "a.jsonl", "overwrite_output": "b.jsonl"}, "not both"),
        ({"resume": True, "overwrite_output": "b.jsonl"}, "resume"),
        ({"backend": "fibers"}, "process, thread"),
        ({"depth": -1}, "depth"),
        ({"since": "old.jsonl", "overwrite_output": "./old.jsonl"}, "since"),
    ],
)
def test_usage_error_messages(kwargs, message):
    with pytest.raises(UsageError, match=message):
        CrawlConfig(**kwargs)


def test_good_values_are_accepted():
    config = CrawlConfig(
        workers=3, backend="thread", depth=2, max_pages=1, timeout=1, retries=0, delay=0.5,
        per_host=1, max_bytes=1, user_agent="bot/1", ignore_robots=True, start_method="spawn",
        output="out.jsonl", resume=True, parse=top_level_parse,
    )  # fmt: skip
    assert (config.workers, config.backend, config.depth, config.max_pages) == (3, "thread", 2, 1)
    assert config.timeout == 1.0 and isinstance(config.timeout, float)
    assert config.delay == 0.5
    assert config.start_method == "spawn"
    assert config.output_path == "out.jsonl"
    assert config.parse is top_level_parse


def test_output_path_from_either_option():
    assert CrawlConfig(output="a.jsonl").output_path == "a.jsonl"
    assert CrawlConfig(overwrite_output="b.jsonl").output_path == "b.jsonl"


# -- select ------------------------------------------------------------------


@pytest.mark.parametrize(
    "select",
    [
        {"title": "title", "links": "a.nav"},
        ["title=title", "links=a.nav"],
        [" title = title ", "links= a.nav"],
        [("title", "title"), ("links", "a.nav")],
        ("title=title", ("links", "a.nav")),
    ],
)
def test_select_forms_normalize_to_pairs(select):
    assert CrawlConfig(select=select).select == (("title", "title"), ("links", "a.nav"))


def test_select_css_may_contain_equals_sign():
    assert CrawlConfig(select=["x=a[href='a=b']"]).select == (("x", "a[href='a=b']"),)


def test_bad_css_message_names_the_field():
    with pytest.raises(UsageError, match="price"):
        CrawlConfig(select=["price=p["])


# -- allow_domain ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("allow_domain", "expected"),
    [
        ("Example.COM", ("example.com",)),
        ([" Example.COM. "], ("example.com",)),
        (["example.com:8080"], ("example.com",)),
        (["b.org", "B.ORG", "a.org", "b.org:81"], ("b.org", "a.org")),
        ((), ()),
    ],
)
def test_allow_domain_normalization(allow_domain, expected):
    assert CrawlConfig(allow_domain=allow_domain).allow_domain == expected


def test_allow_domain_without_host_is_rejected():
    with pytest.raises(UsageError):
        CrawlConfig(allow_domain=":8080")


@pytest.mark.parametrize("allow_domain", ["[::1]:8080", "[::1]"])
def test_allow_domain_ipv6_literal(allow_domain):
    assert CrawlConfig(allow_domain=allow_domain).allow_domain == ("::1",)


# -- frozen, replace -------------------------------------------------------------


def test_frozen():
    config = CrawlConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.depth = 3  # type: ignore[misc]


def test_replace_returns_a_changed_copy():
    config = CrawlConfig(workers=2, depth=1)
    changed = config.replace(depth=3, select={"t": "title"}, allow_domain=["Ex.com"])
    assert (changed.workers, changed.depth) == (2, 3)
    assert changed.select == (("t", "title"),)
    assert changed.allow_domain == ("ex.com",)
    assert (config.depth, config.select, config.allow_domain) == (1, (), ())


def test_replace_validates_again():
    with pytest.raises(UsageError):
        CrawlConfig().replace(workers=0)


def test_replace_unknown_name_raises_type_error():
    with pytest.raises(TypeError):
        CrawlConfig().replace(no_such_option=1)


def test_select_form_does_not_change_equality():
    assert CrawlConfig(workers=2, select=["t=title"]) == CrawlConfig(workers=2, select={"t": "title"})
