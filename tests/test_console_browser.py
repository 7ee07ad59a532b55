"""The web console in a real browser: Playwright driving Debian's Chromium (/usr/bin/chromium, never a
downloaded one) against a real gateway process with `[web]`, a real mosquitto and real SQLite.

Each test starts its own gateway (about 1.5 s) so no test sees another's alarms or visits; the browser
is shared by the module and each test gets fresh contexts (own cookies, own viewport). Every page and
state checked is also saved as a screenshot (tests/support/artifacts.py) for a person to look at.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, Playwright, expect, sync_playwright

from access.logbook import CSV_COLUMNS
from tests.support.artifacts import artifact_path
from tests.support.console import Account, Console, sim_door, start_console

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
FACES = Path(__file__).resolve().parents[1].parent / "shared" / "faces"
WIB = ZoneInfo("Asia/Jakarta")
NIP_SITI = "197503152000032001"  # officer in charge: approves visits
NIP_BUDI = "199001012015011001"  # staff at the desk: requests visits, receives IDs
NIP_LIN = "198001162005011002"  # staff: the escort
NIK = "3271014101900004"
#: the live part of the dashboard is re-fetched every 5 s; allow two rounds and a slow CI machine
LIVE_TIMEOUT_MS = 15_000


# -- browser ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    manager = sync_playwright()
    with manager as p:
        # Playwright writes screenshots and downloads through its loop's default executor, whose threads
        # would appear mid-test and trip conftest's leaked-thread check: give it one thread, made now
        files = ThreadPoolExecutor(max_workers=1, thread_name_prefix="playwright-files")
        files.submit(lambda: None).result()
        manager._loop.set_default_executor(files)
        yield p
    files.shutdown()


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """One Chromium for the module. A missing /usr/bin/chromium is an error: `bash tests/run.sh` installs it."""
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: install Debian's chromium (bash tests/run.sh does); "
                           "the browser tests never download a browser")
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def new_context(browser: Browser) -> Iterator[Callable[..., BrowserContext]]:
    """Fresh browser contexts (cookies, language, viewport) for this test; closed after it."""
    made: list[BrowserContext] = []

    def make(console: Console, **kwargs: Any) -> BrowserContext:
        kwargs.setdefault("viewport", {"width": 1280, "height": 900})
        context = browser.new_context(base_url=console.url, locale="id-ID", timezone_id="Asia/Jakarta",
                                      accept_downloads=True, **kwargs)
        context.set_default_timeout(10_000)
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()


@pytest.fixture
def console_factory(make_config, gateway_factory, tmp_path: Path) -> Callable[..., Console]:
    return lambda **kwargs: start_console(make_config, gateway_factory, tmp_path, **kwargs)


def shot(page: Page, test: str, step: str) -> None:
    page.screenshot(path=artifact_path(f"console-{test}-{step}.png"), full_page=True)


def sign_in(context: BrowserContext, account: Account, start: str = "/") -> Page:
    """Open `start`, be sent to the sign-in form, sign in, land back on `start`."""
    page = context.new_page()
    page.goto(start)
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.locator("input[name=name]").fill(account.name)
    page.locator("input[name=password]").fill(account.password)
    page.locator("form[action='/login'] button[type=submit]").click()
    expect(page.get_by_test_id("user")).to_contain_text(account.name)
    expect(page).to_have_url(re.compile(re.escape(start) + "$"))
    return page


def flash(page: Page, level: str) -> Locator:
    """The one-shot message (ok or error) a change leaves on the next page."""
    return page.locator(f"main > p.flash.{level}")


def probe(temperature: float = 21.0, humidity: float = 50.0) -> list[dict[str, Any]]:
    """One simulated probe read twice a second without noise, so the page shows exactly what is set."""
    return [{"name": "rack1", "driver": "sim", "interval_s": 0.5, "noise": 0.0, "temperature_c": temperature,
             "humidity_pct": humidity}]


# -- 1. sign in ---------------------------------------------------------------------------------------


def test_sign_in_refuses_a_wrong_password_and_returns_to_the_page_asked_for(console_factory, new_context):
    console = console_factory()
    rina = console.account("rina", "staff", cli=True)  # as an admin makes it: dcgate user add ... --password-file -
    page = new_context(console).new_page()

    page.goto("/")  # not signed in: to the form, remembering where to come back to
    expect(page).to_have_url(f"{console.url}/login?next=%2F")
    expect(page.locator("input[name=next]")).to_have_value("/")
    shot(page, "login", "form")

    page.locator("input[name=name]").fill("rina")
    page.locator("input[name=password]").fill("salah-sandi-123")
    page.locator("form[action='/login'] button[type=submit]").click()
    expect(page.get_by_test_id("login-error")).to_have_text("Nama akun atau kata sandi salah.")
    expect(page.get_by_test_id("user")).to_have_count(0)
    shot(page, "login", "wrong-password")
    failed = console.wait_event("console.login_failed", user="rina")
    assert failed["reason"] == "unknown_or_wrong" and failed["address"] == "127.0.0.1", failed
    assert console.events("console.login") == []
    assert all(rina.password not in str(e) and "salah-sandi-123" not in str(e)
               for e in console.events("console.login_failed"))

    # the name is kept, the password is not; the page asked for is still where the form goes next
    expect(page.locator("input[name=name]")).to_have_value("rina")
    expect(page.locator("input[name=password]")).to_have_value("")
    page.locator("input[name=password]").fill(rina.password)
    page.locator("form[action='/login'] button[type=submit]").click()
    expect(page).to_have_url(f"{console.url}/")
    expect(page.locator("h1")).to_have_text("Kondisi ruang server")
    expect(page.get_by_test_id("user")).to_have_text("rina (petugas)")
    shot(page, "login", "dashboard")
    login = console.wait_event("console.login", user="rina")
    assert (login["role"], login["address"]) == ("staff", "127.0.0.1"), login

    # a page asked for before signing in is where the form returns to
    page.locator("form[action='/logout'] button").click()
    expect(page).to_have_url(f"{console.url}/login")
    assert console.wait_event("console.logout", user="rina")["reason"] == "requested"
    page.goto("/logbook?what=visits")
    expect(page).to_have_url(f"{console.url}/login?next=%2Flogbook%3Fwhat%3Dvisits")
    page.locator("input[name=name]").fill("rina")
    page.locator("input[name=password]").fill(rina.password)
    page.locator("form[action='/login'] button[type=submit]").click()
    expect(page).to_have_url(f"{console.url}/logbook?what=visits")
    expect(page.locator("select[name=what]")).to_have_value("visits")

    # the HTTP client of tests/support/console.py signs in through the same form
    client = console.client()
    assert client.get("/api/state").status == 401
    client.sign_in("rina", rina.password)
    assert [p["name"] for p in client.get("/api/state").json()["probes"]] == ["rack1"]


# -- 2. the live dashboard ----------------------------------------------------------------------------


def test_dashboard_shows_the_probe_live_and_updates_without_a_reload(console_factory, new_context):
    console = console_factory(probes=probe(21.0, 50.0))
    vina = console.account("vina", "viewer")
    page = sign_in(new_context(console), vina)

    expect(page.get_by_test_id("temp-rack1")).to_have_text("21.0 °C")
    expect(page.get_by_test_id("hum-rack1")).to_have_text("50.0 %")
    expect(page.get_by_test_id("temp-rack1")).to_have_class("good")
    expect(page.get_by_test_id("mqtt")).to_contain_text("terhubung")
    expect(page.get_by_test_id("alarm-count")).to_have_text("0")
    # both charts of the probe are real images the browser could decode
    charts = page.locator("img[data-chart]")
    expect(charts).to_have_count(2)
    page.wait_for_function("() => [...document.querySelectorAll('img[data-chart]')]"
                           ".every(img => img.complete && img.naturalWidth > 0)")
    # a viewer sees no links to staff pages
    expect(page.locator("nav#nav a")).to_have_text(["Dasbor", "Kesehatan perangkat"])
    shot(page, "dashboard", "live-21")

    page.evaluate("() => { window.__notReloaded = true; }")
    console.cli("sim", "set", "probe", "rack1", "temperature=27.5")
    expect(page.get_by_test_id("temp-rack1")).to_have_text("27.5 °C", timeout=LIVE_TIMEOUT_MS)
    expect(page.get_by_test_id("temp-rack1")).to_have_class("bad")  # above the room standard's 22 °C
    assert page.evaluate("() => window.__notReloaded") is True, "the page reloaded instead of refreshing itself"
    assert page.locator("#live").get_attribute("data-updated"), "the live box was not re-fetched"
    shot(page, "dashboard", "live-27.5")


# -- 3. acknowledging an alarm ------------------------------------------------------------------------


def test_staff_acknowledge_an_alarm_a_viewer_cannot(console_factory, new_context):
    console = console_factory(probes=probe(21.0), thresholds={"min_duration_s": 1.0, "rate_alarm": False})
    budi = console.account("budi", "staff")
    vina = console.account("vina", "viewer")
    viewer = sign_in(new_context(console), vina)
    staff = sign_in(new_context(console), budi)
    expect(staff.get_by_test_id("alarm-count")).to_have_text("0")

    console.cli("sim", "set", "probe", "rack1", "temperature=27.5")
    raised = console.wait_event("env.alarm.raised", probe="rack1", quantity="temperature")
    row = f"tr[data-alarm='{raised['alarm_id']}']"

    # the viewer's dashboard shows the alarm by itself, without the means to acknowledge it
    expect(viewer.locator(row)).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    expect(viewer.get_by_test_id("alarm-count")).to_have_text("1")
    expect(viewer.locator(row)).to_contain_text("suhu terlalu tinggi")
    expect(viewer.locator(f"{row} button")).to_have_count(0)
    expect(viewer.locator(f"{row} input[name=note]")).to_have_count(0)
    shot(viewer, "alarm", "viewer")

    expect(staff.locator(row)).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    # A refresh fetched just before the note is typed would still replace the form (app.js checks the focus
    # only before fetching): a reload restarts its 5 s timer, so the note and the click come well before it
    staff.reload()
    staff.locator(f"{row} input[name=note]").fill("AC unit 2 diperiksa teknisi")
    shot(staff, "alarm", "before-ack")
    staff.locator(f"{row} button", has_text="Tanggapi").click()
    expect(flash(staff, "ok")).to_have_text("Alarm ditanggapi.")
    expect(staff.locator(row)).to_contain_text("ditanggapi budi")
    expect(staff.locator(f"{row} button")).to_have_count(0)
    shot(staff, "alarm", "acknowledged")

    ack = console.wait_event("alarm.acknowledged", alarm_id=raised["alarm_id"])
    assert (ack["by"], ack["note"]) == ("budi", "AC unit 2 diperiksa teknisi"), ack
    action = console.wait_event("console.action", action="alarm.ack")
    assert (action["user"], action["role"], action["target"], action["result"]) == (
        "budi", "staff", raised["alarm_id"], "ok"), action


# -- 4. a visit from the request to the arrival -------------------------------------------------------


def test_visit_requested_approved_by_a_linked_officer_and_arrived(console_factory, new_context):
    console = console_factory()
    siti = console.person("Ir. Siti Rahmawati", NIP_SITI, "officer")
    budi_id = console.person("Budi Santoso", NIP_BUDI, "staff")
    lin = console.person("Lin-Manuel Miranda", NIP_LIN, "staff")
    budi = console.account("budi", "staff", person=NIP_BUDI)
    siti_account = console.account("siti", "officer", person=NIP_SITI)
    anto = console.account("anto", "officer")  # an officer account linked to nobody
    assert (budi.person, siti_account.person, anto.person) == (budi_id, siti, None)

    # the desk requests a guest visit through the form
    desk = sign_in(new_context(console), budi, "/visits")
    form = desk.locator("form[action='/visits']")
    form.locator("select[name=kind]").select_option("guest")
    form.locator("input[name=name]").fill("Dewi Lestari")
    form.locator("input[name=org]").fill("BPS Provinsi Jambi")
    form.locator("select[name=id_type]").select_option("KTP")
    form.locator("input[name=id_number]").fill(NIK)
    form.locator("textarea[name=purpose]").fill("Audit sarana ruang server")
    form.locator("input[name=duration_min]").fill("10")  # visits.guest_max_min: 10 by default
    shot(desk, "visit", "request-form")
    form.locator("button[type=submit]").click()
    expect(desk).to_have_url(re.compile(r"/visits/KJ-\d{8}-\d{3}$"))
    visit = desk.url.rsplit("/", 1)[-1]
    expect(flash(desk, "ok")).to_have_text("Permohonan kunjungan dicatat.")
    expect(desk.get_by_test_id("visit-status")).to_have_text("diajukan")
    expect(desk.locator("main")).to_contain_text("3271••••••••0004")  # the ID number masked, never whole
    expect(desk.locator("main")).not_to_contain_text(NIK)
    expect(desk.get_by_test_id("approve")).to_have_count(0)  # staff do not approve
    shot(desk, "visit", "requested")

    # an officer account linked to no person is refused, saying why, and nothing changes
    unlinked = sign_in(new_context(console), anto, f"/visits/{visit}")
    unlinked.locator("select[name=escorts]").select_option([lin])
    unlinked.get_by_test_id("approve").click()
    expect(flash(unlinked, "error")).to_contain_text("tidak terhubung ke data petugas")
    expect(unlinked.get_by_test_id("visit-status")).to_have_text("diajukan")
    shot(unlinked, "visit", "unlinked-officer-refused")
    refused = console.wait_event("console.action", action="visit.approve", user="anto")
    assert (refused["result"], refused["target"]) == ("refused", visit), refused
    assert console.events("visit.approved") == []

    # the linked officer approves with two escorts chosen in the multi-select
    officer = sign_in(new_context(console), siti_account, f"/visits/{visit}")
    officer.locator("select[name=escorts]").select_option([lin, budi_id])
    officer.locator("form[action$='/approve'] input[name=note]").fill("didampingi dua petugas")
    shot(officer, "visit", "approve-form")
    officer.get_by_test_id("approve").click()
    expect(flash(officer, "ok")).to_have_text("Kunjungan disetujui.")
    expect(officer.get_by_test_id("visit-status")).to_have_text("disetujui")
    expect(officer.locator("dl.facts")).to_contain_text("Ir. Siti Rahmawati")
    escorts = officer.locator("dl.facts dt:text-is('Pendamping') + dd")
    expect(escorts).to_have_text(re.compile(r"^(Lin-Manuel Miranda, Budi Santoso|Budi Santoso, Lin-Manuel Miranda)$"))
    shot(officer, "visit", "approved")
    approved = console.wait_event("visit.approved", visit=visit)
    assert approved["by"] == siti, approved
    assert sorted(e["person"] for e in approved["escorts"]) == sorted([lin, budi_id]), approved
    assert console.events("console.action", action="visit.request", user="budi", result="ok", target="Dewi Lestari")
    assert console.events("console.action", action="visit.approve", user="siti", result="ok", target=visit)

    # the desk records the arrival: a guest deposits gadgets
    desk.reload()
    expect(desk.get_by_test_id("visit-status")).to_have_text("disetujui")
    desk.locator("form[action$='/arrive'] input[name=gadgets]").fill("1 ponsel, 1 laptop")
    desk.locator("form[action$='/arrive'] button").click()
    expect(flash(desk, "ok")).to_have_text("Kedatangan dicatat.")
    expect(desk.get_by_test_id("visit-status")).to_have_text("sudah tiba")
    expect(desk.locator("main table")).to_contain_text("1 ponsel, 1 laptop")
    shot(desk, "visit", "arrived")
    arrived = console.wait_event("visit.arrived", visit=visit)
    assert arrived["received_by"] == budi_id and arrived["visitors"][0]["gadgets"] == "1 ponsel, 1 laptop"
    assert console.events("console.action", action="visit.arrive", user="budi", result="ok", target=visit)


# -- 5. the logbook's CSV -----------------------------------------------------------------------------


def read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as stream:
        return list(csv.reader(stream))


def download_csv(page: Page, name: str) -> list[list[str]]:
    with page.expect_download() as info:
        page.get_by_test_id("csv").click()
    download = info.value
    assert re.fullmatch(r"buku-log-akses-test-site-\d{8}-\d{6}\.csv", download.suggested_filename)
    target = artifact_path(f"console-logbook-{name}.csv")
    download.save_as(target)
    return read_csv(target)


def test_logbook_exports_csv_with_the_filters_applied(console_factory, new_context):
    door = {k: v for k, v in sim_door(auth="finger").items() if k != "camera"}
    console = console_factory(doors=[door])
    siti = console.person("Ir. Siti Rahmawati", NIP_SITI, "officer")
    lin = console.person("Lin-Manuel Miranda", NIP_LIN, "staff")
    # set-up through the control socket: the operations `dcgate visit` and `dcgate sim` call
    visits = [console.op("visit.request", {
        "kind": kind, "name": name, "org": "PT Sinar Data", "id_type": "KTP", "id_number": NIK,
        "purpose": "Pemeliharaan UPS", "by": "budi"})["id"] for kind, name in (("vendor", "Andi Wijaya"),
                                                                             ("guest", "Dewi Lestari"))]
    console.op("visit.approve", {"visit": visits[0], "by": siti, "escorts": [lin]})
    # someone leaves by the exit button: the door unlocks, opens and shuts
    for values, kind in (({"exit": "1"}, "door.exit_button"), ({"open": "1"}, "door.opened"),
                         ({"open": "0"}, "door.closed")):
        console.op("sim.set", {"device": "door", "name": "main", "values": values})
        console.wait_event(kind, door="main")
    rina = console.account("rina", "staff")
    page = sign_in(new_context(console), rina, "/logbook")
    expect(page.locator("table.log")).to_contain_text(visits[1])
    shot(page, "logbook", "all")

    everything = download_csv(page, "all")
    assert tuple(everything[0]) == CSV_COLUMNS
    rows = [dict(zip(CSV_COLUMNS, row, strict=True)) for row in everything[1:]]
    kinds = {r["kejadian/event"] for r in rows}
    assert {"person.added", "visit.requested", "visit.approved", "door.exit_button", "door.opened",
            "door.closed"} <= kinds, kinds
    requested = [r for r in rows if r["kejadian/event"] == "visit.requested"]
    assert [r["kunjungan/visit"] for r in requested] == visits
    assert all(r["keperluan/purpose"] == "Pemeliharaan UPS" for r in requested)
    assert NIK not in "".join(map(str, everything))  # the ID number is masked in the logbook too
    export = console.wait_event("console.action", action="logbook.export", user="rina")
    assert (export["target"], export["result"]) == (f"{len(rows)} rows", "ok"), export

    # visits only, today (WIB): the filter form, then the CSV of what it shows
    today = datetime.now(WIB).date()
    page.locator("select[name=what]").select_option("visits")
    page.locator("input[name=from]").fill(today.isoformat())
    page.locator("input[name=to]").fill(today.isoformat())
    page.locator("form.filters button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"what=visits"))
    shot(page, "logbook", "visits-today")
    only_visits = download_csv(page, "visits-today")
    assert tuple(only_visits[0]) == CSV_COLUMNS
    assert [(r[2], r[14]) for r in only_visits[1:]] == [
        ("visit.requested", visits[0]), ("visit.requested", visits[1]), ("visit.approved", visits[0])]

    # a range before anything happened: the header alone
    last_week = today - timedelta(days=7)
    page.locator("input[name=from]").fill((last_week - timedelta(days=1)).isoformat())
    page.locator("input[name=to]").fill(last_week.isoformat())
    page.locator("form.filters button[type=submit]").click()
    expect(page.locator("table.log")).to_contain_text("Tidak ada catatan.")
    assert download_csv(page, "last-week") == [list(CSV_COLUMNS)]

    exports = [e["target"] for e in console.events("console.action", action="logbook.export", user="rina")]
    assert exports == [f"{len(rows)} rows", "3 rows", "0 rows"], exports


# -- 6. language --------------------------------------------------------------------------------------


def test_language_switches_to_english_and_back(console_factory, new_context):
    console = console_factory()
    rina = console.account("rina", "staff")
    page = sign_in(new_context(console), rina)
    nav = page.locator("nav#nav")
    expect(nav).to_contain_text("Dasbor")
    expect(page.locator("html")).to_have_attribute("lang", "id")

    page.locator(".lang a", has_text="EN").click()
    expect(page).to_have_url(f"{console.url}/")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(nav.locator("a").first).to_have_text("Dashboard")
    expect(nav).to_contain_text("Logbook")
    expect(page.locator("form[action='/logout'] button")).to_have_text("Sign out")
    expect(page.locator("h1")).to_have_text("Server room now")
    expect(page.get_by_test_id("user")).to_have_text("rina (staff)")
    shot(page, "lang", "en-dashboard")
    page.goto("/visits")  # the choice is kept from page to page
    expect(page.locator("h1")).to_have_text("Guest and vendor visits")
    shot(page, "lang", "en-visits")

    page.locator(".lang a", has_text="ID").click()
    expect(page).to_have_url(f"{console.url}/visits")
    expect(page.locator("h1")).to_have_text("Kunjungan tamu dan vendor")
    expect(page.locator("form[action='/logout'] button")).to_have_text("Keluar")
    expect(nav.locator("a").first).to_have_text("Dasbor")
    shot(page, "lang", "id-visits")


# -- 7. a phone ---------------------------------------------------------------------------------------


PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}


def no_horizontal_overflow(page: Page) -> None:
    """Nothing wider than the screen. On a mobile viewport Chromium zooms out to fit wide content, so
    innerWidth grows with the page and `scrollWidth <= innerWidth` would always hold; clientWidth is the
    layout viewport (the device width of the viewport meta tag) and does not."""
    sizes = page.evaluate("() => ({scroll: document.documentElement.scrollWidth, inner: window.innerWidth,"
                          " client: document.documentElement.clientWidth})")
    assert sizes["scroll"] <= min(sizes["inner"], sizes["client"]) + 1, f"{page.url} is wider than the phone: {sizes}"


def test_phone_menu_opens_and_the_pages_fit(console_factory, new_context):
    console = console_factory(probes=probe(21.0))
    rina = console.account("rina", "staff")
    page = sign_in(new_context(console, **PHONE), rina)
    toggle = page.locator(".menu-toggle")
    nav = page.locator("nav#nav")
    expect(page.get_by_test_id("temp-rack1")).to_have_text("21.0 °C")
    expect(toggle).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(nav).to_be_hidden()
    no_horizontal_overflow(page)
    shot(page, "phone", "dashboard")

    toggle.tap()
    expect(nav).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    no_horizontal_overflow(page)
    shot(page, "phone", "menu-open")
    nav.locator("a", has_text="Kunjungan").tap()
    expect(page).to_have_url(f"{console.url}/visits")
    expect(nav).to_be_hidden()  # a new page starts with the menu closed
    no_horizontal_overflow(page)
    shot(page, "phone", "visits")
    toggle.tap()
    nav.locator("a", has_text="Buku log").tap()
    expect(page).to_have_url(f"{console.url}/logbook")
    no_horizontal_overflow(page)
    shot(page, "phone", "logbook")


def test_phone_dashboard_with_an_alarm_fits(console_factory, new_context):
    console = console_factory(probes=probe(27.5), thresholds={"min_duration_s": 0.0, "rate_alarm": False})
    rina = console.account("rina", "staff")
    console.wait_event("env.alarm.raised", probe="rack1")
    page = sign_in(new_context(console, **PHONE), rina)
    expect(page.locator("tr[data-alarm] input[name=note]")).to_be_visible()
    shot(page, "phone", "dashboard-alarm")
    no_horizontal_overflow(page)


# -- 8. people: a face from a photo, then revoked -----------------------------------------------------


def test_officer_enrols_a_face_from_a_photo_and_revokes_the_person(console_factory, new_context):
    console = console_factory(doors=[sim_door()])
    console.person("Ir. Siti Rahmawati", NIP_SITI, "officer")
    siti = console.account("siti", "officer", person=NIP_SITI)
    page = sign_in(new_context(console), siti, "/people")

    add = page.locator("form[action='/people']")
    add.locator("input[name=name]").fill("Barack Obama")
    add.locator("input[name=nip]").fill("196108041992031001")
    add.locator("select[name=role]").select_option("staff")
    add.locator("button[type=submit]").click()
    expect(flash(page, "ok")).to_have_text("Petugas ditambahkan.")
    obama = console.wait_event("person.added", nip="196108041992031001")["person"]
    row = page.locator(f"tr[data-person='{obama}']")
    expect(row).to_contain_text("0 wajah")

    row.locator("summary").click()
    row.locator("input[type=file][name=photo]").set_input_files(FACES / "obama.jpg")
    shot(page, "people", "face-upload")
    row.get_by_role("button", name="Unggah dan daftarkan").click()
    expect(flash(page, "ok")).to_have_text("Wajah didaftarkan.", timeout=60_000)  # the first face loads the models
    expect(row).to_contain_text("1 wajah")
    shot(page, "people", "face-enrolled")
    enrolled = console.wait_event("biometric.enrolled", person=obama)
    assert enrolled["by"] == "siti", enrolled
    assert console.events("console.action", action="enroll.face", user="siti", target=obama, result="ok")

    page.on("dialog", lambda dialog: dialog.accept())  # "Cabut akses ...? Tidak bisa dibatalkan."
    row.locator("input[name=reason]").fill("pindah tugas")
    row.get_by_role("button", name="Cabut akses").click()
    expect(flash(page, "ok")).to_have_text("Akses dicabut; biometrik dihapus.")
    expect(row).to_contain_text("dicabut")
    expect(row).to_contain_text("0 wajah")
    expect(row.locator("button")).to_have_count(0)  # nothing left to do for a revoked person
    shot(page, "people", "revoked")
    revoked = console.wait_event("person.revoked", person=obama)
    assert revoked["reason"] == "pindah tugas", revoked
    assert console.events("console.action", action="person.revoke", user="siti", target=obama, result="ok")
