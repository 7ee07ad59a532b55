"""Every console route goes through `route(...)`: session, CSRF, role, security headers, audit.

A route declares the lowest role that may use it (None: anyone, e.g. the sign-in form). The table
of routes is kept (`ROUTES`) so the tests can sweep every one of them for every role.

- Not signed in: a page answers 303 to /login; anything else (a POST, JSON, a download) 401.
- Signed in without the role: 403.
- A POST without this session's CSRF token, or from another origin: 403, before anything is read.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from gateway.web.context import ConsoleContext
from gateway.web.i18n import translator
from gateway.web.users import role_at_least

log = logging.getLogger(__name__)

COOKIE = "dcgate_session"
LANG_COOKIE = "dcgate_lang"
#: a face photo is the largest thing anyone uploads
MAX_UPLOAD_BYTES = 8 * 1024 * 1024

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


@dataclass(frozen=True)
class RouteSpec:
    path: str
    methods: tuple[str, ...]
    role: str | None
    kind: str  # "page" (HTML), "api" (JSON), "file" (a download), "action" (a form POST)
    endpoint: Callable[[Request], Awaitable[Response]]
    name: str


ROUTES: list[RouteSpec] = []


@dataclass
class Req:
    """One request as a page handler sees it."""

    request: Request
    ctx: ConsoleContext
    session: Any
    token: str
    form: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    lists: dict[str, list[str]] = field(default_factory=dict)  # every value of a repeated field (multi-select)
    new_token: str | None = None

    @property
    def user(self) -> str | None:
        return self.session.user

    @property
    def role(self) -> str | None:
        return self.session.role

    @property
    def address(self) -> str:
        return self.request.client.host if self.request.client else "?"

    @property
    def lang(self) -> str:
        value = self.request.cookies.get(LANG_COOKIE, "id")
        return value if value in ("id", "en") else "id"

    def t(self, key: str, **values: Any) -> str:
        return translator(self.lang)(key, **values)

    def allowed(self, role: str) -> bool:
        return self.role is not None and role_at_least(self.role, role)

    def text(self, key: str, default: str = "") -> str:
        value = self.form.get(key, self.request.query_params.get(key, default))
        return value.strip() if isinstance(value, str) else default

    def values(self, key: str) -> list[str]:
        return [v.strip() for v in self.lists.get(key, []) if v.strip()]

    def flash(self, level: str, message: str) -> None:
        self.ctx.flash(self.session.csrf, level, message)

    def audit(self, action: str, target: str, error: str | None = None) -> None:
        """`console.action`: who at the keyboard did what, whatever the operation itself recorded."""
        fields = {"user": self.user or "-", "role": self.role or "-", "address": self.address,
                  "action": action, "target": target, "result": "refused" if error else "ok"}
        if error:
            fields["error"] = error[:500]
        try:
            self.ctx.emit("console.action", "console", fields)
        except Exception as exc:  # the change already happened; say so loudly rather than hide it
            log.error("could not record console.action %s %s: %s", action, target, exc)

    def act(self, action: str, target: str, run: Callable[[], Any], done: str) -> Any:
        """Run one change: flash `done` or the refusal, and audit either way. Returns the result or None."""
        from gateway.errors import DcgateError

        try:
            result = run()
        except DcgateError as exc:
            self.audit(action, target, str(exc))
            self.flash("error", str(exc))
            return None
        self.audit(action, target)
        self.flash("ok", done)
        return result


def route(path: str, *, role: str | None, methods: tuple[str, ...] = ("GET",), kind: str = "page",
          touch: bool = True) -> Callable:
    """Register a handler `fn(req: Req) -> Response`, run in a worker thread (the ops block on the store).

    `touch=False` for what a page fetches by itself (the live dashboard): it must not keep an unattended
    session from going idle.
    """

    def register(fn: Callable[[Req], Response]) -> Callable[[Req], Response]:
        async def endpoint(request: Request) -> Response:
            return await _guarded(request, fn, role, kind, touch)

        ROUTES.append(RouteSpec(path, methods, role, kind, endpoint, fn.__name__))
        return fn

    return register


async def _guarded(request: Request, fn: Callable[[Req], Response], role: str | None, kind: str,
                   touch: bool = True) -> Response:
    ctx: ConsoleContext = request.app.state.ctx
    token = request.cookies.get(COOKIE, "")
    session = ctx.sessions.get(token, touch=touch) if token else None
    fresh = None
    if session is None:
        if token:
            _note_expiry(ctx, token, request)
        token, session = ctx.sessions.new(request.client.host if request.client else "?")
        fresh = token
    req = Req(request, ctx, session, token, new_token=fresh)
    if request.method == "POST" and role is not None and not (session.user and role_at_least(session.role, role)):
        # refused before the body is read: nobody without the role makes the Pi read an 8 MB upload
        refusal = PlainTextResponse("401 masuk dulu / sign in first", 401) if session.user is None else _forbidden(req)
        return _finish(req, refusal)
    if request.method == "POST":
        refusal = await _check_post(req)
        if refusal is not None:
            return _finish(req, refusal)
    if role is not None:
        if session.user is None:
            if request.method == "GET" and kind == "page":
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return _finish(req, RedirectResponse(f"/login?next={quote(target, safe='')}", 303))
            return _finish(req, PlainTextResponse("401 masuk dulu / sign in first", 401))
        if not role_at_least(session.role, role):
            return _finish(req, _forbidden(req))
    try:
        response = await run_in_threadpool(fn, req)
    except Exception:
        log.exception("console %s %s failed", request.method, request.url.path)
        response = PlainTextResponse("500 kesalahan di gateway / gateway error (see its log)", 500)
    return _finish(req, response)


async def _check_post(req: Req) -> Response | None:
    request = req.request
    origin = request.headers.get("origin") or request.headers.get("referer")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host", ""):
        log.warning("console: POST %s from another origin %r refused", request.url.path, origin)
        return PlainTextResponse("403 asal permintaan tidak sah / cross-origin request refused", 403)
    if int(request.headers.get("content-length") or 0) > MAX_UPLOAD_BYTES + 64 * 1024:
        return PlainTextResponse("413 berkas terlalu besar / upload too large (8 MB at most)", 413)
    presented = request.headers.get("x-csrf-token", "")
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        try:
            form = await request.form(max_files=2, max_fields=200, max_part_size=MAX_UPLOAD_BYTES)
        except Exception as exc:
            return PlainTextResponse(f"400 formulir tidak terbaca / unreadable form: {exc}", 400)
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                req.files[key] = await value.read(MAX_UPLOAD_BYTES + 1)
            else:
                req.form[key] = value
                req.lists.setdefault(key, []).append(value)
        presented = presented or str(req.form.get("csrf", ""))
    if not presented or not req.ctx.sessions.check_csrf(req.session, presented):
        log.warning("console: POST %s without a valid CSRF token refused (%s)", request.url.path, req.address)
        return PlainTextResponse(
            "403 token formulir tidak sah; muat ulang halaman / invalid form token; reload the page", 403)
    if any(len(data) > MAX_UPLOAD_BYTES for data in req.files.values()):
        return PlainTextResponse("413 berkas terlalu besar / upload too large (8 MB at most)", 413)
    return None


def _forbidden(req: Req) -> Response:
    from gateway.web.render import render

    return render(req, "forbidden.html", status_code=403)


def _finish(req: Req, response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Cache-Control", "no-store")
    if req.new_token is not None:
        https = req.ctx.config.web is not None and req.ctx.config.web.https
        response.set_cookie(COOKIE, req.new_token, httponly=True, samesite="strict", secure=https, path="/")
    return response


def _note_expiry(ctx: ConsoleContext, token: str, request: Request) -> None:
    """A signed-in session that ended by itself is audited as a sign-out (idle or expired)."""
    reason_of = getattr(ctx.sessions, "expired_reason", None)
    ended = reason_of(token) if reason_of is not None else None
    if ended:
        user, reason = ended
        ctx.emit("console.logout", "console", {"user": user, "reason": reason,
                                               "address": request.client.host if request.client else "?"})
