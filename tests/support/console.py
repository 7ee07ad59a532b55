"""The web console under test: a real gateway with `[web]` on a free port (`start_console`), people and
accounts (`Console.person`, `Console.account`: the operations `dcgate person add` and `dcgate user add`
call, or that command itself), its events read back from the store, and `ConsoleClient`, a signed-in
HTTP client (urllib, a cookie jar, the CSRF token of the last page) for tests that need no browser.

Generic on purpose: browser tests, security sweeps and anything else that talks to the console share it.
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from access.crypto import generate_key_file
from tests.support.eventstore import committed_events
from tests.support.gateway_proc import GatewayProcess, run_cli
from tests.support.ports import free_port, port_open
from tests.support.waiting import wait_until

#: a password the account rules accept (10+ characters, not the name, not one repeated character)
PASSWORD = "kopi-tubruk-2026"
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


def sim_door(**overrides: Any) -> dict[str, Any]:
    """hardware/config/sim.toml's door: simulated pins, a simulated camera and fingerprint sensor."""
    return {
        "name": "main", "auth": "face_or_finger", "gpio": "sim", "lock_pin": 23, "contact_pin": 24,
        "exit_button_pin": 25, "unlock_s": 5, "held_open_s": 30, "liveness": False,
        "camera": {"source": "sim"}, "fingerprint": {"port": "sim"},
    } | overrides


@dataclass
class Account:
    name: str
    role: str
    password: str
    person: str | None  # the linked person's id


@dataclass
class Console:
    """A running gateway with its console; `cli` types `dcgate ... --config` against it."""

    gw: GatewayProcess
    config: Path
    url: str
    accounts: dict[str, Account] = field(default_factory=dict)

    def cli(self, *args: str, input_text: str | None = None) -> str:
        result = run_cli(*args, "--config", str(self.config), input_text=input_text)
        assert result.returncode == 0, (f"dcgate {' '.join(args)}: exit {result.returncode}\n"
                                        f"{result.stdout}{result.stderr}")
        return result.stdout

    def op(self, name: str, params: Mapping[str, Any] | None = None) -> Any:
        """A control-socket operation, the one `dcgate` itself calls (quicker than a CLI process for set-up)."""
        return self.gw.control(name, dict(params or {}))

    def cli_json(self, *args: str) -> Any:
        out = self.cli(*args)
        return json.loads(out[min(i for i in (out.find("{"), out.find("[")) if i >= 0):])

    def person(self, name: str, nip: str, role: str) -> str:
        """A person of the access registry (the op of `dcgate person add`): the new person's id."""
        return str(self.op("person.add", {"name": name, "nip": nip, "role": role, "by": "test"})["id"])

    def account(self, name: str, role: str, *, person: str | None = None, password: str = PASSWORD,
                cli: bool = False) -> Account:
        """A console account, linked to `person` (NIP or id) if given. `cli=True` makes it as an admin would,
        `dcgate user add NAME --role ROLE --password-file -` (the password on standard input, never argv);
        otherwise through `user.add`, the control operation that command calls (no process to start)."""
        if cli:
            args = ["user", "add", name, "--role", role, "--password-file", "-"]
            self.cli(*args, *(["--person", person] if person else []), input_text=password + "\n")
            added = self.events("user.added", user=name)
            person_id = added[-1].get("person") if added else None
        else:
            params = {"name": name, "role": role, "password": password, "by": "test"}
            person_id = self.op("user.add", params | ({"person": person} if person else {})).get("person_id")
        account = Account(name, role, password, person_id)
        self.accounts[name] = account
        return account

    def events(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        """Fields of the committed events of `kind` whose fields include `match`."""
        return [e.fields for e in committed_events(self.gw.config.database_path, kind=kind)
                if all(e.fields.get(k) == v for k, v in match.items())]

    def wait_event(self, kind: str, timeout: float = 10, **match: Any) -> dict[str, Any]:
        """The first committed event of `kind` matching `match`, waited for."""
        found = wait_until(lambda: self.events(kind, **match), timeout,
                           message=lambda: f"{kind} {match}; have {self.events(kind)}\n{self.gw.log_tail()}")
        return found[0]

    def client(self) -> ConsoleClient:
        return ConsoleClient(self.url)


def web_table(port: int | None = None, **extra: Any) -> dict[str, Any]:
    return {"listen": "127.0.0.1", "port": port or free_port(), **extra}


def start_console(make_config: Callable[..., Path], gateway_factory: Callable[..., GatewayProcess],
                  key_dir: Path, *, doors: Sequence[Mapping[str, Any]] = (), web: Mapping[str, Any] | None = None,
                  **overrides: Any) -> Console:
    """A gateway (conftest's `make_config` and `gateway_factory`) serving the console on a free loopback port.

    [access] gets a key made in `key_dir` (doors keep templates, visits ID numbers encrypted with it);
    other keyword arguments override config tables (probes, thresholds, visits...). A port taken
    between choosing and binding is retried once.
    """
    access = {"timezone": "Asia/Jakarta", **overrides.pop("access", {})}
    if "key_file" not in access:  # doors need it for templates, visits for ID numbers
        access["key_file"] = str(generate_key_file(key_dir / "biometric.key"))
    for attempt in range(2):
        port = free_port()
        config = make_config(web=web_table(port, **(web or {})), access=access, doors=[dict(d) for d in doors],
                             **overrides)
        try:
            return _launch(gateway_factory, config, port)
        except AssertionError as exc:  # the port was taken between choosing and binding it: once more
            if attempt or "cannot be used" not in str(exc):
                raise
    raise AssertionError("unreachable")


def _launch(gateway_factory: Callable[..., GatewayProcess], config: Path, port: int) -> Console:
    gw = gateway_factory(config)
    # the control socket (what gateway_factory waits for) answers a moment before the console listens
    wait_until(lambda: port_open(port) or not gw.running, 15,
               message=lambda: f"the console on port {port}\n{gw.log_tail()}")
    assert gw.running, f"gateway exited:\n{gw.log_tail()}"
    return Console(gw, config, f"http://127.0.0.1:{port}")


@dataclass
class Reply:
    status: int
    url: str
    headers: Mapping[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class ConsoleClient:
    """A browser without a browser: cookies kept, the last page's CSRF token sent with each POST.

    `follow=False` returns a redirect itself (status 303 and its Location) instead of following it.
    Never raises on an HTTP status: a 4xx or 5xx is a `Reply` like any other.
    """

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        self.csrf: str | None = None
        cookies = urllib.request.HTTPCookieProcessor(self.jar)
        self._follow = urllib.request.build_opener(cookies)
        self._stay = urllib.request.build_opener(cookies, _NoRedirect())

    def request(self, method: str, path: str, *, data: bytes | None = None, headers: Mapping[str, str] | None = None,
                follow: bool = True, timeout: float = 15) -> Reply:
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=dict(headers or {}))
        opener = self._follow if follow else self._stay
        try:
            with opener.open(req, timeout=timeout) as response:
                reply = Reply(response.status, response.url, dict(response.headers), response.read())
        except urllib.error.HTTPError as exc:
            reply = Reply(exc.code, exc.url or req.full_url, dict(exc.headers or {}), exc.read())
        found = CSRF_FIELD.search(reply.text) if "html" in reply.headers.get("content-type", "") else None
        if found:
            self.csrf = found.group(1)
        return reply

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, fields: Mapping[str, str | Sequence[str]] | None = None, *, csrf: bool = True,
             **kwargs: Any) -> Reply:
        """A form POST; `csrf` adds the token of the last page seen (fetching /login first if none was)."""
        pairs: list[tuple[str, str]] = []
        for key, value in (fields or {}).items():
            pairs += [(key, value)] if isinstance(value, str) else [(key, v) for v in value]
        if csrf:
            if self.csrf is None:
                self.get("/login")
            pairs.append(("csrf", self.csrf or ""))
        body = urllib.parse.urlencode(pairs).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded", **kwargs.pop("headers", {})}
        return self.request("POST", path, data=body, headers=headers, **kwargs)

    def sign_in(self, name: str, password: str = PASSWORD) -> Reply:
        """Sign in through the form; fails the test unless the console lands on its dashboard."""
        self.get("/login")
        reply = self.post("/login", {"name": name, "password": password, "next": "/"})
        assert reply.status == 200 and urllib.parse.urlsplit(reply.url).path == "/", (reply.status, reply.url)
        return reply

    def session_cookie(self) -> str | None:
        return next((c.value for c in self.jar if c.name == "dcgate_session"), None)
