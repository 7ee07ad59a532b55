"""Jinja2 pages: autoescaped templates, the words of the session's language, the signed-in user's role."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse

from gateway import __version__

TEMPLATES = Path(__file__).with_name("templates")
_env = Environment(
    loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True), undefined=StrictUndefined,
    trim_blocks=True, lstrip_blocks=True,
)

NAV = (  # (path, word, lowest role)
    ("/", "nav.dashboard", "viewer"),
    ("/logbook", "nav.logbook", "staff"),
    ("/visits", "nav.visits", "staff"),
    ("/people", "nav.people", "staff"),
    ("/reports", "nav.reports", "staff"),
    ("/health", "nav.health", "viewer"),
    ("/users", "nav.users", "admin"),
)


def local_time(ts: str | None, zone: str, with_date: bool = True) -> str:
    """A stored UTC timestamp as the site's local time, e.g. "21-11-2026 08:30:05"."""
    if not ts:
        return "—"
    try:
        moment = datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
    except ValueError:
        return str(ts)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(ZoneInfo(zone))
    return local.strftime("%d-%m-%Y %H:%M:%S" if with_date else "%H:%M:%S")


def _here(url: Any) -> str:
    """This page's path and query: where the language switch comes back to."""
    return url.path + (f"?{url.query}" if url.query else "")


def render(req: Any, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    zone = req.ctx.config.access.timezone
    page = _env.get_template(template).render(
        t=req.t, lang=req.lang, user=req.user, role=req.role, csrf=req.session.csrf,
        nav=[(path, word) for path, word, role in NAV if req.allowed(role)] if req.user else [],
        path=req.request.url.path, here=_here(req.request.url),
        site=req.ctx.config.site, gateway=req.ctx.config.gateway,
        version=__version__, flashes=req.ctx.take_flashes(req.session.csrf),
        local=lambda ts, with_date=True: local_time(ts, zone, with_date), allowed=req.allowed,
        **values,
    )
    return HTMLResponse(page, status_code=status_code)
