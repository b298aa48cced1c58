"""The `--select NAME=SELECTOR` syntax, checked without lxml (so that config stays pure).

A selector is CSS today (issue 15 adds parsel's `::text` / `::attr(NAME)` and
`xpath:EXPR`: they belong in `selector_xpath`). `parse.compile_select` compiles
the XPath text given here; config only checks that there is one.
"""

from __future__ import annotations


def split_select(item: str) -> tuple[str, str]:
    """`"price = span.price"` -> `("price", "span.price")`; ValueError without a name or a selector.

    The first `=` splits: a selector may hold more (`a[href='x=y']`).
    """
    name, sep, selector = item.partition("=")
    name, selector = name.strip(), selector.strip()
    if not (sep and name and selector):
        raise ValueError(f"must look like NAME=CSS, got {item!r}")
    return name, selector


def selector_xpath(selector: str) -> str:
    """The XPath text of a selector; ValueError naming the problem if it is not valid."""
    # Imported here: most crawls have no --select, and start-up time counts.
    # cssselect is pure Python (lxml.cssselect and parsel build on it).
    from cssselect import HTMLTranslator

    try:
        return str(HTMLTranslator().css_to_xpath(selector))
    except Exception as exc:  # SelectorSyntaxError or ExpressionError
        raise ValueError(str(exc) or type(exc).__name__) from None
