"""The `--select NAME=SELECTOR` syntax, checked without lxml (so that config stays pure).

A selector is one of (SPEC 5, as parsel reads them):

- CSS (`h1`): the whitespace-collapsed text of each element it matches;
- CSS ending in `::text` (`p::text`): the element's own text nodes;
- CSS ending in `::attr(NAME)` (`a::attr(href)`): that attribute's values;
- `xpath:EXPR`: what the XPath gives.

Except for the first (a convenience of this tool, documented as such), the
strings are exactly those of parsel's `getall()`, so that a Scrapy user's
selectors carry over: text nodes and attribute values as they are (no
whitespace collapsed), elements an XPath gives as their HTML, numbers and
booleans as parsel writes them. The translation is parsel's own
(parsel.csstranslator, ported: parsel is not a dependency).

`selector_xpath` turns any of them into XPath text; `parse.compile_select`
compiles it with lxml (and is the one check of an XPath's syntax).
"""

from __future__ import annotations

from typing import Any

XPATH_PREFIX = "xpath:"


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
    from cssselect.xpath import ExpressionError, XPathExpr, is_safe_name

    class PseudoXPathExpr(XPathExpr):
        """parsel's XPathExpr: `::text` and `::attr()` are applied when the
        expression is written out, after every combinator (parsel.csstranslator)."""

        textnode = False
        attribute: str | None = None

        @classmethod
        def of(cls, xpath: XPathExpr, textnode: bool = False, attribute: str | None = None) -> Any:
            expr = cls(path=xpath.path, element=xpath.element, condition=xpath.condition)
            expr.textnode, expr.attribute = textnode, attribute
            return expr

        def __str__(self) -> str:
            path = super().__str__()
            if self.textnode:
                if path == "*":
                    path = "text()"
                elif path.endswith("::*/*"):
                    path = path[:-3] + "text()"
                else:
                    path += "/text()"
            if self.attribute is not None:
                if path.endswith("::*/*"):
                    path = path[:-2]
                if is_safe_name(self.attribute):
                    path += f"/@{self.attribute}"
                else:
                    path += f"/attribute::*[name() = {HTMLTranslator.xpath_literal(self.attribute)}]"
            return path

        def join(self, combiner: str, other: Any, *args: Any, **kwargs: Any) -> Any:
            super().join(combiner, other, *args, **kwargs)
            self.textnode = getattr(other, "textnode", False)
            self.attribute = getattr(other, "attribute", None)
            return self

    class Translator(HTMLTranslator):
        """HTMLTranslator with parsel's pseudo-elements `::text` and `::attr(NAME)`."""

        def xpath_element(self, selector: Any) -> XPathExpr:
            return PseudoXPathExpr.of(super().xpath_element(selector))

        def xpath_pseudo_element(self, xpath: XPathExpr, pseudo_element: Any) -> XPathExpr:
            if pseudo_element == "text":
                return PseudoXPathExpr.of(xpath, textnode=True)
            if isinstance(pseudo_element, FunctionalPseudoElement) and pseudo_element.name == "attr":
                if pseudo_element.argument_types() not in (["STRING"], ["IDENT"]):
                    raise ExpressionError("::attr() takes one attribute name")
                return PseudoXPathExpr.of(xpath, attribute=pseudo_element.arguments[0].value)
            name = getattr(pseudo_element, "name", pseudo_element)
            raise ExpressionError(f"unknown pseudo-element ::{name} (use ::text or ::attr(NAME))")

    return Translator()
