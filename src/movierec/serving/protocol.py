"""The HTTP/1.1 connection limits the server runs with: h11 plus a deadline per request.

uvicorn's default parser (httptools) has no limit on the request head: a 64 MiB header was
parsed for seconds (blocking every other client) and accepted. h11 refuses a head larger than
``max_incomplete_event_size`` bytes as soon as that many bytes are buffered, so the server runs
on h11 with :data:`MAX_HEAD_BYTES`; :class:`GuardedH11Protocol` answers that refusal with a
JSON 431 instead of uvicorn's plain-text 400.

uvicorn also never drops a client that is slow to send its request: ``timeout_keep_alive``
only runs between requests, and only once a first response went out. The protocol therefore
gives every request :attr:`GuardedH11Protocol.request_timeout` seconds, from the moment the
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

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

MAX_HEAD_BYTES = 16 * 1024  # request line + headers; h11's own default, and Node's
REQUEST_TIMEOUT_S = 10.0  # from waiting for a request to having all of it (head and body)

_FINISHED = (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR)


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


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a JSON 431 for oversized heads and a per-request deadline.

    uvicorn builds one per connection; the limits are class attributes so that worker
    processes (which import this class by name) run with the same ones.
    """

    request_timeout: float = REQUEST_TIMEOUT_S
    max_head_bytes: int = MAX_HEAD_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The head limit belongs to the class, whatever the uvicorn config says.
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.max_head_bytes)
        self._deadline: asyncio.TimerHandle | None = None
        self._got_bytes = False  # of the request the deadline is for

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
        super().data_received(data)
        if self.conn.their_state in _FINISHED:
            self._cancel_deadline()  # the request is in; the app's time is not limited here

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_deadline()  # for the next request on this connection

    def send_400_response(self, msg: str) -> None:
        """h11 refused the request: a JSON 431 when the head was too large, else a 400."""
        buffered = len(self.conn.trailing_data[0])
        if buffered > self.max_head_bytes:
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
