"""Body-size limit as ASGI middleware: refuses oversize uploads before they are buffered.

A declared ``Content-Length`` over the limit is refused at once; a chunked body is counted as it
streams and refused as soon as it passes the limit.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _TooLarge(Exception):
    pass


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if declared_over(scope, self.max_bytes):
            await refuse(send, self.max_bytes)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return msg

        async def tracking_send(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await refuse(send, self.max_bytes)


def declared_over(scope: Scope, max_bytes: int) -> bool:
    """Whether the request declares a ``Content-Length`` over ``max_bytes``."""
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            return value.isdigit() and int(value) > max_bytes
    return False


async def refuse(send: Send, max_bytes: int) -> None:
    """Answer 413 ``payload_too_large`` (the API's error body) for a body over ``max_bytes``."""
    body: dict[str, Any] = {
        "error": {
            "code": "payload_too_large",
            "message": f"request body over the limit of {max_bytes} bytes",
            "details": {"max_bytes": max_bytes},
        }
    }
    raw = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": raw})
