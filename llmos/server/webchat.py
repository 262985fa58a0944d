"""The web chat: one HTML page, one script and one stylesheet, served as they are (no build step).

    GET /                 the page
    GET /static/{file}    chat.js, chat.css

The page talks to the same API as any client (the sessions API's streamed llmos events,
/v1/knowledge/...), with the API key its user types in (kept in the browser's localStorage), or
without one on a server that has no keys (loopback only).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from llmos.server.errors import APIError

STATIC = Path(__file__).parent / "static"
ASSETS = {"chat.js": "text/javascript", "chat.css": "text/css"}


def webchat_router() -> APIRouter:
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        # no-cache: a browser revalidates, so a new llmos version's page is never mixed with an old script
        return FileResponse(STATIC / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})

    @router.get("/static/{name}", include_in_schema=False)
    async def asset(name: str) -> FileResponse:
        if name not in ASSETS:  # a fixed list: no path from the URL ever reaches the file system
            raise APIError(404, f"No file {name!r}: the page uses {', '.join(ASSETS)}.", code="not_found")
        return FileResponse(STATIC / name, media_type=ASSETS[name], headers={"Cache-Control": "no-cache"})

    return router
