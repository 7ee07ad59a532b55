"""A security sweep of the web console over real HTTP (docs/console.md, gateway/web/security.py).

A real `dcgate run` with `[web]` on a free loopback port, a simulated probe, a simulated door (so the
door and visit operations exist), `[backup]` when gateway/backup.py exists, a real mosquitto, the real
SQLite file; one console account per role made with `dcgate user add`, as an admin would. The tests
speak HTTP with urllib and a cookie jar (tests/support/console_http.py), never following redirects.

- every route of `gateway.web.security.ROUTES`, every method, as anonymous and as every role;
- CSRF: no token, a wrong one, another session's, a foreign Origin or Referer: 403, nothing changed;
- path traversal on every route that names a file;
- sign-in throttling per name and per address, and one answer for every kind of failed sign-in;
- sessions: cookie flags (Secure under TLS), a new id at sign-in, sign-out, account changes, idle expiry;
- security headers on every HTML answer; the audit trail (`console.action`), and no password in the store.
"""

from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import re
import ssl
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from access.crypto import generate_key_file
from gateway.store.database import open_for_reading
from gateway.store.events import Event, iter_events
from gateway.web import app as web_app  # importing it registers every page module's routes
from gateway.web.security import ROUTES, RouteSpec
from gateway.web.users import ROLES, role_at_least
from tests.support.configs import base_config, write_config
from tests.support.console_http import ConsoleClient, Reply
from tests.support.gateway_proc import GatewayProcess, run_cli
from tests.support.mosquitto import Mosquitto
from tests.support.ports import free_port
from tests.support.waiting import wait_until

# -- what the contract says -------------------------------------------------------------------------

#: (method, path) -> lowest role, as docs/console.md's table of roles has it (None: anyone)
CONTRACT: dict[tuple[str, str], str | None] = {
    ("GET", "/login"): None, ("POST", "/login"): None, ("POST", "/logout"): None, ("GET", "/lang/{code}"): None,
    # viewer: dashboard (live values, charts, alarms, power, doors, MQTT link), device health
    ("GET", "/"): "viewer", ("GET", "/dashboard/live"): "viewer", ("GET", "/api/state"): "viewer",
    ("GET", "/api/chart/{probe}.svg"): "viewer", ("GET", "/health"): "viewer",
    # staff: + logbook and its CSV, visits (list, request, arrive, admit, check-out), acknowledge alarms,
    # people list, reports
    ("GET", "/logbook"): "staff", ("GET", "/logbook.csv"): "staff",
    ("GET", "/visits"): "staff", ("POST", "/visits"): "staff", ("GET", "/visits/{visit}"): "staff",
    ("POST", "/visits/{visit}/arrive"): "staff", ("POST", "/visits/{visit}/admit"): "staff",
    ("POST", "/visits/{visit}/checkout"): "staff", ("POST", "/alarms/{alarm_id}/ack"): "staff",
    ("GET", "/people"): "staff", ("GET", "/reports"): "staff", ("GET", "/reports/download"): "staff",
    # officer: + approve, reject and extend visits, visit minutes, add / enrol / (de)activate / revoke people
    ("POST", "/visits/{visit}/approve"): "officer", ("POST", "/visits/{visit}/reject"): "officer",
    ("POST", "/visits/{visit}/extend"): "officer", ("GET", "/visits/{visit}/minutes.pdf"): "officer",
    ("POST", "/people"): "officer", ("POST", "/people/{person}/face"): "officer",
    ("POST", "/people/{person}/finger"): "officer", ("POST", "/people/{person}/activate"): "officer",
    ("POST", "/people/{person}/deactivate"): "officer", ("POST", "/people/{person}/revoke"): "officer",
    # admin: + console users, backups (run, list, download)
    ("GET", "/users"): "admin", ("POST", "/users"): "admin", ("POST", "/users/{name}/role"): "admin",
    ("POST", "/users/{name}/passwd"): "admin", ("POST", "/users/{name}/disable"): "admin",
    ("POST", "/users/{name}/enable"): "admin", ("GET", "/backups"): "admin", ("POST", "/backups/run"): "admin",
    ("GET", "/backups/{name}"): "admin",
}
PUBLIC = {("GET", "/login"), ("POST", "/login"), ("POST", "/logout"), ("GET", "/lang/{code}")}
#: harmless values for path parameters: nothing by these names exists
SAMPLES = {"visit": "KJ-20260101-001", "person": "nobody", "name": "x", "alarm_id": "a1", "probe": "rack1",
           "code": "en"}

# -- the gateway's accounts -----------------------------------------------------------------------

ACCOUNTS = {"viewer": "vera", "staff": "sari", "officer": "odi", "admin": "adam"}
DISABLED = "dora"  # a viewer, disabled at set-up
PASSWORDS = {"vera": "Lampu-Kuning-4417", "sari": "Sungai-Batanghari-22", "odi": "Candi-Muaro-Jambi-9",
             "adam": "Kopi-Kerinci-Tubruk-71", "dora": "Angso-Duo-Pulau-58"}
WRONG = "Salah-Sandi-Sekali-3"
CHANGED_PASSWORD = "Jembatan-Gentala-2026"  # of the accounts whose change ends their sessions
#: `dcgate` arguments that disable, demote and re-key an account (its sessions must end)
ACCOUNT_CHANGES = {
    "disable": ("user", "disable", "{name}"),
    "demote": ("user", "role", "{name}", "viewer"),
    "passwd": ("user", "passwd", "{name}", "--password-file", "{file}"),
}
#: how console.login_failed names a typed name that is no account's (people type passwords there)
UNKNOWN = "(tidak dikenal/unknown)"
OFFICER_NAME, OFFICER_NIP = "Odi Saputra", "198503122010121001"
#: words that only a signed-in page may show: a probe, the accounts, the officer, a reading, a database
PROTECTED = ("rack1", "temperature", "Odi Saputra", *ACCOUNTS.values(), DISABLED, "SQLite format")
#: events that record a change (the background ones, readings and the like, are not counted)
CHANGE_KINDS = ("console.", "user.", "person.", "visit.", "backup.", "biometric.", "alarm.acknowledged")

SIM_DOOR = {"name": "main", "auth": "finger", "gpio": "sim", "lock_pin": 23, "contact_pin": 24,
            "exit_button_pin": 25, "unlock_s": 5, "held_open_s": 30, "fingerprint": {"port": "sim"}}


# -- helpers -----------------------------------------------------------------------------------------


def dcgate(config: Path, *args: str) -> str:
    """`dcgate ARGS --config CONFIG`, which must succeed; its standard output."""
    result = run_cli(*args, "--config", str(config))
    assert result.returncode == 0, f"dcgate {' '.join(args)}: exit {result.returncode}\n{result.stdout}{result.stderr}"
    return result.stdout


def secret_file(folder: Path, name: str, password: str) -> Path:
    """An owner-only password file, as `dcgate user add --password-file` wants it."""
    path = folder / f"{name}.password"
    path.write_text(password + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def events_after(database: Path, seq: int = 0, kind: str | None = None) -> list[Event]:
    """Committed events after `seq` (of one kind or prefix*), read-only like `dcgate events`."""
    db = open_for_reading(database)
    try:
        return list(iter_events(db, kind=kind, after_seq=seq))
    finally:
        db.close()


def sample_path(template: str) -> str:
    """A route's path with every {parameter} filled by its harmless sample value (KeyError if none)."""
    return re.sub(r"{(\w+)}", lambda m: urllib.parse.quote(SAMPLES[m.group(1)], safe=""), template)


def route_pairs() -> list[tuple[str, RouteSpec]]:
    """Every (method, spec) of ROUTES; language and sign-out last, so a session outlives the sweep."""
    pairs = [(method, spec) for spec in ROUTES for method in spec.methods]
    return sorted(pairs, key=lambda p: (p[1].path == "/logout", p[1].path.startswith("/lang/")))


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (owner-only), made with `cryptography`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dcgate test console")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "web.crt", folder / "web.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


@dataclass
class Console:
    """A running gateway with its console, its accounts and their passwords."""

    gw: GatewayProcess
    config: Path
    url: str
    folder: Path
    tls: ssl.SSLContext | None = None
    passwords: dict[str, str] = field(default_factory=dict)

    @property
    def database(self) -> Path:
        return self.gw.config.database_path

    def client(self, source: str = "127.0.0.1") -> ConsoleClient:
        return ConsoleClient(self.url, tls=self.tls, source=source)

    def signed_in(self, account: str) -> ConsoleClient:
        client = self.client()
        client.sign_in(account, self.passwords[account])
        return client

    def add_user(self, name: str, role: str, password: str, person: str | None = None) -> None:
        """`dcgate user add NAME --role ROLE --password-file F [--person NIP]`, as an admin types it."""
        dcgate(self.config, "user", "add", name, "--role", role, "--password-file",
               str(secret_file(self.folder, name, password)), *(["--person", person] if person else []))
        self.passwords[name] = password

    def add_users(self, *accounts: tuple[str, str, str, str | None]) -> None:
        """Several `add_user(name, role, password, person)` at once (each `dcgate` is its own process)."""
        with ThreadPoolExecutor(max_workers=4) as pool:
            for done in [pool.submit(self.add_user, *account) for account in accounts]:
                done.result()

    def control(self, op: str, **params: Any) -> Any:
        """An operation on the control socket, the same one `dcgate` sends (quicker than a process)."""
        return self.gw.control(op, {"by": "cli:test", **params})

    def quick_user(self, name: str, role: str, password: str) -> None:
        """The control socket's `user.add`, what `dcgate user add` sends to a running gateway."""
        self.control("user.add", name=name, role=role, password=password)
        self.passwords[name] = password

    def accounts(self) -> list[dict[str, Any]]:
        return self.control("user.list")

    def events(self, kind: str | None = None, after: int = 0, **match: Any) -> list[Event]:
        return [e for e in events_after(self.database, after, kind)
                if all(e.fields.get(k) == v for k, v in match.items())]

    def wait_event(self, kind: str, timeout: float = 10, after: int = 0, **match: Any) -> Event:
        """The first committed event of `kind` after `after` whose fields include `match`, waited for."""
        found = wait_until(lambda: self.events(kind, after, **match), timeout,
                           message=lambda: f"{kind} {match}; have {[e.fields for e in self.events(kind, after)]}"
                                           f"\n{self.gw.log_tail()}")
        return found[0]

    def barrier(self, admin: ConsoleClient, label: str) -> int:
        """A refused change by `admin` (a console.action), waited for: every event queued before it is
        committed once it is (one writer, in order). Returns its seq."""
        target = f"barrier-{label}"
        reply = admin.post("/users", {"name": target, "role": "viewer", "password": "-"})
        assert reply.status == 303, reply.text[:300]
        return self.wait_event("console.action", target=target, result="refused").seq


def start_console(start: Callable[[Path], GatewayProcess], folder: Path, mqtt_port: int, *,
                  web: dict[str, Any] | None = None, tls: bool = False) -> Console:
    """Write the config (probe, door, [web], [backup]), start the gateway, wait for the console."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    web_table: dict[str, Any] = {"listen": "127.0.0.1", "port": port, **(web or {})}
    context = None
    if tls:
        cert, key = self_signed(folder)
        web_table |= {"tls_cert": str(cert), "tls_key": str(key)}
        context = ssl.create_default_context(cafile=str(cert))
    overrides: dict[str, Any] = {
        "access": {"key_file": str(generate_key_file(folder / "biometric.key")), "timezone": "Asia/Jakarta"},
        "doors": [SIM_DOOR], "web": web_table, "backup": {"dir": str(folder / "backups")},
    }
    config = write_config(folder / "dcgate.toml", base_config(folder / "data", mqtt_port, **overrides))
    gw = start(config)
    console = Console(gw, config, f"{'https' if tls else 'http'}://127.0.0.1:{port}", folder, context)
    wait_until(lambda: _answers(console), 10, message=lambda: f"the console on {console.url}\n{gw.log_tail()}")
    return console


def _answers(console: Console) -> bool:
    """The sign-in form is served (the process may be up a moment before the console listens)."""
    try:
        return console.client().get("/login").status == 200
    except OSError:
        return False


# -- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """One gateway for the module: an account per role, the officer linked to an officer, one disabled."""
    root = tmp_path_factory.mktemp("console-security")
    broker = Mosquitto(root / "mosquitto").start()
    started: list[GatewayProcess] = []

    def start(config: Path) -> GatewayProcess:
        started.append(GatewayProcess(config).start())
        return started[-1]

    try:
        # login_attempts at its maximum: this gateway's tests sign in many times from one address
        made = start_console(start, root / "gw", broker.port, web={"login_attempts": 100})
        made.control("person.add", name=OFFICER_NAME, nip=OFFICER_NIP, role="officer")
        made.add_users(*((name, role, PASSWORDS[name], OFFICER_NIP if role == "officer" else None)
                         for role, name in ACCOUNTS.items()))
        for name in (DISABLED, *(f"dina-{change}" for change in ACCOUNT_CHANGES)):
            made.quick_user(name, "viewer" if name == DISABLED else "staff",
                            PASSWORDS[DISABLED] if name == DISABLED else CHANGED_PASSWORD)
        made.control("user.disable", name=DISABLED)
        yield made
    finally:
        for gw in started:
            gw.kill()
        broker.stop()


@pytest.fixture
def admin(console: Console) -> ConsoleClient:
    return console.signed_in(ACCOUNTS["admin"])


# -- 1. the sweep ------------------------------------------------------------------------------------


def test_the_route_table_is_the_contract() -> None:
    """Every route the app serves is a `route()` (so it is guarded and swept), with the role the docs give."""
    declared = {(method, spec.path): spec.role for spec in ROUTES for method in spec.methods}
    assert len(declared) == sum(len(spec.methods) for spec in ROUTES), "a (method, path) registered twice"
    assert declared == CONTRACT, (
        f"routes differ from docs/console.md: new or changed {sorted(set(declared.items()) - set(CONTRACT.items()))}"
        f", missing {sorted(set(CONTRACT.items()) - set(declared.items()))}")
    assert {pair for pair, role in declared.items() if role is None} == PUBLIC
    assert {spec.kind for spec in ROUTES} <= {"page", "api", "file", "action"}
    assert all(spec.kind == "action" for spec in ROUTES if "POST" in spec.methods)
    served: set[tuple[str, str]] = set()
    mounts: list[str] = []
    for entry in web_app.build_app(None).routes:  # type: ignore[arg-type]
        methods = getattr(entry, "methods", None)
        if methods is None:
            mounts.append(entry.path)
            continue
        served |= {(m, entry.path) for m in methods if m != "HEAD"}
    assert served == set(declared), f"served but not declared with route(): {sorted(served - set(declared))}"
    assert mounts == ["/static"]


def _judge(method: str, spec: RouteSpec, who: str, reply: Reply, path: str) -> str | None:
    """What is wrong with this answer for this identity, or None."""
    role = None if who == "anonymous" else who
    status = reply.status
    if who == "anonymous" and (leaked := [w for w in PROTECTED if re.search(rf"\b{re.escape(w)}\b", reply.text)]):
        return f"anonymous answer shows {leaked}"
    if spec.role is None:
        if status == 403:
            return "a public route refused (403)"
        if status == 401 and not (spec.path == "/login" and 'name="password"' in reply.text):
            return "a public route asks to sign in (401)"
        return f"server error {status}" if status >= 500 else None
    if role is None:
        if method == "GET" and spec.kind == "page":
            want = f"/login?next={urllib.parse.quote(path, safe='')}"
            return None if (status, reply.location) == (303, want) else f"want 303 to {want}, got {reply.location!r}"
        return None if status == 401 else "want 401"
    if not role_at_least(role, spec.role):
        if status != 403:
            return "want 403"
        return None if reply.content_type.startswith("text/html") else "a 403, but not the role's (CSRF?)"
    if status in (401, 403):
        return "an allowed role refused"
    if status >= 500:
        return f"server error {status}"
    return None


def test_sweep_every_route_for_every_role(console: Console) -> None:
    """Anonymous, viewer, staff, officer, admin on every (method, route): the guard answers as documented."""
    clients = {"anonymous": console.client()} | {role: console.signed_in(ACCOUNTS[role]) for role in ROLES}
    rows: list[str] = []
    swept: set[tuple[str, str]] = set()
    asked = 0
    for method, spec in route_pairs():
        path = sample_path(spec.path)
        swept.add((method, spec.path))
        for who, client in clients.items():
            reply = client.get(path) if method == "GET" else client.post(path, {})
            asked += 1
            if spec.path == "/logout":
                client.token = None
            problem = _judge(method, spec, who, reply, path)
            if problem:
                rows.append(f"{method:<5} {path:<40} {who:<9} {reply.status:<4} {problem}")
    for who, client in clients.items():  # /static is public too, and never a guarded page
        reply = client.get("/static/app.css")
        if reply.status != 200 or "text/css" not in reply.content_type:
            rows.append(f"GET   /static/app.css{'':<25} {who:<9} {reply.status:<4} want 200 text/css")
    header = f"{'':5} {'path':<40} {'who':<9} got  problem"
    assert not rows, f"{len(rows)} mismatches of the console's access rules:\n{header}\n" + "\n".join(rows)
    assert swept == {(m, s.path) for s in ROUTES for m in s.methods} and len(swept) == len(CONTRACT)
    assert asked == len(CONTRACT) * 5


# -- 2. CSRF -----------------------------------------------------------------------------------------


def _would_change(path: str, console: Console) -> dict[str, str]:
    """For each POST route, a form that would change something if the request were accepted."""
    forms: dict[str, dict[str, str]] = {
        "/login": {"name": ACCOUNTS["admin"], "password": console.passwords[ACCOUNTS["admin"]], "next": "/"},
        "/users": {"name": "csrf-victim", "role": "admin", "password": "Pintu-Belakang-2026"},
        "/users/{name}/role": {"name": "sari", "role": "admin"},
        "/users/{name}/passwd": {"name": "vera", "password": "Pintu-Belakang-2026"},
        "/users/{name}/disable": {"name": "vera"},
        "/users/{name}/enable": {"name": DISABLED},
        "/people": {"name": "Penyusup Palsu", "nip": "199001012015012002", "role": "staff"},
        "/people/{person}/deactivate": {"person": OFFICER_NIP, "reason": "csrf"},
        "/people/{person}/revoke": {"person": OFFICER_NIP, "reason": "csrf"},
        "/visits": {"kind": "guest", "name": "Dewi Lestari", "org": "Bappeda", "id_type": "PASPOR",
                    "id_number": "B1234567", "purpose": "Melihat ruang server"},
    }
    return forms.get(path, {})


def _post_path(template: str, form: dict[str, str]) -> str:
    """The path with its parameters from the form where it names them (the victim), else the samples."""
    return re.sub(r"{(\w+)}", lambda m: urllib.parse.quote(form.get(m.group(1), SAMPLES[m.group(1)]), safe=""),
                  template)


def test_csrf_every_post_refused_without_the_sessions_token_and_nothing_changes(console: Console,
                                                                                 admin: ConsoleClient) -> None:
    other = console.signed_in(ACCOUNTS["viewer"])
    anonymous = console.client()
    tokens = {"another signed-in session's": other.csrf(), "the sign-in form's": anonymous.csrf(),
              "a wrong": "A" * 43}
    token = admin.csrf()
    users_before = console.accounts()
    start = console.barrier(admin, "csrf-start")
    refusals: list[str] = []
    posts = [spec for spec in ROUTES if "POST" in spec.methods]
    for spec in posts:
        form = _would_change(spec.path, console)
        path = _post_path(spec.path, form)
        attempts: list[tuple[str, str | None, dict[str, str]]] = [
            ("no csrf field", None, {}),
            *((f"{label} token", value, {}) for label, value in tokens.items()),
            ("the right token, Origin http://evil.example", token, {"Origin": "http://evil.example"}),
            ("the right token, Referer http://evil.example/x", token, {"Referer": "http://evil.example/x"}),
            ("the right token, Origin on another port", token,
             {"Origin": f"http://127.0.0.1:{urllib.parse.urlsplit(console.url).port + 1}"}),
        ]
        for label, value, headers in attempts:
            reply = admin.post(path, form, csrf=value, headers=headers)
            if reply.status != 403 or not reply.content_type.startswith("text/plain"):
                refusals.append(f"POST {path:<34} {label:<45} -> {reply.status} {reply.text[:60]!r}")
    assert not refusals, f"{len(refusals)} POSTs not refused with 403:\n" + "\n".join(refusals)
    end = console.barrier(admin, "csrf-end")
    changed = [f"#{e.seq} {e.kind} {e.fields}" for e in console.events(after=start)
               if e.seq < end and e.kind.startswith(CHANGE_KINDS)]
    assert not changed, "refused POSTs changed the store:\n" + "\n".join(changed)
    assert console.accounts() == users_before
    assert admin.get("/").status == 200 and other.get("/").status == 200  # the sign-outs were refused too
    # the same change with the right token from this console's own origin is accepted: the forms were real
    form = _would_change("/users", console) | {"name": "csrf-control", "role": "viewer"}
    reply = admin.post("/users", form, headers={"Origin": console.url, "Referer": console.url + "/users"})
    assert reply.status == 303 and reply.location == "/users"
    console.wait_event("user.added", user="csrf-control", by=f"console:{ACCOUNTS['admin']}")
    reply = admin.post("/users/csrf-control/disable", {}, csrf=False, headers={"X-CSRF-Token": token})
    assert reply.status == 303
    console.wait_event("user.disabled", user="csrf-control")


# -- 3. path traversal -------------------------------------------------------------------------------

TRAVERSALS = [
    "/backups/../../etc/passwd",
    "/backups/..%2F..%2Fetc%2Fpasswd",
    "/backups/%2e%2e%2fdcgate.db",
    "/backups/..",  # these two reach the download handler itself
    "/backups/%2e%2e",
    "/backups/.%2e%2fdata%2fdcgate.db",
    "/static/../gateway/service.py",
    "/static/..%2f..%2fservice.py",
    "/static/../app.py",  # gateway/web/app.py is the static folder's neighbour
    "/static/%2e%2e/security.py",
    "/static/..%2fsecurity.py",
    "/reports/download?kind=../../x&month=2026-01&fmt=pdf",
    "/reports/download?kind=env&month=../../../etc/passwd&fmt=pdf",
    "/reports/download?kind=env&month=2026-01&fmt=../../x",
    "/api/chart/..%2f..%2fetc%2fpasswd.svg",
    "/api/chart/%2e%2e.svg",
    "/visits/%2e%2e/minutes.pdf",
    "/lang/..%2f..%2fetc%2fpasswd",
]
LEAKS = ("root:", "SQLite format", "from __future__", "import ", "def ", "[web]")


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_never_serves_a_file(console: Console, admin: ConsoleClient, path: str) -> None:
    reply = admin.get(path)
    leaked = [word for word in LEAKS if word in reply.text]
    assert 400 <= reply.status < 500 and not leaked, f"{path}: {reply.status} showing {leaked}\n{reply.text[:300]}"


def test_backups_download_for_admins_only_and_only_backups(console: Console, admin: ConsoleClient) -> None:
    """The positive control of the traversal cases: a real copy downloads, and nothing else does."""
    start = console.barrier(admin, "backup-start")
    assert admin.post("/backups/run").status == 303
    made = console.wait_event("backup.completed", timeout=20, after=start, by=f"console:{ACCOUNTS['admin']}")
    name = made.fields["file"]
    assert name in admin.get("/backups").text
    reply = admin.get(f"/backups/{name}")
    assert reply.status == 200 and reply.body.startswith(b"SQLite format 3\x00")
    assert "attachment" in reply.headers.get("Content-Disposition", "") and "no-store" in reply.headers["Cache-Control"]
    console.wait_event("console.action", after=start, action="backup.download", target=name, result="ok")
    for role in ("viewer", "staff", "officer"):
        refused = console.signed_in(ACCOUNTS[role]).get(f"/backups/{name}")
        assert refused.status == 403 and b"SQLite" not in refused.body, role
    anonymous = console.client().get(f"/backups/{name}")
    assert anonymous.status == 401 and b"SQLite" not in anonymous.body
    # a link planted in the folder under a backup's name, and the live database's own name: not served
    folder = Path(made.fields["dir"])
    planted = f"dcgate-{console.gw.config.site}-{console.gw.config.gateway}-20260101-000000.db"
    (folder / planted).symlink_to(console.database)
    (folder / "dcgate-x-20260101-000001.db").symlink_to("/etc/passwd")
    for bad in (planted, "dcgate-x-20260101-000001.db", console.database.name, "laporan-backup.csv"):
        reply = admin.get(f"/backups/{urllib.parse.quote(bad)}")
        assert reply.status == 404 and b"SQLite" not in reply.body and b"root:" not in reply.body, bad


# -- 4. sign-in throttling ---------------------------------------------------------------------------


def test_failed_sign_ins_look_the_same_whatever_failed(console: Console) -> None:
    """Unknown name, wrong password, right password of a disabled account: one status, one page."""
    start = console.barrier(console.signed_in(ACCOUNTS["admin"]), "alike")
    tries = {"nobody-here": WRONG, ACCOUNTS["viewer"]: WRONG, DISABLED: PASSWORDS[DISABLED]}
    pages: dict[str, tuple[int, str, str]] = {}
    for name, password in tries.items():
        client = console.client()
        reply = client.sign_in(name, password, expect=None)
        token = client.csrf()
        page = reply.text.replace(token, "TOKEN").replace(f'value="{name}"', 'value="NAME"')
        pages[name] = (reply.status, reply.content_type, page)
        assert client.get("/").status == 303  # and not signed in
    assert {status for status, _, _ in pages.values()} == {401}
    assert len(set(pages.values())) == 1, "the sign-in form tells the failures apart"
    recorded = {UNKNOWN if name == "nobody-here" else name: name for name in tries}
    reasons = {recorded[user]: console.wait_event("console.login_failed", after=start, user=user).fields
               for user in recorded}
    assert {name: fields["reason"] for name, fields in reasons.items()} == {
        "nobody-here": "unknown_or_wrong", ACCOUNTS["viewer"]: "unknown_or_wrong", DISABLED: "disabled"}
    assert all(fields["address"] == "127.0.0.1" and set(fields) == {"user", "address", "reason"}
               for fields in reasons.values())


def test_throttle_locks_the_name_and_the_address(broker: Mosquitto, gateway_factory: Callable[..., GatewayProcess],
                                                 tmp_path: Path) -> None:
    """3 failures within the window lock the name (from any address) and the address (for any name);
    a locked attempt is answered 429 without being checked, and the lock ends by itself."""
    gate = start_console(gateway_factory, tmp_path / "gw", broker.port,
                         web={"login_attempts": 3, "login_lockout_min": 0.08})  # 4.8 s
    gate.quick_user("tari", "staff", "Rumah-Panggung-2026")
    gate.quick_user("budi", "viewer", "Tugu-Keris-Siginjai-8")
    here, elsewhere, third = gate.client("127.0.0.1"), gate.client("127.0.0.2"), gate.client("127.0.0.3")
    for _ in range(3):
        assert here.sign_in("tari", WRONG, expect=None).status == 401
    locked = here.sign_in("tari", gate.passwords["tari"], expect=None)  # the right password, now locked
    assert locked.status == 429 and 'name="password"' in locked.text, locked.text[:300]
    assert here.get("/").status == 303
    assert here.sign_in("budi", gate.passwords["budi"], expect=None).status == 429  # this address is locked
    assert elsewhere.sign_in("tari", gate.passwords["tari"], expect=None).status == 429  # this name is locked
    third.sign_in("budi", gate.passwords["budi"])  # another name from another address: not locked
    assert third.get("/").status == 200
    failed = wait_until(lambda: (found := gate.events("console.login_failed"))[5:] and found, 10,
                        message="six console.login_failed")
    assert [(e.fields["user"], e.fields["address"], e.fields["reason"]) for e in failed] == [
        ("tari", "127.0.0.1", "unknown_or_wrong")] * 3 + [
        ("tari", "127.0.0.1", "locked"), ("budi", "127.0.0.1", "locked"), ("tari", "127.0.0.2", "locked")]
    assert not gate.events("console.login", user="tari")
    # locked attempts are not counted: trying all along, the right password gets in once the lock ends
    wait_until(lambda: elsewhere.sign_in("tari", gate.passwords["tari"], expect=None).status == 303, 15,
               interval=0.25, message="tari's lock to end")
    assert elsewhere.get("/").status == 200
    gate.wait_event("console.login", user="tari", address="127.0.0.2")


# -- 5. sessions -------------------------------------------------------------------------------------


def _flags(set_cookie: str | None) -> dict[str, str]:
    """The attributes of one Set-Cookie line, lower-cased names ("httponly" -> "")."""
    assert set_cookie, "no Set-Cookie for the session"
    parts = [p.strip() for p in set_cookie.split(";")[1:]]
    return {p.split("=", 1)[0].lower(): (p.split("=", 1)[1] if "=" in p else "") for p in parts}


OFFSITE = ["//evil.example/", "https://evil.example/", "/\\evil.example", "\\\\evil.example", "/\t/evil.example",
           "/\r\n/evil.example", " //evil.example", "http:evil.example", "javascript:alert(1)"]


def test_redirects_stay_on_the_console(console: Console) -> None:
    """`next` after sign-in and after a language change never leads to another site."""
    def offsite(location: str) -> bool:
        """As a browser reads a Location: tabs and newlines dropped, leading controls and spaces trimmed,
        a backslash taken for a slash (percent-escapes are not decoded: "/%09/x" is a path here)."""
        cleaned = re.sub(r"[\t\n\r]", "", location).lstrip("\x00\x01\x02\x03\x04\x05\x06\x07\x08 ")
        cleaned = cleaned.replace("\\", "/")
        return not cleaned.startswith("/") or cleaned.startswith("//")

    problems = []
    for target in OFFSITE:
        query = urllib.parse.urlencode({"next": target})
        reply = console.client().get(f"/lang/en?{query}")
        if reply.status != 303 or offsite(reply.location):
            problems.append(f"/lang/en next={target!r}: {reply.status} {reply.location!r}")
        client = console.client()
        form = client.get("/login")
        reply = client.post("/login", {"name": ACCOUNTS["viewer"], "password": PASSWORDS[ACCOUNTS["viewer"]],
                                       "next": target}, csrf=form.csrf())
        if reply.status != 303 or offsite(reply.location):
            problems.append(f"POST /login next={target!r}: {reply.status} {reply.location!r}")
    assert not problems, "\n".join(problems)
    client = console.client()
    reply = client.sign_in(ACCOUNTS["staff"], PASSWORDS[ACCOUNTS["staff"]])
    assert reply.location == "/"
    assert client.get("/login?next=/logbook").location == "/logbook"  # a path here is kept


def test_session_cookie_is_httponly_strict_and_not_secure_over_http(console: Console) -> None:
    client = console.client()
    form = client.get("/login")
    signed = client.sign_in(ACCOUNTS["viewer"], PASSWORDS[ACCOUNTS["viewer"]])
    for reply in (form, signed):
        flags = _flags(reply.set_cookie())
        assert "httponly" in flags and flags.get("samesite", "").lower() == "strict" and flags.get("path") == "/"
        assert "secure" not in flags and "domain" not in flags


def test_session_id_changes_at_sign_in_and_a_planted_id_is_not_adopted(console: Console) -> None:
    client = console.client()
    client.get("/login")
    before = client.session_cookie
    client.sign_in(ACCOUNTS["staff"], PASSWORDS[ACCOUNTS["staff"]])
    after = client.session_cookie
    assert before and after and after != before
    assert client.get("/logbook").status == 200
    stale = console.client()
    stale.use_session_cookie(before)  # the sign-in form's id (an attacker could have planted it)
    reply = stale.get("/logbook")
    assert reply.status == 303 and reply.location == "/login?next=%2Flogbook"
    assert stale.session_cookie not in (None, before, after)  # a new anonymous id, not the old one
    forged = console.client()
    forged.use_session_cookie("x" * 43)
    assert forged.get("/").status == 303 and forged.session_cookie != "x" * 43


def test_sign_out_ends_the_session(console: Console) -> None:
    client = console.signed_in(ACCOUNTS["officer"])
    cookie, token = client.session_cookie, client.csrf()
    assert cookie and client.get("/people").status == 200
    reply = client.sign_out()
    assert reply.status == 303 and reply.location == "/login"
    assert client.session_cookie != cookie
    console.wait_event("console.logout", user=ACCOUNTS["officer"], reason="requested")
    old = console.client()
    old.use_session_cookie(cookie)
    assert old.get("/people").status == 303
    old.use_session_cookie(cookie)
    # the ended session is nobody: refused as not signed in, before its form is even read
    assert old.post("/people", {"name": "Sesudah Keluar", "nip": "199001012015012002", "role": "staff"},
                    csrf=token).status == 401


@pytest.mark.parametrize("change", list(ACCOUNT_CHANGES))
def test_an_account_change_ends_its_sessions_at_once(console: Console, change: str) -> None:
    """Disabled, demoted or re-keyed with `dcgate user`: every open session of the account ends at once."""
    name = f"dina-{change}"
    client, second = console.signed_in(name), console.signed_in(name)
    assert client.get("/logbook").status == 200 and second.get("/visits").status == 200
    new_file = secret_file(console.folder, f"{name}-new", "Jembatan-Baru-2027")
    dcgate(console.config, *(a.format(name=name, file=new_file) for a in ACCOUNT_CHANGES[change]))
    for browser in (client, second):  # every session of the account, at once
        reply = browser.get("/logbook")
        assert reply.status == 303 and reply.location.startswith("/login?next="), reply.status
    console.wait_event("console.logout", user=name, reason="account_changed")


def test_an_idle_session_ends_and_is_recorded(broker: Mosquitto, gateway_factory: Callable[..., GatewayProcess],
                                              tmp_path: Path) -> None:
    """session_idle_min: an untouched session ends (console.logout reason idle, once); a used one lives on."""
    gate = start_console(gateway_factory, tmp_path / "gw", broker.port, web={"session_idle_min": 0.04})  # 2.4 s
    gate.quick_user("rudi", "viewer", "Danau-Sipin-Biru-2026")
    gate.quick_user("rina", "viewer", "Pasar-Angso-Duo-2026")
    client, keeper = gate.client(), gate.signed_in("rina")
    client.sign_in("rudi", gate.passwords["rudi"])
    cookie = client.session_cookie
    assert client.get("/").status == 200

    def rudi_ended_while_rina_works() -> list[Event]:
        """Rina keeps using her session; nothing touches Rudi's, which the gateway's own sweep ends."""
        assert keeper.get("/health").status == 200, "a session in use ended"
        return gate.events("console.logout", user="rudi")

    [ended] = wait_until(rudi_ended_while_rina_works, 20, interval=0.3, message="rudi's session to end")
    assert ended.fields["reason"] == "idle" and ended.fields["address"] == "127.0.0.1"
    assert keeper.get("/health").status == 200
    reply = client.get("/")
    assert reply.status == 303 and reply.location == "/login?next=%2F" and client.session_cookie != cookie
    after = gate.events()[-1].seq
    client.sign_in("rudi", gate.passwords["rudi"])
    gate.wait_event("console.login", after=after, user="rudi")
    assert len(gate.events("console.logout", user="rudi")) == 1  # recorded once, not again at the next request


def test_tls_console_marks_the_cookie_secure(broker: Mosquitto, gateway_factory: Callable[..., GatewayProcess],
                                             tmp_path: Path) -> None:
    gate = start_console(gateway_factory, tmp_path / "gw", broker.port, tls=True)
    gate.quick_user("sinta", "viewer", "Batik-Jambi-Durian-7")
    client = gate.client()
    form = client.get("/login")
    signed = client.sign_in("sinta", gate.passwords["sinta"])
    for reply in (form, signed):
        flags = _flags(reply.set_cookie())
        assert {"secure", "httponly"} <= set(flags) and flags.get("samesite", "").lower() == "strict"
    assert client.get("/").status == 200
    plain = ConsoleClient(gate.url.replace("https://", "http://"))
    try:  # no page in clear text: the connection fails, or at most an error status
        reply = plain.get("/login")
    except (OSError, http.client.HTTPException):
        return
    assert reply.status >= 400 and 'name="password"' not in reply.text, reply.status


# -- 6. headers --------------------------------------------------------------------------------------


def _header_problems(reply: Reply, path: str, who: str, *, route: bool = True) -> list[str]:
    """What is missing from this answer's headers; `route`: an answer of a console route (never cached)."""
    problems = []
    if reply.headers.get("X-Content-Type-Options") != "nosniff":
        problems.append("X-Content-Type-Options")
    if route and "no-store" not in reply.headers.get("Cache-Control", ""):
        problems.append(f"Cache-Control {reply.headers.get('Cache-Control')!r}")
    if reply.content_type.startswith("text/html"):
        policy = reply.headers.get("Content-Security-Policy", "")
        csp = {d.strip().split(" ", 1)[0]: d.strip() for d in policy.split(";")}
        if csp.get("script-src") != "script-src 'self'":
            problems.append(f"CSP script-src {csp.get('script-src')!r}")
        if csp.get("frame-ancestors") != "frame-ancestors 'none'":
            problems.append("CSP frame-ancestors")
        if reply.headers.get("X-Frame-Options") != "DENY":
            problems.append("X-Frame-Options")
    return [f"{path} as {who} ({reply.status}): {p}" for p in problems]


def test_security_headers_on_every_answer(console: Console) -> None:
    clients = {"anonymous": console.client(), "viewer": console.signed_in(ACCOUNTS["viewer"]),
               "admin": console.signed_in(ACCOUNTS["admin"])}
    gets = [sample_path(spec.path) for spec in ROUTES if "GET" in spec.methods]
    problems: list[str] = []
    html = 0
    for who, client in clients.items():
        for path in [*gets, "/visits/KJ-20990101-999", "/no/such/page"]:
            reply = client.get(path)
            html += reply.content_type.startswith("text/html")
            problems += _header_problems(reply, path, who, route=path != "/no/such/page")
    anonymous = clients["anonymous"]
    reply = anonymous.post("/login", {"name": "nobody-here", "password": WRONG})  # the 401 sign-in page
    problems += _header_problems(reply, "POST /login", "anonymous")
    problems += _header_problems(anonymous.post("/login", {}, csrf=False), "POST /login no csrf", "anonymous")
    assert not problems, "\n".join(problems)
    assert html >= 20  # the check did see the pages (login, dashboard, 403s, 404s...)


# -- 7. audit ----------------------------------------------------------------------------------------


def test_console_changes_are_audited_and_no_password_is_stored(console: Console, admin: ConsoleClient) -> None:
    admin_name = ACCOUNTS["admin"]
    start = console.barrier(admin, "audit-start")
    passwords = {"added": "Gong-Perdamaian-2026", "changed": "Masjid-Seribu-Tiang-9", "short": "Pndk-7q",
                 "typed": "sandi-di-kolom-nama-5"}
    reply = admin.post("/users", {"name": "audit-new", "role": "viewer", "password": passwords["added"]})
    assert reply.status == 303
    done = console.wait_event("console.action", after=start, target="audit-new")
    assert done.fields == {"user": admin_name, "role": "admin", "address": "127.0.0.1", "action": "user.add",
                           "target": "audit-new", "result": "ok"}
    added = console.wait_event("user.added", after=start, user="audit-new")
    assert added.fields["by"] == f"console:{admin_name}" and added.seq < done.seq
    admin.post("/users", {"name": "audit-short", "role": "viewer", "password": passwords["short"]})
    refused = console.wait_event("console.action", after=start, target="audit-short").fields
    assert (refused["result"], refused["action"], refused["user"]) == ("refused", "user.add", admin_name)
    assert "at least 10" in refused["error"]
    assert "audit-short" not in {account["name"] for account in console.accounts()}
    admin.post("/users/audit-new/passwd", {"password": passwords["changed"]})
    console.wait_event("user.password_changed", after=start, user="audit-new")
    console.wait_event("console.action", after=start, action="user.passwd", target="audit-new", result="ok")
    # a staff member requests a visit
    staff = console.signed_in(ACCOUNTS["staff"])
    reply = staff.post("/visits", {"kind": "guest", "name": "Rahmat Hidayat", "org": "Bappeda Provinsi",
                                   "id_type": "PASPOR", "id_number": "C7654321", "purpose": "Melihat ruang server"})
    assert reply.status == 303 and reply.location.startswith("/visits/"), reply.location
    visit = console.wait_event("console.action", after=start, action="visit.request").fields
    assert visit == {"user": ACCOUNTS["staff"], "role": "staff", "address": "127.0.0.1", "action": "visit.request",
                     "target": "Rahmat Hidayat", "result": "ok"}
    # sign-ins with the new password, and a wrong one, also leave no trace of either
    fresh = console.client()
    fresh.sign_in("audit-new", passwords["changed"])
    console.client().sign_in("audit-new", passwords["added"], expect=401)
    after = console.wait_event("console.login_failed", after=start, user="audit-new").seq
    console.client().sign_in(passwords["typed"], "Tab-Terlewat-2026", expect=401)  # a password in the name field
    assert console.wait_event("console.login_failed", after=after).fields["user"] == UNKNOWN
    end = console.barrier(admin, "audit-end")
    assert end > start
    secrets = [*PASSWORDS.values(), *passwords.values(), WRONG, "Tab-Terlewat-2026", *console.passwords.values()]
    assert admin.post("/backups/run").status == 303  # a copy of the store holds what the store holds
    console.wait_event("backup.completed", timeout=20, after=end)
    files = [*console.database.parent.iterdir(), *(console.folder / "backups").iterdir()]
    stored = {str(path): path.read_bytes() for path in files if path.is_file()}
    assert any(name.endswith(".db") for name in stored) and len(stored) > 2
    found = [(secret, name) for secret in secrets for name, data in stored.items() if secret.encode() in data]
    in_log = [secret for secret in secrets if secret in console.gw.log_text()]
    payloads = [e for e in console.events() if any(s in str(e.fields) for s in secrets)]
    assert not found and not in_log and not payloads, f"passwords stored: {found}, logged: {in_log}, {payloads}"


def test_the_live_dashboard_does_not_keep_an_idle_session_alive(make_config, gateway_factory, tmp_path) -> None:
    """Regression: the dashboard's own 5 s refresh counted as activity, so an open tab never went idle."""
    from tests.support.console import start_console
    from tests.support.waiting import wait_until

    console = start_console(make_config, gateway_factory, tmp_path, web={"session_idle_min": 0.04})
    account = console.account("wati", "viewer")
    client = console.client()
    client.sign_in(account.name, account.password)
    # the page's own fetches only: they must not count as someone at the screen
    wait_until(lambda: client.get("/dashboard/live").status == 401, 20, interval=0.5,
               message="the session to end while only the live part was fetched")
    console.wait_event("console.logout", user="wati", reason="idle")
