"""The mobile JSON API: sign in with an access token the LWA SDK gave an app.

A mobile app signs the person in with Amazon's SDK, which hands the *app* an
access token. The app sends it here; this server checks with tokeninfo that
the token was issued to our ``KEY``, fetches the profile itself, and runs the
same pipeline as the web flow (``SOCIAL_AUTH_AMAZON_PIPELINE``). Profile data
in a request body is never read: a body with anything but the token is refused.

- ``POST /api/amazon/token`` ``{"access_token"}``: signs in, or answers which
  question the sign-in paused on (``password_required``, ``code_required``,
  ``registration_required``) with a ``partial_token``.
- ``POST /api/amazon/continue`` ``{"partial_token", <the answer>}``: resumes it.

A paused sign-in belongs to the session cookie that paused it (the rules in
:mod:`.paused`, shared with the HTML prompts), so clients must keep cookies.
A successful sign-in is Flask-Login's ``login_user``, as the app's own sign-in.

Every answer is JSON, ``{"status": ...}`` or ``{"error": code, ...}``; the codes
are :mod:`social_amazon_link.errors`'. Bodies are checked (size, JSON, fields)
before anything reaches Amazon or the database. Neither the access token nor a
password or code is ever written to an answer or a log.

Setting ``API_RESPONSE_EXTRA``: dotted path of ``f(user) -> dict``, merged into
the ``authenticated`` answer (an app's own API token, say).

An app protected by Flask-WTF's ``CSRFProtect`` has this blueprint exempted
when it is registered (or, if ``CSRFProtect`` comes later, before it checks
a request here): a mobile client holds no CSRF token, and no cross-site form
can send the ``application/json`` body every endpoint here requires (a script
on another origin can only if the app's own CORS rules let it).
"""

from __future__ import annotations

import json
import logging
import re
import traceback
from typing import Any, NoReturn

from flask import Blueprint, Response, current_app, g, request, url_for
from flask.sansio.app import App
from flask.sansio.blueprints import BlueprintSetupState
from flask_login import login_user
from social_core.exceptions import (
    AuthConfigurationError,
    AuthPolicyError,
    AuthSessionError,
    SocialAuthBaseException,
)
from social_core.utils import (
    PARTIAL_TOKEN_SESSION_NAME,
    module_member,
    user_is_active,
)
from social_flask.utils import load_backend, load_strategy
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.wrappers import Response as BaseResponse

from social_amazon_link.pipelines.pause import ANSWER_KEY, prompt_of
from social_amazon_link.pipelines.registration import DEFAULT_REQUIRED_FIELDS, FORM_FIELDS

from ..errors import AmazonError, InvalidPartial, InvalidRequest, error_status
from ..text import has_control_characters, shown, storable
from .paused import PROMPT_KINDS, PausedSignIn, load_paused
from .storage import database_outage
from .strategy import signed_in_user

__all__ = ["MAX_BODY_BYTES", "MAX_FIELD_LENGTH", "bp"]

log = logging.getLogger("social_amazon_link")

bp = Blueprint("amazon_api", __name__, url_prefix="/api/amazon")

#: A larger body is refused with 413 before it is parsed.
MAX_BODY_BYTES = 64 * 1024
#: The longest access token, partial token, password or form value accepted.
MAX_FIELD_LENGTH = 4096
#: The session key social-core's ``do_complete`` sets after a sign-in.
LAST_LOGIN_BACKEND = "social_auth_last_login_backend"

# An OAuth 2 bearer token is printable ASCII without spaces (RFC 6750's
# b64token is narrower; Amazon's tokens add "|"): anything else cannot be one,
# and must not reach an Authorization header.
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")
# The answers each prompt reads (registration adds LINK_REQUIRED_FIELDS).
_ANSWERS: dict[str, tuple[str, ...]] = {
    "password": ("password", "username"),
    "email_code": ("code",),
    "registration": FORM_FIELDS,
}
_STATUS = {
    "password": "password_required",
    "email_code": "code_required",
    "registration": "registration_required",
}
# Every standard method but POST (HEAD comes with GET). Listed so that each is
# routed to a view of ours: Flask's automatic OPTIONS answer is an empty HTML
# page, and its routing 405 never reaches a blueprint's error handlers.
_METHODS = ["GET", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"]
_ALL_METHODS = ["POST", *_METHODS]


# -- the endpoints -------------------------------------------------------------


@bp.post("/token", provide_automatic_options=False)
def token() -> Response:
    """Sign in with a client's LWA access token."""
    body = _json_object()
    _only(body, ("access_token",))
    access_token = _text(body, "access_token", token=True)
    _redact(access_token)

    strategy, backend = _load("amazon")
    signed_in = signed_in_user()
    before = strategy.session_get(PARTIAL_TOKEN_SESSION_NAME)
    # No request data reaches the steps: an answer to a prompt only ever
    # comes through /continue.
    with strategy.pipeline_request_data({}):
        result = backend.do_auth(access_token, user=signed_in)
    return _outcome(strategy, backend, result, signed_in, previous_pause=before)


@bp.post("/continue", provide_automatic_options=False)
def resume() -> Response:
    """Answer the prompt a sign-in paused on, and carry on with it."""
    body = _json_object()
    strategy, backend = _load("amazon")
    answers = _answer_fields(backend)
    _only(body, ("partial_token", *answers))
    partial_token = _text(body, "partial_token")
    values = {
        # A password is checked against the app's own hash, never stored:
        # which characters one may hold is the app's rule (all but NUL).
        name: _text(body, name, empty_ok=True, controls_ok=name == "password")
        for name in answers
        if name in body
    }
    _redact(*(values[name] for name in ("password", "code") if values.get(name)))

    paused = load_paused(partial_token, PROMPT_KINDS, strategy=strategy)
    takes = _prompt_fields(paused.kind, paused.backend)
    foreign = [name for name in values if name not in takes]
    if foreign:
        # The pause is kept: the client may answer again, properly.
        raise InvalidRequest(
            f"This sign-in waits for {_STATUS[paused.kind].replace('_required', '')}: "
            f"{_names(foreign)} cannot answer it (send {_names(list(takes))})."
        )
    return _continue(paused, values)


@bp.route("/token", methods=_METHODS)
@bp.route("/continue", methods=_METHODS)
def wrong_method() -> Response:
    # Routed here, not left to Flask: a routing 405 never reaches a
    # blueprint's error handlers, and the app's page would be HTML.
    response = _json({"error": "method_not_allowed", "message": "Use POST."}, 405)
    response.headers["Allow"] = "POST"
    return response


@bp.route("/", methods=_ALL_METHODS)
@bp.route("/<path:_rest>", methods=_ALL_METHODS)
def not_found(_rest: str = "") -> Response:
    return _json(
        {"error": "not_found", "message": "POST /api/amazon/token or /api/amazon/continue."},
        404,
    )


# -- running the pipeline ------------------------------------------------------


def _load(name: str) -> tuple[Any, Any]:
    """The strategy and backend, as social-auth-app-flask's views load them."""
    g.strategy = load_strategy()
    g.backend = load_backend(
        g.strategy, name, redirect_uri=url_for("social.complete", backend=name)
    )
    return g.strategy, g.backend


def _continue(paused: PausedSignIn, values: dict[str, str]) -> Response:
    strategy, backend, partial = paused.strategy, paused.backend, paused.partial
    signed_in = signed_in_user()
    # The answer reaches the steps as a keyword, and never as request data:
    # social-core stores request data with any later pause (an app's own
    # step's), and a password must never be written anywhere. A signed-in
    # user joins the pipeline, as social-core's do_complete has it: the one
    # who was signed in when it paused (load_paused refused anyone else).
    partial.request_data = {}
    partial.extend_kwargs({ANSWER_KEY: values})
    if signed_in is not None:
        partial.extend_kwargs({"user": signed_in})
    g.strategy, g.backend = strategy, backend
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
) -> Response:
    """Answer what the pipeline returned: a user, a new pause, or nothing usable."""
    if isinstance(result, strategy.storage.user.user_model()):
        answer = _authenticated(strategy, backend, result, signed_in)
        if isinstance(previous_pause, str):
            # Signed in: a pause left by an earlier attempt in this session
            # is of no use any more.
            strategy.clean_partial_pipeline(previous_pause)
        return answer

    pause_token = strategy.session_get(PARTIAL_TOKEN_SESSION_NAME)
    if isinstance(result, BaseResponse) and pause_token and pause_token != previous_pause:
        if isinstance(previous_pause, str):
            strategy.clean_partial_pipeline(previous_pause)
        prompt = prompt_of(strategy.partial_load(pause_token))
        if prompt is not None and prompt.get("kind") in _STATUS:
            return _json(_pause_answer(pause_token, prompt), 200)
        strategy.clean_partial_pipeline(pause_token)
    if result is None:
        # The pipeline ended without a user (an app's own step decided so):
        # social-core's do_complete sends the browser to LOGIN_ERROR_URL.
        raise AuthPolicyError(backend, code="authentication_disallowed", stage="pipeline")
    # A step answered with a page or a redirect of its own: only a browser
    # can follow it.
    log.warning("Login with Amazon (API): a pipeline step answered with a page; refused")
    return _json(
        {
            "error": "unsupported_step",
            "message": "This sign-in needs a step only the website can show.",
        },
        409,
    )


def _authenticated(strategy: Any, backend: Any, user: Any, signed_in: Any) -> Response:
    allow_inactive = bool(strategy.setting("ALLOW_INACTIVE_USERS_LOGIN", False, backend))
    if signed_in is not None and user.id != signed_in.id:
        raise AuthSessionError(backend, code="user_mismatch", stage="pipeline")
    if signed_in is None and not (user_is_active(user) or allow_inactive):
        # What social-core's do_complete refuses too (and Flask-Login would).
        raise AuthPolicyError(backend, code="authentication_disallowed", stage="pipeline")
    answer = {
        # Ours win: a hook cannot change what a client branches on.
        **_response_extra(backend, user),
        "status": "authenticated",
        "user": {"id": user.id, "username": user.username, "email": user.email},
        "new_user": bool(getattr(user, "is_new", False)),
    }
    # Written out before the sign-in: a hook that fails, or returns what JSON
    # cannot hold, leaves no signed-in session behind its 500.
    text = current_app.json.dumps(answer)
    if signed_in is None:
        # The app's own sign-in, then what social-core's _login_user adds.
        login_user(user, force=allow_inactive)
        social = getattr(user, "social_user", None)
        strategy.session_set(LAST_LOGIN_BACKEND, getattr(social, "provider", backend.name))
    return _json_text(text, 200)


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


def _pause_answer(partial_token: str, prompt: dict[str, Any]) -> dict[str, Any]:
    kind = prompt["kind"]
    answer: dict[str, Any] = {"status": _STATUS[kind], "partial_token": partial_token}
    if kind == "registration":
        answer["prefill"] = dict(prompt.get("prefill") or {})
        answer["required"] = list(prompt.get("required") or [])
        if prompt.get("errors"):
            answer["errors"] = dict(prompt["errors"])
    else:
        answer["email"] = prompt.get("email")
        if kind == "password" and prompt.get("choose_account"):
            answer["choose_account"] = True
    return answer


# -- reading the request -------------------------------------------------------


def _json_object() -> dict[str, Any]:
    """The body as a JSON object, or ``invalid_request`` / ``request_too_large``."""
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise RequestEntityTooLarge()
    # Read at most one byte over the limit: a chunked body has no length.
    raw = bytearray()
    try:
        while len(raw) <= MAX_BODY_BYTES:
            chunk = request.stream.read(MAX_BODY_BYTES + 1 - len(raw))
            if not chunk:
                break
            raw += chunk
    except (OSError, ValueError):
        # The server's reader of a chunked body says its framing is broken.
        raise InvalidRequest(
            "The body could not be read: its chunked encoding is broken."
        ) from None
    if len(raw) > MAX_BODY_BYTES:
        raise RequestEntityTooLarge()
    if not raw:
        raise InvalidRequest("The request has no body: send a JSON object.")
    if request.mimetype != "application/json":
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
        shown = [_shown(name) for name in unknown[:10]]
        raise InvalidRequest(
            f"Unknown {'field' if len(unknown) == 1 else 'fields'}: {', '.join(shown)} "
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


def _prompt_fields(kind: str, backend: Any) -> tuple[str, ...]:
    """The fields that answer one prompt (the registration form: ``LINK_REQUIRED_FIELDS`` too)."""
    if kind != "registration":
        return _ANSWERS[kind]
    required = backend.setting("LINK_REQUIRED_FIELDS", DEFAULT_REQUIRED_FIELDS)
    return tuple(dict.fromkeys([*FORM_FIELDS, *(str(name) for name in required)]))


def _answer_fields(backend: Any) -> tuple[str, ...]:
    """Every field some prompt reads: checked before the pause is even loaded."""
    names = [name for kind in _ANSWERS for name in _prompt_fields(kind, backend)]
    return tuple(dict.fromkeys(names))


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


# -- answering -----------------------------------------------------------------


def _json(body: dict[str, Any], status: int) -> Response:
    return _json_text(current_app.json.dumps(body), status)


def _json_text(text: str, status: int) -> Response:
    response = current_app.response_class(f"{text}\n", status=status, mimetype="application/json")
    # A sign-in answer names a user and may carry an app token.
    response.headers["Cache-Control"] = "no-store"
    return response


def _redact(*secrets: str) -> None:
    """Remember this request's secrets, to blank them out of an unexpected traceback."""
    g.amazon_api_secrets = [*getattr(g, "amazon_api_secrets", []), *secrets]


@bp.errorhandler(SocialAuthBaseException)
def _auth_error(error: SocialAuthBaseException) -> Response:
    status = error_status(error)
    body = error.as_json() if isinstance(error, AmazonError) else {"error": error.code}
    # Codes and reasons only: never a token, a password or provider text.
    log.warning(
        "Login with Amazon (API) failed: %s (%s, stage %s)",
        error.code,
        getattr(error, "reason", error.code),
        error.stage,
    )
    response = _json(body, status)
    retry_after = str(getattr(error, "retry_after_seconds", None) or error.retry_after or "")
    if status in (429, 502, 503) and retry_after.isdigit():
        response.headers["Retry-After"] = retry_after
    return response


@bp.errorhandler(413)
@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Response:
    if error.code == 413:
        return _json({"error": "request_too_large"}, 413)
    code = error.code or 400
    # Werkzeug's descriptions are plain sentences, written for clients.
    message = error.description or error.name
    return _json(
        {"error": "invalid_request" if code == 400 else f"http_{code}", "message": message}, code
    )


@bp.errorhandler(Exception)
def _unexpected(error: Exception) -> Response:
    unavailable = database_outage(error)
    if unavailable is not None:
        return _auth_error(unavailable)
    # A bug, not a sign-in failure: logged with its traceback, with every
    # secret this request carried blanked out (an exception's text can quote
    # an argument), and answered as JSON like everything else here.
    text = "".join(traceback.format_exception(error))
    for secret in getattr(g, "amazon_api_secrets", []):
        text = text.replace(secret, "<redacted>")
    current_app.logger.error("Login with Amazon (API): unexpected error\n%s", text)
    return _json({"error": "server_error"}, 500)


# -- an app's CSRF protection ----------------------------------------------------


@bp.record_once
def _exempt_when_registered(state: BlueprintSetupState) -> None:
    # CSRFProtect set up before this blueprint was registered: its
    # before_request runs ahead of any of ours, so the exemption must exist now.
    _exempt_from_csrf(state.app)


@bp.before_app_request
def _exempt_before_csrf_checks() -> None:
    # CSRFProtect set up after the registration: this app-wide hook was added
    # first, so on a request to this API it runs ahead of CSRFProtect's.
    if current_app.blueprints.get(request.blueprint or "") is bp:
        _exempt_from_csrf(current_app)


def _exempt_from_csrf(app: App) -> None:
    """Exempt this blueprint from Flask-WTF's ``CSRFProtect``, if the app uses it.

    Safe: every endpoint here reads only an ``application/json`` body, which a
    cross-site form cannot send and a cross-site script can only after a CORS
    preflight (``OPTIONS``, answered 405 here). ``exempt`` adds to a set, so
    calling it again is harmless.
    """
    csrf = app.extensions.get("csrf")
    exempt = getattr(csrf, "exempt", None)
    if callable(exempt):
        exempt(bp)
