"""The one HTTP client for Amazon's Login with Amazon endpoints.

Every call to Amazon goes through :class:`LWAClient`: kept-alive connections
(so a sign-in does not pay a TCP and TLS handshake per call), one timeout
policy, and one place (:func:`check_answer`) that turns every way a call can
fail into an error of :mod:`social_amazon_link.errors`. The token exchange
goes through a ``requests.Session`` (social-core's ``request()`` returns its
answers); the two calls of every sign-in, profile and tokeninfo, go straight
to urllib3, under requests, unless a proxy is set.

Access tokens travel in the ``Authorization`` header, except for tokeninfo,
whose only documented form is the query string; the client never logs a URL.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import requests
import urllib3
from certifi import where as default_ca_bundle
from social_core.exceptions import ErrorStage
from social_core.utils import redact_request_error

from .errors import (
    AmazonBadResponse,
    AmazonUnavailable,
    ClientMisconfigured,
    InvalidGrant,
    InvalidToken,
    WrongAudience,
)

__all__ = [
    "REGIONS",
    "USER_ID_PATTERN",
    "LWAClient",
    "Profile",
    "Region",
    "TokenInfo",
    "check_answer",
    "client_for",
    "parse_profile",
]

Endpoint = Literal["token", "profile", "tokeninfo"]


@dataclass(frozen=True)
class Region:
    """Amazon's hosts for one LWA region."""

    authorization_url: str
    api_url: str


REGIONS: dict[str, Region] = {
    "NA": Region("https://www.amazon.com/ap/oa", "https://api.amazon.com"),
    "EU": Region("https://eu.account.amazon.com/ap/oa", "https://api.amazon.co.uk"),
    "FE": Region("https://apac.account.amazon.com/ap/oa", "https://api.amazon.co.jp"),
}

#: ``amzn1.account.`` + an opaque value: the only key an account is matched on.
USER_ID_PATTERN = re.compile(r"amzn1\.account\.[A-Za-z0-9]{1,200}")

# A connect timeout a little above a multiple of 3 s (TCP's retransmit step);
# the read timeout is the configurable part.
CONNECT_TIMEOUT = 3.05
DEFAULT_TIMEOUT = 5.0


@dataclass(frozen=True)
class Profile:
    """A validated answer of ``GET /user/profile``."""

    user_id: str
    name: str | None = None
    email: str | None = None
    postal_code: str | None = None

    def as_dict(self) -> dict[str, str]:
        """The LWA JSON shape, with only the fields Amazon sent."""
        fields = {
            "user_id": self.user_id,
            "name": self.name,
            "email": self.email,
            "postal_code": self.postal_code,
        }
        return {key: value for key, value in fields.items() if value is not None}


@dataclass(frozen=True)
class TokenInfo:
    """A validated answer of ``GET /auth/o2/tokeninfo``."""

    aud: str
    user_id: str
    iss: str | None = None
    app_id: str | None = None
    exp: int | None = None
    iat: int | None = None


def _optional_str(data: dict[str, Any], key: str, reason: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise AmazonBadResponse(reason=reason, stage="user_info")
    return value


def _valid_user_id(value: object, *, stage: ErrorStage) -> str:
    if value is None or value == "":
        raise AmazonBadResponse(reason="missing_user_id", stage=stage)
    if not isinstance(value, str) or not USER_ID_PATTERN.fullmatch(value):
        raise AmazonBadResponse(reason="invalid_user_id", stage=stage)
    return value


def parse_profile(data: object) -> Profile:
    """Validate a profile body, current or legacy (``{"Profile": {...}}``) shape."""
    if not isinstance(data, dict):
        raise AmazonBadResponse(reason="bad_shape", stage="user_info")
    legacy = data.get("Profile")
    if isinstance(legacy, dict):
        # The shape of Amazon's first profile API, still understood by
        # social-core's backend; keep accepting it for drop-in parity.
        data = {
            "user_id": legacy.get("CustomerId"),
            "name": legacy.get("Name"),
            "email": legacy.get("PrimaryEmail"),
            "postal_code": legacy.get("PostalCode"),
        }
    return Profile(
        user_id=_valid_user_id(data.get("user_id"), stage="user_info"),
        name=_optional_str(data, "name", "bad_name"),
        email=_optional_str(data, "email", "bad_email"),
        postal_code=_optional_str(data, "postal_code", "bad_postal_code"),
    )


def _parse_tokeninfo(data: object) -> TokenInfo:
    if not isinstance(data, dict):
        raise AmazonBadResponse(reason="bad_shape", stage="token_validation")
    aud = data.get("aud")
    if not isinstance(aud, str) or not aud:
        raise AmazonBadResponse(reason="missing_aud", stage="token_validation")
    user_id = data.get("user_id")
    ints = {}
    for key in ("exp", "iat"):
        value = data.get(key)
        ints[key] = value if isinstance(value, int) and not isinstance(value, bool) else None
    return TokenInfo(
        aud=aud,
        # Always sent by Amazon; checked against the profile's, so never optional.
        user_id=_valid_user_id(user_id, stage="token_validation"),
        iss=data.get("iss") if isinstance(data.get("iss"), str) else None,
        app_id=data.get("app_id") if isinstance(data.get("app_id"), str) else None,
        exp=ints["exp"],
        iat=ints["iat"],
    )


_TOKEN_IN_URL = re.compile(r"(access_token=)[^&\s\"']+")


class _RedactTokens(logging.Filter):
    """Blank access tokens out of urllib3's debug lines.

    Tokeninfo takes the token in its query string, and urllib3 logs request
    lines at DEBUG: an app that turns DEBUG on must not get tokens in its logs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN_IN_URL.sub(r"\1<redacted>", arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_RedactTokens())

_STAGES: dict[Endpoint, ErrorStage] = {
    "token": "token_exchange",
    "profile": "user_info",
    "tokeninfo": "token_validation",
}

# OAuth2 error codes the token endpoint answers when *our* configuration or
# request is wrong, as opposed to the person's authorization code.
_CONFIG_ERRORS = {
    "invalid_client",
    "unauthorized_client",
    "invalid_request",
    "unsupported_grant_type",
    "invalid_scope",
}


class HTTPAnswer(Protocol):
    """What :func:`check_answer` reads of an answer: a ``requests.Response`` has it."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Any: ...

    def json(self) -> Any: ...


@dataclass(frozen=True)
class _Answer:
    """An answer urllib3 read whole, shaped like the ``requests.Response`` it stands for."""

    status_code: int
    headers: Any
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)  # ValueError when it is not JSON


def check_answer(response: HTTPAnswer, endpoint: Endpoint) -> dict[str, Any]:
    """Map one HTTP answer to its JSON body or to this library's error."""
    stage = _STAGES[endpoint]
    status = response.status_code
    try:
        body: object = response.json()
    except ValueError:
        body = None
    provider_code = body.get("error") if isinstance(body, dict) else None
    description = body.get("error_description", "") if isinstance(body, dict) else ""
    detail = str(description)[:200]

    if 200 <= status < 300:
        if body is None:
            raise AmazonBadResponse(reason="not_json", stage=stage, status_code=status)
        if not isinstance(body, dict):
            raise AmazonBadResponse(reason="bad_shape", stage=stage, status_code=status)
        return body
    if status == 429:
        raise AmazonUnavailable(
            reason="rate_limited",
            stage=stage,
            status_code=status,
            retry_after=response.headers.get("Retry-After"),
        )
    if status >= 500:
        raise AmazonUnavailable(reason=f"http_{status}", stage=stage, status_code=status)
    if provider_code == "invalid_token":
        raise InvalidToken(detail, reason="invalid_token", stage=stage, status_code=status)
    if endpoint == "token":
        if provider_code == "invalid_grant":
            raise InvalidGrant(detail, reason="invalid_grant", stage=stage, status_code=status)
        if provider_code in _CONFIG_ERRORS or status == 401:
            raise ClientMisconfigured(
                detail,
                reason=str(provider_code or f"http_{status}"),
                stage=stage,
                status_code=status,
            )
    elif status in (400, 401, 403):
        # Profile and tokeninfo answer 400 invalid_request for a token they
        # cannot parse, 401/403 for one they will not honour (e.g. a scope the
        # person did not grant): either way the token is what is wrong.
        raise InvalidToken(
            detail,
            reason=str(provider_code or f"http_{status}"),
            stage=stage,
            status_code=status,
        )
    raise AmazonUnavailable(detail, reason=f"http_{status}", stage=stage, status_code=status)


class LWAClient:
    """Talks to one LWA API host (``https://api.amazon.com`` or an override).

    Thread-safe: the connection pool of ``requests`` is, and the client keeps
    no per-call state. Share one instance per host (see :func:`client_for`).
    """

    def __init__(
        self,
        api_url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        verify: bool | str = True,
        user_agent: str | None = None,
        proxies: dict[str, str] | None = None,
        pool_size: int = 32,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.timeout = (CONNECT_TIMEOUT, timeout)
        self.token_url = f"{self.api_url}/auth/o2/token"
        self.profile_url = f"{self.api_url}/user/profile"
        self.tokeninfo_url = f"{self.api_url}/auth/o2/tokeninfo"
        self.session = requests.Session()
        # The environment is read once, here, not on every call: requests'
        # per-call lookup (proxies, netrc, CA bundle) costs CPU on each
        # sign-in, and its REQUESTS_CA_BUNDLE would silently override an
        # explicit VERIFY_SSL. A bundle from the environment still applies
        # when VERIFY_SSL is left at True.
        self.session.trust_env = False
        # social-core's PROXIES setting when given, else the environment's.
        self.session.proxies = (
            dict(proxies) if proxies else requests.utils.get_environ_proxies(self.api_url)
        )
        if verify is True:
            verify = (
                os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
            )
        self.session.verify = verify
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=4, pool_maxsize=pool_size, max_retries=0
        )
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.headers["Accept"] = "application/json"
        if user_agent:
            self.session.headers["User-Agent"] = user_agent
        # Profile and tokeninfo, the calls of every sign-in, skip requests'
        # bookkeeping (preparing, merging settings, cookies, hooks): it was
        # the largest CPU cost left in a sign-in. Same certificates, same
        # headers; through a proxy, requests does all the calls.
        self._pool: urllib3.PoolManager | None = None
        if not self.session.proxies:
            self._pool = urllib3.PoolManager(
                num_pools=4,
                maxsize=pool_size,
                retries=False,
                timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=timeout),
                **_tls_options(verify),
            )
        self._headers = {
            "Accept": "application/json",
            "User-Agent": str(self.session.headers["User-Agent"]),
        }

    def __repr__(self) -> str:
        return f"LWAClient({self.api_url!r})"

    # -- transport ---------------------------------------------------------

    def send(
        self,
        method: str,
        url: str,
        *,
        stage: ErrorStage = "user_info",
        **kwargs: Any,
    ) -> requests.Response:
        """Send one request; transport failures become ``AmazonUnavailable``."""
        kwargs.setdefault("timeout", self.timeout)
        try:
            return self.session.request(method, url, allow_redirects=False, **kwargs)
        except requests.Timeout as error:
            redact_request_error(error, request_url=url)
            raise AmazonUnavailable(reason="timeout", stage=stage) from error
        except requests.exceptions.SSLError as error:
            redact_request_error(error, request_url=url)
            raise AmazonUnavailable(reason="tls_error", stage=stage) from error
        except requests.ConnectionError as error:
            redact_request_error(error, request_url=url)
            raise AmazonUnavailable(reason="connection_failed", stage=stage) from error
        except requests.RequestException as error:
            redact_request_error(error, request_url=url)
            raise AmazonUnavailable(reason="request_failed", stage=stage) from error

    def _get_json(
        self,
        endpoint: Endpoint,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        stage = _STAGES[endpoint]
        if self._pool is None:
            answer: HTTPAnswer = self.send("GET", url, stage=stage, headers=headers, params=params)
        else:
            answer = _get(self._pool, url, stage, {**self._headers, **(headers or {})}, params)
        return check_answer(answer, endpoint)

    # -- LWA endpoints -----------------------------------------------------

    def profile(self, access_token: str) -> Profile:
        """``GET /user/profile`` with the token in the Authorization header."""
        body = self._get_json(
            "profile",
            self.profile_url,
            headers={"Authorization": f"Bearer {access_token}"},
        )
        return parse_profile(body)

    def tokeninfo(self, access_token: str) -> TokenInfo:
        """``GET /auth/o2/tokeninfo``: who the token was issued to, and for whom."""
        body = self._get_json(
            "tokeninfo", self.tokeninfo_url, params={"access_token": access_token}
        )
        return _parse_tokeninfo(body)

    def verified_profile(self, access_token: str, client_id: str) -> Profile:
        """The profile behind a token that a client sent us, after checking it is ours.

        Tokeninfo and profile are independent, so both are sent at once and a
        sign-in waits one round trip to Amazon, not two. The profile is only
        returned once tokeninfo says the token was issued to ``client_id``.
        """
        info_future: Future[TokenInfo] = _executor().submit(self.tokeninfo, access_token)
        try:
            profile: Profile | None = self.profile(access_token)
            profile_error: Exception | None = None
        except (InvalidToken, AmazonUnavailable, AmazonBadResponse) as error:
            profile, profile_error = None, error
        # Tokeninfo decides first: a token for another app is "wrong_audience"
        # whatever the profile call said.
        info = self._tokeninfo_result(info_future)
        if info.aud != client_id:
            raise WrongAudience(reason="aud_mismatch", stage="token_validation")
        if profile_error is not None:
            raise profile_error
        assert profile is not None
        if info.user_id != profile.user_id:
            raise AmazonBadResponse(reason="user_id_mismatch", stage="token_validation")
        return profile

    def _tokeninfo_result(self, future: Future[TokenInfo]) -> TokenInfo:
        """The tokeninfo answer, waited for no longer than the call itself may take.

        When every pool worker is busy the call waits its turn; that wait must
        not stretch a sign-in past the timeout when Amazon is slow.
        """
        connect, read = self.timeout
        try:
            return future.result(timeout=connect + read)
        except FutureTimeout:
            future.cancel()
            raise AmazonUnavailable(reason="timeout", stage="token_validation") from None

    def request_token(
        self, data: dict[str, str], auth: Any = None, url: str | None = None
    ) -> dict[str, Any]:
        """``POST /auth/o2/token`` (authorization_code or refresh_token grant)."""
        response = self.send(
            "POST", url or self.token_url, stage="token_exchange", data=data, auth=auth
        )
        body = check_answer(response, "token")
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise AmazonBadResponse(reason="missing_access_token", stage="token_exchange")
        return body

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()
        if self._pool is not None:
            self._pool.clear()


def _get(
    pool: urllib3.PoolManager,
    url: str,
    stage: ErrorStage,
    headers: dict[str, str],
    params: dict[str, str] | None,
) -> _Answer:
    """``GET`` through urllib3; its failures become what ``LWAClient.send`` makes of requests'."""
    try:
        raw = pool.request("GET", url, fields=params, headers=headers, redirect=False)
    except urllib3.exceptions.HTTPError as error:
        redact_request_error(error, request_url=url)
        raise AmazonUnavailable(reason=_failure(error), stage=stage) from error
    return _Answer(raw.status, raw.headers, raw.data)


def _tls_options(verify: bool | str) -> dict[str, Any]:
    """urllib3's certificate settings for requests' ``verify``."""
    if verify is False:
        return {"cert_reqs": "CERT_NONE"}
    bundle = default_ca_bundle() if verify is True else verify
    where = "ca_cert_dir" if os.path.isdir(bundle) else "ca_certs"
    return {"cert_reqs": "CERT_REQUIRED", where: bundle}


def _failure(error: urllib3.exceptions.HTTPError) -> str:
    """The reason of a failed urllib3 call, named as for requests' errors in ``send``."""
    # NewConnectionError is a ConnectTimeoutError too: a refused or
    # unresolvable host is a failed connection, as requests has it.
    if isinstance(error, urllib3.exceptions.NewConnectionError):
        return "connection_failed"
    if isinstance(error, urllib3.exceptions.TimeoutError):
        return "timeout"
    if isinstance(error, urllib3.exceptions.SSLError):
        return "tls_error"
    if isinstance(error, urllib3.exceptions.ProtocolError | urllib3.exceptions.ProxyError):
        return "connection_failed"
    return "request_failed"


_clients: dict[tuple[Any, ...], LWAClient] = {}
_clients_lock = threading.Lock()
_shared_executor: ThreadPoolExecutor | None = None

#: Concurrent tokeninfo calls, for every client of the process.
EXECUTOR_WORKERS = 32


def _executor() -> ThreadPoolExecutor:
    """The process's worker threads for tokeninfo calls, started on first use.

    One pool for every client: a worker only ever runs a tokeninfo call while
    the calling thread fetches the profile, whichever host it is for.
    """
    global _shared_executor
    if _shared_executor is None:
        with _clients_lock:
            if _shared_executor is None:
                _shared_executor = ThreadPoolExecutor(
                    max_workers=EXECUTOR_WORKERS, thread_name_prefix="lwa"
                )
    return _shared_executor


def client_for(
    api_url: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    verify: bool | str = True,
    user_agent: str | None = None,
    proxies: dict[str, str] | None = None,
) -> LWAClient:
    """The process-wide client for a host, created once.

    Backends are created per request, so the client cannot live on the backend
    if its connections are to be reused from one sign-in to the next.
    """
    key = (api_url.rstrip("/"), timeout, verify, user_agent, tuple(sorted((proxies or {}).items())))
    client = _clients.get(key)
    if client is None:
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                client = LWAClient(
                    api_url, timeout=timeout, verify=verify, user_agent=user_agent, proxies=proxies
                )
                _clients[key] = client
    return client
