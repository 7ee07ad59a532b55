"""The access logbook (*buku log akses*): filters, newest first on screen, every row in the CSV export."""

from __future__ import annotations

import io
from datetime import UTC, datetime, time, timedelta
from typing import Any

from starlette.responses import Response

from access.logbook import LOGBOOK_KINDS, entry_line, query, write_csv
from gateway.errors import InvalidValueError
from gateway.web.render import render
from gateway.web.security import Req, route

#: filter "what" -> the event kinds it shows
GROUPS: dict[str, tuple[str, ...]] = {
    "all": LOGBOOK_KINDS,
    "entries": ("access.granted", "access.exit"),
    "refused": ("access.denied", "visit.refused"),
    "door": tuple(k for k in LOGBOOK_KINDS if k.startswith("door.")),
    "visits": tuple(k for k in LOGBOOK_KINDS if k.startswith("visit.")),
    "people": tuple(k for k in LOGBOOK_KINDS if k.startswith(("person.", "biometric."))),
}
SCREEN_ROWS = 500


def day_bound(req: Req, key: str, *, end: bool) -> str | None:
    """A date field (YYYY-MM-DD, the site's own days) as the store's UTC text; `end` means the day after."""
    text = req.text(key)
    if not text:
        return None
    try:
        day = datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        raise InvalidValueError(f"tanggal {text!r} tidak dikenali / date not understood; use YYYY-MM-DD") from None
    moment = datetime.combine(day + timedelta(days=1 if end else 0), time(), req.ctx.config.access.zone)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def filters(req: Req) -> dict[str, Any]:
    group = req.text("what", "all")
    return {
        "since": day_bound(req, "from", end=False), "until": day_bound(req, "to", end=True),
        "person": req.text("person") or None, "door": req.text("door") or None, "visit": req.text("visit") or None,
        "kinds": GROUPS.get(group, LOGBOOK_KINDS),
    }


@route("/logbook", role="staff")
def logbook(req: Req) -> Response:
    error = None
    entries: list[Any] = []
    try:
        entries = query(req.ctx.config.database_path, **filters(req))
    except InvalidValueError as exc:
        error = str(exc)
    zone = req.ctx.config.access.zone
    total = len(entries)
    rows = [{"time": e.local_time(zone).strftime("%d-%m-%Y %H:%M:%S"), "door": e.door or "—", "kind": e.kind,
             "line": entry_line(e, zone).split("  ", 2)[-1].strip(), "seq": e.seq}
            for e in reversed(entries[-SCREEN_ROWS:])]
    return render(req, "logbook.html", rows=rows, total=total, shown=len(rows), error=error,
                  groups=list(GROUPS), query=dict(req.request.query_params),
                  doors=[d.name for d in req.ctx.config.doors])


@route("/logbook.csv", role="staff", kind="file")
def logbook_csv(req: Req) -> Response:
    try:
        entries = query(req.ctx.config.database_path, **filters(req))
    except InvalidValueError as exc:
        return Response(str(exc), 400, media_type="text/plain")
    out = io.StringIO()
    write_csv(entries, out, req.ctx.config.access.zone)
    req.audit("logbook.export", f"{len(entries)} rows")
    stamp = datetime.now(req.ctx.config.access.zone).strftime("%Y%m%d-%H%M%S")
    return Response(out.getvalue().encode("utf-8"), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="buku-log-akses-{req.ctx.config.site}-{stamp}.csv"'})
