"""Console accounts (admin only): add, change role, reset password, link to a person, disable, enable."""

from __future__ import annotations

from starlette.responses import RedirectResponse, Response

from gateway.web.render import render
from gateway.web.security import Req, route
from gateway.web.users import ROLES


@route("/users", role="admin")
def users(req: Req) -> Response:
    listed = req.ctx.call("user.list", {})
    return render(req, "users.html", users=listed, roles=ROLES)


@route("/users", role="admin", methods=("POST",), kind="action")
def add_user(req: Req) -> Response:
    params = {"name": req.text("name").lower(), "role": req.text("role"), "password": str(req.form.get("password", "")),
              "by": f"console:{req.user}"}
    if req.text("person"):
        params["person"] = req.text("person")
    req.act("user.add", params["name"], lambda: req.ctx.call("user.add", params), req.t("user.added"))
    return RedirectResponse("/users", 303)


def _user_action(action: str, build: object, word: str) -> None:
    def handler(req: Req) -> Response:
        name = req.request.path_params["name"]
        params = {"name": name, "by": f"console:{req.user}", **build(req)}  # type: ignore[operator]
        req.act(f"user.{action}", name, lambda: req.ctx.call(f"user.{action}", params), req.t(word))
        return RedirectResponse("/users", 303)

    handler.__name__ = f"user_{action}"
    route(f"/users/{{name}}/{action}", role="admin", methods=("POST",), kind="action")(handler)


_user_action("role", lambda req: {"role": req.text("role")}, "user.changed")
_user_action("passwd", lambda req: {"password": str(req.form.get("password", ""))}, "user.changed")
_user_action("disable", lambda req: {}, "user.changed")
_user_action("enable", lambda req: {}, "user.changed")
