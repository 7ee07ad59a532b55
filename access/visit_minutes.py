"""The *berita acara kegiatan*: the minutes of one guest or vendor visit to the server room, as a PDF.

The maintenance SOPs (Jambi, Batam, Kaltim, Buleleng) file signed minutes of every vendor visit as
evidence: who came, from which organisation, why, who approved and escorted them, when they entered
and left, what they did, whether the devices work again and whether the room stayed within standard.
`render_minutes` writes that document from ``Visit.as_dict()`` (docs/visits.md), Bahasa Indonesia
first and a short English gloss in smaller italic text.

Only the masked ID number (``id_masked``) is ever printed; a revealed ``id_number`` in the dict is
ignored. The PDF is written atomically (temp file in the same directory, then ``os.replace``).

Fonts: DejaVu Sans (Debian package ``fonts-dejavu-core``) when it is installed, for ``•``, ``–`` and
``°``; otherwise fpdf2's core Helvetica with the text reduced to Latin-1 and one warning in the log.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fpdf import FPDF
from fpdf.enums import MethodReturnValue, XPos, YPos
from fpdf.fonts import FontFace

from access.visitor_id import mask_id
from drivers.errors import InvalidValueError

__all__ = ["DEFAULT_FONT_DIRS", "render_minutes"]

log = logging.getLogger(__name__)

#: where DejaVu Sans is looked for, in order (Debian / Raspberry Pi OS first)
DEFAULT_FONT_DIRS: tuple[Path, ...] = (
    Path("/usr/share/fonts/truetype/dejavu"),  # Debian, Ubuntu, Raspberry Pi OS: fonts-dejavu-core
    Path("/usr/share/fonts/dejavu"),  # Alpine, openSUSE
    Path("/usr/share/fonts/dejavu-sans-fonts"),  # Fedora
    Path("/usr/share/fonts/TTF"),  # Arch
    Path("/usr/local/share/fonts"),
    Path("/usr/local/share/fonts/dejavu"),
)

_FONT_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf", "I": "DejaVuSans-Oblique.ttf"}
_FONT_FAMILY = "DejaVu"
_FALLBACK_FAMILY = "Helvetica"
_fallback_warned = False

_DAYS = ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu")
_MONTHS = (
    "Januari",
    "Februari",
    "Maret",
    "April",
    "Mei",
    "Juni",
    "Juli",
    "Agustus",
    "September",
    "Oktober",
    "November",
    "Desember",
)
_ZONE_NAMES = {"Asia/Jakarta": "WIB", "Asia/Pontianak": "WIB", "Asia/Makassar": "WITA", "Asia/Jayapura": "WIT"}
_KINDS = {"vendor": "Vendor (rekanan)", "guest": "Tamu"}
_KINDS_EN = {"vendor": "vendor", "guest": "guest"}

_DASH = "\u2014"  # what an empty field shows
_LATIN1 = {
    "\u2022": "*",  # •
    "\u2013": "-",  # –
    "\u2014": "-",  # —
    "\u2212": "-",  # −
    "\u2010": "-",
    "\u2011": "-",
    "\u00b7": "-",  # ·
    "\u2026": "...",
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_MD_MARKERS = re.compile(r"(\*\*|__|--|~~)")

# layout, in mm and pt
_MARGIN_X = 18.0
_MARGIN_TOP = 16.0
_MARGIN_BOTTOM = 22.0
_BODY_PT = 9.0
_SMALL_PT = 7.5
_LINE = 1.45  # line height as a multiple of the font size
_CELL_MAX_SHARE = 0.55  # a table cell taller than this share of a page goes to the annex


def _find_fonts(font_dirs: Iterable[Path | str]) -> dict[str, Path] | None:
    """The first directory holding DejaVu Sans regular, bold and oblique, as {style: path}."""
    for folder in font_dirs:
        paths = {style: Path(folder) / name for style, name in _FONT_FILES.items()}
        if all(path.is_file() for path in paths.values()):
            return paths
    return None


def _warn_fallback(font_dirs: Sequence[Path | str]) -> None:
    global _fallback_warned
    if _fallback_warned:
        return
    _fallback_warned = True
    where = ", ".join(str(folder) for folder in font_dirs) or "(no directories)"
    log.warning(
        "DejaVu Sans not found in %s; the visit minutes use Helvetica and replace characters outside Latin-1 "
        "(e.g. the ID mask becomes '*'). Install the Debian package fonts-dejavu-core.",
        where,
    )


def _to_latin1(text: str) -> str:
    """Reduce text to what the core PDF fonts can draw: known look-alikes, accents dropped, else '?'."""
    out: list[str] = []
    for ch in text:
        if ch in _LATIN1:
            out.append(_LATIN1[ch])
        elif ord(ch) < 256:
            out.append(ch)
        else:
            base = "".join(
                c for c in unicodedata.normalize("NFKD", ch) if ord(c) < 256 and not unicodedata.combining(c)
            )
            out.append(base or "?")
    return "".join(out)


def _clean(value: Any) -> str:
    """User text -> printable text: None is empty, tabs are spaces, other control characters go."""
    if value is None:
        return ""
    text = str(value).replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    return _CONTROL.sub("", text).strip()


def _md_escape(text: str) -> str:
    """Escape fpdf2's markdown markers so user text prints literally in a markdown table."""
    return _MD_MARKERS.sub(r"\\\1", text.replace("\\", "\\\\"))


def _shorten(text: str, limit: int = 120) -> str:
    """Text for a signature place, which has room for a few lines only (the tables carry the full text)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def _parse_time(value: Any, field: str) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise InvalidValueError(
                f"{field} {value!r} is not a timestamp; expected the store's UTC form like 2026-11-21T02:15:00.000Z"
            ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _number(value: Any) -> str:
    """20.5 -> '20,5' (Indonesian decimal comma); 45.0 -> '45'."""
    if value is None:
        return _DASH
    try:
        number = float(value)
    except (TypeError, ValueError):
        return _clean(value) or _DASH
    return str(int(number)) if number.is_integer() else f"{number:.1f}".replace(".", ",")


def _duration(minutes: float | None) -> str:
    """135 -> '2 jam 15 menit'; 10 -> '10 menit'; 480 -> '8 jam'."""
    if minutes is None:
        return _DASH
    total = max(0, round(minutes))
    hours, rest = divmod(total, 60)
    if hours and rest:
        return f"{hours} jam {rest} menit"
    if hours:
        return f"{hours} jam"
    return f"{rest} menit"


class _Clock:
    """Formats UTC instants in the site's zone, in Indonesian."""

    def __init__(self, name: str) -> None:
        try:
            self.zone: tzinfo = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidValueError(f"time zone {name!r} is not known; use an IANA name such as Asia/Jakarta") from None
        self.name = name

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone)

    def zone_label(self, moment: datetime) -> str:
        if self.name in _ZONE_NAMES:
            return _ZONE_NAMES[self.name]
        offset = self.local(moment).utcoffset()
        seconds = int(offset.total_seconds()) if offset is not None else 0
        sign = "+" if seconds >= 0 else "-"
        hours, rest = divmod(abs(seconds) // 60, 60)
        return f"UTC{sign}{hours:02d}:{rest:02d}"

    def date(self, moment: datetime, *, weekday: bool = False) -> str:
        local = self.local(moment)
        text = f"{local.day} {_MONTHS[local.month - 1]} {local.year}"
        return f"{_DAYS[local.weekday()]}, {text}" if weekday else text

    def time(self, moment: datetime, *, zone: bool = True) -> str:
        local = self.local(moment)
        text = f"{local.hour:02d}.{local.minute:02d}"
        return f"{text} {self.zone_label(moment)}" if zone else text

    def when(self, moment: datetime | None) -> str:
        if moment is None:
            return _DASH
        return f"{self.date(moment)}, {self.time(moment)}"

    def short(self, moment: datetime | None, day: datetime) -> str:
        """'09.15' on the day of the minutes, '22/11/2026 01.10' on another day."""
        if moment is None:
            return _DASH
        local = self.local(moment)
        if local.date() == self.local(day).date():
            return self.time(moment, zone=False)
        return f"{local.day:02d}/{local.month:02d}/{local.year} {self.time(moment, zone=False)}"


class _MinutesPDF(FPDF):
    """FPDF with the minutes' fonts, Latin-1 fallback and footer."""

    def __init__(self, fonts: dict[str, Path] | None) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.unicode_fonts = fonts is not None
        if fonts is not None:
            for style, path in fonts.items():
                self.add_font(_FONT_FAMILY, style, str(path))
            self.family_name = _FONT_FAMILY
        else:
            self.family_name = _FALLBACK_FAMILY
        self.footer_lines: list[str] = []
        self.set_margins(_MARGIN_X, _MARGIN_TOP, _MARGIN_X)
        self.set_auto_page_break(True, margin=_MARGIN_BOTTOM)

    def t(self, text: str) -> str:
        """Text as this document's fonts can draw it."""
        return text if self.unicode_fonts else _to_latin1(text)

    def use(self, style: str = "", size: float = _BODY_PT) -> None:
        self.set_font(self.family_name, style, size)

    def line_h(self) -> float:
        return self.font_size * _LINE

    def footer(self) -> None:
        self.set_y(-(_MARGIN_BOTTOM - 6))
        self.use("", _SMALL_PT)
        self.set_text_color(90, 90, 90)
        for line in self.footer_lines:
            line = line.replace("{page}", str(self.page_no()))
            self.cell(0, self.font_size * 1.5, self.fit_line(line), align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_text_color(0, 0, 0)

    def fit_line(self, text: str) -> str:
        """Text shortened with an ellipsis so that it fits on one line of the page."""
        text = self.t(text.replace("\n", " "))
        ellipsis = self.t("\u2026")
        if self.get_string_width(text) <= self.epw:
            return text
        while text and self.get_string_width(text + ellipsis) > self.epw:
            text = text[:-1]
        return text + ellipsis


class _Minutes:
    """Lays out one visit's minutes on a `_MinutesPDF`."""

    def __init__(self, pdf: _MinutesPDF, visit: Mapping[str, Any], site: str, clock: _Clock) -> None:
        self.pdf = pdf
        self.visit = visit
        self.site = _clean(site)
        self.clock = clock
        self.markdown = hasattr(FPDF, "MARKDOWN_ESCAPE_CHARACTER")  # fpdf2 >= 2.7.6 escapes markers
        self.annex: list[tuple[str, str]] = []

        self.visit_id = _clean(visit.get("id"))
        self.visitors: list[Mapping[str, Any]] = [v for v in (visit.get("visitors") or []) if isinstance(v, Mapping)]
        self.escorts: list[Mapping[str, Any]] = [e for e in (visit.get("escorts") or []) if isinstance(e, Mapping)]
        checkout = visit.get("checkout")
        self.checkout: Mapping[str, Any] | None = checkout if isinstance(checkout, Mapping) else None

        entries = [t for t in (self._time(v.get("entered_at"), "entered_at") for v in self.visitors) if t]
        exits = [t for t in (self._time(v.get("exited_at"), "exited_at") for v in self.visitors) if t]
        self.checkout_at = self._time(self.checkout.get("at"), "checkout.at") if self.checkout else None
        self.entered = min(entries) if entries else None
        self.exited = self.checkout_at or (max(exits) if exits else None)
        window = visit.get("window") if isinstance(visit.get("window"), Mapping) else {}
        self.day = (
            self.checkout_at
            or self.entered
            or self._time(window.get("start"), "window.start")
            or self._time(visit.get("requested_at"), "requested_at")
            or datetime.now(UTC)
        )

    def _time(self, value: Any, field: str) -> datetime | None:
        return _parse_time(value, f"visit {self.visit_id or '?'} {field}")

    # ---- building blocks ---------------------------------------------------------------------------

    def text(self, text: str, *, style: str = "", size: float = _BODY_PT, align: str = "L") -> None:
        pdf = self.pdf
        pdf.use(style, size)
        pdf.multi_cell(0, pdf.line_h(), pdf.t(text), align=align, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def bilingual(self, indonesian: str, english: str, *, size: float = _BODY_PT + 1.5, keep: float = 18) -> None:
        """A section heading: bold Indonesian, then ' / English' smaller in italics."""
        pdf = self.pdf
        pdf.ln(2.5)
        if pdf.will_page_break(keep):
            pdf.add_page()
        pdf.use("B", size)
        height = pdf.line_h()
        first = pdf.t(indonesian)
        pdf.cell(pdf.get_string_width(first), height, first)
        pdf.use("I", size - 2)
        pdf.cell(0, height, pdf.t(f" / {english}"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(0.8)

    def fits(self, text: str, width: float) -> bool:
        """Whether text wrapped to width stays within a safe share of a page (fpdf2 tables cannot split a row)."""
        pdf = self.pdf
        pdf.use("", _BODY_PT)
        lines = pdf.multi_cell(width - 3, pdf.line_h(), pdf.t(text), dry_run=True, output=MethodReturnValue.LINES)
        usable = pdf.h - pdf.t_margin - pdf.b_margin
        return len(lines) * pdf.line_h() <= usable * _CELL_MAX_SHARE

    def cell_text(self, label: str, text: str, width: float) -> str:
        """Text for a table cell; text too tall for a table row goes to the annex with a reference."""
        text = text or _DASH
        if self.fits(text, width):
            return text
        self.annex.append((label, text))
        number = len(self.annex)
        return f"(lihat lampiran {number} / see annex {number})"

    # ---- sections ----------------------------------------------------------------------------------

    def title(self) -> None:
        pdf = self.pdf
        pdf.use("B", 13)
        pdf.multi_cell(
            0,
            pdf.line_h(),
            pdf.t("BERITA ACARA KEGIATAN DI RUANG SERVER"),
            align="C",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
        self.text("Minutes of activity in the server room", style="I", size=_BODY_PT, align="C")
        pdf.ln(1)
        self.text(f"Nomor: {self.visit_id or _DASH}", style="B", size=_BODY_PT + 1, align="C")
        if self.site:
            self.text(self.site, size=_BODY_PT + 1, align="C")
        pdf.ln(1.5)
        pdf.set_line_width(0.5)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
        pdf.set_line_width(0.2)
        pdf.ln(4)

    def opening(self) -> None:
        place = f"Ruang Server {self.site}" if self.site else "Ruang Server"
        self.text(
            f"Pada hari ini, {_DAYS[self.clock.local(self.day).weekday()]}, tanggal {self.clock.date(self.day)}, "
            f"bertempat di {place}, telah dilaksanakan kegiatan dengan rincian sebagai berikut:",
            align="J",
        )
        self.text(
            "On this day, at the server room named above, the following activity took place.",
            style="I",
            size=_SMALL_PT,
        )

    def details(self) -> None:
        visit = self.visit
        kind = _clean(visit.get("kind")).lower()
        devices = [_clean(d) for d in (visit.get("devices") or []) if _clean(d)]
        approved_by = _clean(visit.get("approved_by_name") or visit.get("approved_by"))
        approved_at = self._time(visit.get("approved_at"), "approved_at")
        approval = approved_by or _DASH
        if approved_by and approved_at:
            approval = f"{approved_by}, {self.clock.when(approved_at)}"
        escorts = []
        for escort in self.escorts:
            name = _clean(escort.get("name") or escort.get("person")) or _DASH
            nip = _clean(escort.get("nip"))
            escorts.append(f"{name} (NIP {nip})" if nip else name)
        window = visit.get("window") if isinstance(visit.get("window"), Mapping) else {}
        start = self._time(window.get("start"), "window.start")
        end = self._time(window.get("end"), "window.end")
        schedule = _DASH if not (start or end) else f"{self.clock.when(start)} s.d. {self.clock.when(end)}"
        duration = None
        if self.entered and self.exited:
            duration = (self.exited - self.entered).total_seconds() / 60
        limit = visit.get("limit_min")
        extensions = []
        for ext in visit.get("extensions") or []:
            if not isinstance(ext, Mapping):
                continue
            by = _clean(ext.get("by_name") or ext.get("by")) or _DASH
            at = self._time(ext.get("at"), "extensions.at")
            minutes = ext.get("minutes")
            line = f"+{_duration(minutes)} oleh {by}" if minutes is not None else f"oleh {by}"
            if at:
                line += f" ({self.clock.when(at)})"
            reason = _clean(ext.get("reason"))
            extensions.append(f"{line}: {reason}" if reason else line)

        rows = [
            ("Jenis kunjungan", "Type of visit", _KINDS.get(kind, kind or _DASH)),
            ("Instansi / perusahaan", "Organisation", _clean(visit.get("org"))),
            ("Keperluan", "Purpose", _clean(visit.get("purpose"))),
            ("Perangkat yang ditangani", "Devices handled", "\n".join(devices)),
            ("Jadwal yang disetujui", "Approved window", schedule),
            ("Disetujui oleh", "Approved by", approval),
            ("Pendamping", "Escort(s)", "\n".join(escorts)),
            ("Waktu masuk", "Time in", self.clock.when(self.entered)),
            ("Waktu keluar", "Time out", self.clock.when(self.exited)),
            ("Durasi", "Duration", _duration(duration)),
            ("Batas waktu", "Time limit", _duration(limit) if isinstance(limit, int | float) else _DASH),
            ("Perpanjangan", "Extensions", "\n".join(extensions)),
        ]
        pdf = self.pdf
        widths = (0.3, 0.7)
        value_width = pdf.epw * widths[1]
        pdf.use("", _BODY_PT)
        label_face = FontFace(fill_color=(240, 240, 240))
        with pdf.table(
            col_widths=widths,
            first_row_as_headings=False,
            markdown=self.markdown,
            text_align="LEFT",
            v_align="TOP",
            line_height=pdf.line_h(),
            padding=(1.2, 1.6),
        ) as table:
            for indonesian, english, value in rows:
                row = table.row()
                if self.markdown:
                    label = f"**{_md_escape(pdf.t(indonesian))}**\n__{_md_escape(pdf.t(english))}__"
                    shown = _md_escape(pdf.t(self.cell_text(indonesian, value, value_width)))
                else:
                    label = pdf.t(f"{indonesian}\n{english}")
                    shown = pdf.t(self.cell_text(indonesian, value, value_width))
                row.cell(label, style=label_face)
                row.cell(shown)

    def visitor_table(self) -> None:
        self.bilingual("Daftar pengunjung", "Visitors")
        pdf = self.pdf
        zone = self.clock.zone_label(self.day)
        widths = (0.06, 0.25, 0.27, 0.1, 0.1, 0.22)
        heads = ("No", "Nama", "Identitas", f"Masuk ({zone})", f"Keluar ({zone})", "Identitas dikembalikan oleh")
        heads_en = ("No.", "Name", "ID document", "In", "Out", "ID returned by")
        if not self.visitors:
            self.text(_DASH)
            return
        pdf.use("", _BODY_PT)
        with pdf.table(
            col_widths=widths,
            num_heading_rows=2,
            headings_style=FontFace(emphasis="BOLD", fill_color=(225, 225, 225)),
            text_align="LEFT",
            v_align="TOP",
            line_height=pdf.line_h(),
            padding=(1.0, 1.4),
        ) as table:
            table.row([pdf.t(h) for h in heads])
            table.row(
                [pdf.t(h) for h in heads_en],
                style=FontFace(emphasis="ITALICS", size_pt=_SMALL_PT, fill_color=(225, 225, 225)),
            )
            for index, visitor in enumerate(self.visitors, start=1):
                # only the mask is ever printed; a revealed id_number is masked again, never shown in full
                masked = _clean(visitor.get("id_masked"))
                if not masked and _clean(visitor.get("id_number")):
                    masked = mask_id(_clean(visitor.get("id_number")))
                identity = " ".join(part for part in (_clean(visitor.get("id_type")), masked) if part)
                returned = _clean(visitor.get("returned_by_name") or visitor.get("returned_by"))
                name = _clean(visitor.get("name"))
                cells = (
                    str(visitor.get("n") or index),
                    self.cell_text(f"Nama pengunjung {index}", name, pdf.epw * widths[1]),
                    identity or _DASH,
                    self.clock.short(self._time(visitor.get("entered_at"), "entered_at"), self.day),
                    self.clock.short(self._time(visitor.get("exited_at"), "exited_at"), self.day),
                    self.cell_text(f"Identitas dikembalikan oleh (pengunjung {index})", returned, pdf.epw * widths[5]),
                )
                table.row([pdf.t(c) for c in cells])
        deposited = [v for v in self.visitors if _clean(v.get("gadgets"))]
        if deposited:  # a guest deposits gadgets as well as the ID (Tegal 2.3): what, and that it came back
            self.pdf.ln(1)
            self.text("Barang yang dititipkan / Items deposited:", style="B")
            for visitor in deposited:
                back = _clean(visitor.get("returned_by_name") or visitor.get("returned_by"))
                state = f"dikembalikan oleh / returned by {back}" if back else "belum dikembalikan / not returned yet"
                self.text(f"{_clean(visitor.get('name'))}: {_clean(visitor.get('gadgets'))} ({state})")

    def activities(self) -> None:
        self.bilingual("Kegiatan yang dilakukan", "Activities")
        if self.checkout is None:
            self.text(f"{_DASH} (belum dicatat: kunjungan belum selesai)")
            self.text("Not recorded yet: the visit is not checked out.", style="I", size=_SMALL_PT)
            return
        self.text(_clean(self.checkout.get("activities")) or _DASH, align="L")

    def checklist(self) -> None:
        self.bilingual("Daftar periksa keluar", "Exit checklist")
        items = [i for i in ((self.checkout or {}).get("checklist") or []) if isinstance(i, Mapping)]
        if not items:
            self.text(_DASH)
            return
        pdf = self.pdf
        widths = (0.06, 0.32, 0.3, 0.32)
        pdf.use("", _BODY_PT)
        with pdf.table(
            col_widths=widths,
            num_heading_rows=2,
            headings_style=FontFace(emphasis="BOLD", fill_color=(225, 225, 225)),
            text_align="LEFT",
            v_align="TOP",
            line_height=pdf.line_h(),
            padding=(1.0, 1.4),
        ) as table:
            table.row([pdf.t(h) for h in ("No", "Perangkat / pemeriksaan", "Hasil", "Catatan")])
            table.row(
                [pdf.t(h) for h in ("No.", "Device / check", "Result", "Note")],
                style=FontFace(emphasis="ITALICS", size_pt=_SMALL_PT, fill_color=(225, 225, 225)),
            )
            for index, item in enumerate(items, start=1):
                ok = item.get("ok")
                if ok is None:
                    result = "Belum diperiksa / Not checked"
                else:
                    result = "Berfungsi baik / Working" if ok else "Tidak berfungsi / Not working"
                cells = (
                    str(index),
                    self.cell_text(f"Daftar periksa {index}", _clean(item.get("item")), pdf.epw * widths[1]),
                    result,
                    self.cell_text(f"Catatan daftar periksa {index}", _clean(item.get("note")), pdf.epw * widths[3]),
                )
                table.row([pdf.t(c) for c in cells])

    def room(self) -> None:
        room = self.visit.get("room")
        if not isinstance(room, Mapping) or not room:
            return
        self.bilingual("Kondisi ruangan selama kegiatan", "Room during the visit")

        def span(values: Any) -> str:
            if not isinstance(values, Mapping):
                return _DASH
            low, high = _number(values.get("min")), _number(values.get("max"))
            return low if low == high else f"{low}\u2013{high}"

        self.text(f"Suhu / temperature: {span(room.get('temperature_c'))} \u00b0C")
        self.text(f"Kelembaban / humidity: {span(room.get('humidity_pct'))} %")
        within = room.get("within_standard")
        if within is not None:
            verdict = "sesuai standar / within the standard" if within else "di luar standar / outside the standard"
            self.text(f"Kesimpulan / conclusion: {verdict}", style="B")

    def annexes(self) -> None:
        if not self.annex:
            return
        self.bilingual("Lampiran", "Annex")
        for number, (label, text) in enumerate(self.annex, start=1):
            self.text(f"Lampiran {number}: {label}", style="B")
            self.text(text)
            self.pdf.ln(1.5)

    def closing(self) -> None:
        self.pdf.ln(3)
        self.text(
            "Demikian berita acara ini dibuat dengan sebenarnya untuk dipergunakan sebagaimana mestinya.", align="J"
        )
        self.text("These minutes are made truthfully, to be used as appropriate.", style="I", size=_SMALL_PT)

    def signatures(self) -> None:
        pdf = self.pdf
        pdf.ln(4)
        if pdf.will_page_break(92):
            pdf.add_page()
        half = pdf.epw / 2
        escort = self.escorts[0] if self.escorts else {}
        escort_name = _shorten(_clean(escort.get("name") or escort.get("person")))
        escort_nip = _clean(escort.get("nip"))
        visitor = self.visitors[0] if self.visitors else {}
        visitor_name = _shorten(_clean(visitor.get("name")))
        org = _shorten(_clean(self.visit.get("org")))

        self.text(f"{self.site + ', ' if self.site else ''}{self.clock.date(self.day)}", align="R")
        pdf.ln(1)
        top = pdf.get_y()
        bottoms = [
            self.signature_box(
                pdf.l_margin, top, half, "Pendamping", "Escort", escort_name, f"NIP {escort_nip}" if escort_nip else ""
            ),
            self.signature_box(pdf.l_margin + half, top, half, "Pengunjung", "Visitor", visitor_name, org),
        ]
        pdf.set_xy(pdf.l_margin, max(bottoms) + 5)
        if pdf.will_page_break(42):
            pdf.add_page()
        approved_by = _shorten(_clean(self.visit.get("approved_by_name") or self.visit.get("approved_by")))
        self.signature_box(
            pdf.l_margin + pdf.epw / 4,
            pdf.get_y(),
            half,
            "Mengetahui,\nPenanggung jawab",
            "Acknowledged by the officer in charge",
            approved_by,
            "",
        )

    def signature_box(self, x: float, y: float, width: float, role: str, role_en: str, name: str, below: str) -> float:
        """One place to sign: role, its English gloss, room to sign, (name), a detail line. Returns the bottom y."""
        pdf = self.pdf
        inner = width - 8
        pdf.set_xy(x + 4, y)
        pdf.use("B", _BODY_PT)
        pdf.multi_cell(inner, pdf.line_h(), pdf.t(role), align="C", new_x=XPos.LEFT, new_y=YPos.NEXT)
        pdf.use("I", _SMALL_PT)
        pdf.multi_cell(inner, pdf.line_h(), pdf.t(role_en), align="C", new_x=XPos.LEFT, new_y=YPos.NEXT)
        line_y = pdf.get_y() + 20
        pdf.set_draw_color(120, 120, 120)
        pdf.line(x + 10, line_y, x + width - 10, line_y)
        pdf.set_draw_color(0, 0, 0)
        pdf.set_xy(x + 4, line_y + 1)
        pdf.use("B", _BODY_PT)
        shown = f"({name})" if name else "(" + "." * 40 + ")"
        pdf.multi_cell(inner, pdf.line_h(), pdf.t(shown), align="C", new_x=XPos.LEFT, new_y=YPos.NEXT)
        if below:
            pdf.use("", _SMALL_PT + 0.5)
            pdf.multi_cell(inner, pdf.line_h(), pdf.t(below), align="C", new_x=XPos.LEFT, new_y=YPos.NEXT)
        return pdf.get_y()

    def render(self) -> None:
        self.title()
        self.opening()
        self.pdf.ln(2)
        self.details()
        self.visitor_table()
        self.activities()
        self.checklist()
        self.room()
        self.annexes()
        self.closing()
        self.signatures()


def render_minutes(
    visit: Mapping[str, Any],
    out: Path,
    *,
    site: str,
    timezone: str = "Asia/Jakarta",
    evidence: str | None = None,
    font_dirs: Sequence[Path | str] | None = None,
) -> Path:
    """Write the *berita acara kegiatan* PDF for one visit to ``out`` and return ``out``.

    ``visit`` is ``Visit.as_dict()`` (docs/visits.md), optionally with the desk's ``room`` summary.
    Times are shown in ``timezone`` (WIB, WITA, WIT, or the UTC offset). ``evidence`` (e.g. the
    logbook sequence and hash) is printed in every page's footer. ``font_dirs`` overrides where
    DejaVu Sans is looked for (``()`` forces the Helvetica fallback).

    Raises `InvalidValueError` if the output directory does not exist, the time zone is unknown or
    the visit is not a visit dict.
    """
    out = Path(out)
    if not isinstance(visit, Mapping) or not _clean(visit.get("id")):
        raise InvalidValueError("visit must be a Visit.as_dict() mapping with an 'id' like KJ-20261121-001")
    if not out.parent.is_dir():
        raise InvalidValueError(f"directory {out.parent} does not exist; create it or choose another output path")
    if out.is_dir():
        raise InvalidValueError(f"output {out} is a directory; give a file name such as {_clean(visit['id'])}.pdf")
    clock = _Clock(timezone)

    dirs = DEFAULT_FONT_DIRS if font_dirs is None else tuple(font_dirs)
    fonts = _find_fonts(dirs)
    if fonts is None:
        _warn_fallback(dirs)
    pdf = _MinutesPDF(fonts)
    minutes = _Minutes(pdf, visit, site, clock)

    now = datetime.now(UTC)
    made = f"Dibuat oleh dcgate pada {clock.date(now)} {clock.time(now)} \u00b7 halaman {{page}}/{{nb}}"
    pdf.footer_lines = [made]
    if evidence:
        pdf.footer_lines.append(f"Bukti / evidence: {_clean(evidence)}")

    title = f"Berita Acara Kegiatan {minutes.visit_id}"
    pdf.set_title(title)
    pdf.set_subject(
        f"Berita acara kegiatan di ruang server{' ' + minutes.site if minutes.site else ''} / "
        "Minutes of activity in the server room"
    )
    pdf.set_author(f"dcgate{' - ' + minutes.site if minutes.site else ''}")
    pdf.set_creator("dcgate")
    pdf.set_keywords(f"berita acara kegiatan, kunjungan, {minutes.visit_id}")
    pdf.set_lang("id")

    pdf.add_page()
    minutes.render()
    data = bytes(pdf.output())

    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o640)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
