"""Reports (the SOP's monthly cards, PDF or CSV), device health, and backups (admin)."""

from __future__ import annotations

from datetime import datetime

from starlette.responses import FileResponse, RedirectResponse, Response

from gateway.cli.doctor_cmd import checks_from_status
from gateway.errors import DcgateError
from gateway.web.render import render
from gateway.web.security import Req, route

MEDIA = {"pdf": "application/pdf", "csv": "text/csv; charset=utf-8"}
FILE_WORDS = {"env": "kartu-kontrol-suhu-kelembaban", "power": "kartu-kontrol-kelistrikan", "access": "buku-log-akses"}


@route("/reports", role="staff")
def reports(req: Req) -> Response:
    this_month = datetime.now(req.ctx.config.access.zone).strftime("%Y-%m")
    return render(req, "reports.html", month=req.text("month", this_month), kinds=list(FILE_WORDS))


@route("/reports/download", role="staff", kind="file")
def download_report(req: Req) -> Response:
    from gateway.reports import monthly_report

    kind, month, fmt = req.text("kind"), req.text("month"), req.text("fmt", "pdf")
    try:
        data = monthly_report(req.ctx.config, kind, month, fmt)
    except DcgateError as exc:
        req.audit("report.download", f"{kind} {month} {fmt}", str(exc))
        return Response(str(exc), 400, media_type="text/plain; charset=utf-8")
    req.audit("report.download", f"{kind} {month} {fmt}")
    name = f"{FILE_WORDS[kind]}-{req.ctx.config.site}-{month}.{fmt}"
    return Response(data, media_type=MEDIA[fmt], headers={"Content-Disposition": f'attachment; filename="{name}"'})


@route("/health", role="viewer")
def health(req: Req) -> Response:
    checks = checks_from_status(req.ctx.status())
    return render(req, "health.html", checks=checks, ok=all(c["ok"] for c in checks))


@route("/backups", role="admin")
def backups(req: Req) -> Response:
    from gateway.backup import list_backups

    cfg = req.ctx.config
    listed = list_backups(cfg.backup.dir, cfg.site, cfg.gateway) if cfg.backup is not None else []
    return render(req, "backups.html", backups=listed, backup=cfg.backup)


@route("/backups/run", role="admin", methods=("POST",), kind="action")
def run_backup(req: Req) -> Response:
    req.act("backup.run", "now", lambda: req.ctx.call("backup.run", {"by": f"console:{req.user}"}),
            req.t("backup.done"))
    return RedirectResponse("/backups", 303)


@route("/backups/{name}", role="admin", kind="file")
def download_backup(req: Req) -> Response:
    from gateway.backup import resolve_backup

    cfg = req.ctx.config
    name = req.request.path_params["name"]
    if cfg.backup is None:
        return Response("404", 404, media_type="text/plain")
    try:
        path = resolve_backup(cfg.backup.dir, name)
    except DcgateError as exc:
        req.audit("backup.download", name, str(exc))
        return Response(f"404 {exc}", 404, media_type="text/plain; charset=utf-8")
    req.audit("backup.download", path.name)
    return FileResponse(path, media_type="application/vnd.sqlite3", filename=path.name)
