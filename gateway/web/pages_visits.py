"""Visits (*kunjungan*): the request form, the list, one visit with the next steps its status allows.

Every step is the `visit.*` operation the CLI uses. Steps the SOP reserves for people (approve, reject,
extend, receive the ID, check out) are done by the person the console account is linked to.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from starlette.responses import RedirectResponse, Response

from gateway.errors import DcgateError, InvalidValueError
from gateway.web.render import render
from gateway.web.security import Req, route


def linked_person(req: Req) -> str:
    """The person id of the signed-in account, or a refusal saying how to link one."""
    try:
        account = req.ctx.users.get(req.user)
    except DcgateError:
        account = None
    if account is None or not account.person_id:
        raise InvalidValueError(
            f"akun {req.user!r} tidak terhubung ke data petugas; langkah ini harus atas nama petugas / account "
            f"{req.user!r} is not linked to a person, and this step is signed by a person. Fix: an admin links it "
            "on the Users page (or dcgate user add ... --person NIP)")
    return str(account.person_id)


def _moment(req: Req, key: str) -> float | None:
    """A datetime-local field ("2026-11-21T09:30", the site's time) as epoch seconds."""
    text = req.text(key)
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidValueError(f"waktu {text!r} tidak dikenali / time not understood") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=req.ctx.config.access.zone)
    return moment.timestamp()


def _lines(req: Req, key: str) -> list[str]:
    return [line.strip() for line in req.text(key).replace(",", "\n").splitlines() if line.strip()]


def _companions(req: Req) -> list[dict[str, str]]:
    companions = []
    for line in req.text("companions").splitlines():
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(";")]
        if len(parts) != 3:
            raise InvalidValueError(f"pengikut {line.strip()!r}: tulis NAMA; JENIS ID; NOMOR / companion: write "
                                    "NAME; ID TYPE; NUMBER")
        companions.append({"name": parts[0], "id_type": parts[1], "id_number": parts[2]})
    return companions


def _people(req: Req) -> list[dict[str, Any]]:
    try:
        return [p for p in req.ctx.call("person.list", {}) if p.get("status") == "active"]
    except DcgateError:
        return []


@route("/visits", role="staff")
def visits(req: Req) -> Response:
    show_all = req.text("all") == "1"
    listed = req.ctx.call("visit.list", {"all": show_all})
    return render(req, "visits.html", visits=list(reversed(listed)), show_all=show_all, values={},
                  limits=req.ctx.config.visits)


@route("/visits", role="staff", methods=("POST",), kind="action")
def request_visit(req: Req) -> Response:
    def run() -> Any:
        return req.ctx.call("visit.request", {
            "kind": req.text("kind"), "name": req.text("name"), "org": req.text("org"),
            "id_type": req.text("id_type"), "id_number": req.text("id_number"), "purpose": req.text("purpose"),
            "by": req.user, "start": _moment(req, "start"), "end": _moment(req, "end"),
            "duration_min": int(req.text("duration_min")) if req.text("duration_min").isdigit() else None,
            "devices": _lines(req, "devices"), "companions": _companions(req),
        })

    visit = req.act("visit.request", req.text("name"), run, req.t("visit.requested"))
    if visit is None:  # refused: the form again, as typed (less the ID number), with the reason above it
        values = {k: v for k, v in req.form.items() if k not in ("csrf", "id_number")}
        listed = req.ctx.call("visit.list", {})
        return render(req, "visits.html", status_code=400, visits=list(reversed(listed)), show_all=False,
                      values=values, limits=req.ctx.config.visits)
    return RedirectResponse(f"/visits/{visit['id']}", 303)


@route("/visits/{visit}", role="staff")
def visit_page(req: Req) -> Response:
    ref = req.request.path_params["visit"]
    try:
        visit = req.ctx.call("visit.show", {"visit": ref})
    except DcgateError as exc:
        return render(req, "not_found.html", status_code=404, message=str(exc))
    return render(req, "visit.html", visit=visit, people=_people(req),
                  doors=[d.name for d in req.ctx.config.doors], can_admit=req.ctx.has("visit.admit"))


def _step(action: str, role: str, build: Any, done_word: str) -> Any:
    """A POST /visits/{visit}/{action} route running `visit.{action}` with `build(req, visit)` as params."""

    def handler(req: Req) -> Response:
        ref = req.request.path_params["visit"]
        req.act(f"visit.{action}", ref, lambda: req.ctx.call(f"visit.{action}", build(req, ref)), req.t(done_word))
        return RedirectResponse(f"/visits/{ref}", 303)

    handler.__name__ = f"visit_{action}"
    route(f"/visits/{{visit}}/{action}", role=role, methods=("POST",), kind="action")(handler)
    return handler


_step("approve", "officer", lambda req, ref: {
    "visit": ref, "by": linked_person(req), "escorts": req.values("escorts"), "note": req.text("note")},
    "visit.approved")
_step("reject", "officer", lambda req, ref: {"visit": ref, "by": linked_person(req), "reason": req.text("reason")},
      "visit.rejected")
_step("arrive", "staff", lambda req, ref: {
    "visit": ref, "received_by": linked_person(req), "gadgets": req.text("gadgets") or None}, "visit.arrived_done")
_step("admit", "staff", lambda req, ref: {"visit": ref, "door": req.text("door"), "by": req.user}, "visit.armed")
_step("extend", "officer", lambda req, ref: {
    "visit": ref, "by": linked_person(req), "minutes": int(req.text("minutes") or "0"), "reason": req.text("reason")},
    "visit.extended")


def _checklist(req: Req) -> list[dict[str, Any]]:
    items = []
    for key, value in req.form.items():
        if key.startswith("item_"):
            index = key.removeprefix("item_")
            items.append({"item": str(value), "ok": req.form.get(f"ok_{index}") == "1",
                          "note": str(req.form.get(f"note_{index}", "")).strip()})
    return items


_step("checkout", "staff", lambda req, ref: {
    "visit": ref, "by": linked_person(req), "activities": req.text("activities"), "checklist": _checklist(req)},
    "visit.checked_out")


@route("/visits/{visit}/minutes.pdf", role="officer", kind="file")
def minutes(req: Req) -> Response:
    ref = req.request.path_params["visit"]
    with tempfile.TemporaryDirectory(prefix="dcgate-minutes-") as folder:
        out = Path(folder) / "minutes.pdf"
        try:
            written = req.ctx.call("visit.minutes", {"visit": ref, "out": str(out)})
        except DcgateError as exc:
            return Response(str(exc), 404, media_type="text/plain")
        data = Path(written["minutes_pdf"]).read_bytes()
    req.audit("visit.minutes", ref)
    return Response(data, media_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="berita-acara-{written["visit"]}.pdf"'})
