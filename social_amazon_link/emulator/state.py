"""The emulator's memory: identities, clients, codes, tokens, faults and counters.

Everything lives in one :class:`EmulatorState` per app, behind one lock, because
the emulator is served by a threaded server. The record classes implement the
methods Authlib's grants call on clients, codes and tokens (its ``ClientMixin``,
``AuthorizationCodeMixin`` and ``TokenMixin`` protocols) by duck typing.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal, cast
from urllib.parse import urlsplit

__all__ = [
    "ACCESS_TOKEN_LIFETIME",
    "CODE_LIFETIME",
    "ENDPOINTS",
    "MAX_TOKEN_BYTES",
    "MIN_TOKEN_LENGTH",
    "REDIRECT_SCHEMES",
    "SCOPES",
    "USER_ID_PATTERN",
    "AccessToken",
    "AuthorizationCode",
    "Client",
    "Consent",
    "EmulatorState",
    "Endpoint",
    "Fault",
    "Identity",
    "InvalidInput",
    "RefreshToken",
    "app_id_for",
    "fault_response_body",
    "new_access_token",
    "new_refresh_token",
    "parse_client",
    "parse_expire",
    "parse_fault",
    "parse_identity",
    "parse_mint",
    "parse_scope",
    "parse_scope_data",
    "parse_user_id",
]

Endpoint = Literal["authorize", "token", "profile", "tokeninfo"]
ENDPOINTS: Final[tuple[Endpoint, ...]] = ("authorize", "token", "profile", "tokeninfo")

#: The scopes LWA knows; anything else is ``invalid_scope``.
SCOPES: Final = frozenset({"profile", "profile:user_id", "postal_code"})
USER_ID_PATTERN: Final = re.compile(r"^amzn1\.account\.[A-Z0-9]+$")
ACCESS_TOKEN_LIFETIME: Final = 3600
CODE_LIFETIME: Final = 300
#: A fault may hold a request for at most this long: enough to trip any client
#: timeout, short enough that a typo cannot hang a test run.
MAX_DELAY_MS: Final = 60_000

_TOKEN_AUTH_METHODS: Final = frozenset({"client_secret_basic", "client_secret_post"})
_GRANT_TYPES: Final = frozenset({"authorization_code", "refresh_token"})


class InvalidInput(ValueError):
    """A control request or command-line value the emulator cannot accept."""


#: Amazon's access tokens are "350 characters or more in length, with a maximum
#: size of 2048 bytes"; refresh tokens "follow the same format". The emulator's
#: are 405 characters, so code that assumed short tokens fails here too.
MIN_TOKEN_LENGTH: Final = 350
MAX_TOKEN_BYTES: Final = 2048
_TOKEN_RANDOM_BYTES: Final = 300


def new_access_token() -> str:
    """A fresh access token, shaped like LWA's (``Atza|`` + 400 URL-safe characters)."""
    return "Atza|" + secrets.token_urlsafe(_TOKEN_RANDOM_BYTES)


def new_refresh_token() -> str:
    """A fresh refresh token, shaped like LWA's (``Atzr|`` + 400 URL-safe characters)."""
    return "Atzr|" + secrets.token_urlsafe(_TOKEN_RANDOM_BYTES)


def app_id_for(client_id: str) -> str:
    """The ``app_id`` tokeninfo reports: derived from the client id, so stable across runs."""
    return "amzn1.application." + hashlib.sha256(client_id.encode()).hexdigest()[:32]


def _is_loopback_http(uri: str) -> bool:
    try:
        parts = urlsplit(uri)
        return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost")
    except ValueError:
        return False


@dataclass(frozen=True)
class Identity:
    """An Amazon account a test can sign in as."""

    user_id: str
    name: str
    email: str
    postal_code: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "user_id": self.user_id,
            "name": self.name,
            "email": self.email,
            "postal_code": self.postal_code,
        }


@dataclass(frozen=True)
class Client:
    """A registered LWA application (Authlib's client protocol).

    A public client (a mobile app, a browser app) has no secret: it must use
    PKCE, at ``/ap/oa`` and at the token endpoint. A confidential client
    authenticates with its secret, or without it when its code was issued with
    a ``code_challenge`` (the LWA SDK's code grant, exchanged by the app's
    server with the verifier).
    """

    client_id: str
    # Kept out of repr: Authlib logs clients with %r. None: a public client.
    client_secret: str | None = field(repr=False)
    redirect_uris: tuple[str, ...] = ()
    #: What the consent page calls the app (its security profile's name);
    #: None: the client id.
    name: str | None = None

    @property
    def public(self) -> bool:
        return self.client_secret is None

    def as_dict(self) -> dict[str, Any]:
        """The public view: never the secret."""
        return {
            "client_id": self.client_id,
            "name": self.name,
            "public": self.public,
            "redirect_uris": list(self.redirect_uris),
            "app_id": app_id_for(self.client_id),
        }

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        # LWA requires redirect_uri on every authorization request.
        return None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        try:
            return parse_scope(scope)
        except InvalidInput:
            return None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        if self.redirect_uris:
            return redirect_uri in self.redirect_uris
        # A client registered without URIs takes any loopback callback, so a
        # test need not know its app's port in advance.
        return _is_loopback_http(redirect_uri)

    def check_client_secret(self, client_secret: str) -> bool:
        if self.client_secret is None:
            return False  # a public client has no secret to send
        return secrets.compare_digest(client_secret.encode(), self.client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if endpoint != "token":
            return True
        if self.public:
            return method == "none"
        # "none" for a confidential client only with PKCE: the grant checks it.
        return method in _TOKEN_AUTH_METHODS or method == "none"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in _GRANT_TYPES


@dataclass(frozen=True)
class Consent:
    """What the person on the consent page granted: who, and which scopes
    (the essential ones, and the voluntary ones they left ticked)."""

    identity: Identity
    scope: str

    @property
    def user_id(self) -> str:
        return self.identity.user_id


@dataclass(frozen=True)
class AuthorizationCode:
    """A code handed to ``redirect_uri``: single use, bound to client, URI, user and scope."""

    code: str = field(repr=False)
    client_id: str
    redirect_uri: str
    user_id: str
    scope: str
    expires_at: float
    #: PKCE, from the authorize request (method ``plain`` when only a challenge came).
    code_challenge: str | None = field(default=None, repr=False)
    code_challenge_method: str | None = None

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass(frozen=True)
class AccessToken:
    """An ``Atza|`` token, from the token endpoint or minted for a test."""

    value: str = field(repr=False)
    client_id: str
    user_id: str
    scope: str
    issued_at: float
    expires_at: float

    def is_expired(self, now: float) -> bool:
        return now >= self.expires_at

    def seconds_left(self, now: float) -> int:
        return max(0, int(self.expires_at - now))

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.scope.split())


@dataclass(frozen=True)
class RefreshToken:
    """An ``Atzr|`` token: never expires, stays valid after a refresh."""

    value: str = field(repr=False)
    client_id: str
    user_id: str
    scope: str

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope


@dataclass
class Fault:
    """What to do to the next requests of one endpoint, instead of (or before) answering."""

    endpoint: Endpoint
    status: int | None = None
    body: Any = None
    delay_ms: float = 0
    drop: bool = False
    #: How many more requests this fault applies to; ``None``: until cleared.
    times: int | None = None

    @property
    def answers(self) -> bool:
        """Whether the fault answers itself rather than letting the endpoint answer."""
        return self.status is not None or self.body is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "status": self.status,
            "body": self.body,
            "delay_ms": self.delay_ms,
            "drop": self.drop,
            "times": self.times,
        }


# --- input validation, shared by the control endpoints and the command line ---


def _object(data: Any, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise InvalidInput("the body must be a JSON object")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(unknown)}")
    return cast(Mapping[str, Any], data)


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"'{key}' must be a non-empty string")
    return value


def _optional_text(data: Mapping[str, Any], key: str) -> str | None:
    if data.get(key) is None:
        return None
    return _text(data, key)


def _integer(data: Mapping[str, Any], key: str, default: int, minimum: int) -> int:
    value = data.get(key, default)
    # bool is an int subclass; "true" is never a count.
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidInput(f"'{key}' must be an integer >= {minimum}")
    return value


def parse_user_id(value: Any) -> str:
    """Check an LWA user id (``amzn1.account.`` + upper-case letters and digits)."""
    if not isinstance(value, str) or not USER_ID_PATTERN.fullmatch(value):
        raise InvalidInput("'user_id' must look like amzn1.account.<LETTERS AND DIGITS>")
    return value


def parse_scope(value: Any) -> str:
    """Check a space-separated LWA scope; returns it normalised."""
    if not isinstance(value, str) or not value.split():
        raise InvalidInput("'scope' must name at least one scope")
    scopes = value.split()
    unknown = sorted(set(scopes) - SCOPES)
    if unknown:
        raise InvalidInput(f"unknown scope(s): {', '.join(unknown)}")
    return " ".join(dict.fromkeys(scopes))


def parse_scope_data(value: str | None, scope: str) -> frozenset[str]:
    """The voluntary scopes of an authorize request: its ``scope_data``, a JSON
    object such as ``{"profile": {"essential": true}, "postal_code":
    {"essential": false}}`` (Amazon's "Requesting Scopes as Essential/Voluntary").

    A scope it does not name is essential (Amazon's per-scope defaults are not
    documented); naming a scope the request does not ask for is refused.
    """
    if not value:
        return frozenset()
    try:
        data = json.loads(value)
    except ValueError:
        raise InvalidInput("'scope_data' must be a JSON object") from None
    if not isinstance(data, dict):
        raise InvalidInput("'scope_data' must be a JSON object")
    requested = set(scope.split())
    voluntary = set()
    for name, setting in data.items():
        if name not in requested:
            # No names from the request in the message: it goes back in a redirect.
            raise InvalidInput("'scope_data' names a scope that 'scope' does not ask for")
        if not isinstance(setting, dict) or not isinstance(setting.get("essential"), bool):
            raise InvalidInput("'scope_data' must give each scope an 'essential' of true or false")
        if not setting["essential"]:
            voluntary.add(name)
    return frozenset(voluntary)


def parse_identity(data: Any) -> Identity:
    """An :class:`Identity` from ``{"user_id", "name", "email", "postal_code"?}``."""
    data = _object(data, {"user_id", "name", "email", "postal_code"})
    email = _text(data, "email")
    if "@" not in email:
        raise InvalidInput("'email' must be an email address")
    return Identity(
        user_id=parse_user_id(data.get("user_id")),
        name=_text(data, "name"),
        email=email,
        postal_code=_optional_text(data, "postal_code"),
    )


#: Redirect URI schemes a client may register: the web's, and the LWA SDK's
#: ``amzn://<package or bundle id>`` for mobile apps.
REDIRECT_SCHEMES: Final = ("http", "https", "amzn")


def parse_client(data: Any) -> Client:
    """A :class:`Client` from ``{"client_id", "client_secret"?, "public"?, "redirect_uris"?,
    "name"?}``: a secret, or ``"public": true`` and none."""
    data = _object(data, {"client_id", "client_secret", "public", "redirect_uris", "name"})
    uris = data.get("redirect_uris")
    if uris is None:
        uris = []
    if not isinstance(uris, list) or not all(isinstance(uri, str) for uri in uris):
        raise InvalidInput("'redirect_uris' must be a list of URLs")
    for uri in uris:
        parts = urlsplit(uri)
        if parts.scheme not in REDIRECT_SCHEMES or not parts.netloc:
            raise InvalidInput(f"'redirect_uris' holds a non-absolute URL: {uri!r}")
    client_id = _text(data, "client_id")
    if any(char.isspace() for char in client_id):
        raise InvalidInput("'client_id' must not contain spaces")
    return Client(
        client_id=client_id,
        client_secret=_client_secret(data),
        redirect_uris=tuple(dict.fromkeys(uris)),
        name=_client_name(data),
    )


def _client_secret(data: Mapping[str, Any]) -> str | None:
    public = data.get("public", False)
    if not isinstance(public, bool):
        raise InvalidInput("'public' must be true or false")
    if not public:
        return _text(data, "client_secret")
    if data.get("client_secret") is not None:
        raise InvalidInput("a public client has no 'client_secret'")
    return None


#: Longest app name the consent page shows.
MAX_CLIENT_NAME = 100


def _client_name(data: Mapping[str, Any]) -> str | None:
    name = _optional_text(data, "name")
    if name is None:
        return None
    name = name.strip()
    if len(name) > MAX_CLIENT_NAME or not name.isprintable():
        raise InvalidInput(f"'name' must be at most {MAX_CLIENT_NAME} printable characters")
    return name


def parse_mint(data: Any) -> tuple[str, str, str, int]:
    """``(client_id, user_id, scope, expires_in)`` from a token-minting request."""
    data = _object(data, {"client_id", "user_id", "scope", "expires_in"})
    return (
        _text(data, "client_id"),
        parse_user_id(data.get("user_id")),
        parse_scope(data.get("scope", "profile")),
        _integer(data, "expires_in", ACCESS_TOKEN_LIFETIME, 0),
    )


def parse_expire(data: Any) -> tuple[str | None, str | None]:
    """``(access_token, user_id)`` from an expiry request: exactly one of them."""
    data = _object(data, {"access_token", "user_id"})
    access_token = _optional_text(data, "access_token")
    user_id = _optional_text(data, "user_id")
    if (access_token is None) == (user_id is None):
        raise InvalidInput("give exactly one of 'access_token' and 'user_id'")
    return access_token, user_id


def parse_fault(data: Any) -> Fault:
    """A :class:`Fault` from a control request carrying its fields (``endpoint`` required)."""
    data = _object(data, {"endpoint", "status", "body", "delay_ms", "drop", "times"})
    endpoint = data.get("endpoint")
    if endpoint not in ENDPOINTS:
        raise InvalidInput(f"'endpoint' must be one of: {', '.join(ENDPOINTS)}")
    status = data.get("status")
    if status is not None:
        status = _integer(data, "status", 0, 100)
        if status > 599:
            raise InvalidInput("'status' must be an HTTP status between 100 and 599")
    body = data.get("body")
    if body is not None and not isinstance(body, dict | list | str):
        raise InvalidInput("'body' must be a JSON object, a list or a string")
    delay_ms = data.get("delay_ms", 0)
    if (
        not isinstance(delay_ms, int | float)
        or isinstance(delay_ms, bool)
        or not 0 <= delay_ms <= MAX_DELAY_MS
    ):
        raise InvalidInput(f"'delay_ms' must be a number between 0 and {MAX_DELAY_MS}")
    drop = data.get("drop", False)
    if not isinstance(drop, bool):
        raise InvalidInput("'drop' must be true or false")
    times = None if data.get("times") is None else _integer(data, "times", 1, 1)
    fault = Fault(
        endpoint=cast(Endpoint, endpoint),
        status=status,
        body=body,
        delay_ms=delay_ms,
        drop=drop,
        times=times,
    )
    if drop and fault.answers:
        raise InvalidInput("a dropped connection cannot also answer: drop 'status' or 'body'")
    if not (drop or fault.answers or delay_ms):
        raise InvalidInput("a fault needs at least one of 'status', 'body', 'delay_ms', 'drop'")
    return fault


class EmulatorState:
    """All of one emulator's data, guarded by one lock."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        #: Wall-clock seconds: tokeninfo reports ``iat`` as an epoch time.
        self.clock = clock
        self._lock = threading.Lock()
        self._identities: dict[str, Identity] = {}
        self._clients: dict[str, Client] = {}
        self._codes: dict[str, AuthorizationCode] = {}
        self._access_tokens: dict[str, AccessToken] = {}
        self._refresh_tokens: dict[str, RefreshToken] = {}
        self._faults: dict[Endpoint, deque[Fault]] = {name: deque() for name in ENDPOINTS}
        self._requests: dict[Endpoint, int] = dict.fromkeys(ENDPOINTS, 0)
        self._connections = 0
        self._token_in_query = 0

    # identities and clients

    def put_identity(self, identity: Identity) -> Identity:
        with self._lock:
            self._identities[identity.user_id] = identity
        return identity

    def identity(self, user_id: str) -> Identity | None:
        with self._lock:
            return self._identities.get(user_id)

    def identities(self) -> list[Identity]:
        with self._lock:
            return list(self._identities.values())

    def put_client(self, client: Client) -> Client:
        with self._lock:
            self._clients[client.client_id] = client
        return client

    def client(self, client_id: str) -> Client | None:
        with self._lock:
            return self._clients.get(client_id)

    # codes and tokens

    def save_code(self, code: AuthorizationCode) -> None:
        with self._lock:
            self._codes[code.code] = code

    def peek_code(self, code: str) -> AuthorizationCode | None:
        """The code, still unused (live or not), without using it up."""
        with self._lock:
            return self._codes.get(code)

    def consume_code(self, code: str, client_id: str) -> AuthorizationCode | None:
        """The code if it is live and was issued to ``client_id``.

        Its own client's first attempt uses the code up, whatever the outcome:
        taking it out at lookup, under the lock, makes reuse impossible even for
        two exchanges racing each other.
        """
        with self._lock:
            found = self._codes.get(code)
            if found is None or found.client_id != client_id:
                return None
            del self._codes[code]
        return found if self.clock() < found.expires_at else None

    def issue_access_token(
        self, client_id: str, user_id: str, scope: str, expires_in: int, value: str | None = None
    ) -> AccessToken:
        now = self.clock()
        token = AccessToken(
            value=value or new_access_token(),
            client_id=client_id,
            user_id=user_id,
            scope=scope,
            issued_at=now,
            expires_at=now + expires_in,
        )
        with self._lock:
            self._access_tokens[token.value] = token
        return token

    def access_token(self, value: str) -> AccessToken | None:
        with self._lock:
            return self._access_tokens.get(value)

    def save_refresh_token(self, token: RefreshToken) -> None:
        with self._lock:
            self._refresh_tokens[token.value] = token

    def refresh_token(self, value: str) -> RefreshToken | None:
        with self._lock:
            return self._refresh_tokens.get(value)

    def expire_tokens(self, access_token: str | None = None, user_id: str | None = None) -> int:
        """Expire the given access token, or every access token of ``user_id``; returns how many."""
        now = self.clock()
        with self._lock:
            matching = [
                token
                for token in self._access_tokens.values()
                if token.value == access_token or token.user_id == user_id
            ]
            for token in matching:
                self._access_tokens[token.value] = replace(
                    token, expires_at=min(now, token.expires_at)
                )
        return len(matching)

    # faults and counters

    def add_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults[fault.endpoint].append(fault)

    def clear_faults(self) -> int:
        with self._lock:
            cleared = sum(len(queue) for queue in self._faults.values())
            for queue in self._faults.values():
                queue.clear()
        return cleared

    def take_request(self, endpoint: Endpoint) -> Fault | None:
        """Count a request to ``endpoint`` and return the fault it must suffer, if any."""
        with self._lock:
            self._requests[endpoint] += 1
            queue = self._faults[endpoint]
            if not queue:
                return None
            fault = queue[0]
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    queue.popleft()
            return replace(fault)

    def count_connection(self) -> None:
        with self._lock:
            self._connections += 1

    def count_token_in_query(self) -> None:
        with self._lock:
            self._token_in_query += 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "connections": self._connections,
                "requests": dict(self._requests),
                "token_in_query": self._token_in_query,
            }

    def reset(self) -> None:
        """Forget codes, tokens, faults and counters; keep identities and clients."""
        with self._lock:
            self._codes.clear()
            self._access_tokens.clear()
            self._refresh_tokens.clear()
            for queue in self._faults.values():
                queue.clear()
            self._requests = dict.fromkeys(ENDPOINTS, 0)
            self._connections = 0
            self._token_in_query = 0


def fault_response_body(fault: Fault) -> tuple[bytes, str]:
    """The bytes and content type a fault answers with.

    A dict or list is JSON; a string goes out verbatim, labelled JSON only when
    it parses as JSON, so a test can send both malformed and hand-written JSON.
    """
    body = fault.body
    if body is None:
        return b"", "text/plain; charset=utf-8"
    if not isinstance(body, str):
        return json.dumps(body).encode(), "application/json"
    try:
        json.loads(body)
    except ValueError:
        return body.encode(), "text/plain; charset=utf-8"
    return body.encode(), "application/json"
