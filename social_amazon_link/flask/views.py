"""The pages a paused sign-in waits on: the password (or code) prompt and the prefilled
registration (``LINK_PASSWORD_URL``, ``LINK_REGISTRATION_URL``).

What each page shows and how its answer resumes the sign-in is
:mod:`social_amazon_link.flow.pages`; here, Flask's routing, templates and
the form's CSRF check. Override the look by putting
``social_amazon_link/password.html`` or ``social_amazon_link/register.html``
in the app's templates folder.
"""

from __future__ import annotations

from flask import Blueprint, g, redirect, render_template, request
from flask.typing import ResponseReturnValue
from social_flask.utils import load_strategy

from ..flow.pages import PromptPage, answer_prompt, cancel_prompt, open_prompt
from .csrf import check_csrf, csrf_token
from .strategy import PROMPT_PAGES

__all__ = ["bp"]

bp = Blueprint(PROMPT_PAGES, __name__, template_folder="templates")


@bp.route("/link/amazon/password", methods=["GET", "POST"])
def password_prompt() -> ResponseReturnValue:
    return _prompt("password")


@bp.route("/link/amazon/register", methods=["GET", "POST"])
def registration_prompt() -> ResponseReturnValue:
    return _prompt("registration")


def _prompt(name: str) -> ResponseReturnValue:
    post = request.method == "POST"
    page = open_prompt(load_strategy(), name, post=post, form=request.form, query=request.args)
    if post:
        check_csrf(request.form.get("csrf_token"))
        if request.form.get("action") == "cancel":
            return redirect(cancel_prompt(page))
        g.strategy, g.backend = page.paused.strategy, page.paused.backend
        result = answer_prompt(page, request.form, g.user)
        if not isinstance(result, PromptPage):
            response: ResponseReturnValue = result
            return response
    context = {**page.context, "csrf_token": csrf_token(), "action": request.path}
    return render_template(page.template, **context), page.status
