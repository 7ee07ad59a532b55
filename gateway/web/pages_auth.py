"""Sign in, sign out, language. The only routes anyone may reach without an account."""

from __future__ import annotations

from typing import Any

from starlette.responses import RedirectResponse, Response

from gateway.web.render import render
from gateway.web.security import LANG_COOKIE, Req, route


def safe_next(target: str) -> str:
    """Only a path on this console: never an open redirect to another site."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target or "\n" in target:
        return "/"
    return target


@route("/login", role=None)
def login_form(req: Req) -> Response:
    if req.user is not None:
        return RedirectResponse(safe_next(req.text("next", "/")), 303)
    return render(req, "login.html", next=safe_next(req.text("next", "/")), name="", error=None)


@route("/login", role=None, methods=("POST",), kind="action")
def login(req: Req) -> Response:
    ctx = req.ctx
    name, password, target = req.text("name").lower(), str(req.form.get("password", "")), safe_next(req.text("next"))
    wait_s = ctx.throttle.locked(name, req.address)
    if wait_s > 0:
        ctx.emit("console.login_failed", "console", {"user": _loggable(ctx, name), "address": req.address,
                                                     "reason": "locked"})
        message = req.t("login.locked", minutes=max(1, round(wait_s / 60)))
        return render(req, "login.html", status_code=429, next=target, name=name, error=message)
    user, reason = _authenticate(ctx, name, password)
    if user is None:
        ctx.throttle.failed(name, req.address)
        ctx.emit("console.login_failed", "console", {"user": _loggable(ctx, name), "address": req.address,
                                                     "reason": reason})
        # one message for every failure: the form must not tell which names exist or are disabled
        return render(req, "login.html", status_code=401, next=target, name=name, error=req.t("login.failed"))
    ctx.throttle.succeeded(name, req.address)
    req.new_token = ctx.sessions.sign_in(req.token, user.name, user.role)
    ctx.emit("console.login", "console", {"user": user.name, "role": user.role, "address": req.address})
    return RedirectResponse(target, 303)


def _loggable(ctx: Any, name: str) -> str:
    """The name typed, if it is an account's; otherwise a placeholder: people type passwords into the
    name field, and the log is forwarded upstream."""
    from gateway.errors import DcgateError

    try:
        return str(ctx.users.get(name).name)
    except DcgateError:
        return "(tidak dikenal/unknown)"


def _authenticate(ctx: Any, name: str, password: str) -> tuple[Any, str]:
    """(the account, "") or (None, why) with why one of unknown_or_wrong, disabled."""
    from gateway.web.users import AccountDisabledError

    if not name or not password:
        return None, "unknown_or_wrong"
    try:
        user = ctx.users.verify(name, password)
    except AccountDisabledError:
        return None, "disabled"
    return (user, "") if user is not None else (None, "unknown_or_wrong")


@route("/logout", role=None, methods=("POST",), kind="action")
def logout(req: Req) -> Response:
    if req.user is not None:
        req.ctx.emit("console.logout", "console", {"user": req.user, "address": req.address, "reason": "requested"})
    req.ctx.sessions.end(req.token)
    token, _session = req.ctx.sessions.new(req.address)
    req.new_token = token
    return RedirectResponse("/login", 303)


@route("/lang/{code}", role=None)
def language(req: Req) -> Response:
    code = req.request.path_params["code"]
    response = RedirectResponse(safe_next(req.text("next", "/")), 303)
    if code in ("id", "en"):
        response.set_cookie(LANG_COOKIE, code, max_age=365 * 86400, httponly=True, samesite="strict", path="/")
    return response
