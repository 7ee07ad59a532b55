"""Guests and vendors end to end: a real gateway process with the simulated door (its fingerprint sensors
speak the real driver protocol to the in-process emulator), a real mosquitto, real SQLite, and every step
typed as `dcgate visit ...` by the desk. The minutes PDF is read back with pypdf.

Two gateway runs: a vendor from request to berita acara; a guest through every refusal, the overstay
alarm, the escort leaving first and an escort revoked mid-visit.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pypdf import PdfReader

from tests.support.gateway_proc import GatewayProcess, run_cli
from tests.support.waiting import wait_until
from tests.test_access_service import (  # noqa: F401  (door_config and key_file are fixtures used here)
    add_person,
    dcgate,
    dcgate_json,
    door_config,
    enroll_finger,
    events,
    finger,
    granted,
    inside,
    key_file,
    main_door,
    sim_door,
    wait_event,
)

NIP_SITI = "197503152000032001"  # the officer in charge
NIP_LIN = "198001162005011002"  # staff: the escort
NIP_BUDI = "199001012015011001"  # staff: the desk that receives IDs
NIP_RINA = "199205102018012002"  # staff: a second escort
NIK = "3271014101900004"  # KTP: Bogor, born 01-01-1990, a woman
NIK_MASKED = "3271••••••••0004"
SIM = "123456789012"
SIM_MASKED = "1234••••9012"
PASSPORT = "B1234567"
VISIT_ID = re.compile(r"KJ-\d{8}-\d{3}")


def finger_door(**overrides: Any) -> dict[str, Any]:
    """The sim door without a camera (no face models to load): a sensor outside and one inside (exit)."""
    door = {key: value for key, value in main_door(auth="finger").items() if key != "camera"}
    return door | {"exit_fingerprint": {"port": "sim"}} | overrides


def refused(config: Path, *args: str) -> str:
    """A step the gateway must refuse: exit 2 and the bilingual reason on stderr."""
    result = run_cli(*args, "--config", str(config))
    assert result.returncode == 2, f"dcgate {' '.join(args)} was not refused: {result.returncode}\n" \
                                   f"{result.stdout}{result.stderr}"
    assert " / " in result.stderr, result.stderr
    return result.stderr


def show(config: Path, visit: str) -> dict[str, Any]:
    return dcgate_json(config, "visit", "show", visit, "--json")


def refusals(gw: GatewayProcess, visit: str) -> list[str]:
    return [f["reason"] for f in events(gw, "visit.refused", visit=visit)]


def exit_finger(config: Path, slot: int) -> dict[str, Any]:
    return json.loads(dcgate(config, "door", "present", "main", "--finger", str(slot), "--exit"))


# -- a vendor, from request to the berita acara -------------------------------------------------------


def test_vendor_visit_from_request_to_minutes(door_config, gateway_factory, subscriber, tmp_path):  # noqa: F811
    config = door_config([finger_door()])
    gw = gateway_factory(config)
    officer = add_person(config, "Ir. Siti Rahmawati", NIP_SITI, "officer")
    escort = add_person(config, "Lin-Manuel Miranda", NIP_LIN, "staff")
    desk = add_person(config, "Budi Santoso", NIP_BUDI, "staff")
    slot = enroll_finger(config, escort)

    # 1. the request: two technicians of one company, the UPS they come to service
    visit = dcgate(config, "visit", "request", "--kind", "vendor", "--name", "Andi Wijaya", "--org", "PT Sinar Data",
                   "--id-type", "KTP", "--id-number", NIK, "--purpose", "Pemeliharaan UPS ruang server",
                   "--device", "UPS APC 3kVA", "--companion", f"Rudi Hartono;SIM;{SIM}", "--end", "+8h",
                   "--by", "budi").strip()
    assert VISIT_ID.fullmatch(visit), visit
    listing = dcgate(config, "visit", "list")
    assert visit in listing and NIK_MASKED in listing and NIK not in listing
    assert show(config, visit)["status"] == "requested"

    # nothing opens for a visit nobody approved
    assert "not approved" in refused(config, "visit", "admit", visit, "--door", "main")
    refused(config, "visit", "approve", visit, "--by", desk, "--escort", escort)  # staff cannot approve

    # 2. the officer approves and assigns the escort
    dcgate(config, "visit", "approve", visit, "--by", officer, "--escort", escort)
    approved = show(config, visit)
    assert approved["status"] == "approved" and approved["approved_by"] == officer
    assert [e["person"] for e in approved["escorts"]] == [escort] and approved["limit_min"] == 480

    # 3. the door does not open before the IDs are at the desk
    refused(config, "visit", "admit", visit, "--door", "main")
    dcgate(config, "visit", "arrive", visit, "--received-by", desk)
    arrived = show(config, visit)
    assert arrived["status"] == "arrived" and all(v["received_by"] == desk for v in arrived["visitors"])

    # 4. armed for the escort; the escort's finger lets both technicians in with them
    dcgate(config, "visit", "admit", visit, "--door", "main")
    assert dcgate_json(config, "door", "status")["main"]["visit_armed"]["visit"] == visit
    decision = finger(config, slot)
    granted(decision, escort, "finger")
    assert decision["visit"] == visit
    assert [v["key"] for v in decision["admitted"]] == [f"{visit}.1", f"{visit}.2"]
    entries = events(gw, "access.granted", visit=visit)
    escort_entry, visitors = entries[0], entries[1:]
    assert escort_entry["person"] == escort and escort_entry["admitted"] == [f"{visit}.1", f"{visit}.2"]
    assert [(v["person"], v["name"], v["method"], v["role"], v["escort"]) for v in visitors] == [
        (f"{visit}.1", "Andi Wijaya", "escorted", "vendor", escort),
        (f"{visit}.2", "Rudi Hartono", "escorted", "vendor", escort)]
    assert all(v["purpose"] == "Pemeliharaan UPS ruang server" and v["approved_by"] == officer for v in visitors)
    assert [v["id_masked"] for v in visitors] == [NIK_MASKED, SIM_MASKED]

    rows = {row["person"]: row for row in inside(config)}
    assert set(rows) == {escort, f"{visit}.1", f"{visit}.2"}
    assert rows[f"{visit}.1"]["escort"] == escort and rows[f"{visit}.1"]["escort_name"] == "Lin-Manuel Miranda"
    assert 470 * 60 < rows[f"{visit}.1"]["time_left_s"] <= 480 * 60
    assert rows[escort]["escorting"] == [f"{visit}.1", f"{visit}.2"]
    text = dcgate(config, "inside")
    assert "Andi Wijaya" in text and "pendamping/escort Lin-Manuel Miranda" in text

    # once inside, they cannot be admitted again
    refused(config, "visit", "admit", visit, "--door", "main")

    # 5. the officer extends the visit
    dcgate(config, "visit", "extend", visit, "--by", officer, "--minutes", "30", "--reason", "baterai tambahan")
    assert show(config, visit)["limit_min"] == 510

    # 6. check-out: the exit checklist must cover the UPS
    refused(config, "visit", "checkout", visit, "--by", desk, "--activities", "Penggantian baterai UPS")
    pdf = tmp_path / "berita-acara.pdf"
    dcgate(config, "visit", "checkout", visit, "--by", escort, "--returned-by", desk, "--activities",
           "Penggantian 4 baterai UPS APC 3kVA; uji beban 15 menit", "--check", "UPS APC 3kVA=ok:uji beban normal",
           "--minutes-pdf", str(pdf))
    done = show(config, visit)
    assert done["status"] == "checked_out" and done["checkout"]["by"] == escort
    assert all(v["exited_at"] and v["returned_by"] == desk for v in done["visitors"])
    assert [row["person"] for row in inside(config)] == [escort]  # the visitors are out; the escort works on

    minutes = "\n".join(page.extract_text() for page in PdfReader(pdf).pages)
    for words in ("BERITA ACARA KEGIATAN", visit, "PT Sinar Data", "Andi Wijaya", "Rudi Hartono",
                  "Pemeliharaan UPS ruang server", "Penggantian 4 baterai", "UPS APC 3kVA", "Berfungsi baik",
                  "Lin-Manuel Miranda", "Ir. Siti Rahmawati", "Pendamping", "Pengunjung", NIK_MASKED, SIM_MASKED,
                  "buku log"):
        assert words in minutes, f"{words!r} not in the minutes:\n{minutes}"
    assert NIK not in minutes and SIM not in minutes

    # the full number: only the officer's detail view, and the look is logged
    refused(config, "visit", "show", visit, "--reveal", "--by", desk)
    revealed = dcgate_json(config, "visit", "show", visit, "--reveal", "--by", officer, "--json")
    assert [v["id_number"] for v in revealed["visitors"]] == [NIK, SIM]
    assert wait_event(gw, "visit.id_viewed", visit=visit)["by"] == officer

    # the logbook of the visit, every step and refusal in order
    book = [json.loads(line) for line in dcgate(config, "log", "--visit", visit, "--json").splitlines()]
    assert [e["kind"] for e in book] == [
        "visit.requested", "visit.refused", "visit.refused", "visit.approved", "visit.refused", "visit.arrived",
        "visit.admit_armed", "access.granted", "access.granted", "access.granted", "visit.refused",
        "visit.extended", "visit.refused", "visit.checked_out", "visit.refused", "visit.id_viewed"]
    assert refusals(gw, visit) == ["not_approved", "not_officer", "id_not_deposited", "already_inside",
                                   "checklist_incomplete", "not_officer"]

    # upstream sees every step, the ID numbers masked
    def received() -> list[dict[str, Any]]:
        return [m for m in subscriber.events() if m["kind"].startswith("visit.") or m.get("visit") == visit]

    wait_until(lambda: len(received()) >= len(book), 10, message=lambda: f"visit events over MQTT: {received()}")
    wire = json.dumps(received(), ensure_ascii=False)
    assert NIK_MASKED in wire and NIK not in wire and SIM not in wire
    state = wait_until(lambda: [m for m in subscriber.snapshot() if m.topic.endswith("/visits")], 10,
                       message="the retained visits topic")
    assert NIK not in state[-1].payload.decode()
    assert gw.terminate() == 0
    database = gw.config.database_path.read_bytes()
    assert NIK.encode() not in database and SIM.encode() not in database  # encrypted at rest


# -- a guest: every refusal, the overstay alarm, the escort leaving, an escort revoked -----------------


def test_guest_refusals_overstay_and_escort_alarms(make_config, key_file, gateway_factory, tmp_path):  # noqa: F811
    config = make_config(access={"key_file": str(key_file)}, doors=[finger_door()],
                         visits={"guest_max_min": 0.1, "admit_window_s": 10})  # a 6-second guest visit
    gw = gateway_factory(config)
    officer = add_person(config, "Ir. Siti Rahmawati", NIP_SITI, "officer")
    escort = add_person(config, "Lin-Manuel Miranda", NIP_LIN, "staff")
    other = add_person(config, "Budi Santoso", NIP_BUDI, "staff")
    second = add_person(config, "Rina Marlina", NIP_RINA, "staff")
    escort_slot, other_slot, second_slot = (enroll_finger(config, p) for p in (escort, other, second))

    def guest(*extra: str) -> str:
        return dcgate(config, "visit", "request", "--kind", "guest", "--name", "Dewi Lestari", "--org",
                      "Bappeda Provinsi", "--id-type", "PASPOR", "--id-number", PASSPORT, "--purpose",
                      "Melihat ruang server", "--by", "budi", *extra).strip()

    # rejected, and not yet valid
    rejected = guest()
    dcgate(config, "visit", "reject", rejected, "--by", officer, "--reason", "tanpa surat tugas")
    refused(config, "visit", "arrive", rejected, "--received-by", other)
    later = guest("--start", "+2h", "--end", "+3h")
    dcgate(config, "visit", "approve", later, "--by", officer, "--escort", escort)
    refused(config, "visit", "admit", later, "--door", "main")
    assert refusals(gw, rejected) == ["rejected"] and refusals(gw, later) == ["not_yet_valid"]

    # an approval whose window has ended has expired
    end = time.time() + 8  # long enough to request and approve on a loaded machine
    short = guest("--end", datetime.fromtimestamp(end, UTC).isoformat())
    dcgate(config, "visit", "approve", short, "--by", officer, "--escort", escort)
    wait_until(lambda: time.time() > end + 0.1, 15, message="the short window to end")
    refused(config, "visit", "admit", short, "--door", "main")
    assert refusals(gw, short) == ["expired"]

    # the visit that happens: a guest deposits ID and gadgets
    visit = guest("--end", "+2h")
    dcgate(config, "visit", "approve", visit, "--by", officer, "--escort", escort, "--escort", second)
    assert "gadget" in refused(config, "visit", "arrive", visit, "--received-by", other).lower()
    dcgate(config, "visit", "arrive", visit, "--received-by", other, "--gadgets", "1 ponsel, 1 laptop")

    # someone not assigned comes to the armed door: in on their own right, the guest stays out
    dcgate(config, "visit", "admit", visit, "--door", "main")
    alone = finger(config, other_slot)
    granted(alone, other, "finger")
    assert alone["visit_refused"]["reason"] == "escort_not_assigned" and "admitted" not in alone
    # an assigned escort who is deactivated is refused at the door, and the visit logs why
    dcgate(config, "person", "deactivate", second, "--by", "Budi", "--reason", "cuti")
    stopped = finger(config, second_slot)
    assert stopped["decision"] == "denied" and stopped["reason"] == "inactive"
    assert stopped["visit_refused"]["reason"] == "escort_inactive"
    dcgate(config, "person", "activate", second, "--by", "Budi")
    # the assigned escort brings her in
    decision = finger(config, escort_slot)
    granted(decision, escort, "finger")
    assert [v["key"] for v in decision["admitted"]] == [f"{visit}.1"]
    assert refusals(gw, visit) == ["gadgets_required", "escort_not_assigned", "escort_inactive"]

    # over the guest's limit (6 s here, 10 min by default): the alarm, then an extension clears it
    overstay = wait_event(gw, "visit.overstay", timeout=20, visit=visit)
    assert overstay["person"] == f"{visit}.1" and overstay["escort"] == escort
    assert next(row for row in inside(config) if row["person"] == f"{visit}.1")["overstay"] is True
    assert not events(gw, "access.overstay")  # the escort is not over their own limit for it
    dcgate(config, "visit", "extend", visit, "--by", officer, "--minutes", "20", "--reason", "diskusi lanjutan")
    assert wait_event(gw, "visit.overstay_cleared", visit=visit)["reason"] == "extended"

    # the escort leaves first through the inside reader: alarm; coming back clears it
    out = exit_finger(config, escort_slot)
    assert out["decision"] == "granted" and out["direction"] == "out"
    alarm = wait_event(gw, "visit.escort_alarm", visit=visit)
    assert (alarm["condition"], alarm["escort"], alarm["visitors_inside"]) == ("escort_left", escort,
                                                                               [f"{visit}.1"])
    assert show(config, visit)["escort_alarm"]["condition"] == "escort_left"
    granted(finger(config, escort_slot), escort, "finger")
    assert wait_event(gw, "visit.escort_alarm_cleared", visit=visit)["reason"] == "escort_returned"

    # the escort is revoked while the guest is inside: alarm until the check-out
    dcgate(config, "person", "revoke", escort, "--by", "Budi", "--reason", "mutasi")
    revoked = wait_event(gw, "visit.escort_alarm", count=2, visit=visit)
    assert revoked["condition"] == "escort_revoked"
    assert finger(config, escort_slot)["reason"] == "unknown_finger"  # the template is gone from the sensor
    pdf = tmp_path / "tamu.pdf"
    dcgate(config, "visit", "checkout", visit, "--by", second, "--returned-by", other, "--activities",
           "Melihat ruang server dan rak jaringan", "--minutes-pdf", str(pdf))
    assert wait_event(gw, "visit.escort_alarm_cleared", count=2, visit=visit)["reason"] == "checked_out"
    minutes = "\n".join(page.extract_text() for page in PdfReader(pdf).pages)
    for words in ("BERITA ACARA KEGIATAN", visit, "Tamu", "Dewi Lestari", "Bappeda Provinsi", "Melihat ruang server",
                  "1 ponsel, 1 laptop", "dikembalikan oleh / returned by Budi Santoso", "Rina Marlina"):
        assert words in minutes, f"{words!r} not in the minutes:\n{minutes}"
    assert PASSPORT not in minutes
    assert all(row["person"] != f"{visit}.1" for row in inside(config))

    # after the check-out only staff are left: Budi (in on his own) and the revoked escort, two parties,
    # so one exit-button press cannot say who left
    sim_door(config, "exit=1")
    wait_until(lambda: dcgate_json(config, "door", "status")["main"]["state"] == "unlocked", 5, message="exit unlock")
    sim_door(config, "open=1")
    press = wait_event(gw, "access.exit")
    assert press["persons"] == [] and sorted(press["candidates"]) == sorted([other, escort])

    # every refused attempt is in the logbook with its reason
    log = dcgate(config, "log", "--visit", visit)
    assert "escort_not_assigned" in log and "escort_inactive" in log and "gadgets_required" in log
    assert PASSPORT not in log
    assert gw.terminate() == 0
