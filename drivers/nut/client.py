"""A small client of the NUT network protocol (what `upsc` and `upsmon` speak to `upsd`, TCP 3493).

The protocol is line based: one command per line, words separated by spaces, multi-word
elements in double quotes with `\\"` and `\\\\` escapes. Replies are `OK ...`, `VAR ...`,
`BEGIN LIST ...` / `END LIST ...`, or `ERR <CODE>`. Every `ERR` becomes a `NutError` subclass whose
message names the server, the UPS and what to check.

Credentials: upsd does not check USERNAME/PASSWORD when they are sent; it checks them only for
privileged commands. Reading is open to anyone upsd LISTENs to. So when a username is configured
the client also sends `LOGIN <ups>` (like a `upsmon secondary`): that is where upsd verifies the
password and the only reason to configure credentials for a monitor. The user then needs
`upsmon secondary` in upsd.users, and the gateway counts in `ups.numlogins`.
"""

from __future__ import annotations

import socket
import threading
from typing import ClassVar

from drivers.errors import InvalidValueError, SensorError

DEFAULT_PORT = 3493
MAX_LINE = 64 * 1024  # a reply line longer than this is not NUT talking


class NutError(SensorError):
    """The UPS could not be read through upsd."""


class NutConnectionError(NutError):
    """No TCP conversation with upsd (refused, timed out, closed mid-reply)."""


class NutProtocolError(NutError):
    """upsd (or whatever listens on that port) sent something that is not the NUT protocol."""


class NutServerError(NutError):
    """upsd answered `ERR <code>`."""

    code: ClassVar[str] = ""
    hint: ClassVar[str] = "see the NUT network protocol documentation"

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.error_code = code or self.code


class NutAccessDenied(NutServerError):
    code = "ACCESS-DENIED"
    hint = ("check [ups] username and password_file against upsd.users; "
            "the user needs `upsmon secondary` (or primary) there")


class NutUnknownUps(NutServerError):
    code = "UNKNOWN-UPS"
    hint = "check [ups] name against `upsc -l {server}`"


class NutDataStale(NutServerError):
    code = "DATA-STALE"
    hint = "the driver has no fresh data from the UPS: check the UPS cable and the driver's log"


class NutDriverNotConnected(NutServerError):
    code = "DRIVER-NOT-CONNECTED"
    hint = "upsd cannot reach the UPS driver: is it running (`upsdrvctl start`)?"


class NutVarNotSupported(NutServerError):
    code = "VAR-NOT-SUPPORTED"
    hint = "this UPS (or its driver) does not report that variable: see `upsc {ups}@{server}`"


_ERRORS: dict[str, type[NutServerError]] = {
    cls.code: cls for cls in (NutAccessDenied, NutUnknownUps, NutDataStale, NutDriverNotConnected, NutVarNotSupported)
}
# other codes that are really about credentials
for _code in ("INVALID-PASSWORD", "INVALID-USERNAME", "USERNAME-REQUIRED", "PASSWORD-REQUIRED"):
    _ERRORS[_code] = NutAccessDenied


def quote(word: str) -> str:
    """One protocol word: bare when safe, else in double quotes with `"` and `\\` escaped."""
    if "\n" in word or "\r" in word:
        # a newline would end the command and start another one: refuse, never pass it on
        raise InvalidValueError(f"NUT protocol words cannot contain line breaks: {word!r}")
    if word and not any(c in word for c in ' \t"\\'):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def split_words(line: str) -> list[str]:
    """Parse one reply line into words, honouring quotes and backslash escapes."""
    words: list[str] = []
    i, n = 0, len(line)
    while i < n:
        if line[i] in " \t":
            i += 1
            continue
        quoted = line[i] == '"'
        if quoted:
            i += 1
        chars: list[str] = []
        while True:
            if i >= n:
                if quoted:
                    raise NutProtocolError(f"unterminated quote in reply {line!r}")
                break
            c = line[i]
            if c == "\\" and i + 1 < n:
                chars.append(line[i + 1])
                i += 2
                continue
            if (quoted and c == '"') or (not quoted and c in " \t"):
                i += 1 if quoted else 0
                break
            chars.append(c)
            i += 1
        words.append("".join(chars))
    return words


class NutClient:
    """One TCP connection to upsd, opened on first use and reopened after it breaks. Thread-safe."""

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, username: str | None = None,
                 password: str | None = None, login_ups: str | None = None, timeout_s: float = 5.0) -> None:
        if (username is None) != (password is None):
            raise InvalidValueError("NUT username and password go together: give both, or neither")
        self.host, self.port = host, port
        self.username, self._password = username, password
        self.login_ups = login_ups if username is not None else None
        self.timeout_s = timeout_s
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._lock = threading.Lock()

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"

    # -- public commands -----------------------------------------------------------------
    def list_vars(self, ups: str) -> dict[str, str]:
        """`LIST VAR <ups>`: every variable the UPS reports, name → value (as text)."""
        rows = self._list(["LIST", "VAR", ups], ups)
        return {words[2]: words[3] for words in rows if len(words) >= 4 and words[0] == "VAR"}

    def get_var(self, ups: str, name: str) -> str:
        """`GET VAR <ups> <name>`: one variable's value."""
        words = self._single(["GET", "VAR", ups, name], ups)
        if len(words) < 4 or words[0] != "VAR":
            raise NutProtocolError(f"upsd at {self.server}: unexpected reply to GET VAR {ups} {name}: {words}")
        return words[3]

    def num_logins(self, ups: str) -> int:
        """`GET NUMLOGINS <ups>`: how many clients LOGINed (i.e. declared they are fed by this UPS)."""
        words = self._single(["GET", "NUMLOGINS", ups], ups)
        if len(words) < 3 or words[0] != "NUMLOGINS" or not words[2].isdigit():
            raise NutProtocolError(f"upsd at {self.server}: unexpected reply to GET NUMLOGINS {ups}: {words}")
        return int(words[2])

    def list_ups(self) -> dict[str, str]:
        """`LIST UPS`: the UPS names upsd serves, name → description."""
        rows = self._list(["LIST", "UPS"], None)
        return {words[1]: words[2] if len(words) > 2 else "" for words in rows if words[:1] == ["UPS"]}

    def close(self) -> None:
        """Say LOGOUT (upsd then forgets our LOGIN at once) and close the connection."""
        with self._lock:
            if self._sock is not None:
                try:
                    self._send(["LOGOUT"])
                    self._read_line()
                except (OSError, NutError):
                    pass  # closing anyway; upsd notices the closed socket
            self._drop()

    def __enter__(self) -> NutClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- request plumbing ----------------------------------------------------------------
    def _single(self, words: list[str], ups: str | None) -> list[str]:
        with self._lock:
            reply = self._exchange(words, multi=False)
        return self._check(reply[0], words, ups)

    def _list(self, words: list[str], ups: str | None) -> list[list[str]]:
        with self._lock:
            reply = self._exchange(words, multi=True)
        self._check(reply[0], words, ups)
        return reply[1:]

    def _exchange(self, words: list[str], *, multi: bool) -> list[list[str]]:
        """Send one command, read its reply. A connection that was already open may have been
        closed by a restarted upsd: then try once more on a fresh one before reporting failure."""
        reused = self._sock is not None
        self._connect_if_needed()
        try:
            return self._send_and_read(words, multi)
        except NutProtocolError:
            self._drop()  # the stream is out of step: never read the rest as the next reply
            raise
        except NutConnectionError as exc:
            self._drop()
            if not reused or isinstance(exc.__cause__, TimeoutError):
                raise
        self._connect_if_needed()
        try:
            return self._send_and_read(words, multi)
        except NutError:
            self._drop()
            raise

    def _send_and_read(self, words: list[str], multi: bool) -> list[list[str]]:
        self._send(words)
        first = split_words(self._read_line())
        if not first:
            raise NutProtocolError(f"upsd at {self.server}: empty reply to {' '.join(words[:2])}")
        if not multi or first[0] != "BEGIN":
            return [first]
        rows = [first]
        while True:
            row = split_words(self._read_line())
            if row[:1] == ["END"]:
                return rows
            rows.append(row)

    def _check(self, first: list[str], command: list[str], ups: str | None) -> list[str]:
        if first[0] != "ERR":
            return first
        code = first[1] if len(first) > 1 else "?"
        raise self._server_error(code, " ".join(command[:2]), ups)

    def _server_error(self, code: str, command: str, ups: str | None) -> NutServerError:
        cls = _ERRORS.get(code, NutServerError)
        what = f"UPS {ups!r}" if ups else "request"
        hint = cls.hint.format(server=self.server, ups=ups or "UPSNAME")
        return cls(f"upsd at {self.server}: {command} for {what} refused: ERR {code}. Fix: {hint}", code)

    def _connect_if_needed(self) -> None:
        if self._sock is not None:
            return
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        except OSError as exc:
            raise NutConnectionError(
                f"cannot connect to upsd at {self.server}: {exc.strerror or exc}. "
                "Fix: upsd not running? check [ups] host and port, and LISTEN in upsd.conf"
            ) from exc
        self._sock, self._buffer = sock, b""
        if self.username is None:
            return
        try:
            for command in (["USERNAME", self.username], ["PASSWORD", self._password or ""]):
                self._expect_ok(command, None)
            if self.login_ups is not None:
                self._expect_ok(["LOGIN", self.login_ups], self.login_ups)
        except BaseException:
            self._drop()
            raise

    def _expect_ok(self, command: list[str], ups: str | None) -> None:
        self._send(command)
        words = split_words(self._read_line())
        if words[:1] == ["ERR"]:
            raise self._server_error(words[1] if len(words) > 1 else "?", command[0], ups)
        if words[:1] != ["OK"]:
            raise NutProtocolError(f"upsd at {self.server}: unexpected reply to {command[0]}: {words}")

    def _send(self, words: list[str]) -> None:
        assert self._sock is not None
        line = " ".join(quote(w) for w in words) + "\n"
        try:
            self._sock.sendall(line.encode("utf-8"))
        except OSError as exc:
            raise NutConnectionError(f"upsd at {self.server}: sending {words[0]} failed: {exc}") from exc

    def _read_line(self) -> str:
        assert self._sock is not None
        while b"\n" not in self._buffer:
            if len(self._buffer) > MAX_LINE:
                raise NutProtocolError(f"{self.server} sent a line over {MAX_LINE} bytes: is this upsd?")
            try:
                chunk = self._sock.recv(4096)
            except TimeoutError as exc:
                raise NutConnectionError(
                    f"upsd at {self.server} did not answer within {self.timeout_s:g} s"
                ) from exc
            except OSError as exc:
                raise NutConnectionError(f"upsd at {self.server}: connection lost: {exc}") from exc
            if not chunk:
                raise NutConnectionError(f"upsd at {self.server} closed the connection (upsd stopped?)")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("utf-8", errors="replace").rstrip("\r")

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock, self._buffer = None, b""
