"""The `--select NAME=SELECTOR` syntax, checked without lxml (so that config stays pure).

A selector is one of (SPEC 5, as parsel reads them):

- CSS (`h1`): the whitespace-collapsed text of each element it matches;
- CSS ending in `::text` (`p::text`): the element's own text nodes;
- CSS ending in `::attr(NAME)` (`a::attr(href)`): that attribute's values;
- `xpath:EXPR`: what the XPath gives (elements as their text, strings as they are).

`selector_xpath` turns any of them into XPath text; `parse.compile_select`
compiles it with lxml (and is the one check of an XPath's syntax).
"""

from __future__ import annotations

import re
from typing import Any

XPATH_PREFIX = "xpath:"
_ATTRIBUTE = re.compile(r"[A-Za-z_][-\w.]*(:[A-Za-z_][-\w.]*)?")  # an XML name, maybe prefixed


def split_select(item: str) -> tuple[str, str]:
    """`"price = span.price"` -> `("price", "span.price")`; ValueError without a name or a selector.

    The first `=` splits: a selector may hold more (`a[href='x=y']`).
    """
    name, sep, selector = item.partition("=")
    name, selector = name.strip(), selector.strip()
    if not (sep and name and selector):
        raise ValueError(f"must look like NAME=CSS, got {item!r}")
    return name, selector


def is_xpath(selector: str) -> bool:
    return selector.startswith(XPATH_PREFIX)


def selector_xpath(selector: str) -> str:
    """The XPath text of a selector; ValueError naming the problem if it is not
    valid (an XPath's own syntax is checked when lxml compiles it)."""
    if is_xpath(selector):
        expression = selector[len(XPATH_PREFIX):].strip()
        if not expression:
            raise ValueError("empty XPath")
        return expression
    try:
        return str(_translator().css_to_xpath(selector))
    except Exception as exc:  # SelectorSyntaxError or ExpressionError
        raise ValueError(str(exc) or type(exc).__name__) from None


def _translator() -> Any:
    # Imported here: most crawls have no --select, and start-up time counts.
    # cssselect is pure Python (lxml.cssselect and parsel build on it).
    from cssselect import HTMLTranslator
    from cssselect.parser import FunctionalPseudoElement
    from cssselect.xpath import ExpressionError, XPathExpr

    class Translator(HTMLTranslator):
        """HTMLTranslator with parsel's pseudo-elements `::text` and `::attr(NAME)`."""

        def xpath_pseudo_element(self, xpath: XPathExpr, pseudo_element: Any) -> XPathExpr:
            if pseudo_element == "text":
                return XPathExpr(path=f"{xpath}/", element="text()")
            if isinstance(pseudo_element, FunctionalPseudoElement) and pseudo_element.name == "attr":
                arguments = pseudo_element.arguments
                if len(arguments) != 1 or not _ATTRIBUTE.fullmatch(str(arguments[0].value)):
                    raise ExpressionError("::attr() takes one attribute name")
                return XPathExpr(path=f"{xpath}/", element=f"@{arguments[0].value}")
            name = getattr(pseudo_element, "name", pseudo_element)
            raise ExpressionError(f"unknown pseudo-element ::{name} (use ::text or ::attr(NAME))")

    return Translator()
