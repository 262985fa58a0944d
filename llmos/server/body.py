"""Reading a request body with a size limit: refused by its Content-Length, or while a chunked body streams in."""

from __future__ import annotations

from fastapi import Request

from llmos.server.errors import APIError


async def read_body(request: Request, limit: int, setting: str = "LLMOS_SERVER_MAX_BODY_BYTES") -> bytes:
    """The body, or a 413 naming `setting` once it passes `limit` bytes (nothing past the limit is read)."""
    too_large = APIError(413, f"The request body is larger than {limit} bytes ({setting}).", code="body_too_large")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise too_large
    return bytes(body)
