"""A typed client for the emulator: its ``/_emulator`` controls, and the person on its pages."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import requests

if TYPE_CHECKING:
    from .server import EmulatorServer

__all__ = ["EmulatorControlError", "LWAEmulator"]


class EmulatorControlError(RuntimeError):
    """A control call the emulator refused (bad input) or could not answer."""

    def __init__(self, method: str, path: str, status: int | None, message: str) -> None:
        where = f"{method} {path}"
        super().__init__(
            f"{where}: {message}" if status is None else f"{where} -> {status}: {message}"
        )
        self.status = status
        self.message = message


class LWAEmulator:
    """Drives one running emulator: seed it, mint tokens, inject faults, read counters.

    ``server`` is set when the emulator runs in this process (the pytest
    fixture sets it), so a test can reach ``server.app``.
    """

    def __init__(
        self, url: str, *, timeout: float = 10.0, server: EmulatorServer | None = None
    ) -> None:
        self._url = url.rstrip("/")
        self._timeout = timeout
        self._session = requests.Session()
        self.server = server

    @property
    def url(self) -> str:
        """The emulator's base URL: stands in for ``https://api.amazon.com``."""
        return self._url

    @property
    def authorize_url(self) -> str:
        """The sign-in page: stands in for ``https://www.amazon.com/ap/oa``."""
        return self._url + "/ap/oa"

    def consent(
        self,
        authorize_url: str,
        user_id: str | None,
        *,
        allow: bool = True,
        decline: Iterable[str] = (),
    ) -> str:
        """Be the person on the sign-in page: choose ``user_id``, then Allow (or Cancel).

        ``decline``: voluntary scopes (``scope_data`` ``{"essential": false}``)
        to untick, e.g. ``["postal_code"]``; an essential scope cannot be
        declined and is granted anyway, as on Amazon's page.

        ``authorize_url`` is where the app sent the browser (the ``Location``
        of its ``/login/amazon/``). Returns where the emulator sends the
        browser back: the app's ``redirect_uri`` with ``code`` and ``state``,
        or, with ``allow=False``, ``error=access_denied`` and ``state``::

            start = client.get("/login/amazon/")  # the app under test
            callback = lwa_emulator.consent(start.location, "amzn1.account.AEXAMPLE1")
            client.get(callback)  # the app's /complete/amazon/

        Raises :class:`EmulatorControlError` with the page's message when the
        emulator shows an error page instead (an unknown client, a
        ``redirect_uri`` the client did not register, an unknown ``user_id``),
        and ``ValueError`` for a URL that is not this emulator's ``/ap/oa``.
        """
        parts = urlsplit(authorize_url)
        if f"{parts.scheme}://{parts.netloc}{parts.path}" != self.authorize_url:
            raise ValueError(f"not this emulator's sign-in page ({self.authorize_url})")
        page = self._page("GET", authorize_url)
        if page.is_redirect:  # an invalid request the app is told about at once
            return str(page.headers["Location"])
        form: dict[str, Any] = dict(parse_qsl(parts.query, keep_blank_values=True))
        form["decision"] = "allow" if allow else "deny"
        if user_id is not None:
            form["user_id"] = user_id
        # Ticked: every requested scope but the declined ones (the emulator
        # reads the ticks of voluntary scopes only).
        declined = set(decline)
        form["scope_choice"] = "1"
        form["share"] = [s for s in str(form.get("scope", "")).split() if s not in declined]
        answer = self._page("POST", self.authorize_url, data=form)
        if not answer.is_redirect:
            raise EmulatorControlError("POST", "/ap/oa", answer.status_code, _alert(answer.text))
        return str(answer.headers["Location"])

    def add_identity(
        self, user_id: str, name: str, email: str, postal_code: str | None = None
    ) -> dict[str, Any]:
        """Add or update an Amazon account (a new email is the user changing it on Amazon)."""
        payload: dict[str, Any] = {"user_id": user_id, "name": name, "email": email}
        if postal_code is not None:
            payload["postal_code"] = postal_code
        result: dict[str, Any] = self._call("POST", "/identities", payload)
        return result

    def add_client(
        self,
        client_id: str,
        client_secret: str | None = None,
        redirect_uris: list[str] | None = None,
        name: str | None = None,
        *,
        public: bool = False,
    ) -> dict[str, Any]:
        """Register or update an LWA application; no ``redirect_uris``: any loopback URI.

        ``name`` is what the consent page calls the app (else its client id).
        ``public=True``: an app without a secret (a mobile app's security
        profile, its redirect URI ``amzn://<package>``), which must use PKCE.
        """
        payload: dict[str, Any] = {"client_id": client_id}
        if client_secret is not None:
            payload["client_secret"] = client_secret
        if public:
            payload["public"] = True
        if redirect_uris is not None:
            payload["redirect_uris"] = list(redirect_uris)
        if name is not None:
            payload["name"] = name
        result: dict[str, Any] = self._call("POST", "/clients", payload)
        return result

    def mint_token(
        self, client_id: str, user_id: str, scope: str = "profile", expires_in: int = 3600
    ) -> str:
        """An access token for any client id, as the LWA mobile SDK hands one to an app."""
        result = self._call(
            "POST",
            "/tokens",
            {"client_id": client_id, "user_id": user_id, "scope": scope, "expires_in": expires_in},
        )
        token: str = result["access_token"]
        return token

    def expire_tokens(self, access_token: str | None = None, user_id: str | None = None) -> int:
        """Expire one access token, or all of a user's; returns how many."""
        payload = {"access_token": access_token, "user_id": user_id}
        result = self._call(
            "POST", "/tokens/expire", {k: v for k, v in payload.items() if v is not None}
        )
        expired: int = result["expired"]
        return expired

    def fault(
        self,
        endpoint: str,
        *,
        status: int | None = None,
        body: Any = None,
        delay_ms: float | None = None,
        drop: bool = False,
        times: int | None = None,
    ) -> dict[str, Any]:
        """Queue a fault for ``endpoint`` (``authorize``, ``token``, ``profile``, ``tokeninfo``).

        The next ``times`` requests (all, until cleared, when ``None``) first
        wait ``delay_ms``, then are dropped (``drop``), or answered with
        ``status`` and ``body``, or else answered by the endpoint itself.
        """
        payload: dict[str, Any] = {"endpoint": endpoint}
        if status is not None:
            payload["status"] = status
        if body is not None:
            payload["body"] = body
        if delay_ms is not None:
            payload["delay_ms"] = delay_ms
        if drop:
            payload["drop"] = True
        if times is not None:
            payload["times"] = times
        result: dict[str, Any] = self._call("POST", "/faults", payload)
        return result

    def clear_faults(self) -> int:
        """Remove every queued fault; returns how many there were."""
        cleared: int = self._call("DELETE", "/faults")["cleared"]
        return cleared

    def stats(self) -> dict[str, Any]:
        """``{"connections", "requests": {endpoint: n}, "token_in_query"}``."""
        result: dict[str, Any] = self._call("GET", "/stats")
        return result

    def reset(self) -> None:
        """Forget tokens, codes, faults and counters; keep identities and clients."""
        self._call("POST", "/reset")

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> LWAEmulator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<LWAEmulator {self._url}>"

    def _page(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """A sign-in page request, as a browser makes it: a 200 page or a redirect."""
        response = self._send(method, url, "/ap/oa", allow_redirects=False, **kwargs)
        if response.status_code != 200 and not response.is_redirect:
            raise EmulatorControlError(
                method, "/ap/oa", response.status_code, _alert(response.text)
            )
        return response

    def _send(self, method: str, url: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return self._session.request(method, url, timeout=self._timeout, **kwargs)
        except requests.RequestException as exc:
            raise EmulatorControlError(
                method, path, None, f"emulator unreachable at {self._url} ({type(exc).__name__})"
            ) from exc

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        path = "/_emulator" + path
        response = self._send(method, self._url + path, path, json=payload)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not response.ok:
            message = data.get("message") if isinstance(data, dict) else None
            raise EmulatorControlError(
                method, path, response.status_code, str(message or response.text[:200])
            )
        if data is None:
            raise EmulatorControlError(method, path, response.status_code, "answer is not JSON")
        return data


def _alert(page: str) -> str:
    """The message an emulator page shows in its alert box."""
    found = re.search(r'role="alert">(.*?)</', page, re.DOTALL)
    return html.unescape(found.group(1).strip()) if found else "no sign-in page"
