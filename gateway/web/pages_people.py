"""People (*petugas*): the list, adding someone, enrolling a face (photo upload or the door's camera),
starting a fingerprint enrolment, activating, deactivating and revoking.

An uploaded photo is biometric data: it is written to a private temporary folder only for as long as
the enrolment reads it, then deleted; only the encrypted template stays.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

from starlette.responses import RedirectResponse, Response

from gateway.errors import DcgateError, InvalidValueError
from gateway.web.render import render
from gateway.web.security import Req, route

_jobs_lock = threading.Lock()
#: fingerprint enrolments in progress or just finished: person id -> {state, door, message}
FINGER_JOBS: dict[str, dict[str, str]] = {}
IMAGE_TYPES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")


@route("/people", role="staff")
def people(req: Req) -> Response:
    listed = req.ctx.call("person.list", {"all": True})
    with _jobs_lock:
        jobs = dict(FINGER_JOBS)
    doors = req.ctx.config.doors
    return render(req, "people.html", people=listed, jobs=jobs,
                  camera_doors=[d.name for d in doors if d.camera is not None and not d.camera.simulated],
                  finger_doors=[d.name for d in doors if d.fingerprint is not None],
                  has_faces=req.ctx.has("enroll.face") and any(d.camera is not None for d in doors))


@route("/people", role="officer", methods=("POST",), kind="action")
def add_person(req: Req) -> Response:
    req.act("person.add", req.text("nip"), lambda: req.ctx.call("person.add", {
        "name": req.text("name"), "nip": req.text("nip"), "role": req.text("role"), "by": req.user}),
        req.t("person.added"))
    return RedirectResponse("/people", 303)


def _person_action(action: str, op: str, word: str) -> None:
    def handler(req: Req) -> Response:
        ref = req.request.path_params["person"]
        req.act(op, ref, lambda: req.ctx.call(op, {"person": ref, "by": req.user, "reason": req.text("reason")}),
                req.t(word))
        return RedirectResponse("/people", 303)

    handler.__name__ = f"person_{action}"
    route(f"/people/{{person}}/{action}", role="officer", methods=("POST",), kind="action")(handler)


_person_action("activate", "person.activate", "person.activated")
_person_action("deactivate", "person.deactivate", "person.deactivated")
_person_action("revoke", "person.revoke", "person.revoked")


@route("/people/{person}/face", role="officer", methods=("POST",), kind="action")
def enrol_face(req: Req) -> Response:
    ref = req.request.path_params["person"]
    camera = req.text("camera")
    if camera:
        req.act("enroll.face", ref, lambda: req.ctx.call("enroll.face", {"person": ref, "by": req.user,
                                                                         "camera": camera}), req.t("face.enrolled"))
        return RedirectResponse("/people", 303)
    photo = req.files.get("photo", b"")

    def from_photo() -> Any:
        if not photo:
            raise InvalidValueError("pilih foto wajah / choose a face photo (JPEG or PNG)")
        if not photo.startswith(IMAGE_TYPES):
            raise InvalidValueError("foto harus JPEG atau PNG / the photo must be a JPEG or PNG file")
        with tempfile.TemporaryDirectory(prefix="dcgate-enrol-") as folder:  # mode 0700
            path = Path(folder) / ("photo.png" if photo.startswith(b"\x89PNG") else "photo.jpg")
            path.write_bytes(photo)
            path.chmod(0o600)
            result = req.ctx.call("enroll.face", {"person": ref, "by": req.user, "images": [str(path)]})
        if not result.get("accepted"):
            raise InvalidValueError("; ".join(r["message"] for r in result.get("refused", [])) or "no face accepted")
        return result

    req.act("enroll.face", ref, from_photo, req.t("face.enrolled"))
    return RedirectResponse("/people", 303)


@route("/people/{person}/finger", role="officer", methods=("POST",), kind="action")
def enrol_finger(req: Req) -> Response:
    """Starts the enrolment and returns at once: the person has up to 20 s per touch at the sensor."""
    ref, door = req.request.path_params["person"], req.text("door")
    with _jobs_lock:
        if FINGER_JOBS.get(ref, {}).get("state") == "running":
            req.flash("error", req.t("finger.busy"))
            return RedirectResponse("/people", 303)
        FINGER_JOBS[ref] = {"state": "running", "door": door, "message": req.t("finger.place", door=door)}

    def run() -> None:
        try:
            result = req.ctx.call("enroll.finger", {"person": ref, "door": door, "by": req.user})
        except DcgateError as exc:
            outcome = {"state": "failed", "door": door, "message": str(exc)}
            req.audit("enroll.finger", ref, str(exc))
        else:
            outcome = {"state": "done", "door": door, "message": req.t("finger.done", slot=result["slot"])}
            req.audit("enroll.finger", ref)
        with _jobs_lock:
            FINGER_JOBS[ref] = outcome

    threading.Thread(target=run, name=f"web-finger-{ref}", daemon=True).start()
    req.flash("ok", req.t("finger.place", door=door))
    return RedirectResponse("/people", 303)
