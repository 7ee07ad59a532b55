"""The console as one Starlette application: the routes of every page module, the local static files."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from gateway.web import (  # noqa: F401  (importing a page module registers its routes)
    pages_auth,
    pages_dashboard,
    pages_logbook,
    pages_people,
    pages_reports,
    pages_users,
    pages_visits,
)
from gateway.web.context import ConsoleContext
from gateway.web.security import ROUTES, SECURITY_HEADERS

STATIC = Path(__file__).with_name("static")


class _Static(StaticFiles):
    """Local CSS and JS (the room has no internet), with the console's security headers."""

    async def get_response(self, path: str, scope: dict) -> Response:  # type: ignore[override]
        response = await super().get_response(path, scope)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers["Cache-Control"] = "public, max-age=3600"
        return response


async def _not_found(request: Request, exc: Exception) -> Response:
    return PlainTextResponse("404 halaman tidak ada / page not found", 404, headers=SECURITY_HEADERS)


def build_app(ctx: ConsoleContext) -> Starlette:
    routes: list[Route | Mount] = [Route(spec.path, spec.endpoint, methods=list(spec.methods), name=spec.name)
                                   for spec in ROUTES]
    routes.append(Mount("/static", _Static(directory=STATIC), name="static"))
    app = Starlette(routes=routes, exception_handlers={404: _not_found})
    app.state.ctx = ctx
    return app
