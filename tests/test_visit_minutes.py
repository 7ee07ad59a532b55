"""The *berita acara kegiatan* PDF: rendered for real with fpdf2, read back for real with pypdf.

A vendor visit with everything (two visitors whose revealed ID numbers are in the dict, two escorts,
devices, a checklist with a failed item, an extension, the room's conditions) and a guest visit with
the minimum. The checks are on the text a reader of the PDF sees: Indonesian first, the masked ID
only, dates and times in the site's zone with Indonesian day and month names.

DejaVu Sans (Debian fonts-dejavu-core, installed by tests/run.sh) is required, never skipped; the
Helvetica fallback is exercised with ``font_dirs=()``.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

import access.visit_minutes as visit_minutes
from access.visit_minutes import DEFAULT_FONT_DIRS, render_minutes
from drivers.errors import InvalidValueError

SITE = "Dinas Komunikasi dan Informatika Kota Tegal"
BULLET = "\u2022"
KTP_1 = "3271010101010004"
KTP_1_MASKED = "3271" + BULLET * 8 + "0004"
SIM_2 = "12345678901234"
SIM_2_MASKED = "1234" + BULLET * 6 + "1234"
DEJAVU = Path("/usr/share/fonts/truetype/dejavu")


def vendor_visit() -> dict[str, Any]:
    """A checked-out vendor visit as `Visit.as_dict()` returns it, plus the desk's room summary."""
    return {
        "id": "KJ-20261121-001",
        "kind": "vendor",
        "org": "PT Solusi Data Nusantara",
        "purpose": "Penggantian disk RAID pada server SIMPEG",
        "devices": ["Server SIMPEG (Dell R740)", "Switch inti Cisco C9300"],
        "status": "checked_out",
        "expected_min": 120,
        "window": {"start": "2026-11-21T00:00:00.000Z", "end": "2026-11-21T09:00:00.000Z"},
        "requested_at": "2026-11-20T02:00:00.000Z",
        "requested_by": "andi",
        "approved_by": "budi",
        "approved_by_name": "Ir. Budi Santoso, M.T.",
        "approved_at": "2026-11-20T03:30:00.000Z",
        "escorts": [
            {"person": "andi", "name": "Andi Wijaya", "nip": "198503122010121001"},
            {"person": "sri", "name": "Sri Lestari", "nip": "199001012015012002"},
        ],
        "rejected_by": None,
        "rejected_by_name": None,
        "rejected_at": None,
        "reject_reason": None,
        "limit_min": 480,
        "extensions": [
            {
                "at": "2026-11-21T01:45:00.000Z",
                "by": "budi",
                "by_name": "Ir. Budi Santoso, M.T.",
                "minutes": 30,
                "reason": "Rebuild RAID belum selesai",
            }
        ],
        "visitors": [
            {
                "n": 1,
                "key": "KJ-20261121-001.1",
                "name": "Dewi Kartika Sari",
                "id_type": "KTP",
                "id_masked": KTP_1_MASKED,
                "id_number": KTP_1,  # revealed: must never reach the PDF
                "arrived_at": "2026-11-20T23:50:00.000Z",
                "received_by": "andi",
                "received_by_name": "Andi Wijaya",
                "gadgets": "1 ponsel",
                "entered_at": "2026-11-21T00:00:00.000Z",
                "escort": "andi",
                "escort_name": "Andi Wijaya",
                "deadline": "2026-11-21T08:30:00.000Z",
                "exited_at": "2026-11-21T02:10:00.000Z",
                "returned_by": "andi",
                "returned_by_name": "Andi Wijaya",
                "overstay": False,
            },
            {
                "n": 2,
                "key": "KJ-20261121-001.2",
                "name": "Rudi Hartono",
                "id_type": "SIM",
                "id_masked": SIM_2_MASKED,
                "id_number": SIM_2,
                "arrived_at": "2026-11-20T23:55:00.000Z",
                "received_by": "andi",
                "received_by_name": "Andi Wijaya",
                "gadgets": "tidak ada",
                "entered_at": "2026-11-21T00:05:00.000Z",
                "escort": "andi",
                "escort_name": "Andi Wijaya",
                "deadline": "2026-11-21T08:35:00.000Z",
                "exited_at": "2026-11-21T02:12:00.000Z",
                "returned_by": "sri",
                "returned_by_name": "Sri Lestari",
                "overstay": False,
            },
        ],
        "checkout": {
            "at": "2026-11-21T02:15:00.000Z",
            "by": "andi",
            "by_name": "Andi Wijaya",
            "activities": "Mengganti dua disk yang rusak pada array RAID 5.\nRebuild array selesai, status optimal.",
            "checklist": [
                {"item": "Server SIMPEG (Dell R740)", "ok": True, "note": "Semua layanan berjalan"},
                {"item": "Switch inti Cisco C9300", "ok": False, "note": "Port 24 mati, tiket ke vendor"},
            ],
        },
        "escort_alarm": None,
        "room": {
            "temperature_c": {"min": 20.4, "max": 21.8},
            "humidity_pct": {"min": 45, "max": 55.5},
            "within_standard": True,
        },
    }


def guest_visit() -> dict[str, Any]:
    """A short guest visit: no devices, no checklist, no room summary, one escort without NIP."""
    return {
        "id": "KJ-20261121-002",
        "kind": "guest",
        "org": "Inspektorat Provinsi Sulawesi Selatan",
        "purpose": "Studi banding tata kelola pusat data",
        "devices": [],
        "status": "checked_out",
        "expected_min": 10,
        "window": {"start": "2026-11-21T01:00:00.000Z", "end": "2026-11-21T03:00:00.000Z"},
        "requested_at": "2026-11-20T01:00:00.000Z",
        "requested_by": "andi",
        "approved_by": "budi",
        "approved_by_name": "Ir. Budi Santoso, M.T.",
        "approved_at": "2026-11-20T02:00:00.000Z",
        "escorts": [{"person": "andi", "name": "Andi Wijaya", "nip": None}],
        "limit_min": 10,
        "extensions": [],
        "visitors": [
            {
                "n": 1,
                "key": "KJ-20261121-002.1",
                "name": "Hasanuddin Latif",
                "id_type": "PASPOR",
                "id_masked": "C1" + BULLET * 4 + "67",
                "entered_at": "2026-11-21T02:05:00.000Z",
                "exited_at": "2026-11-21T02:13:00.000Z",
                "returned_by_name": "Andi Wijaya",
            }
        ],
        "checkout": {
            "at": "2026-11-21T02:15:00.000Z",
            "by": "andi",
            "by_name": "Andi Wijaya",
            "activities": "Melihat tata letak rak dan sistem pemadam FM-200.",
            "checklist": [],
        },
        "escort_alarm": None,
    }


def pdf_text(path: Path) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(path).pages)


def flat(text: str) -> str:
    """Whitespace collapsed, so that phrases wrapped over lines still match."""
    return " ".join(text.split())


def render(tmp_path: Path, visit: dict[str, Any], name: str = "minutes.pdf", **kwargs: Any) -> str:
    kwargs.setdefault("site", SITE)
    out = tmp_path / name
    assert render_minutes(visit, out, **kwargs) == out
    assert out.read_bytes().startswith(b"%PDF-")
    return pdf_text(out)


@pytest.fixture(autouse=True)
def dejavu_installed() -> None:
    missing = [name for name in ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf")
               if not (DEJAVU / name).is_file()]
    assert not missing, f"{missing} missing in {DEJAVU}: install the Debian package fonts-dejavu-core"


# -- the vendor visit -----------------------------------------------------------------------------


@pytest.fixture
def vendor_text(tmp_path: Path) -> str:
    return render(tmp_path, vendor_visit(), evidence="buku log #1234, hash 9f3a5c")


def test_title_number_and_site(vendor_text: str) -> None:
    text = flat(vendor_text)
    assert "BERITA ACARA KEGIATAN DI RUANG SERVER" in text
    assert "Minutes of activity in the server room" in text
    assert "Nomor: KJ-20261121-001" in text
    assert SITE in text
    # Indonesian first: the title comes before its English gloss
    assert text.index("BERITA ACARA KEGIATAN") < text.index("Minutes of activity")


def test_opening_sentence_in_indonesian(vendor_text: str) -> None:
    text = flat(vendor_text)
    assert (
        f"Pada hari ini, Sabtu, tanggal 21 November 2026, bertempat di Ruang Server {SITE}, "
        "telah dilaksanakan kegiatan dengan rincian sebagai berikut:"
    ) in text


def test_details_table(vendor_text: str) -> None:
    text = flat(vendor_text)
    for label in (
        "Jenis kunjungan",
        "Instansi / perusahaan",
        "Keperluan",
        "Perangkat yang ditangani",
        "Disetujui oleh",
        "Pendamping",
        "Waktu masuk",
        "Waktu keluar",
        "Durasi",
        "Batas waktu",
        "Perpanjangan",
    ):
        assert label in text, label
    assert "Vendor" in text
    assert "PT Solusi Data Nusantara" in text
    assert "Penggantian disk RAID pada server SIMPEG" in text
    assert "Server SIMPEG (Dell R740)" in text
    assert "Switch inti Cisco C9300" in text
    assert "Ir. Budi Santoso, M.T., 20 November 2026, 10.30 WIB" in text
    assert "Andi Wijaya (NIP 198503122010121001)" in text
    assert "Sri Lestari (NIP 199001012015012002)" in text
    assert "21 November 2026, 07.00 WIB" in text  # first entry, 00:00 UTC
    assert "21 November 2026, 09.15 WIB" in text  # check-out, 02:15 UTC
    assert "2 jam 15 menit" in text
    assert "8 jam" in text
    assert "+30 menit oleh Ir. Budi Santoso, M.T." in text
    assert "Rebuild RAID belum selesai" in text


def test_visitors_table_shows_masks_never_full_numbers(vendor_text: str) -> None:
    text = flat(vendor_text)
    assert "Dewi Kartika Sari" in text
    assert "Rudi Hartono" in text
    assert f"KTP {KTP_1_MASKED}" in text
    assert f"SIM {SIM_2_MASKED}" in text
    squeezed = "".join(vendor_text.split())
    assert KTP_1 not in squeezed
    assert SIM_2 not in squeezed
    assert "Identitas dikembalikan oleh" in text
    assert "Sri Lestari" in text


def test_a_revealed_number_without_mask_is_masked(tmp_path: Path) -> None:
    visit = vendor_visit()
    del visit["visitors"][0]["id_masked"]
    text = render(tmp_path, visit)
    assert KTP_1_MASKED in text
    assert KTP_1 not in "".join(text.split())


def test_activities_checklist_and_room(vendor_text: str) -> None:
    text = flat(vendor_text)
    assert "Kegiatan yang dilakukan" in text
    assert "Activities" in text
    assert "Mengganti dua disk yang rusak pada array RAID 5." in text
    assert "Rebuild array selesai, status optimal." in text
    assert "Daftar periksa keluar" in text
    assert "Exit checklist" in text
    assert "Berfungsi baik" in text
    assert "Tidak berfungsi" in text
    assert "Port 24 mati, tiket ke vendor" in text
    assert "Kondisi ruangan selama kegiatan" in text
    assert "20,4\u201321,8 \u00b0C" in text
    assert "45\u201355,5 %" in text
    assert "sesuai standar" in text
    assert "di luar standar" not in text


def test_room_out_of_standard(tmp_path: Path) -> None:
    visit = vendor_visit()
    visit["room"] = {"temperature_c": {"min": 21, "max": 27.3}, "humidity_pct": {"min": 40, "max": 60},
                     "within_standard": False}
    text = flat(render(tmp_path, visit))
    assert "21\u201327,3 \u00b0C" in text
    assert "di luar standar" in text


def test_closing_and_signatures(vendor_text: str) -> None:
    text = flat(vendor_text)
    assert (
        "Demikian berita acara ini dibuat dengan sebenarnya untuk dipergunakan sebagaimana mestinya."
    ) in text
    assert "Pendamping" in text
    assert "Pengunjung" in text
    assert "(Andi Wijaya)" in text
    assert "NIP 198503122010121001" in text
    assert "(Dewi Kartika Sari)" in text
    assert "Mengetahui" in text
    assert "Penanggung jawab" in text
    assert "(Ir. Budi Santoso, M.T.)" in text
    # signatures come after the closing sentence
    assert text.index("Demikian berita acara") < text.index("(Dewi Kartika Sari)")


def test_footer_on_every_page_with_evidence(tmp_path: Path) -> None:
    visit = vendor_visit()
    visit["checkout"]["activities"] = "Pemeriksaan menyeluruh. " * 200
    out = tmp_path / "minutes.pdf"
    render_minutes(visit, out, site=SITE, evidence="buku log #1234, hash 9f3a5c")
    pages = [flat(page.extract_text()) for page in PdfReader(out).pages]
    assert len(pages) >= 2
    for number, page in enumerate(pages, start=1):
        assert "Dibuat oleh dcgate pada" in page
        assert f"halaman {number}/{len(pages)}" in page
        assert "buku log #1234, hash 9f3a5c" in page


def test_no_evidence_line_when_not_given(tmp_path: Path) -> None:
    text = render(tmp_path, guest_visit())
    assert "Dibuat oleh dcgate pada" in text
    assert "Bukti" not in text


def test_metadata(tmp_path: Path) -> None:
    out = tmp_path / "minutes.pdf"
    render_minutes(vendor_visit(), out, site=SITE)
    reader = PdfReader(out)
    meta = reader.metadata
    assert meta is not None
    assert meta.title is not None and "Berita Acara Kegiatan" in meta.title and "KJ-20261121-001" in meta.title
    assert meta.subject is not None and "ruang server" in meta.subject
    assert meta.creator == "dcgate"
    assert reader.trailer["/Root"]["/Lang"] == "id"


# -- the guest visit and time zones ---------------------------------------------------------------


def test_guest_visit(tmp_path: Path) -> None:
    text = flat(render(tmp_path, guest_visit(), timezone="Asia/Makassar"))
    assert "Tamu" in text
    assert "Inspektorat Provinsi Sulawesi Selatan" in text
    assert "Studi banding tata kelola pusat data" in text
    assert "Hasanuddin Latif" in text
    assert "PASPOR C1" + BULLET * 4 + "67" in text
    assert "Melihat tata letak rak dan sistem pemadam FM-200." in text
    assert "21 November 2026, 10.15 WITA" in text  # 02:15 UTC in Makassar (UTC+8)
    assert "10 menit" in text  # the guest's limit
    assert "Andi Wijaya" in text and "NIP" not in text.split("Pendamping", 1)[1].split("Waktu masuk", 1)[0]
    assert "Kondisi ruangan" not in text  # no room summary given
    assert "Exit checklist \u2014" in text  # empty checklist


@pytest.mark.parametrize(
    ("zone", "shown"),
    [
        ("Asia/Jakarta", "09.15 WIB"),
        ("Asia/Pontianak", "09.15 WIB"),
        ("Asia/Makassar", "10.15 WITA"),
        ("Asia/Jayapura", "11.15 WIT"),
        ("Asia/Singapore", "10.15 UTC+08:00"),
        ("UTC", "02.15 UTC+00:00"),
        ("America/Sao_Paulo", "23.15 UTC-03:00"),
    ],
)
def test_time_zone_labels(tmp_path: Path, zone: str, shown: str) -> None:
    text = flat(render(tmp_path, guest_visit(), timezone=zone))
    assert shown in text


def test_day_and_month_in_the_site_zone(tmp_path: Path) -> None:
    """Sao Paulo is still Friday 20 November when Jakarta is at Saturday 21 November."""
    text = flat(render(tmp_path, guest_visit(), timezone="America/Sao_Paulo"))
    assert "Pada hari ini, Jumat, tanggal 20 November 2026" in text


def test_day_of_first_entry_when_not_checked_out(tmp_path: Path) -> None:
    visit = vendor_visit()
    visit["status"] = "in_progress"
    visit["checkout"] = None
    for visitor in visit["visitors"]:
        visitor["exited_at"] = None
    visit["visitors"][0]["entered_at"] = "2026-12-27T17:30:00.000Z"  # Monday 28 December, 00.30 WIB
    visit["visitors"][1]["entered_at"] = "2026-12-27T18:00:00.000Z"
    text = flat(render(tmp_path, visit))
    assert "Pada hari ini, Senin, tanggal 28 Desember 2026" in text
    assert "28 Desember 2026, 00.30 WIB" in text
    assert "belum dicatat" in text


@pytest.mark.parametrize(
    ("checkout_at", "day"),
    [
        ("2026-11-23T02:00:00.000Z", "Senin, tanggal 23 November 2026"),
        ("2026-11-24T02:00:00.000Z", "Selasa, tanggal 24 November 2026"),
        ("2026-11-25T02:00:00.000Z", "Rabu, tanggal 25 November 2026"),
        ("2026-11-26T02:00:00.000Z", "Kamis, tanggal 26 November 2026"),
        ("2026-11-27T02:00:00.000Z", "Jumat, tanggal 27 November 2026"),
        ("2026-11-28T02:00:00.000Z", "Sabtu, tanggal 28 November 2026"),
        ("2026-11-29T02:00:00.000Z", "Minggu, tanggal 29 November 2026"),
        ("2026-01-05T02:00:00.000Z", "Senin, tanggal 5 Januari 2026"),
        ("2026-02-10T02:00:00.000Z", "Selasa, tanggal 10 Februari 2026"),
        ("2026-03-10T02:00:00.000Z", "Selasa, tanggal 10 Maret 2026"),
        ("2026-05-12T02:00:00.000Z", "Selasa, tanggal 12 Mei 2026"),
        ("2026-08-17T02:00:00.000Z", "Senin, tanggal 17 Agustus 2026"),
        ("2026-10-01T02:00:00.000Z", "Kamis, tanggal 1 Oktober 2026"),
    ],
)
def test_indonesian_day_and_month_names(tmp_path: Path, checkout_at: str, day: str) -> None:
    visit = guest_visit()
    visit["checkout"]["at"] = checkout_at
    assert f"Pada hari ini, {day}," in flat(render(tmp_path, visit))


# -- robustness -----------------------------------------------------------------------------------


def test_long_activities_and_thirty_visitors_break_pages(tmp_path: Path) -> None:
    visit = vendor_visit()
    activities = " ".join(f"Langkah {i}: memeriksa kabel, konektor dan log perangkat." for i in range(55))
    assert len(activities) > 3000
    visit["checkout"]["activities"] = activities
    template = visit["visitors"][1]
    visit["visitors"] = [
        {**copy.deepcopy(template), "n": i, "key": f"KJ-20261121-001.{i}", "name": f"Teknisi Nomor {i:02d}"}
        for i in range(1, 31)
    ]
    visit["org"] = "PT " + "Sangat Panjang Sekali Namanya " * 12 + "Tbk"
    out = tmp_path / "minutes.pdf"
    render_minutes(visit, out, site=SITE)
    reader = PdfReader(out)
    assert len(reader.pages) > 1
    text = flat(pdf_text(out))
    assert "Teknisi Nomor 01" in text
    assert "Teknisi Nomor 30" in text
    assert "Langkah 54: memeriksa kabel" in text
    assert "Tbk" in text
    assert "Mengetahui" in text


def test_a_value_too_tall_for_a_table_row_goes_to_the_annex(tmp_path: Path) -> None:
    visit = vendor_visit()
    visit["purpose"] = " ".join(f"bagian-{i}" for i in range(1500)) + " AKHIR-KEPERLUAN"
    visit["visitors"][0]["name"] = "Nama" * 400  # one unbroken word, far longer than its column
    text = flat(render(tmp_path, visit))
    assert "lihat lampiran 1" in text
    assert "Lampiran" in text
    assert "AKHIR-KEPERLUAN" in text


def test_markdown_markers_in_user_text_are_printed_literally(tmp_path: Path) -> None:
    visit = vendor_visit()
    visit["org"] = r"PT **Data** __Net__ --Satu-- ~~Dua~~ C:\arsip\**"
    text = flat(render(tmp_path, visit))
    assert r"PT **Data** __Net__ --Satu-- ~~Dua~~ C:\arsip\**" in text


def test_missing_fields_do_not_crash(tmp_path: Path) -> None:
    visit = {"id": "KJ-20261121-003", "kind": "vendor", "visitors": [], "escorts": [], "checkout": None}
    text = flat(render(tmp_path, visit))
    assert "Nomor: KJ-20261121-003" in text
    assert "Pendamping" in text and "Pengunjung" in text


# -- output file ----------------------------------------------------------------------------------


def test_missing_output_directory(tmp_path: Path) -> None:
    out = tmp_path / "tidak-ada" / "minutes.pdf"
    with pytest.raises(InvalidValueError, match=r"directory .*tidak-ada does not exist"):
        render_minutes(vendor_visit(), out, site=SITE)
    assert not out.parent.exists()


def test_output_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidValueError, match="is a directory"):
        render_minutes(vendor_visit(), tmp_path, site=SITE)


def test_unknown_time_zone(tmp_path: Path) -> None:
    with pytest.raises(InvalidValueError, match="Asia/Tegal"):
        render_minutes(vendor_visit(), tmp_path / "m.pdf", site=SITE, timezone="Asia/Tegal")
    assert list(tmp_path.iterdir()) == []


def test_bad_timestamp_is_named(tmp_path: Path) -> None:
    visit = vendor_visit()
    visit["checkout"]["at"] = "kemarin sore"
    with pytest.raises(InvalidValueError, match="kemarin sore"):
        render_minutes(visit, tmp_path / "m.pdf", site=SITE)
    assert list(tmp_path.iterdir()) == []


def test_replaces_an_existing_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    out = tmp_path / "KJ-20261121-001.pdf"
    out.write_text("old")
    render_minutes(vendor_visit(), out, site=SITE)
    assert out.read_bytes().startswith(b"%PDF-")
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


# -- fonts ----------------------------------------------------------------------------------------


def test_dejavu_is_found_in_the_default_directories() -> None:
    assert DEJAVU in DEFAULT_FONT_DIRS


def test_dejavu_from_a_given_directory(tmp_path: Path) -> None:
    fonts = tmp_path / "fonts"
    fonts.mkdir()
    for name in ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf"):
        (fonts / name).symlink_to(DEJAVU / name)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    text = render(out_dir, vendor_visit(), font_dirs=[fonts])
    assert KTP_1_MASKED in text


def test_helvetica_fallback_without_dejavu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(visit_minutes, "_fallback_warned", False)
    visit = vendor_visit()
    visit["visitors"][1]["name"] = "Nguy\u1ec5n V\u0103n \u00c1nh \u738b\u5c0f\u660e"  # Nguyễn Văn Ánh 王小明
    with caplog.at_level(logging.WARNING, logger="access.visit_minutes"):
        text = render(tmp_path, visit, font_dirs=(), evidence="buku log #1234, hash 9f3a\u2026")
        render(tmp_path, guest_visit(), name="second.pdf", font_dirs=(tmp_path / "no-fonts-here",))
    text = flat(text)
    assert "BERITA ACARA KEGIATAN DI RUANG SERVER" in text
    assert "KTP 3271********0004" in text
    assert "SIM 1234******1234" in text
    assert BULLET not in text
    assert KTP_1 not in "".join(text.split())
    assert "Nguyen Van \u00c1nh ???" in text  # accents outside Latin-1 dropped, the rest '?'
    assert "20,4-21,8 \u00b0C" in text  # the en dash reduced, the degree sign is Latin-1
    assert "halaman 1/" in text
    assert "hash 9f3a..." in text
    warnings = [r for r in caplog.records if "fonts-dejavu-core" in r.getMessage()]
    assert len(warnings) == 1  # once per process, not per document
