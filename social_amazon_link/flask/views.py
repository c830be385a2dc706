"""The pages a paused sign-in waits on: the password prompt and the prefilled registration.

``social_amazon_link.pipelines.match_by_email_require_password`` and
``social_amazon_link.pipelines.prefill_registration`` pause the pipeline
and redirect here (``LINK_PASSWORD_URL``, ``LINK_REGISTRATION_URL``). Each
page shows the prompt stored with the pause; its form posts back here, and
the sign-in resumes through social-core's ``do_complete``. A wrong answer
shows the form again with the reason; a pause that is unknown, expired,
from another session or resumed by someone other than who was signed in when
it paused is refused and removed (:func:`.paused.load_paused`, the checks the
JSON API applies too).

Override the look by putting ``social_amazon_link/password.html`` or
``social_amazon_link/register.html`` in the app's templates folder.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, g, redirect, render_template, request
from flask.typing import ResponseReturnValue
from social_core.actions import do_complete
from social_flask.routes import do_login

from social_amazon_link.pipelines.pause import ANSWER_KEY

from ..errors import (
    InvalidPartial,
    InvalidRequest,
    RegistrationInvalid,
    TooManyAttempts,
    WrongPassword,
)
from .csrf import check_csrf
from .paused import load_paused
from .strategy import PROMPT_PAGES

__all__ = ["bp"]

bp = Blueprint(PROMPT_PAGES, __name__, template_folder="templates")

#: Form fields that are not part of the person's answer.
_NOT_ANSWERS = ("csrf_token", "partial_token", "action", "next")

_TEMPLATES = {
    "password": "social_amazon_link/password.html",
    "email_code": "social_amazon_link/password.html",
    "registration": "social_amazon_link/register.html",
}


@bp.route("/link/amazon/password", methods=["GET", "POST"])
def password_prompt() -> ResponseReturnValue:
    return _prompt(("password", "email_code"))


@bp.route("/link/amazon/register", methods=["GET", "POST"])
def registration_prompt() -> ResponseReturnValue:
    return _prompt(("registration",))


def _prompt(kinds: tuple[str, ...]) -> ResponseReturnValue:
    # A form posts its token in the body only; a token also in the query
    # string would win in social-core's merged request data, so it must agree.
    token = request.form.get("partial_token", "") if request.method == "POST" else ""
    query_token = request.args.get("partial_token", "")
    if request.method == "POST" and query_token and query_token != token:
        raise InvalidPartial(reason="token_mismatch", stage="callback")
    token = token or query_token
    paused = load_paused(token, kinds)
    strategy, backend, prompt = paused.strategy, paused.backend, paused.prompt

    context: dict[str, Any] = {"prompt": prompt, "partial_token": token, "values": {}}
    if prompt["kind"] == "registration":
        context["values"] = dict(prompt.get("prefill") or {})
        context["errors"] = dict(prompt.get("errors") or {})
    if request.method == "GET":
        return render_template(_TEMPLATES[prompt["kind"]], **context)

    check_csrf(request.form.get("csrf_token"))
    if request.form.get("action") == "cancel":
        strategy.clean_partial_pipeline(token)
        return redirect(current_app.config.get("SOCIAL_AUTH_LOGIN_URL", "/"))
    g.strategy, g.backend = strategy, backend
    # The answer reaches the steps as a keyword, from this checked form only.
    answer: dict[str, Any] = {
        ANSWER_KEY: {k: v for k, v in request.form.items() if k not in _NOT_ANSWERS}
    }
    try:
        response: ResponseReturnValue = do_complete(backend, login=do_login, user=g.user, **answer)
        return response
    except InvalidPartial:
        strategy.clean_partial_pipeline(token)
        raise
    except (WrongPassword, TooManyAttempts, InvalidRequest) as error:
        # Show the form again with what the person typed (never the password).
        context["values"] = {
            k: v for k, v in request.form.items() if k not in ("password", "code", "csrf_token")
        }
        context["error"] = error
        context["errors"] = error.fields if isinstance(error, RegistrationInvalid) else {}
        return render_template(_TEMPLATES[prompt["kind"]], **context), error.http_status
