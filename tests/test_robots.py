"""scraper.robots: robots.txt as RFC 9309 and google/robotstxt read it (offline, data tables).

Each row is (robots.txt, product token, path and query as requested, allowed?)
with its source: "RFC 9309 <section>", "google <TEST name>" (robots_test.cc of
google/robotstxt), or "issue 11". Rows marked DEVIATION fail with protego 0.7
alone (Protego.parse(text).can_fetch(url, token)), the way robots.py used it.
"""

from __future__ import annotations

import pickle

import pytest

from scraper.config import DEFAULT_USER_AGENT
from scraper.robots import MAX_BYTES, RobotsRules, product_token, rules_from_response

SITE = "https://example.com"

RFC_5_1 = """\
User-Agent: *
Disallow: *.gif$
Disallow: /example/
Allow: /publications/

User-Agent: foobot
Disallow:/
Allow:/example/page.html
Allow:/example/allowed.gif

User-Agent: barbot
User-Agent: bazbot
Disallow: /example/page.html

User-Agent: quxbot

EOF
"""

RFC_5_2 = """\
User-Agent: foobot
Allow: /example/page/
Disallow: /example/page/disallowed.gif
"""

GOOGLE_GROUPS = """\
allow: /foo/bar/

user-agent: FooBot
disallow: /
allow: /x/
user-agent: BarBot
disallow: /
allow: /y/


allow: /w/
user-agent: BazBot

user-agent: FooBot
allow: /z/
disallow: /
"""

GOOGLE_PHP = "user-agent: FooBot\ndisallow: /\nallow: /*.php\n"
GOOGLE_PHP_END = "user-agent: FooBot\ndisallow: /\nallow: /*.php$\n"
DELAYS = "User-agent: *\nCrawl-delay: 1\nUser-agent: foobot\nCrawl-delay: 3\nDisallow: /x\n"


def row(text: str | bytes, token: str, path: str, expected: bool, id: str) -> object:
    return pytest.param(text, token, path, expected, id=id)


RFC_ROWS = [
    # RFC 9309 5.1: the * group, for a token no group names
    row(RFC_5_1, "otherbot", "/example/x.html", False, "5.1 * disallow prefix"),
    row(RFC_5_1, "otherbot", "/publications/x.html", True, "5.1 * allow prefix"),
    row(RFC_5_1, "otherbot", "/images/a.gif", False, "5.1 * *.gif$"),
    row(RFC_5_1, "otherbot", "/images/a.gif?x=1", True, "5.1 * $ ends the pattern"),
    row(RFC_5_1, "otherbot", "/publications/a.gif", True, "5.1 * longest match allow"),
    row(RFC_5_1, "otherbot", "/other.html", True, "5.1 * no match"),
    # RFC 9309 5.1: foobot has its own group; the * group does not apply
    row(RFC_5_1, "foobot", "/example/page.html", True, "5.1 foobot allow"),
    row(RFC_5_1, "foobot", "/example/allowed.gif", True, "5.1 foobot allow gif"),
    row(RFC_5_1, "foobot", "/example/other.html", False, "5.1 foobot disallow /"),
    row(RFC_5_1, "foobot", "/", False, "5.1 foobot root"),
    row(RFC_5_1, "FooBot", "/other.html", False, "5.1 token case-insensitive"),
    # RFC 9309 5.1: a group with two user-agent lines
    row(RFC_5_1, "barbot", "/example/page.html", False, "5.1 barbot disallow"),
    row(RFC_5_1, "bazbot", "/example/page.html", False, "5.1 bazbot disallow"),
    row(RFC_5_1, "bazbot", "/example/other.html", True, "5.1 bazbot elsewhere"),
    row(RFC_5_1, "barbot", "/a.gif", True, "5.1 barbot * not used"),
    # RFC 9309 5.1: an empty group at the end
    row(RFC_5_1, "quxbot", "/example/page.html", True, "5.1 quxbot empty group"),
    # RFC 9309 5.2: longest match
    row(RFC_5_2, "foobot", "/example/page/disallowed.gif", False, "5.2 longest disallow"),
    row(RFC_5_2, "foobot", "/example/page/other.gif", True, "5.2 shorter allow"),
    # RFC 9309 2.2.1: groups of the same agent merged; * only when no group names it
    row("user-agent: ExampleBot\ndisallow: /foo\ndisallow: /bar\n\nuser-agent: ExampleBot\n"
        "disallow: /baz\n", "examplebot", "/baz", False, "2.2.1 merged groups"),
    row("user-agent: ExampleBot\ndisallow: /foo\n\nuser-agent: ExampleBot\ndisallow: /baz\n",
        "examplebot", "/foo", False, "2.2.1 merged groups first"),
    row("user-agent: *\ndisallow: /foo\ndisallow: /bar\n\nuser-agent: BazBot\ndisallow: /baz\n",
        "examplebot", "/foo", False, "2.2.1 * group"),
    row("user-agent: *\ndisallow: /foo\n\nuser-agent: BazBot\ndisallow: /baz\n",
        "examplebot", "/baz", True, "2.2.1 other agent's group"),
    row("user-agent: *\ndisallow: /a\nuser-agent: *\ndisallow: /b\n", "x", "/b", False,
        "2.2.1 * groups merged"),
    # RFC 9309 2.2.2: allow wins a tie; no match allowed; /robots.txt always allowed
    row("user-agent: *\ndisallow: /x\nallow: /x\n", "x", "/x/y", True, "2.2.2 allow on a tie"),
    row("user-agent: *\ndisallow: /\n", "x", "/robots.txt", True, "2.2.2 /robots.txt allowed"),
    # RFC 9309 2.2.2 table: percent-encoding
    row("user-agent: *\ndisallow: /foo/bar?baz=quz\n", "x", "/foo/bar?baz=quz", False, "2.2.2 query"),
    row("user-agent: *\ndisallow: /foo/bar?baz=https://foo.bar\n", "x",
        "/foo/bar?baz=https%3A%2F%2Ffoo.bar", False, "2.2.2 DEVIATION %3A%2F%2F in query"),
    row("user-agent: *\ndisallow: /foo/bar?baz=https%3A%2F%2Ffoo.bar\n", "x",
        "/foo/bar?baz=https://foo.bar", False, "2.2.2 DEVIATION encoded rule, plain query"),
    row("user-agent: *\ndisallow: /foo/bar?baz=https://foo.bar\n", "x",
        "/foo/bar?baz=https://foo.bar", False, "2.2.2 :// as linked"),
    row("user-agent: *\ndisallow: /foo/bar/\u30c4\n", "x", "/foo/bar/%E3%83%84", False, "2.2.2 U+30C4"),
    row("user-agent: *\ndisallow: /foo/bar/%E3%83%84\n", "x", "/foo/bar/%E3%83%84", False, "2.2.2 %E3%83%84"),
    row("user-agent: *\ndisallow: /foo/bar/%e3%83%84\n", "x", "/foo/bar/%E3%83%84", False, "2.2.2 hex case"),
    row("user-agent: *\ndisallow: /foo/bar/%62%61%7A\n", "x", "/foo/bar/baz", False, "2.2.2 %62%61%7A = baz"),
    row("user-agent: *\ndisallow: /~foo\n", "x", "/%7Efoo", False, "2.2.2 ~ = %7E"),
    row("user-agent: *\ndisallow: /%7efoo\n", "x", "/~foo", False, "2.2.2 %7e = ~"),
    row("user-agent: *\ndisallow: /a%2Fb\n", "x", "/a/b", True, "2.2.2 %2F in the path is not /"),
    row("user-agent: *\ndisallow: /a/b\n", "x", "/a%2Fb", True, "2.2.2 / in the path is not %2F"),
    # RFC 9309 2.2.3: special characters
    row("user-agent: *\ndisallow: /path/file-with-a-%2A.html\n", "x", "/path/file-with-a-*.html", False,
        "2.2.3 %2A is a literal *"),
    row("user-agent: *\ndisallow: /path/foo-%24\n", "x", "/path/foo-$", False, "2.2.3 %24 is a literal $"),
    row("user-agent: *\ndisallow: /this/path/exactly$\n", "x", "/this/path/exactly", False, "2.2.3 $ exact"),
    row("user-agent: *\ndisallow: /this/path/exactly$\n", "x", "/this/path/exactly/", True, "2.2.3 $ end"),
    row("user-agent: *\ndisallow: /this/*/exactly\n", "x", "/this/a/b/exactly", False, "2.2.3 *"),
    row("user-agent: *\ndisallow: /a # comment in line\n", "x", "/a", False, "2.2.3 # comment"),
    # RFC 9309 2.2.4: other records do not end a group (google ID_LineSyntax_Groups_OtherRules)
    row("User-agent: BarBot\nSitemap: https://foo.bar/sitemap\nUser-agent: *\nDisallow: /\n",
        "barbot", "/", False, "2.2.4 sitemap between user-agents"),
    row("User-agent: FooBot\nInvalid-Unknown-Line: unknown\nUser-agent: *\nDisallow: /\n",
        "foobot", "/", False, "2.2.4 DEVIATION unknown line between user-agents"),
    row("User-agent: FooBot\nInvalid-Unknown-Line: unknown\nUser-agent: *\nDisallow: /\n",
        "barbot", "/", False, "2.2.4 unknown line, other agent"),
    row("User-agent: a\nFoo: bar\nUser-agent: b\nDisallow: /\n", "a", "/x", False,
        "2.2.4 DEVIATION Foo: bar between user-agents"),
    row("User-agent: a\nUser-agnet: c\nUser-agent: b\nDisallow: /\n", "a", "/x", False,
        "2.2.4 DEVIATION typo'd directive between user-agents"),
    row("User-agent: a\nCrawl-delay: 5\nUser-agent: b\nDisallow: /\n", "a", "/x", False,
        "2.2.4 DEVIATION crawl-delay between user-agents"),
    row("User-agent: a\nRequest-rate: 1/5\nUser-agent: b\nDisallow: /\n", "a", "/x", False,
        "2.2.4 DEVIATION request-rate between user-agents"),
    row("User-agent: a\nVisit-time: 0600-0845\nUser-agent: b\nDisallow: /\n", "a", "/x", False,
        "2.2.4 DEVIATION visit-time between user-agents"),
    row("User-agent: Yandex\nCrawl-delay: 2\n\nUser-agent: *\nDisallow: /search\n", "yandex", "/search",
        False,
        "2.2.4 DEVIATION crawl-delay ends no group (common file)"),
    row("User-agent: a\nHost: example.com\nUser-agent: b\nDisallow: /\n", "a", "/x", False,
        "2.2.4 host between user-agents"),
    row("User-agent: a\nFoo: bar\nDisallow: /\n", "a", "/x", False, "2.2.4 unknown line before the rules"),
    row("User-agent: a\nDisallow: /x\nFoo: bar\nDisallow: /y\n", "a", "/y", False,
        "2.2.4 unknown line among the rules"),
    row("User-agent: a\nDisallow: /x\nFoo: bar\nUser-agent: b\nDisallow: /y\n", "a", "/y", True,
        "2.2.4 a user-agent after rules starts a new group"),
]

GOOGLE_ROWS = [
    # google GoogleOnly_SystemTest
    row("", "foobot", "/", True, "SystemTest empty robots.txt"),
    row("user-agent: FooBot\ndisallow: /\n", "", "/", True, "SystemTest empty token"),
    # google ID_LineSyntax_Line
    row("user-agent: FooBot\ndisallow: /\n", "foobot", "/x/y", False, "LineSyntax_Line correct"),
    row("foo: FooBot\nbar: /\n", "foobot", "/x/y", True, "LineSyntax_Line incorrect"),
    row("user-agent FooBot\ndisallow /\n", "foobot", "/x/y", False, "LineSyntax_Line no colon accepted"),
    # google ID_LineSyntax_Groups
    row(GOOGLE_GROUPS, "foobot", "/x/b", True, "Groups FooBot x"),
    row(GOOGLE_GROUPS, "foobot", "/z/d", True, "Groups FooBot z (merged)"),
    row(GOOGLE_GROUPS, "foobot", "/y/c", False, "Groups FooBot y"),
    row(GOOGLE_GROUPS, "barbot", "/y/c", True, "Groups BarBot y"),
    row(GOOGLE_GROUPS, "barbot", "/w/a", True, "Groups BarBot w"),
    row(GOOGLE_GROUPS, "barbot", "/z/d", False, "Groups BarBot z"),
    row(GOOGLE_GROUPS, "bazbot", "/z/d", True, "Groups BazBot shares FooBot's group"),
    row(GOOGLE_GROUPS, "foobot", "/foo/bar/", False, "Groups rule outside groups, FooBot"),
    row(GOOGLE_GROUPS, "bazbot", "/foo/bar/", False, "Groups rule outside groups, BazBot"),
    # google ID_REPLineNamesCaseInsensitive
    row("USER-AGENT: FooBot\nALLOW: /x/\nDISALLOW: /\n", "foobot", "/a/b", False, "LineNames upper"),
    row("uSeR-aGeNt: FooBot\nAlLoW: /x/\ndIsAlLoW: /\n", "foobot", "/x/y", True, "LineNames camel"),
    # google ID_UserAgentValueCaseInsensitive
    row("User-Agent: FOO BAR\nAllow: /x/\nDisallow: /\n", "foo", "/a/b", False,
        "UserAgentValueCaseInsensitive DEVIATION upper"),
    row("User-Agent: FoO bAr\nAllow: /x/\nDisallow: /\n", "foo", "/x/y", True,
        "UserAgentValueCaseInsensitive camel allowed"),
    # google GoogleOnly_AcceptUserAgentUpToFirstSpace
    row("User-Agent: *\nDisallow: /\nUser-Agent: Foo Bar\nAllow: /x/\nDisallow: /\n", "foo", "/x/y", True,
        "AcceptUserAgentUpToFirstSpace DEVIATION"),
    # google ID_GlobalGroups_Secondary
    row("user-agent: *\nallow: /\nuser-agent: FooBot\ndisallow: /\n", "foobot", "/x/y", False,
        "GlobalGroups specific"),
    row("user-agent: *\nallow: /\nuser-agent: FooBot\ndisallow: /\n", "barbot", "/x/y", True,
        "GlobalGroups global"),
    row("user-agent: FooBot\nallow: /\nuser-agent: BarBot\ndisallow: /\nuser-agent: BazBot\ndisallow: /\n",
        "quxbot", "/x/y", True, "GlobalGroups only specific"),
    # google ID_AllowDisallow_Value_CaseSensitive
    row("user-agent: FooBot\ndisallow: /x/\n", "foobot", "/x/y", False, "CaseSensitive lower"),
    row("user-agent: FooBot\ndisallow: /X/\n", "foobot", "/x/y", True, "CaseSensitive upper"),
    # google ID_LongestMatch
    row("user-agent: FooBot\ndisallow: /x/page.html\nallow: /x/\n", "foobot", "/x/page.html", False,
        "LongestMatch disallow longer"),
    row("user-agent: FooBot\nallow: /x/page.html\ndisallow: /x/\n", "foobot", "/x/page.html", True,
        "LongestMatch allow longer"),
    row("user-agent: FooBot\nallow: /x/page.html\ndisallow: /x/\n", "foobot", "/x/", False,
        "LongestMatch allow does not match"),
    row("user-agent: FooBot\ndisallow: \nallow: \n", "foobot", "/x/page.html", True, "LongestMatch empty"),
    row("user-agent: FooBot\ndisallow: /\nallow: /\n", "foobot", "/x/page.html", True, "LongestMatch tie /"),
    row("user-agent: FooBot\ndisallow: /x\nallow: /x/\n", "foobot", "/x", False, "LongestMatch /x"),
    row("user-agent: FooBot\ndisallow: /x\nallow: /x/\n", "foobot", "/x/", True, "LongestMatch /x/"),
    row("user-agent: FooBot\ndisallow: /x/page.html\nallow: /x/page.html\n", "foobot", "/x/page.html", True,
        "LongestMatch tie"),
    row("user-agent: FooBot\nallow: /page\ndisallow: /*.html\n", "foobot", "/page.html", False,
        "LongestMatch wildcard longer"),
    row("user-agent: FooBot\nallow: /page\ndisallow: /*.html\n", "foobot", "/page", True,
        "LongestMatch wildcard no match"),
    row("user-agent: FooBot\nallow: /x/page.\ndisallow: /*.html\n", "foobot", "/x/page.html", True,
        "LongestMatch allow longer than wildcard"),
    row("user-agent: FooBot\nallow: /x/page.\ndisallow: /*.html\n", "foobot", "/x/y.html", False,
        "LongestMatch wildcard only"),
    row("User-agent: *\nDisallow: /x/\nUser-agent: FooBot\nDisallow: /y/\n", "foobot", "/x/page", True,
        "LongestMatch specific group only"),
    row("User-agent: *\nDisallow: /x/\nUser-agent: FooBot\nDisallow: /y/\n", "foobot", "/y/page", False,
        "LongestMatch specific group"),
    # google ID_Encoding
    row("User-agent: FooBot\nDisallow: /\nAllow: /foo/bar?qux=taz&baz=http://foo.bar?tar&par\n", "foobot",
        "/foo/bar?qux=taz&baz=http://foo.bar?tar&par", True, "Encoding query stays unencoded"),
    row("User-agent: FooBot\nDisallow: /\nAllow: /foo/bar/\u30c4\n", "foobot", "/foo/bar/%E3%83%84", True,
        "Encoding 3-byte character"),
    row("User-agent: FooBot\nDisallow: /\nAllow: /foo/bar/%E3%83%84\n", "foobot", "/foo/bar/%E3%83%84", True,
        "Encoding percent-encoded 3-byte character"),
    row("User-agent: FooBot\nDisallow: /\nAllow: /foo/bar/%62%61%7A\n", "foobot", "/foo/bar/%62%61%7A", True,
        "Encoding %62%61%7A as written"),
    # google ID_SpecialCharacters
    row("User-agent: FooBot\nDisallow: /foo/bar/quz\nAllow: /foo/*/qux\n", "foobot", "/foo/bar/quz", False,
        "SpecialCharacters * longest"),
    row("User-agent: FooBot\nDisallow: /foo/bar/quz\nAllow: /foo/*/qux\n", "foobot", "/foo//quz", True,
        "SpecialCharacters // not matched"),
    row("User-agent: FooBot\nDisallow: /foo/bar$\nAllow: /foo/bar/qux\n", "foobot", "/foo/bar", False,
        "SpecialCharacters $ match"),
    row("User-agent: FooBot\nDisallow: /foo/bar$\nAllow: /foo/bar/qux\n", "foobot", "/foo/bar/baz", True,
        "SpecialCharacters $ no match"),
    row("User-agent: FooBot\n# Disallow: /\nDisallow: /foo/quz#qux\nAllow: /\n", "foobot", "/foo/bar", True,
        "SpecialCharacters commented-out line"),
    row("User-agent: FooBot\n# Disallow: /\nDisallow: /foo/quz#qux\nAllow: /\n", "foobot", "/foo/quz", False,
        "SpecialCharacters # ends the pattern"),
    # google GoogleOnly_IndexHTMLisDirectory
    row("User-Agent: *\nAllow: /allowed-slash/index.html\nDisallow: /\n", "foobot", "/allowed-slash/", True,
        "IndexHTMLisDirectory directory"),
    row("User-Agent: *\nAllow: /allowed-slash/index.html\nDisallow: /\n", "foobot",
        "/allowed-slash/index.htm", False, "IndexHTMLisDirectory index.htm"),
    row("User-Agent: *\nAllow: /allowed-slash/index.html\nDisallow: /\n", "foobot", "/anyother-url", False,
        "IndexHTMLisDirectory other"),
    # google GoogleOnly_DocumentationChecks
    row("user-agent: FooBot\ndisallow: /\nallow: /fish\n", "foobot", "/fish.html?id=anything", True,
        "Documentation /fish"),
    row("user-agent: FooBot\ndisallow: /\nallow: /fish\n", "foobot", "/Fish.asp", False,
        "Documentation /fish case"),
    row("user-agent: FooBot\ndisallow: /\nallow: /fish\n", "foobot", "/?id=fish", False,
        "Documentation /fish query"),
    row("user-agent: FooBot\ndisallow: /\nallow: /fish*\n", "foobot", "/fishheads/yummy.html", True,
        "Documentation /fish*"),
    row("user-agent: FooBot\ndisallow: /\nallow: /fish/\n", "foobot", "/fish", False, "Documentation /fish/"),
    row(GOOGLE_PHP, "foobot", "/folder/filename.php?parameters", True, "Documentation /*.php"),
    row(GOOGLE_PHP, "foobot", "/index?f=filename.php/", True, "Documentation /*.php in query"),
    row(GOOGLE_PHP, "foobot", "/windows.PHP", False, "Documentation /*.php case"),
    row(GOOGLE_PHP_END, "foobot", "/folder/filename.php", True, "Documentation /*.php$"),
    row(GOOGLE_PHP_END, "foobot", "/filename.php?parameters", False, "Documentation /*.php$ query"),
    row(GOOGLE_PHP_END, "foobot", "/filename.php5", False, "Documentation /*.php$ suffix"),
    row("user-agent: FooBot\ndisallow: /\nallow: /fish*.php\n", "foobot", "/fishheads/catfish.php?p", True,
        "Documentation /fish*.php"),
    row("user-agent: FooBot\nallow: /p\ndisallow: /\n", "foobot", "/page", True, "Documentation precedence"),
    row("user-agent: FooBot\nallow: /folder\ndisallow: /folder\n", "foobot", "/folder/page", True,
        "Documentation precedence tie"),
    row("user-agent: FooBot\nallow: /page\ndisallow: /*.htm\n", "foobot", "/page.htm", False,
        "Documentation precedence wildcard"),
    row("user-agent: FooBot\nallow: /$\ndisallow: /\n", "foobot", "/", True, "Documentation /$"),
    row("user-agent: FooBot\nallow: /$\ndisallow: /\n", "foobot", "/page.html", False,
        "Documentation /$ other"),
    # google ID_LinesNumbersAreCountedCorrectly: \n, \r\n, \r line ends
    row("User-Agent: foo\r\nAllow: /some/path\r\nUser-Agent: bar\r\n\r\n\r\nDisallow: /\r\n", "bar", "/x",
        False, "LineEnds DOS"),
    row("User-Agent: foo\rAllow: /some/path\rUser-Agent: bar\r\r\rDisallow: /\r", "bar", "/x", False,
        "LineEnds Mac"),
    row("User-Agent: foo\rAllow: /some/path\rUser-Agent: bar\r\r\rDisallow: /\r", "foo", "/x", True,
        "LineEnds Mac, other group"),
    row("User-Agent: foo\nAllow: /some/path\r\nUser-Agent: bar\n\r\n\nDisallow: /", "bar", "/x", False,
        "LineEnds mixed, no final newline"),
    # google ID_UTF8ByteOrderMarkIsSkipped
    row(b"\xef\xbb\xbfUser-Agent: foo\nDisallow: /\n", "foo", "/x", False, "BOM DEVIATION full"),
    row(b"\xef\xbbUser-Agent: foo\nDisallow: /\n", "foo", "/x", False, "BOM DEVIATION partial 2"),
    row(b"\xefUser-Agent: foo\nDisallow: /\n", "foo", "/x", False, "BOM DEVIATION partial 1"),
    row(b"\xef\x11\xbfUser-Agent: foo\nDisallow: /\n", "foo", "/x", True, "BOM broken: first line lost"),
    row(b"User-Agent: *\n\xef\xbb\xbfDisallow: /\n", "foo", "/x", True, "BOM in the middle: line lost"),
    # robots.h ExtractUserAgent: the [a-zA-Z_-] prefix names the agent, exactly
    row("User-agent: foo\nDisallow: /\n", "foobot", "/x", True,
        "ExtractUserAgent DEVIATION foo is not foobot"),
    row("User-agent: FooBot/1.0\nDisallow: /\n", "foobot", "/x", False,
        "ExtractUserAgent DEVIATION FooBot/1.0"),
    row("User-agent: foobot*\nDisallow: /\n", "foobot", "/x", False, "ExtractUserAgent foobot*"),
    row("User-agent: bot\nDisallow: /\n", "foobot", "/x", True, "ExtractUserAgent bot is not foobot"),
    row("User-agent: foo-bot\nDisallow: /\n", "foo", "/x", True, "ExtractUserAgent foo-bot is not foo"),
    # robots.cc HandleUserAgent: "*" followed by a space is still the global group
    row("User-agent: * all robots\nDisallow: /\n", "foobot", "/x", False,
        "HandleUserAgent DEVIATION '* ...'"),
    row("User-agent: *bot\nDisallow: /\n", "foobot", "/x", True, "HandleUserAgent *bot names nothing"),
]

ISSUE_ROWS = [
    # issue 11: match the path and query as requested, a ':' in the query included
    row("User-agent: *\nDisallow: /p?u=https:\n", "scraper", "/p?u=https://x.y", False, "as linked refused"),
    row("User-agent: *\nDisallow: /p?u=https:\n", "scraper", "/p?u=https%3A%2F%2Fx.y", False,
        "canonical spelling refused"),
    row("User-agent: *\nDisallow: /p?u=https:\n", "scraper", "/p?u=http://x.y", True, "other query"),
    row("User-agent: *\nDisallow: /p\nAllow: /p?u=https://x.y\n", "scraper", "/p?u=https://x.y", True,
        "as linked allowed"),
    row("User-agent: *\nDisallow: /p\nAllow: /p?u=https://x.y\n", "scraper", "/p?u=https%3A%2F%2Fx.y", True,
        "DEVIATION allowed whatever the encoding of : and /"),
    row("User-agent: *\nDisallow: /a b\n", "scraper", "/a%20b", False, "space as sent"),
    row("User-agent: *\nDisallow: /*?sort=\n", "scraper", "/list?page=2&sort=asc", True,
        "wildcard query miss"),
    row("User-agent: *\nDisallow: /*?*sort=\n", "scraper", "/list?page=2&sort=asc", False, "wildcard query"),
    row("User-agent: *\nDisallow: /\n", "scraper", "", False, "empty path is /"),
    row("User-agent: *\nDisallow: /$\n", "scraper", "", False, "empty path is / for $"),
    row("User-agent: *\nDisallow: /$\n", "scraper", "?q=1", True, "empty path with a query"),
]


@pytest.mark.parametrize(("text", "token", "path", "expected"), RFC_ROWS + GOOGLE_ROWS + ISSUE_ROWS)
def test_allowed(text: str | bytes, token: str, path: str, expected: bool) -> None:
    body = text if isinstance(text, bytes) else text.encode()
    assert RobotsRules.parse(body, token).allowed(SITE + path) is expected


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        ("FooBot/2.1 (+http://x)", "foobot"),  # issue 11
        ("scraper/1.2 (+https://github.com/x/scraper)", "scraper"),  # the default agent
        ("ExampleBot", "examplebot"),  # RFC 9309 2.2.1
        ("Foo_Bar-baz/1.0", "foo_bar-baz"),  # RFC 9309 2.2.1: [a-zA-Z_-]+
        ("  Spaced/1 ", "spaced"),
        ("Mozilla/5.0 (compatible; ExampleBot/0.1)", "examplebot"),  # named after "compatible;"
        ("007/1", ""),  # no token: only `*` groups apply
    ],
)
def test_product_token(user_agent: str, expected: str) -> None:
    assert product_token(user_agent) == expected


def test_default_user_agent_token() -> None:
    assert product_token(DEFAULT_USER_AGENT) == "scraper"


def test_empty_token_obeys_only_the_star_group() -> None:
    text = b"User-agent: /1.0\nDisallow: /a\nUser-agent: *\nDisallow: /b\n"
    rules = RobotsRules.parse(text, "")
    assert rules.allowed(SITE + "/a") and not rules.allowed(SITE + "/b")


@pytest.mark.parametrize(
    ("status", "expected", "unavailable"),
    [
        (200, False, False),  # parsed: Disallow: /x
        (206, False, False),
        (301, True, False),  # a redirect not followed (e.g. too many): RFC 9309 2.3.1.2 MAY
        (401, True, False),  # RFC 9309 2.3.1.3: 4xx, unavailable, no restriction
        (403, True, False),
        (404, True, False),
        (429, True, False),
        (500, False, True),  # RFC 9309 2.3.1.4: unreachable, complete disallow
        (503, False, True),
        (None, False, True),  # no answer after the retries
    ],
)
def test_rules_from_response(status: int | None, expected: bool, unavailable: bool) -> None:
    rules = rules_from_response(status, b"User-agent: *\nDisallow: /x\n", "scraper")
    assert rules.allowed(SITE + "/x/y") is expected
    assert rules.unavailable is unavailable
    assert rules.allowed(SITE + "/robots.txt")  # RFC 9309 2.2.2: always allowed


def test_allow_all_and_disallow_all() -> None:
    assert RobotsRules.allow_all().allowed(SITE + "/anything?x=1")
    assert not RobotsRules.allow_all().unavailable
    closed = RobotsRules.disallow_all()
    assert not closed.allowed(SITE + "/") and not closed.allowed(SITE)
    assert closed.crawl_delay() == 0.0 and closed.sitemaps() == []


def test_a_long_file_is_cut_at_500_kib_not_dropped() -> None:
    # RFC 9309 2.5 / issue 11: a 700 kB file (the old fetcher dropped anything over
    # 512 KiB, allowing all) is parsed up to its last line end before 512000 bytes.
    head = b"User-agent: *\nDisallow: /early\n"
    comments = b"# " + b"x" * 97 + b"\n"
    body = head + comments * (700_000 // len(comments)) + b"Disallow: /late\n"
    assert len(body) > 700_000
    rules = RobotsRules.parse(body, "scraper")
    assert not rules.allowed(SITE + "/early")
    assert rules.allowed(SITE + "/late")  # after the cut


def test_a_line_across_the_cut_is_not_parsed() -> None:
    # "Disallow: /straddle" starts before 512000 bytes and ends after: a half line
    # ("Disallow: /st") would refuse /stop.
    head = "User-agent: *\nDisallow: /early\n"
    line = b"Disallow: /straddle\n"
    pad = MAX_BYTES - len(head) - 10
    body = head.encode() + b"#" * (pad - 1) + b"\n" + line
    assert len(head) + pad < MAX_BYTES < len(body)
    rules = RobotsRules.parse(body, "scraper")
    assert not rules.allowed(SITE + "/early")
    assert rules.allowed(SITE + "/stop") and rules.allowed(SITE + "/straddle")


def test_a_file_of_exactly_500_kib_is_parsed_whole() -> None:
    head = b"User-agent: *\nDisallow: /early\n"
    tail = b"Disallow: /last"  # no final newline, ends at byte 512000
    body = head + b"#" * (MAX_BYTES - len(head) - len(tail) - 1) + b"\n" + tail
    assert len(body) == MAX_BYTES
    assert not RobotsRules.parse(body, "scraper").allowed(SITE + "/last")


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    body = b"User-agent: *\nDisallow: /caf\xe9\nDisallow: /b\n"
    rules = RobotsRules.parse(body, "scraper")
    assert not rules.allowed(SITE + "/b")
    assert not rules.allowed(SITE + "/caf%EF%BF%BD")  # U+FFFD, as protego encodes it


@pytest.mark.parametrize(
    ("text", "token", "expected"),
    [
        ("User-agent: *\nCrawl-delay: 2.5\n", "scraper", 2.5),  # protego reads the value
        (DELAYS, "foobot", 3.0),  # each run of user-agent lines has its own delay
        (DELAYS, "other", 1.0),
        ("User-agent: a\nCrawl-delay: 4\nUser-agent: b\nDisallow: /\n", "a", 4.0),
        ("User-agent: a\nCrawl-delay: 4\nUser-agent: b\nDisallow: /\n", "b", 0.0),  # a's, not b's
        ("User-agent: Yandex\nCrawl-delay: 2\n\nUser-agent: *\nDisallow: /search\n", "scraper", 0.0),
        ("User-agent: a\nUser-agent: b\nCrawl-delay: 4\nDisallow: /\n", "b", 4.0),
        ("User-agent: a\nUnknown: x\nUser-agent: b\nCrawl-delay: 4\n", "a", 4.0),  # one run
        ("User-agent: a\nDisallow: /\nCrawl-delay: 4\n", "a", 4.0),  # after the rules
        ("User-agent: *\nCrawl-delay: 2\nUser-agent: *\nCrawl-delay: 5\n", "x", 5.0),  # merged: the last
        ("User-agent: x\nCrawl-delay: 2\n\nUser-agent: x\nDisallow: /\nCrawl-delay: 5\n", "x", 5.0),
        ("User-agent: *\nCrawl-delay: soon\n", "scraper", 0.0),  # malformed: ignored
        ("User-agent: *\nCrawl-delay: -1\n", "scraper", 0.0),
        ("Crawl-delay: 9\nUser-agent: *\nDisallow: /x\n", "scraper", 0.0),  # outside any group
        ("User-agent: other\nCrawl-delay: 9\n", "scraper", 0.0),  # another agent's group
        ("", "scraper", 0.0),
    ],
)
def test_crawl_delay(text: str, token: str, expected: float) -> None:
    assert RobotsRules.parse(text.encode(), token).crawl_delay() == expected


def test_sitemaps_from_anywhere_as_written() -> None:
    # RFC 9309 2.2.4 and google ID_NonStandardLineExample_Sitemap: not part of any group.
    text = (
        "Sitemap: https://example.com/a.xml\n"
        "User-agent: other\nSitemap: /relative.xml # comment\nDisallow: /\n"
        "User-agent: *\nDisallow: /x\n"
        "sitemap:https://cdn.example.net/c.xml\n"
    )
    rules = RobotsRules.parse(text.encode(), "scraper")
    assert rules.sitemaps() == ["https://example.com/a.xml", "/relative.xml", "https://cdn.example.net/c.xml"]
    assert not rules.allowed(SITE + "/x/1") and rules.allowed(SITE + "/y")


def test_rules_pickle() -> None:
    rules = RobotsRules.parse(b"User-agent: *\nDisallow: /x\nCrawl-delay: 2\nSitemap: /s.xml\n", "scraper")
    again = pickle.loads(pickle.dumps(rules))
    assert not again.allowed(SITE + "/x") and again.allowed(SITE + "/y")
    assert again.crawl_delay() == 2.0 and again.sitemaps() == ["/s.xml"]
