"""The HTTP/1.1 connection limits the server runs with: a bounded request head and a deadline.

uvicorn's default protocol (httptools) has no limit on the request head: a 64 MiB header was
parsed for seconds (httptools joins a header's pieces as they arrive, blocking every other
client) and accepted. :class:`GuardedHttpToolsProtocol` counts the bytes that arrive while a
head is incomplete and answers a JSON 431 once they pass :data:`MAX_HEAD_BYTES` (the parser has
then seen at most that plus one socket read, 256 KiB); a head that completes within one read
is measured exactly from the parser's callbacks. uvicorn's h11 protocol has such a limit built
in (``h11_max_incomplete_event_size``), but it is pure Python: on this 2-core machine it served
35-45 % fewer requests a second than httptools (``benchmarks/bench_serve.py``, 8 clients).

uvicorn also never drops a client that is slow to send its request: ``timeout_keep_alive``
only runs between requests, and only once a first response went out. The protocol therefore
gives every request :attr:`GuardedHttpToolsProtocol.request_timeout` seconds, from the moment the
server waits for it (the connection opened, or the previous response went out) until its head
and body are in. A client that misses it gets a 408 (or, if it sent nothing, a plain close).
Once the request is in, the deadline stops: a slow *answer* is the server's business.

How many headers a request may carry is checked by the app (``GuardMiddleware``), which sees
them all at once; this module bounds their total size.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 16 * 1024  # request line + headers; h11's own default, and Node's
REQUEST_TIMEOUT_S = 10.0  # from waiting for a request to having all of it (head and body)


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop httptools; answered as a 431."""


def _raw_response(status: int, reason: str, error: str, detail: str) -> bytes:
    """A complete ``Connection: close`` response with an ``ErrorBody``-shaped JSON body."""
    body = json.dumps({"error": error, "detail": detail}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a JSON 431 for oversized heads and a request deadline.

    uvicorn builds one per connection; the limits are class attributes so that worker
    processes (which import this class by name) run with the same ones.
    """

    request_timeout: float = REQUEST_TIMEOUT_S
    max_head_bytes: int = MAX_HEAD_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._got_bytes = False  # of the request the deadline is for
        self._awaiting_head = True  # no complete head yet for the next request
        self._arrived = 0  # bytes received while awaiting the head (an upper bound on it)
        self._head = 0  # the head's size as the parser reports it
        self._too_large = False

    # -- the request deadline ------------------------------------------------------------------

    def _arm_deadline(self) -> None:
        self._cancel_deadline()
        self._got_bytes = False
        self._deadline = self.loop.call_later(self.request_timeout, self._on_deadline)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _on_deadline(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        answering = self.cycle is not None and self.cycle.response_started
        if self._got_bytes and not answering:
            detail = (
                f"the request was not received within {self.request_timeout:g} s; "
                "send the whole request at once"
            )
            self.transport.write(_raw_response(408, "Request Timeout", "request_timeout", detail))
        self.logger.info("closed a connection whose request took over %gs", self.request_timeout)
        self.transport.close()

    # -- protocol events -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_deadline()  # an idle connection is closed too, not kept forever

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        if self._awaiting_head:
            self._arrived += len(data)
        super().data_received(data)  # runs the parser callbacks below
        over = self._awaiting_head and self._arrived > self.max_head_bytes
        if over and not self.transport.is_closing():
            self._too_large = True
            self.send_400_response("")

    # -- parser callbacks ----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head = 0

    def on_url(self, url: bytes) -> None:
        self._head += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head += len(name) + len(value) + 4  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._head > self.max_head_bytes:  # arrived within one read, complete
            self._too_large = True
            raise _HeadTooLarge
        self._awaiting_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._cancel_deadline()  # the request is in; the app's time is not limited here
        self._awaiting_head, self._arrived = True, 0  # the next request's head, if any

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_deadline()  # for the next request on this connection

    def send_400_response(self, msg: str) -> None:
        """The request cannot be served: a JSON 431 when its head was too large, else a 400."""
        if self._too_large:
            response = _raw_response(
                431,
                "Request Header Fields Too Large",
                "headers_too_large",
                f"the request line and headers are limited to {self.max_head_bytes} bytes",
            )
        else:
            response = _raw_response(
                400, "Bad Request", "bad_request", "the request is not valid HTTP/1.1"
            )
        self.transport.write(response)
        self.transport.close()
