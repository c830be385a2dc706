"""The pages of a sign-in, framework-free: the prompts, and the error page.

``match_by_email_require_password`` and ``prefill_registration`` pause the
pipeline and redirect to a prompt page (``LINK_PASSWORD_URL``,
``LINK_REGISTRATION_URL``). :func:`open_prompt` loads the pause the page
shows (the checks of :func:`.paused.load_paused`, which the JSON API applies
too); :func:`answer_prompt` resumes the sign-in through social-core's
``do_complete`` with the form's answer. A wrong answer shows the form again
with the reason. The integration renders ``template`` with ``context``,
checks the form's CSRF token, and signs the person in with the hook of
:mod:`.login`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from social_core.actions import do_complete
from social_core.exceptions import SocialAuthBaseException

from social_amazon_link.pipelines.pause import ANSWER_KEY

from ..errors import (
    DatabaseUnavailable,
    InvalidPartial,
    InvalidRequest,
    RegistrationInvalid,
    TooManyAttempts,
    WrongPassword,
    error_status,
    plain_message,
)
from .login import login
from .paused import PausedSignIn, load_paused
from .prompts import NOT_ANSWERS, PAGES, PROMPTS

__all__ = ["ErrorPage", "PromptPage", "answer_prompt", "cancel_prompt", "error_page", "open_prompt"]

log = logging.getLogger("social_amazon_link")


@dataclass
class PromptPage:
    """A prompt page to render: ``template`` with ``context``, answered with ``status``."""

    paused: PausedSignIn
    template: str
    context: dict[str, Any]
    status: int = 200


def open_prompt(
    strategy: Any, page: str, *, post: bool, form: Mapping[str, str], query: Mapping[str, str]
) -> PromptPage:
    """The pause a prompt page shows, or :class:`InvalidPartial`.

    A form posts its token in the body only; a token also in the query
    string would win in social-core's merged request data, so it must agree.
    """
    token = form.get("partial_token", "") if post else ""
    query_token = query.get("partial_token", "")
    if post and query_token and query_token != token:
        raise InvalidPartial(reason="token_mismatch", stage="callback")
    token = token or query_token
    paused = load_paused(strategy, token, PAGES[page])
    prompt = paused.prompt
    context: dict[str, Any] = {"prompt": prompt, "partial_token": token, "values": {}}
    if paused.kind == "registration":
        context["values"] = dict(prompt.get("prefill") or {})
        context["errors"] = dict(prompt.get("errors") or {})
    return PromptPage(paused, PROMPTS[paused.kind].template, context)


def cancel_prompt(page: PromptPage) -> str:
    """The person gave up: the pause ends; where to send them."""
    page.paused.strategy.clean_partial_pipeline(page.paused.token)
    return str(page.paused.strategy.setting("LOGIN_URL", "/"))


def answer_prompt(page: PromptPage, form: Mapping[str, str], user: Any) -> Any:
    """Resume the sign-in with the form's answer: ``do_complete``'s response, or
    ``page`` again with the error when the answer was wrong (the pause is kept)."""
    paused = page.paused
    # The answer reaches the steps as a keyword, from this checked form only.
    answer: dict[str, Any] = {ANSWER_KEY: {k: v for k, v in form.items() if k not in NOT_ANSWERS}}
    try:
        return do_complete(paused.backend, login=login, user=user, **answer)
    except InvalidPartial:
        paused.strategy.clean_partial_pipeline(paused.token)
        raise
    except (WrongPassword, TooManyAttempts, InvalidRequest) as error:
        # Show the form again with what the person typed (never the password).
        page.context["values"] = {
            k: v for k, v in form.items() if k not in ("password", "code", "csrf_token")
        }
        page.context["error"] = error
        page.context["errors"] = error.fields if isinstance(error, RegistrationInvalid) else {}
        page.status = error.http_status
        return page


@dataclass
class ErrorPage:
    """What a failed sign-in shows: a redirect to ``LOGIN_ERROR_URL``, or a page."""

    status: int
    redirect_url: str | None = None
    template: str = "social_amazon_link/error.html"
    context: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def error_page(strategy: Any, error: SocialAuthBaseException, signed_in: bool) -> ErrorPage:
    """The page (or redirect) for ``error``, with its stable code, never a 500."""
    status = error_status(error)
    reason = getattr(error, "reason", error.code)
    # Codes and reasons only: provider details can carry identifiers, and
    # tokens never reach an error's text.
    log.warning("Login with Amazon failed: %s (%s, stage %s)", error.code, reason, error.stage)
    error_url = strategy.setting("LOGIN_ERROR_URL")
    # The app's error page needs the database too: an outage is answered here.
    if error_url and not isinstance(error, DatabaseUnavailable):
        sep = "&" if "?" in error_url else "?"
        return ErrorPage(status, redirect_url=f"{error_url}{sep}{urlencode({'error': error.code})}")
    # An invalid request says what to correct (never provider data, which
    # only other errors carry).
    if isinstance(error, (InvalidRequest, TooManyAttempts)) and error.detail:
        message = str(error.detail)
    else:
        message = plain_message(error, signed_in=signed_in)
    back = "LOGIN_REDIRECT_URL" if signed_in else "LOGIN_URL"
    page = ErrorPage(
        status,
        context={
            "error": error,
            "code": error.code,
            "message": message,
            "stage": error.stage,
            "signed_in": signed_in,
            "back_url": strategy.setting(back, "/"),
        },
    )
    retry_after = getattr(error, "retry_after_seconds", None)
    if isinstance(retry_after, int):
        page.headers["Retry-After"] = str(retry_after)
    return page
