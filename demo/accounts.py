"""The demo app's own sign-in, registration, account page and sign-out."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.security import check_password_hash, generate_password_hash
from werkzeug.wrappers import Response

from social_amazon_link.flask.storage import FlaskStorage, database_outage
from social_amazon_link.sqlalchemy_storage import Reservation

from .csrf import check_csrf
from .models import User
from .rules import (
    FIELDS,
    account_page,
    attempt_limits,
    counted_check,
    locked_message,
    registration_errors,
    usable_username,
)

bp = Blueprint("accounts", __name__)
log = logging.getLogger(__name__)

#: Checked against when no account has the username, so that costs what a
#: wrong password costs (the same hashing method as the accounts').
_UNUSED_HASH = generate_password_hash("no account has this password")


def _db() -> Any:
    return current_app.extensions["demo_db"]


@bp.errorhandler(DBAPIError)
@bp.errorhandler(PoolTimeout)
def database_error(error: Exception) -> Any:
    """The demo's own pages while the database is down: the integration's answer, 503."""
    unavailable = database_outage(error)
    if unavailable is None:
        raise error
    log.warning("Demo page failed: %s (%s)", unavailable.code, unavailable.reason)
    page = render_template(
        "social_amazon_link/error.html",
        code=unavailable.code,
        message=unavailable.message,
        stage=unavailable.stage,
        back_url=url_for("accounts.login"),
    )
    return page, 503, {"Retry-After": str(unavailable.retry_after_seconds)}


@bp.get("/")
def index() -> Response:
    if current_user.is_authenticated:
        return _to_account()
    return redirect(url_for("accounts.login"))


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    # Signed in already: this page's Login with Amazon button would link a
    # second Amazon account to the signed-in one instead of signing in.
    if current_user.is_authenticated:
        return _to_account()
    form = {"username": request.form.get("username", "")}
    if request.method == "POST":
        check_csrf()
        user = _find_user(form["username"])
        password = request.form.get("password", "")
        if user is None or not user.has_usable_password():
            # As slow as a wrong password: the answer's time must not tell
            # which usernames exist.
            check_password_hash(_UNUSED_HASH, password)
        else:
            outcome = _counted_check(user, password)
            if outcome is True:
                login_user(user)
                return _to_account()
            if isinstance(outcome, Reservation):
                return _locked(form, outcome.retry_after)
        flash("Wrong username or password.", "error")
    return render_template("login.html", form=form)


def _counted_check(user: User, password: str) -> bool | Reservation:
    """Check the password as one counted try (:func:`demo.rules.counted_check`)."""
    limits = attempt_limits(current_app.config.get)
    outcome: bool | Reservation = counted_check(
        FlaskStorage.link_attempts, user.id, lambda: user.check_password(password), limits
    )
    return outcome


def _locked(form: dict[str, str], retry_after: int) -> Response:
    page = render_template("login.html", form=form, locked=locked_message(retry_after))
    response: Response = current_app.make_response((page, 429, {"Retry-After": str(retry_after)}))
    return response


@bp.route("/register", methods=["GET", "POST"])
def register() -> Any:
    if current_user.is_authenticated:  # as on /login
        return _to_account()
    form = {name: request.form.get(name, "").strip() for name in FIELDS}
    errors: dict[str, str] = {}
    if request.method == "POST":
        check_csrf()
        password = request.form.get("password", "")
        errors = registration_errors(form, password, lambda name: _find_user(name) is not None)
        if not errors:
            db = _db()
            user = User(
                username=form["username"],
                email=form["email"],
                name=form["name"] or None,
                postal_code=form["postal_code"] or None,
            )
            user.set_password(password)
            db.add(user)
            db.commit()
            login_user(user)
            return _to_account()
    return render_template("register.html", form=form, errors=errors)


def _to_account() -> Response:
    return redirect(url_for("accounts.account"))


def _find_user(username: str) -> User | None:
    """The account with this username (in any case), or None: none has it, or none could."""
    usable = usable_username(username)
    if usable is None:
        return None
    query = select(User).where(func.lower(User.username) == usable.lower())
    user: User | None = _db().scalars(query).first()
    return user


@bp.get("/account")
@login_required
def account() -> str:
    return render_template(
        "account.html", **account_page(current_user, current_user.social_auth, FlaskStorage)
    )


def amazon_links_of(user: Any) -> list[Any]:
    """The Amazon links of ``user``, oldest first (none for an anonymous visitor)."""
    if not user.is_authenticated:
        return []
    return sorted((s for s in user.social_auth if s.provider == "amazon"), key=lambda s: s.id)


@bp.post("/logout")
def logout() -> Response:
    check_csrf()
    logout_user()
    flash("You are signed out.", "info")
    return redirect(url_for("accounts.login"))
