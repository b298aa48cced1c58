"""robots.txt rules per origin, parsed once with protego (the only module that imports it)."""

from __future__ import annotations

from protego import Protego


class RobotsRules:
    """The rules of one origin. No robots.txt (or no usable one) allows everything."""

    def __init__(self, text: str | None) -> None:
        self._parser = Protego.parse(text) if text else None

    def allowed(self, url: str, user_agent: str) -> bool:
        return self._parser is None or self._parser.can_fetch(url, user_agent)

    def crawl_delay(self, user_agent: str) -> float:
        if self._parser is None:
            return 0.0
        delay = self._parser.crawl_delay(user_agent)
        return float(delay) if delay else 0.0

