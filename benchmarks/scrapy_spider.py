"""The same crawl in Scrapy, for benchmarks/run.py: every page of one site from START,
robots.txt obeyed, one JSON line per page (url, title, links) in OUT.

    scrapy runspider benchmarks/scrapy_spider.py -a start=URL -O OUT.jsonl \
        -s CONCURRENT_REQUESTS=N -s CONCURRENT_REQUESTS_PER_DOMAIN=N
"""

from __future__ import annotations

import scrapy


class SiteSpider(scrapy.Spider):
    name = "site"
    custom_settings = {
        "ROBOTSTXT_OBEY": True,
        "LOG_LEVEL": "WARNING",
        "TELNETCONSOLE_ENABLED": False,
    }

    def __init__(self, start: str, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.start_urls = [start]
        self.allowed_domains = [start.split("/")[2].split(":")[0]]

    async def start(self):  # noqa: ANN201 - Scrapy >= 2.13
        # Not Spider's default start, which sets dont_filter: `/` would be fetched again when linked.
        yield scrapy.Request(self.start_urls[0])

    def start_requests(self):  # noqa: ANN201 - older Scrapy
        yield scrapy.Request(self.start_urls[0])

    def parse(self, response):  # noqa: ANN001, ANN201
        links = [response.urljoin(href) for href in response.css("a::attr(href)").getall()]
        yield {"url": response.url, "title": response.css("title::text").get(), "links": links}
        for link in links:
            yield response.follow(link, callback=self.parse)
