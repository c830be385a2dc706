"""The one HTTP client for Amazon's Login with Amazon endpoints.

Every call to Amazon goes through :class:`LWAClient`: kept-alive connections
(so a sign-in does not pay a TCP and TLS handshake per call), one timeout
policy, and one place (:func:`check_answer`) that turns every way a call can
fail into an error of :mod:`social_amazon_link.errors`. Every call goes
through the client's ``requests.Session``, so a ``requests``-level mock
(``responses``) or a mounted adapter sees all of them. The calls of one
sign-in share one :class:`Deadline`: ``REQUESTS_TIMEOUT`` bounds their sum,
not each read.

Access tokens travel in the ``Authorization`` header, except for tokeninfo,
whose only documented form is the query string; the client never logs a URL.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlencode

import requests
from requests.cookies import RequestsCookieJar
from requests.hooks import default_hooks
from requests.structures import CaseInsensitiveDict
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
    "Deadline",
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

# A connect timeout a little above a multiple of 3 s (TCP's retransmit step),
# within the sign-in's deadline (the configurable part).
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


class Deadline:
    """When every call to Amazon of one sign-in must be over.

    The clock starts at the first call, so the time a sign-in spends before
    it (reading its session, its state) is not Amazon's. Each call may take
    only the time left, and a call still running at the deadline is cut (see
    :class:`_Cutter`): a slow token exchange leaves less to the profile, and
    an answer that trickles in byte by byte ends at the deadline too.
    """

    __slots__ = ("_at", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._at: float | None = None

    def at(self) -> float:
        """The deadline on ``time.monotonic()``'s clock (starting the clock)."""
        if self._at is None:
            self._at = time.monotonic() + self.seconds
        return self._at

    def left(self, stage: ErrorStage) -> float:
        """Seconds left; ``AmazonUnavailable("timeout")`` when there are none."""
        left = self.at() - time.monotonic()
        if left <= 0:
            raise AmazonUnavailable(reason="timeout", stage=stage)
        return left

    def passed(self) -> bool:
        return self._at is not None and time.monotonic() >= self._at


class _Watch:
    """One call under way: the connection (and its socket) it holds, until it gives it back."""

    __slots__ = ("conn", "sock")

    def __init__(self) -> None:
        self.conn: Any = None
        self.sock: socket.socket | None = None


class _Cutter:
    """One thread that shuts the connection of every call still running at its deadline.

    A socket timeout only bounds each read; shutting the socket down ends the
    call, wherever it waits (headers or body). A call registers a
    :class:`_Watch`; the connection pool names the connection it takes
    (:class:`_WatchedPool`) and unnames it when it is given back, so a
    connection back in the pool is never cut. The thread sleeps until the
    earliest deadline, at least :attr:`RESOLUTION` seconds at a time: under
    load it wakes a few times a second, not once per call.
    """

    RESOLUTION = 0.05

    def __init__(self) -> None:
        self._reset()
        # A forked child has the parent's state but not its thread.
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self.lock = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._local = threading.local()

    def watch(self, at: float) -> _Watch:
        watch = _Watch()
        with self.lock:
            heapq.heappush(self._heap, (at, next(self._order), watch))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="lwa-cutter", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is watch:
                self.lock.notify()
        self._local.watch = watch
        return watch

    def current(self) -> _Watch | None:
        """The watch of the call this thread is making."""
        return getattr(self._local, "watch", None)

    def done(self, watch: _Watch) -> None:
        with self.lock:
            watch.conn = watch.sock = None
        self._local.watch = None

    def _run(self) -> None:
        with self.lock:
            while True:
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    watch = heapq.heappop(self._heap)[2]
                    if watch.sock is not None:
                        _shut(watch.sock)
                        watch.conn = watch.sock = None
                wait = self._heap[0][0] - now if self._heap else None
                self.lock.wait(None if wait is None else max(wait, self.RESOLUTION))


def _shut(sock: socket.socket) -> None:
    """End a connection's reads and writes now, from another thread."""
    try:
        # The plain socket's shutdown, also for TLS: ssl.SSLSocket's own
        # drops its TLS state under the thread that is reading.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


_CUTTER = _Cutter()


class _WatchedPool:
    """Mixed into urllib3's connection pools: tells the cutter which connection a call holds."""

    def _validate_conn(self, conn: Any) -> None:
        super()._validate_conn(conn)  # type: ignore[misc]  # connects HTTPS
        watch = _CUTTER.current()
        if watch is not None:
            if conn.sock is None:
                # Plain HTTP connects here rather than in the request, so the
                # socket is known from the start. It is kept, as a connection
                # drops it once an answer says "Connection: close".
                conn.connect()
            with _CUTTER.lock:
                watch.conn, watch.sock = conn, conn.sock

    def _put_conn(self, conn: Any) -> None:
        watch = _CUTTER.current()
        if watch is not None and watch.conn is conn:
            with _CUTTER.lock:
                watch.conn = watch.sock = None
        super()._put_conn(conn)  # type: ignore[misc]


def _watched(pool_classes: dict[str, type]) -> dict[str, type]:
    return {
        scheme: type(f"Watched{cls.__name__}", (_WatchedPool, cls), {})
        for scheme, cls in pool_classes.items()
    }


class _NoCookies(RequestsCookieJar):
    """Amazon's API sets no cookie a sign-in needs: none is parsed or kept."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        pass

    def set_cookie(self, cookie: Any, *args: Any, **kwargs: Any) -> None:
        pass


class _Adapter(requests.adapters.HTTPAdapter):
    """requests' adapter: its pools watched for deadlines, and less work per call.

    ``send`` is requests' own, so whatever hooks it (``responses``) still sees
    every call; what is left out is work that gives the same answer on every
    call to one host (finding the pool, checking the CA bundle's path) and
    the parsing of cookies.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._pools: dict[tuple[Any, ...], Any] = {}
        super().__init__(*args, **kwargs)

    def get_connection_with_tls_context(
        self,
        request: requests.PreparedRequest,
        verify: Any,
        proxies: Mapping[str, str] | None = None,
        cert: Any = None,
    ) -> Any:
        url = str(request.url)
        end = url.find("/", url.find("//") + 2)
        key = (url if end < 0 else url[:end], verify, cert, tuple((proxies or {}).items()))
        pool = self._pools.get(key)
        if pool is None or pool.pool is None:  # new, or closed by the pool manager
            pool = super().get_connection_with_tls_context(request, verify, proxies, cert)
            self._pools[key] = pool
        return pool

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        checked = (url[:6].lower() == "https:", verify, cert)
        if getattr(conn, "_lwa_checked", None) != checked:
            super().cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call]
            conn._lwa_checked = checked

    def request_url(self, request: requests.PreparedRequest, proxies: Any) -> str:
        if not proxies:
            return request.path_url
        return super().request_url(request, proxies)

    def close(self) -> None:
        self._pools.clear()
        super().close()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        manager = self.poolmanager
        manager.pool_classes_by_scheme = _watched(manager.pool_classes_by_scheme)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        fresh = proxy not in self.proxy_manager
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if fresh and not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = _watched(manager.pool_classes_by_scheme)
        return manager

    def build_response(self, req: requests.PreparedRequest, resp: Any) -> requests.Response:
        response = requests.Response()
        response.status_code = getattr(resp, "status", None)  # type: ignore[assignment]
        response.headers = CaseInsensitiveDict(getattr(resp, "headers", {}))
        response.encoding = requests.utils.get_encoding_from_headers(response.headers)
        response.raw = resp
        response.reason = resp.reason
        response.url = req.url  # type: ignore[assignment]
        response.request = req
        response.connection = self
        return response


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
        #: Seconds all the calls of one sign-in may take together.
        self.timeout = timeout
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
        self.session.cookies = _NoCookies()
        adapter = _Adapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        # Only the headers Amazon needs: each costs CPU on every call, and
        # requests' "Accept-Encoding: gzip" would buy compressing a body of a
        # few hundred bytes.
        self.session.headers = CaseInsensitiveDict(
            {
                "User-Agent": user_agent or requests.utils.default_user_agent(),
                "Accept": "application/json",
            }
        )
        # The headers of profile and tokeninfo, merged once: those calls are
        # prepared by hand (requests' preparing and merging was the largest
        # CPU cost of a sign-in), then sent through the session as any other.
        self._headers = {name: str(value) for name, value in self.session.headers.items()}

    def __repr__(self) -> str:
        return f"LWAClient({self.api_url!r})"

    def deadline(self) -> Deadline:
        """A deadline for the calls of one sign-in: ``timeout`` seconds from the first."""
        return Deadline(self.timeout)

    # -- transport ---------------------------------------------------------

    def send(
        self,
        method: str,
        url: str,
        *,
        stage: ErrorStage = "user_info",
        deadline: Deadline | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send one request within ``deadline``, else within ``timeout`` (the client's).

        Transport failures become ``AmazonUnavailable``.
        """
        request = self.session.prepare_request(requests.Request(method, url, **kwargs))
        return self._send(request, stage, deadline or Deadline(timeout or self.timeout))

    def _send(
        self, request: requests.PreparedRequest, stage: ErrorStage, deadline: Deadline
    ) -> requests.Response:
        left = deadline.left(stage)
        watch = _CUTTER.watch(deadline.at())
        try:
            return self.session.send(
                request,
                timeout=(min(CONNECT_TIMEOUT, left), left),
                allow_redirects=False,
                proxies=self.session.proxies,
            )
        except requests.RequestException as error:
            redact_request_error(error, request_url=str(request.url))
            raise AmazonUnavailable(reason=_failure(error, deadline), stage=stage) from error
        finally:
            _CUTTER.done(watch)

    def _get_json(
        self, endpoint: Endpoint, url: str, headers: dict[str, str], deadline: Deadline | None
    ) -> dict[str, Any]:
        request = requests.PreparedRequest()
        request.method = "GET"
        request.url = url
        request.headers = CaseInsensitiveDict({**self._headers, **headers})
        request.hooks = default_hooks()
        answer = self._send(request, _STAGES[endpoint], deadline or self.deadline())
        return check_answer(answer, endpoint)

    # -- LWA endpoints -----------------------------------------------------

    def profile(self, access_token: str, deadline: Deadline | None = None) -> Profile:
        """``GET /user/profile`` with the token in the Authorization header."""
        headers = {"Authorization": f"Bearer {access_token}"}
        return parse_profile(self._get_json("profile", self.profile_url, headers, deadline))

    def tokeninfo(self, access_token: str, deadline: Deadline | None = None) -> TokenInfo:
        """``GET /auth/o2/tokeninfo``: who the token was issued to, and for whom."""
        url = f"{self.tokeninfo_url}?{urlencode({'access_token': access_token})}"
        return _parse_tokeninfo(self._get_json("tokeninfo", url, {}, deadline))

    def verified_profile(
        self,
        access_token: str,
        client_id: str | Collection[str],
        deadline: Deadline | None = None,
    ) -> Profile:
        """The profile behind a token that a client sent us, after checking it is ours.

        Tokeninfo and profile are independent, so both are sent at once and a
        sign-in waits one round trip to Amazon, not two. The profile is only
        returned once tokeninfo says the token was issued to ``client_id``
        (or to one of them, given several: an app's several security profiles).
        """
        accepted = {client_id} if isinstance(client_id, str) else set(client_id)
        deadline = deadline or self.deadline()
        deadline.at()  # both calls' clock starts now
        info_future: Future[TokenInfo] = _executor().submit(self.tokeninfo, access_token, deadline)
        try:
            profile: Profile | None = self.profile(access_token, deadline)
            profile_error: Exception | None = None
        except (InvalidToken, AmazonUnavailable, AmazonBadResponse) as error:
            profile, profile_error = None, error
        # Tokeninfo decides first: a token for another app is "wrong_audience"
        # whatever the profile call said.
        info = self._tokeninfo_result(info_future, deadline)
        if info.aud not in accepted:
            raise WrongAudience(reason="aud_mismatch", stage="token_validation")
        if profile_error is not None:
            raise profile_error
        assert profile is not None
        if info.user_id != profile.user_id:
            raise AmazonBadResponse(reason="user_id_mismatch", stage="token_validation")
        return profile

    @staticmethod
    def _tokeninfo_result(future: Future[TokenInfo], deadline: Deadline) -> TokenInfo:
        """The tokeninfo answer, waited for no longer than the sign-in's deadline.

        When every pool worker is busy the call waits its turn; that wait must
        not stretch a sign-in past the deadline when Amazon is slow. A call
        that started is cut at the deadline itself: the small grace lets its
        own answer (or its own timeout) through.
        """
        try:
            return future.result(timeout=max(0.0, deadline.at() - time.monotonic()) + 0.1)
        except FutureTimeout:
            future.cancel()
            raise AmazonUnavailable(reason="timeout", stage="token_validation") from None

    def request_token(
        self,
        data: dict[str, str],
        auth: Any = None,
        url: str | None = None,
        deadline: Deadline | None = None,
    ) -> dict[str, Any]:
        """``POST /auth/o2/token`` (authorization_code or refresh_token grant)."""
        response = self.send(
            "POST",
            url or self.token_url,
            stage="token_exchange",
            deadline=deadline,
            data=data,
            auth=auth,
        )
        body = check_answer(response, "token")
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise AmazonBadResponse(reason="missing_access_token", stage="token_exchange")
        return body

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()


def _failure(error: requests.RequestException, deadline: Deadline) -> str:
    """The reason of a failed call: any failure once the deadline passed is its cut."""
    if isinstance(error, requests.Timeout) or deadline.passed():
        return "timeout"
    if isinstance(error, requests.exceptions.SSLError):
        return "tls_error"
    if isinstance(error, requests.ConnectionError):
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
