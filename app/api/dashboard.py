"""The web dashboard: static HTML, CSS and JavaScript modules (app/web/) served by the API itself,
so ``kiln up`` gives it with nothing more to install. The pages talk only to the public /v1 API
with the user's key; this module serves files and the headers that keep them safe, nothing else."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

WEB = Path(__file__).resolve().parent.parent / "web"

# No inline script or style, nothing from another origin: a job name with markup in it can never run.
# img-src allows blob: for pictures fetched with the key (previews, generated grids, dropped files).
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
       "font-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)


@router.get("/")
def index() -> FileResponse:
    return FileResponse(WEB / "index.html", headers=HEADERS)


class _Assets:
    """The static files, each answered with the same safety headers as the page."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []),
                                      *((k.lower().encode(), v.encode()) for k, v in HEADERS.items())]
            await send(message)

        await self.app(scope, receive, with_headers)


assets = _Assets(StaticFiles(directory=WEB, html=False))
