"""Talk to a running gateway's web console over real HTTP(S) with nothing but the standard library.

`ConsoleClient` is one browser: its own cookie jar (http.cookiejar), redirects never followed (a test
checks the 303 itself), HTTP errors returned as replies rather than raised, optionally a TLS context
and a source address on the loopback network (127.0.0.2 ... are other "machines" to a throttle).
"""

from __future__ import annotations

import http.client
import http.cookiejar
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Any

from gateway.web.security import COOKIE

CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Reply:
    """One HTTP answer: status, headers and the whole body."""

    status: int
    headers: Message
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    def set_cookie(self, name: str = COOKIE) -> str | None:
        """The raw Set-Cookie line for cookie `name` (attributes included), or None."""
        for line in self.headers.get_all("Set-Cookie") or []:
            if line.split("=", 1)[0].strip() == name:
                return line
        return None

    def csrf(self) -> str | None:
        """The first hidden `csrf` field of an HTML page (the sign-in form, the sign-out button...)."""
        found = CSRF_FIELD.search(self.text)
        return found.group(1) if found else None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A 3xx is the answer under test: hand it back instead of following it."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class _HTTPFrom(urllib.request.HTTPHandler):
    """Plain HTTP from a chosen loopback source address."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(http.client.HTTPConnection, req, source_address=(self.source, 0))


class _HTTPSFrom(urllib.request.HTTPSHandler):
    """HTTPS with a given TLS context, from a chosen loopback source address."""

    def __init__(self, context: ssl.SSLContext, source: str) -> None:
        super().__init__(context=context)
        self.tls, self.source = context, source

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(http.client.HTTPSConnection, req, context=self.tls, source_address=(self.source, 0))


class ConsoleClient:
    """One browser of the console: a cookie jar, no redirects followed, every status returned."""

    def __init__(self, base_url: str, *, tls: ssl.SSLContext | None = None, source: str = "127.0.0.1",
                 timeout: float = 20.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.host = urllib.parse.urlsplit(self.base_url).hostname or "127.0.0.1"
        self.timeout = timeout
        self.jar = http.cookiejar.CookieJar()
        transport: urllib.request.BaseHandler = _HTTPSFrom(tls, source) if tls is not None else _HTTPFrom(source)
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect(), transport)
        self.token: str | None = None  # the CSRF token last read from a page of this session

    # -- requests -------------------------------------------------------------------------------------
    def request(self, method: str, path: str, *, form: Mapping[str, str] | None = None,
                headers: Mapping[str, str] | None = None) -> Reply:
        """Send one request; `path` goes on the wire exactly as written (no normalising of ../ or %2f)."""
        data = urllib.parse.urlencode(dict(form)).encode() if form is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
        for name, value in (headers or {}).items():
            req.add_header(name, value)
        try:
            with self._opener.open(req, timeout=self.timeout) as answer:
                return Reply(answer.status, answer.headers, answer.read())
        except urllib.error.HTTPError as answer:  # 3xx (not followed), 4xx and 5xx
            with answer:
                return Reply(answer.code, answer.headers, answer.read())

    def get(self, path: str, *, headers: Mapping[str, str] | None = None) -> Reply:
        return self.request("GET", path, headers=headers)

    def post(self, path: str, form: Mapping[str, str] | None = None, *, csrf: str | bool | None = True,
             headers: Mapping[str, str] | None = None) -> Reply:
        """POST a form. `csrf`: True adds this session's token, a string adds that token, None/False none."""
        fields = dict(form or {})
        if csrf is True:
            fields["csrf"] = self.csrf()
        elif isinstance(csrf, str):
            fields["csrf"] = csrf
        return self.request("POST", path, form=fields, headers=headers)

    # -- session --------------------------------------------------------------------------------------
    def csrf(self, *, fresh: bool = False) -> str:
        """This session's CSRF token, read from the sign-out button of a page or from the sign-in form."""
        if self.token is None or fresh:
            page = self.get("/health")
            if page.status != 200:  # not signed in (or no longer): the sign-in form's session
                page = self.get("/login")
            token = page.csrf()
            assert token, f"no csrf field on the page ({page.status}):\n{page.text[:500]}"
            self.token = token
        return self.token

    def sign_in(self, name: str, password: str, *, expect: int | None = 303) -> Reply:
        """GET /login for the form's token, POST name and password; `expect` the status (None: any)."""
        form = self.get("/login")
        token = form.csrf()
        assert form.status == 200 and token, f"sign-in form: {form.status}\n{form.text[:500]}"
        reply = self.post("/login", {"name": name, "password": password, "next": "/"}, csrf=token)
        assert expect is None or reply.status == expect, (
            f"sign in as {name}: {reply.status}, expected {expect}\n{reply.text[:500]}")
        self.token = None  # a new session (and token) at sign-in
        return reply

    def sign_out(self) -> Reply:
        reply = self.post("/logout")
        self.token = None
        return reply

    @property
    def session_cookie(self) -> str | None:
        return next((c.value for c in self.jar if c.name == COOKIE), None)

    def use_session_cookie(self, value: str) -> None:
        """Present this session id from now on (e.g. an old one, to see that it no longer works)."""
        self.jar.clear()
        self.jar.set_cookie(http.cookiejar.Cookie(
            0, COOKIE, value, None, False, self.host, False, False, "/", True, False, None, False, None, None, {}))
        self.token = None


__all__ = ["ConsoleClient", "Reply"]
