"""The pieces every monthly card's PDF is made of (fpdf2): fonts, header and footer, tables, a chart, signatures.

The look follows the *berita acara* (access/visit_minutes.py) and its font handling: DejaVu Sans when
installed (for °, –, •), else Helvetica with the text reduced to Latin-1. Every page carries the
page number ("Halaman X dari Y") and the store's last event (seq and hash) at the time the report was
made, so a printout can be checked against `dcgate log verify` on the gateway.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace

# one font search for every PDF the gateway makes (the visit minutes own it)
from access.visit_minutes import DEFAULT_FONT_DIRS, _find_fonts, _to_latin1
from gateway.reports.csv_out import DASH, NO_DATA, NO_DATA_EN, Period, date_text, num

log = logging.getLogger(__name__)

BODY_PT = 8.0
SMALL_PT = 6.5
HEAD_FILL = (225, 225, 225)
LABEL_FILL = (242, 242, 242)
WARN_FILL = (253, 226, 222)  # a row outside the standard, an open outage
_LINE = 1.4
_MARGIN_X = 14.0
_MARGIN_BOTTOM = 20.0


@dataclass(frozen=True)
class ReportMeta:
    """What the title block, running header and footer of every page say."""

    title: str  # "KARTU KONTROL SUHU & KELEMBABAN RUANG SERVER"
    title_en: str
    short: str  # the running header's name of the card
    site: str
    gateway: str
    period: Period
    generated: datetime
    head_seq: int  # the store's last event when the report was read
    head_hash: str


@dataclass(frozen=True)
class Column:
    head: str  # Indonesian
    head_en: str
    width: float  # share of the page width
    align: str = "L"  # L, C, R


class ReportPDF(FPDF):
    def __init__(self, meta: ReportMeta, *, orientation: str = "P", font_dirs: Sequence[Path | str] | None = None
                 ) -> None:
        super().__init__(orientation=orientation, unit="mm", format="A4")
        self.meta = meta
        dirs = DEFAULT_FONT_DIRS if font_dirs is None else tuple(font_dirs)
        fonts = _find_fonts(dirs)
        self.unicode_fonts = fonts is not None
        if fonts is not None:
            for style, path in fonts.items():
                self.add_font("DejaVu", style, str(path))
            self.family_name = "DejaVu"
        else:
            log.warning("DejaVu Sans not found in %s; the report uses Helvetica and Latin-1 (the ID mask becomes "
                        "'*'). Install the Debian package fonts-dejavu-core.", ", ".join(map(str, dirs)) or "(none)")
            self.family_name = "Helvetica"
        self.set_margins(_MARGIN_X, 14.0, _MARGIN_X)
        self.set_auto_page_break(True, margin=_MARGIN_BOTTOM)
        self.set_title(f"{meta.title} {meta.period.label()}")
        self.set_subject(f"{meta.title_en}, {meta.period.label_en()}")
        self.set_author(f"dcgate - {meta.site} / {meta.gateway}")
        self.set_creator("dcgate")
        self.set_lang("id")
        self.add_page()

    # -- text ------------------------------------------------------------------------------------
    def t(self, text: str) -> str:
        """Text as this document's fonts can draw it."""
        return text if self.unicode_fonts else _to_latin1(text)

    def use(self, style: str = "", size: float = BODY_PT) -> None:
        self.set_font(self.family_name, style, size)

    def line_h(self) -> float:
        return self.font_size * _LINE

    def para(self, text: str, *, style: str = "", size: float = BODY_PT, align: str = "L") -> None:
        self.use(style, size)
        self.multi_cell(0, self.line_h(), self.t(text), align=align, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def note(self, indonesian: str, english: str = "") -> None:
        """A footnote-sized remark: Indonesian, then the English gloss in italics."""
        self.para(indonesian, size=SMALL_PT + 0.5)
        if english:
            self.para(english, style="I", size=SMALL_PT)

    def empty(self, what: str = NO_DATA, what_en: str = NO_DATA_EN) -> None:
        self.use("I", BODY_PT)
        self.cell(0, self.line_h(), self.t(f"{what} / {what_en}"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    # -- page furniture --------------------------------------------------------------------------
    def header(self) -> None:
        if self.page_no() == 1:
            return
        m = self.meta
        self.use("", SMALL_PT)
        self.set_text_color(90, 90, 90)
        self.cell(0, 4, self.t(f"{m.short} \u00b7 {m.site} / {m.gateway} \u00b7 {m.period.label()}"),
                  new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_draw_color(160, 160, 160)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.set_draw_color(0, 0, 0)
        self.set_text_color(0, 0, 0)
        self.ln(2.5)

    def footer(self) -> None:
        m = self.meta
        self.set_y(-(_MARGIN_BOTTOM - 5))
        self.set_draw_color(160, 160, 160)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.set_draw_color(0, 0, 0)
        self.ln(0.8)
        self.use("", SMALL_PT)
        self.set_text_color(80, 80, 80)
        made = m.period.when(m.generated) + " " + m.period.zone_label(m.generated)
        self.cell(self.epw * 0.7, 3.4, self.t(f"Dibuat oleh dcgate pada {made} / generated by dcgate"))
        self.use("B", SMALL_PT + 0.5)
        self.cell(0, 3.4, self.t(f"Halaman {self.page_no()} dari {{nb}}"), align="R",
                  new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.use("", SMALL_PT)
        self.cell(0, 3.4, self.t(f"Rantai kejadian / event chain: seq {m.head_seq}, hash {m.head_hash} "
                                 "(cek / check: dcgate log verify)"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_text_color(0, 0, 0)

    def title_block(self, facts: Sequence[tuple[str, str, str]]) -> None:
        """The card's title, its English name, and the facts (label, English label, value) in two columns."""
        m = self.meta
        self.use("B", 13)
        self.multi_cell(0, self.line_h(), self.t(m.title), align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.para(m.title_en, style="I", size=BODY_PT, align="C")
        self.para(f"Periode / period: {m.period.label()}", style="B", size=BODY_PT + 2, align="C")
        self.ln(1.5)
        self.set_line_width(0.5)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.set_line_width(0.2)
        self.ln(2.5)
        self.use("", BODY_PT)
        pairs = list(facts)
        half = (len(pairs) + 1) // 2
        rows = [(pairs[i], pairs[i + half] if i + half < len(pairs) else None) for i in range(half)]
        label, value = FontFace(emphasis="BOLD", fill_color=LABEL_FILL), FontFace(fill_color=(255, 255, 255))
        with self.table(col_widths=(0.17, 0.33, 0.17, 0.33), first_row_as_headings=False, text_align="LEFT",
                        line_height=self.line_h(), padding=(0.8, 1.2)) as table:
            for left, right in rows:
                row = table.row()
                for fact in (left, right):
                    if fact is None:
                        row.cell("", style=value)
                        row.cell("", style=value)
                        continue
                    row.cell(self.t(f"{fact[0]}\n{fact[1]}"), style=label)
                    row.cell(self.t(fact[2] or DASH), style=value)
        self.ln(2)

    def heading(self, indonesian: str, english: str, *, size: float = BODY_PT + 2.5, keep: float = 30) -> None:
        """A section heading: bold Indonesian, then ' / English' smaller in italics; never alone at a page end."""
        self.ln(2.5)
        if self.will_page_break(keep):
            self.add_page()
        self.use("B", size)
        height = self.line_h()
        first = self.t(indonesian)
        self.cell(self.get_string_width(first), height, first)
        self.use("I", size - 2.5)
        self.cell(0, height, self.t(f" / {english}"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(0.8)

    # -- tables ----------------------------------------------------------------------------------
    def grid(self, columns: Sequence[Column], rows: Sequence[Sequence[str]], *,
             marked: Sequence[bool] | None = None, groups: Sequence[tuple[str, int]] | None = None,
             size: float = BODY_PT - 0.5, width: float = 1.0) -> None:
        """A table with bold Indonesian and italic English heading rows (repeated on each page). `groups`
        (label, number of columns) adds a heading over several columns ("" over one: its head spans down).
        Rows flagged in `marked` are tinted (outside the standard, still open). `width`: share of the page."""
        if not rows:
            self.empty()
            return
        self.use("", size)
        head = FontFace(emphasis="BOLD", fill_color=HEAD_FILL, size_pt=size)
        aligns = tuple({"L": "LEFT", "C": "CENTER", "R": "RIGHT"}[c.align] for c in columns)
        with self.table(col_widths=tuple(c.width for c in columns), num_heading_rows=3 if groups else 2,
                        text_align=aligns, headings_style=head, line_height=self.font_size * 1.3,
                        padding=(0.6, 0.9), v_align="TOP", width=self.epw * width, align="LEFT") as table:
            if groups:
                top, below, index = table.row(), [], 0
                for label, span in groups:
                    if label:
                        top.cell(self.t(label), colspan=span, align="CENTER")
                        below += columns[index:index + span]
                    else:
                        top.cell(self.t(columns[index].head), rowspan=2)
                    index += span
                table.row([self.t(c.head) for c in below])
            else:
                table.row([self.t(c.head) for c in columns])
            table.row([self.t(c.head_en) for c in columns],
                      style=FontFace(emphasis="ITALICS", size_pt=SMALL_PT - 0.5, fill_color=HEAD_FILL))
            # every row names its fill: fpdf2 otherwise paints plain rows in whatever colour was set last
            plain, warn = FontFace(fill_color=(255, 255, 255)), FontFace(fill_color=WARN_FILL)
            for index, cells in enumerate(rows):
                flagged = bool(marked and marked[index])
                table.row([self.t(str(c) if c not in (None, "") else DASH) for c in cells],
                          style=warn if flagged else plain)
        self.ln(1)

    # -- a chart drawn with fpdf primitives --------------------------------------------------------
    def daily_chart(self, title: str, title_en: str, unit: str, labels: Sequence[str], lows: Sequence[float | None],
                    means: Sequence[float | None], highs: Sequence[float | None], band: tuple[float, float],
                    *, height: float = 42.0) -> None:
        """Daily min–max bars and the mean line over the month, the standard's band shaded green."""
        if self.will_page_break(height + 14):
            self.add_page()
        self.use("B", BODY_PT)
        self.cell(self.get_string_width(self.t(f"{title} ({unit})")) + 1, self.line_h(), self.t(f"{title} ({unit})"))
        self.use("I", SMALL_PT)
        self.cell(0, self.line_h(), self.t(f"/ {title_en}"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        left, top = self.l_margin + 9, self.get_y() + 2.5
        width = self.epw - 9
        values = [v for v in (*lows, *highs) if v is not None] + list(band)
        low, high = _axis(min(values), max(values))
        n = max(1, len(means))
        step_x = width / n

        def y_of(value: float) -> float:
            return top + height - (value - low) / (high - low) * height

        def x_of(index: int) -> float:
            return left + step_x * (index + 0.5)

        self.set_fill_color(221, 240, 221)  # the standard's band
        self.rect(left, y_of(band[1]), width, y_of(band[0]) - y_of(band[1]), style="F")
        self.use("", SMALL_PT - 0.5)
        self.set_draw_color(215, 215, 215)
        self.set_line_width(0.1)
        tick = _tick(low, high)
        value = low
        while value <= high + 1e-9:
            y = y_of(value)
            self.line(left, y, left + width, y)
            self.set_xy(self.l_margin, y - 1.5)
            self.cell(8, 3, self.t(num(value, 0 if tick >= 1 else 1)), align="R")
            value += tick
        self.set_draw_color(90, 150, 90)
        self.set_dash_pattern(dash=1.2, gap=0.8)
        for limit in band:
            self.line(left, y_of(limit), left + width, y_of(limit))
        self.set_dash_pattern()
        self.set_draw_color(0, 0, 0)
        self.rect(left, top, width, height)
        # min–max bar per day, then the mean line (broken where a day has no data)
        self.set_line_width(1.1 if step_x > 4 else 0.6)
        self.set_draw_color(160, 180, 210)
        for i, (lo, hi) in enumerate(zip(lows, highs, strict=True)):
            if lo is not None and hi is not None:
                self.line(x_of(i), y_of(lo), x_of(i), y_of(hi) - (0.01 if lo == hi else 0))
        self.set_line_width(0.35)
        self.set_draw_color(25, 65, 140)
        previous: tuple[float, float] | None = None
        for i, mean in enumerate(means):
            if mean is None:
                previous = None
                continue
            point = (x_of(i), y_of(mean))
            if previous is not None:
                self.line(*previous, *point)
            previous = point
        for i, mean in enumerate(means):
            if mean is not None:
                outside = not band[0] <= mean <= band[1]
                self.set_fill_color(*((190, 40, 40) if outside else (25, 65, 140)))
                self.circle(x_of(i), y_of(mean), 0.7, style="F")
        self.set_line_width(0.2)
        self.set_draw_color(0, 0, 0)
        every = 1 if step_x >= 5 else 2
        self.use("", SMALL_PT - 0.5)
        for i in range(0, n, every):
            self.set_xy(x_of(i) - 3, top + height + 0.5)
            self.cell(6, 2.8, labels[i], align="C")
        self.set_xy(self.l_margin, top + height + 3.8)
        self.use("I", SMALL_PT - 0.3)
        legend = (f"Hijau: standar {range_text(band[0], band[1], unit)} \u00b7 batang: min\u2013maks harian \u00b7 "
                  "garis: rata-rata harian (titik merah: di luar standar) \u00b7 sumbu datar: tanggal / green: the "
                  "standard; bars: daily min-max; line: daily mean; x: day")
        self.multi_cell(0, 2.8, self.t(legend), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(1.5)

    # -- the end of the card ---------------------------------------------------------------------
    def signatures(self) -> None:
        """Place and date, then "Petugas" and "Mengetahui, Penanggung Jawab" with room to sign."""
        self.ln(5)
        if self.will_page_break(48):
            self.add_page()
        m = self.meta
        self.para(f"{m.site}, {date_text(m.period.local(m.generated).date())}", align="R")
        self.ln(1)
        top = self.get_y()
        half = self.epw / 2
        for x, role, role_en in ((self.l_margin, "Petugas", "Officer on duty"),
                                 (self.l_margin + half, "Mengetahui, Penanggung Jawab",
                                  "Acknowledged by the officer in charge")):
            self.set_xy(x, top)
            self.use("B", BODY_PT + 0.5)
            self.cell(half, self.line_h(), self.t(role), align="C", new_x=XPos.LEFT, new_y=YPos.NEXT)
            self.use("I", SMALL_PT)
            self.cell(half, self.line_h(), self.t(role_en), align="C", new_x=XPos.LEFT, new_y=YPos.NEXT)
            self.set_xy(x, top + 30)  # room to sign, the same on both sides
            self.use("", BODY_PT)
            self.multi_cell(half, self.line_h(), "(" + "." * 50 + ")\nNIP " + "." * 40, align="C",
                            new_x=XPos.LEFT, new_y=YPos.NEXT)

    def render(self) -> bytes:
        return bytes(self.output())


def _tick(low: float, high: float) -> float:
    span = max(high - low, 1e-6)
    for step in (0.5, 1, 2, 5, 10, 20, 25, 50):
        if span / step <= 7:
            return step
    return 100.0


def _axis(low: float, high: float) -> tuple[float, float]:
    """A y range that holds the data and the band with a little room, on whole ticks."""
    pad = max((high - low) * 0.08, 0.5)
    low, high = low - pad, high + pad
    step = _tick(low, high)
    return math.floor(low / step) * step, math.ceil(high / step) * step


def range_text(low: float | None, high: float | None, unit: str) -> str:
    """"20–22 °C" for the standard's band."""
    if low is None or high is None:
        return DASH
    return f"{num(low, 0) if float(low).is_integer() else num(low)}\u2013" \
           f"{num(high, 0) if float(high).is_integer() else num(high)} {unit}"
