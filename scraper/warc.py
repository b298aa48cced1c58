"""The WARC archive (--warc DIR): every request and response a worker made, written where it runs.

One `.warc.gz` per worker process (WARC 1.1, one gzip member per record, as
wget --warc-file and the Webrecorder tools write), so that no body crosses
a process or machine boundary: the record that goes back to the crawl
carries only `warc: {"file", "offset"}` of its response record. The fetch
threads of one process share its file behind a lock (a record is one
write of a few kilobytes; a file per thread would leave dozens of files per
process). The file is made at the first record, so an idle process leaves
none; it keeps its name for the life of the process (fetch threads come and
go as the crawl tunes their number, and a later crawl of this process into
the same folder appends to it). Each record is flushed as it is written, so
a killed worker leaves at most one torn last record.

What is stored: the request as requests sent it, and the response head and
body as received: a content-encoded body stays encoded (wget's choice, and
what replay tools expect: the stored Content-Encoding header describes the
stored bytes); urllib3 has removed any chunked transfer coding, so that
header is kept as X-Archive-Orig-Transfer-Encoding. A body not read to its
end (cut at --max-bytes, or the unread body of an error or redirect) is
marked `WARC-Truncated: length`. A request that got no response (a timeout
or connection error before the status line) is not archived.
"""

from __future__ import annotations

import io
import os
import socket
import threading
from datetime import datetime, timezone
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from warcio.recordbuilder import RecordBuilder
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from ._version import __version__
from .download import Exchange

# Headers that describe a transfer coding urllib3 has undone: kept under this prefix.
_UNDONE = {"transfer-encoding"}
_ORIG_PREFIX = "X-Archive-Orig-"
REQUEST_PROTOCOL = "HTTP/1.1"  # what http.client sends, whatever the server answers with


class WarcFile:
    """One process's .warc.gz, shared by its fetch threads."""

    def __init__(self, directory: str) -> None:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S%f")
        host = socket.gethostname().replace(os.sep, "_") or "host"
        self.directory = directory
        self.name = f"scraper-{stamp}-{host}-{os.getpid()}.warc.gz"
        self.path = os.path.join(directory, self.name)
        self._file: BinaryIO | None = None
        self._builder = RecordBuilder(warc_version="WARC/1.1")
        self._lock = threading.Lock()
        self.users = 0

    def write(self, exchange: Exchange) -> int:
        """Write a response and its request; the offset of the response record.

        The records are digested and compressed outside the lock (zlib lets
        go of the GIL), so only the append is serialized between threads.
        """
        buffer = io.BytesIO()
        writer = WARCWriter(buffer, gzip=True, warc_version="WARC/1.1")
        # the response first: the offset of the pair is the response's
        writer.write_request_response_pair(self._request(exchange), self._response(exchange))
        with self._lock:
            if self._file is None:
                self._file = self._open()
            offset = self._file.tell()
            self._file.write(buffer.getvalue())
            self._file.flush()
        return offset

    def _open(self) -> BinaryIO:
        """Open (append: tell() is the end); a new file starts with a warcinfo record."""
        os.makedirs(self.directory, exist_ok=True)
        file = open(self.path, "ab")  # noqa: SIM115 - closed in close()
        if file.tell() == 0:
            writer = WARCWriter(file, gzip=True, warc_version="WARC/1.1")
            info = {"software": f"scraper/{__version__}", "format": "WARC File Format 1.1",
                    "hostname": socket.gethostname()}  # fmt: skip
            writer.write_record(writer.create_warcinfo_record(self.name, info))
        return file

    def _response(self, exchange: Exchange) -> Any:
        headers = [(_ORIG_PREFIX + name if name.lower() in _UNDONE else name, value)
                   for name, value in exchange.response_headers]  # fmt: skip
        http = StatusAndHeaders(exchange.status_line, headers, protocol=exchange.protocol)
        warc_headers = {"WARC-Date": _warc_date(exchange.sent_at)}
        if exchange.truncated:
            warc_headers["WARC-Truncated"] = "length"
        return self._builder.create_warc_record(
            exchange.url, "response", payload=io.BytesIO(exchange.body), length=len(exchange.body),
            http_headers=http, warc_headers_dict=warc_headers,
        )  # fmt: skip

    def _request(self, exchange: Exchange) -> Any:
        parts = urlsplit(exchange.url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        # The whole request line (RFC 9112 3): with is_http_request, warcio takes the
        # method off the front and writes the rest as it is, version included.
        http = StatusAndHeaders(f"GET {target} {REQUEST_PROTOCOL}", exchange.request_headers,
                                is_http_request=True)  # fmt: skip
        return self._builder.create_warc_record(
            exchange.url, "request", payload=io.BytesIO(b""), length=0, http_headers=http,
            warc_headers_dict={"WARC-Date": _warc_date(exchange.sent_at)},
        )  # fmt: skip

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def _warc_date(when: float) -> str:
    # WARC 1.1 allows fractions of a second; readers index by the second too.
    moment = datetime.fromtimestamp(when, timezone.utc)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


# (pid, folder) -> the file of this process, for its life; the pid keeps a
# forked child from writing into its parent's file.
_OPEN: dict[tuple[int, str], WarcFile] = {}
_OPEN_LOCK = threading.Lock()


def open_warc(directory: str) -> WarcFile:
    """This process's WARC file in `directory` (opened by its first fetch thread)."""
    key = (os.getpid(), os.path.abspath(directory))
    with _OPEN_LOCK:
        warc = _OPEN.get(key)
        if warc is None:
            warc = _OPEN[key] = WarcFile(directory)
        warc.users += 1
        return warc


def close_warc(warc: WarcFile) -> None:
    """A fetch thread is done with it; the last one closes the file (a
    thread started later opens it again and appends)."""
    with _OPEN_LOCK:
        warc.users -= 1
        if warc.users == 0:
            warc.close()


def written_at(warc: WarcFile, offset: int) -> dict[str, Any]:
    """The record's `warc` field."""
    return {"file": warc.name, "offset": offset}
