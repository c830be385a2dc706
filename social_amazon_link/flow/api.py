"""The mobile JSON API, framework-free: read a request, run the pipeline, answer.

A mobile app signs the person in with Amazon's SDK, which hands the *app* an
access token. The app sends it; this server checks with tokeninfo that the
token was issued to our ``KEY``, fetches the profile itself, and runs the same
pipeline as the web flow. Profile data in a request body is never read: a body
with anything but the token is refused.

- ``POST /api/amazon/token`` ``{"access_token"}``: :func:`token`. Signs in,
  or answers which question the sign-in paused on (``password_required``,
  ``code_required``, ``registration_required``) with a ``partial_token``.
- ``POST /api/amazon/continue`` ``{"partial_token", <the answer>}``:
  :func:`resume`. Resumes it.
- ``POST /api/amazon/code/challenge`` ``{}``: :func:`code_challenge`. A PKCE
  S256 challenge for the LWA SDK's authorization-code grant, its verifier
  held for this session (:mod:`.challenge`).
- ``POST /api/amazon/code`` ``{"code", "client_id", "redirect_uri"}``:
  :func:`code`. Exchanges the SDK's code with that verifier, without a
  secret, then signs in as :func:`token` does.

An integration's view reads the body (:func:`read_json`), calls one of these
and sends the :class:`Answer`; its error handler sends :func:`error_answer`.
Bodies are checked (size, JSON, fields) and the transport (:func:`check_transport`)
before anything reaches Amazon or the database. Neither the access token nor a
password or code is ever written to an answer or a log.

Setting ``API_RESPONSE_EXTRA``: dotted path of ``f(user) -> dict``, merged into
the ``authenticated`` answer (an app's own API token, say).
"""

from __future__ import annotations

import json
import logging
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from social_core.exceptions import (
    AuthConfigurationError,
    AuthPolicyError,
    SocialAuthBaseException,
)
from social_core.utils import PARTIAL_TOKEN_SESSION_NAME, module_member

from social_amazon_link.pipelines.pause import ANSWER_KEY, prompt_of

from ..errors import (
    AmazonError,
    InsecureTransport,
    InvalidPartial,
    InvalidRequest,
    RequestTooLarge,
    WrongAudience,
    error_status,
)
from ..settings import is_loopback_address
from ..text import has_control_characters, shown, storable
from .challenge import issue_challenge, take_verifier
from .login import check_may_sign_in, sign_in
from .paused import PausedSignIn, load_paused
from .prompts import PROMPTS, answer_fields, pause_answer, prompt_fields

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_FIELD_LENGTH",
    "METHOD_NOT_ALLOWED",
    "NOT_FOUND",
    "Answer",
    "check_transport",
    "code",
    "code_challenge",
    "error_answer",
    "read_json",
    "resume",
    "server_error",
    "token",
]

log = logging.getLogger("social_amazon_link")

#: A larger body is refused with 413 before it is parsed.
MAX_BODY_BYTES = 64 * 1024
#: The longest access token, partial token, password or form value accepted.
MAX_FIELD_LENGTH = 4096

# An OAuth 2 bearer token is printable ASCII without spaces (RFC 6750's
# b64token is narrower; Amazon's tokens add "|"): anything else cannot be one,
# and must not reach an Authorization header.
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")

# A sign-in answer names a user and may carry an app token.
_NO_STORE = {"Cache-Control": "no-store"}

#: Collects a request's secrets, to blank them out of an unexpected traceback.
Redact = Callable[..., None]


@dataclass(frozen=True)
class Answer:
    """What to send: a status, the JSON text, and headers."""

    status: int
    text: str
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, body: dict[str, Any], status: int, **headers: str) -> Answer:
        return cls(status, _dumps(body), {**_NO_STORE, **headers})


def _dumps(body: dict[str, Any]) -> str:
    return json.dumps(body, sort_keys=True) + "\n"


METHOD_NOT_ALLOWED = Answer.of(
    {"error": "method_not_allowed", "message": "Use POST."}, 405, Allow="POST"
)
NOT_FOUND = Answer.of(
    {
        "error": "not_found",
        "message": "POST /api/amazon/token, /api/amazon/continue, /api/amazon/code/challenge "
        "or /api/amazon/code.",
    },
    404,
)


# -- the endpoints -------------------------------------------------------------


def token(strategy: Any, backend: Any, body: dict[str, Any], redact: Redact) -> Answer:
    """Sign in with a client's LWA access token."""
    _only(body, ("access_token",))
    access_token = _text(body, "access_token", token=True)
    redact(access_token)
    check_transport(strategy, backend)
    return _sign_in(strategy, backend, lambda user: backend.do_auth(access_token, user=user))


def code_challenge(strategy: Any, backend: Any, body: dict[str, Any], redact: Redact) -> Answer:
    """A PKCE challenge for the LWA SDK's code grant; it replaces this session's last one."""
    _only(body, ())
    challenge = issue_challenge(strategy, backend)
    return Answer.of({"code_challenge": challenge, "code_challenge_method": "S256"}, 200)


def code(strategy: Any, backend: Any, body: dict[str, Any], redact: Redact) -> Answer:
    """Sign in with the code the LWA SDK got with this session's challenge.

    Refused before Amazon is called: a ``client_id`` that is neither ``KEY``
    nor one of ``AUDIENCES`` (``wrong_audience``: the code would be another
    app's), and a session with no challenge waiting (``invalid_request``).
    The challenge is used up whatever Amazon answers.
    """
    _only(body, ("code", "client_id", "redirect_uri"))
    values = {name: _text(body, name, token=True) for name in ("code", "client_id", "redirect_uri")}
    redact(values["code"])
    check_transport(strategy, backend)
    if values["client_id"] not in backend.client_ids():
        raise WrongAudience(backend=backend, reason="client_id_not_accepted", stage="callback")
    verifier = take_verifier(strategy, backend)
    redact(verifier)
    return _sign_in(
        strategy,
        backend,
        lambda user: backend.complete_code_grant(
            values["code"], values["client_id"], values["redirect_uri"], verifier, user=user
        ),
    )


def resume(strategy: Any, backend: Any, body: dict[str, Any], redact: Redact) -> Answer:
    """Answer the prompt a sign-in paused on, and carry on with it."""
    answers = answer_fields(backend)
    _only(body, ("partial_token", *answers))
    partial_token = _text(body, "partial_token")
    values = {
        # A password is checked against the app's own hash, never stored:
        # which characters one may hold is the app's rule (all but NUL).
        name: _text(body, name, empty_ok=True, controls_ok=name == "password")
        for name in answers
        if name in body
    }
    redact(*(values[name] for name in ("password", "code") if values.get(name)))
    check_transport(strategy, backend)

    paused = load_paused(strategy, partial_token)
    takes = prompt_fields(paused.kind, paused.backend)
    foreign = [name for name in values if name not in takes]
    if foreign:
        # The pause is kept: the client may answer again, properly.
        raise InvalidRequest(
            f"This sign-in waits for {PROMPTS[paused.kind].status.replace('_required', '')}: "
            f"{_names(foreign)} cannot answer it (send {_names(list(takes))})."
        )
    return _continue(paused, values)


def check_transport(strategy: Any, backend: Any) -> None:
    """Rule 1: a token, code or password reaches us over HTTPS.

    Plain HTTP is accepted only from loopback (a developer's machine, a
    proxy on the same host) or when the app says it sits behind a proxy
    that ends TLS (setting ``BEHIND_TLS_PROXY``): the secret has travelled
    in the clear already, but refusing it tells the app's developers before
    their users do.
    """
    # Only True turns it off: a string ("false") read from the environment
    # must not (init_app refuses one at start).
    if strategy.request_is_secure() or backend.setting("BEHIND_TLS_PROXY", False) is True:
        return
    if not is_loopback_address(strategy.request_remote_addr()):
        raise InsecureTransport(backend=backend, stage="callback")


# -- running the pipeline ------------------------------------------------------


def _sign_in(strategy: Any, backend: Any, authenticate: Callable[[Any], Any]) -> Answer:
    """Run ``authenticate(signed_in_user)`` (the pipeline) and answer its outcome."""
    signed_in = strategy.signed_in_user()
    before = strategy.session_get(PARTIAL_TOKEN_SESSION_NAME)
    # No request data reaches the steps: an answer to a prompt only ever
    # comes through /continue.
    with strategy.pipeline_request_data({}):
        result = authenticate(signed_in)
    return _outcome(strategy, backend, result, signed_in, previous_pause=before)


def _continue(paused: PausedSignIn, values: dict[str, str]) -> Answer:
    strategy, backend, partial = paused.strategy, paused.backend, paused.partial
    signed_in = strategy.signed_in_user()
    # The answer reaches the steps as a keyword, and never as request data:
    # social-core stores request data with any later pause (an app's own
    # step's), and a password must never be written anywhere. A signed-in
    # user joins the pipeline, as social-core's do_complete has it: the one
    # who was signed in when it paused (load_paused refused anyone else).
    partial.request_data = {}
    partial.extend_kwargs({ANSWER_KEY: values})
    if signed_in is not None:
        partial.extend_kwargs({"user": signed_in})
    try:
        backend.validate_partial_pipeline(partial, signed_in)
        result = backend.continue_pipeline(partial)
    except InvalidPartial:
        strategy.clean_partial_pipeline(paused.token)
        raise
    # A wrong password or an invalid form raised above and kept the pause for
    # another try; from here on it is used, whatever came next.
    strategy.clean_partial_pipeline(paused.token)
    return _outcome(strategy, backend, result, signed_in, previous_pause=None)


def _outcome(
    strategy: Any, backend: Any, result: Any, signed_in: Any, *, previous_pause: Any
) -> Answer:
    """Answer what the pipeline returned: a user, a new pause, or nothing usable."""
    if isinstance(result, strategy.storage.user.user_model()):
        answer = _authenticated(backend, result, signed_in)
        if isinstance(previous_pause, str):
            # Signed in: a pause left by an earlier attempt in this session
            # is of no use any more.
            strategy.clean_partial_pipeline(previous_pause)
        return answer

    pause_token = strategy.session_get(PARTIAL_TOKEN_SESSION_NAME)
    if result is not None and pause_token and pause_token != previous_pause:
        if isinstance(previous_pause, str):
            strategy.clean_partial_pipeline(previous_pause)
        prompt = prompt_of(strategy.partial_load(pause_token))
        if prompt is not None and prompt.get("kind") in PROMPTS:
            return Answer.of(pause_answer(pause_token, prompt), 200)
        strategy.clean_partial_pipeline(pause_token)
    if result is None:
        # The pipeline ended without a user (an app's own step decided so):
        # social-core's do_complete sends the browser to LOGIN_ERROR_URL.
        raise AuthPolicyError(backend, code="authentication_disallowed", stage="pipeline")
    # A step answered with a page or a redirect of its own: only a browser
    # can follow it.
    log.warning("Login with Amazon (API): a pipeline step answered with a page; refused")
    return Answer.of(
        {
            "error": "unsupported_step",
            "message": "This sign-in needs a step only the website can show.",
        },
        409,
    )


def _authenticated(backend: Any, user: Any, signed_in: Any) -> Answer:
    check_may_sign_in(backend, user, signed_in)
    answer = {
        # Ours win: a hook cannot change what a client branches on.
        **_response_extra(backend, user),
        "status": "authenticated",
        "user": {"id": user.id, "username": user.username, "email": user.email},
        "new_user": bool(getattr(user, "is_new", False)),
    }
    # Written out before the sign-in: a hook that fails, or returns what JSON
    # cannot hold, leaves no signed-in session behind its 500.
    text = _dumps(answer)
    if signed_in is None:
        sign_in(backend, user)
    return Answer(200, text, dict(_NO_STORE))


def _response_extra(backend: Any, user: Any) -> dict[str, Any]:
    """What the app's ``API_RESPONSE_EXTRA`` hook adds to an ``authenticated`` answer."""
    hook = backend.setting("API_RESPONSE_EXTRA")
    if not hook:
        return {}
    function = module_member(hook) if isinstance(hook, str) else hook  # type: ignore[no-untyped-call]
    extra = function(user)
    if not isinstance(extra, dict):
        raise AuthConfigurationError(
            backend, code="invalid_setting", parameter="API_RESPONSE_EXTRA", stage="pipeline"
        )
    return extra


# -- answering errors ----------------------------------------------------------


def error_answer(error: SocialAuthBaseException) -> Answer:
    """The answer for a sign-in failure: its stable code, never its details."""
    status = error_status(error)
    body = error.as_json() if isinstance(error, AmazonError) else {"error": error.code}
    # Codes and reasons only: never a token, a password or provider text.
    log.warning(
        "Login with Amazon (API) failed: %s (%s, stage %s)",
        error.code,
        getattr(error, "reason", error.code),
        error.stage,
    )
    retry_after = str(getattr(error, "retry_after_seconds", None) or error.retry_after or "")
    if status in (429, 502, 503) and retry_after.isdigit():
        return Answer.of(body, status, **{"Retry-After": retry_after})
    return Answer.of(body, status)


def server_error(error: BaseException, secrets: list[str]) -> tuple[Answer, str]:
    """A bug, not a sign-in failure: the answer, and the traceback to log.

    Every secret the request carried is blanked out of the traceback (an
    exception's text can quote an argument).
    """
    text = "".join(traceback.format_exception(error))
    for secret in secrets:
        text = text.replace(secret, "<redacted>")
    return Answer.of({"error": "server_error"}, 500), text


# -- reading the request -------------------------------------------------------


def read_json(read: Callable[[int], bytes], length: int | None, mimetype: str) -> dict[str, Any]:
    """The body as a JSON object, or ``invalid_request`` / ``request_too_large``.

    ``read(n)`` returns up to ``n`` more bytes of the body (``b""`` at its
    end); ``length`` is its Content-Length, when it has one.
    """
    if length is not None and length > MAX_BODY_BYTES:
        raise RequestTooLarge()
    # Read at most one byte over the limit: a chunked body has no length.
    raw = bytearray()
    try:
        while len(raw) <= MAX_BODY_BYTES:
            chunk = read(MAX_BODY_BYTES + 1 - len(raw))
            if not chunk:
                break
            raw += chunk
    except (OSError, ValueError):
        # The server's reader of a chunked body says its framing is broken.
        raise InvalidRequest(
            "The body could not be read: its chunked encoding is broken."
        ) from None
    if len(raw) > MAX_BODY_BYTES:
        raise RequestTooLarge()
    if not raw:
        raise InvalidRequest("The request has no body: send a JSON object.")
    if mimetype != "application/json":
        raise InvalidRequest("Content-Type must be application/json.")
    try:
        data = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constant,
            parse_int=_integer,
        )
    except UnicodeDecodeError:
        raise InvalidRequest("The body is not UTF-8.") from None
    except json.JSONDecodeError as error:
        raise InvalidRequest(
            f"The body is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})."
        ) from None
    except RecursionError:
        raise InvalidRequest("The body is nested too deeply.") from None
    if not isinstance(data, dict):
        raise InvalidRequest(f"The body must be a JSON object, not {_json_type(data)}.")
    return data


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two values for one field: which one counts is up to each parser, so
    # neither is taken.
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise InvalidRequest(f"Field '{_shown(key)}' appears more than once.")
        seen[key] = value
    return seen


def _no_constant(name: str) -> NoReturn:
    raise InvalidRequest(f"The body is not valid JSON: {name} is not a JSON value.")


def _integer(digits: str) -> int:
    # Past Python's limit on integer digits (4300 by default) int() raises a
    # plain ValueError, which json.loads lets through as it is.
    try:
        return int(digits)
    except ValueError:
        raise InvalidRequest(
            f"The body has a number too long to read ({len(digits.lstrip('-'))} digits)."
        ) from None


def _only(body: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(key for key in body if key not in allowed)
    if unknown:
        names = [_shown(name) for name in unknown[:10]]
        raise InvalidRequest(
            f"Unknown {'field' if len(unknown) == 1 else 'fields'}: {', '.join(names)} "
            f"(this endpoint accepts {_names(list(allowed))})."
        )


def _text(
    body: dict[str, Any],
    name: str,
    *,
    token: bool = False,
    empty_ok: bool = False,
    controls_ok: bool = False,
) -> str:
    """A string field, checked; its value never appears in a message.

    ``controls_ok``: control characters other than NUL are let through.
    """
    if name not in body:
        raise InvalidRequest(f"'{name}' is required.")
    value = body[name]
    if not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a string, not {_json_type(value)}.")
    if not value and not empty_ok:
        raise InvalidRequest(f"'{name}' is empty.")
    if len(value) > MAX_FIELD_LENGTH:
        raise InvalidRequest(f"'{name}' is longer than {MAX_FIELD_LENGTH} characters.")
    if not storable(value):
        # Valid JSON can carry both ("\u0000", "\ud800"), yet PostgreSQL
        # cannot hold or even compare a NUL, and no driver can send a lone
        # surrogate: refused here, before a query (or a counted try) fails.
        if "\x00" in value:
            raise InvalidRequest(f"'{name}' contains a NUL character.")
        raise InvalidRequest(f"'{name}' is not valid Unicode (it holds a lone surrogate).")
    if not controls_ok and has_control_characters(value):
        raise InvalidRequest(f"'{name}' contains a control character.")
    if token and not _TOKEN_CHARS.fullmatch(value):
        raise InvalidRequest(f"'{name}' may only hold printable ASCII characters, no spaces.")
    return value


def _shown(name: str) -> str:
    """A field name the client sent, fit to quote back in a message."""
    return shown(name[:64])


def _names(names: list[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
