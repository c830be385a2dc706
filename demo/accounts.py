"""The demo app's own sign-in, registration, account page and sign-out."""

from __future__ import annotations

import logging
import re
from typing import Any, cast

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import String, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.security import check_password_hash, generate_password_hash
from werkzeug.wrappers import Response

from social_amazon_link.flask.storage import FlaskStorage, database_outage
from social_amazon_link.sqlalchemy_storage import Reservation
from social_amazon_link.text import has_control_characters, valid_email

from .csrf import check_csrf
from .models import User

bp = Blueprint("accounts", __name__)
log = logging.getLogger(__name__)

#: The attempt counter of this sign-in page (the linking prompt's is "link").
SIGN_IN = "sign_in"

USERNAME = re.compile(r"[A-Za-z0-9_.-]{3,40}")
#: Checked against when no account has the username, so that costs what a
#: wrong password costs (the same hashing method as the accounts').
_UNUSED_HASH = generate_password_hash("no account has this password")
#: The registration form's fields besides the password, each a column of users.
FIELDS = ("username", "email", "name", "postal_code")
#: Optional, but when given it looks like a postal code of some country (and
#: fits its column, :func:`_max_length`).
POSTAL_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 -]+")

#: How the account page words each security event of the linking flow.
EVENT_LABELS = {
    "linked": "Amazon account linked",
    "unlinked": "Amazon account unlinked",
    "wrong_password": "Wrong password while linking Amazon",
    "wrong_code": "Wrong emailed code while linking Amazon",
    "locked_out": "Linking locked after too many wrong passwords",
    "link_refused": "Amazon link refused",
    "email_updated": "Email updated from Amazon",
    "email_sync_skipped": "Email from Amazon not copied",
}
#: And the details the linking steps record with them.
DETAIL_LABELS = {
    "new_account": "new account made with Amazon",
    "signed_in": "connected while signed in",
    "password": "proved with this account's password",
    "email_code": "proved with an emailed code",
    "wrong_password": "",
    "wrong_code": "",
    "other_username": "a guess that named another username with this email",
    "no_password": "the account has no password to prove it is yours",
    "other_sign_in": "the account signs in with another Amazon account",
    "codes_sent": "too many codes emailed",
    "identity_in_use": "that Amazon account belongs to another account",
}


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
    """Check the password as one counted try: right, wrong, or the refusal (locked).

    The library's attempt counter, as its linking prompt uses it, with the
    same limits (``LINK_MAX_PASSWORD_ATTEMPTS`` per ``LINK_LOCKOUT_SECONDS``)
    but a count of its own (scope ``sign_in``): a lock that anyone with the
    account's email on their Amazon profile can cause on linking never stops
    the owner signing in here, and the other way round.
    """
    attempts = FlaskStorage.link_attempts
    config = current_app.config
    limits = {
        "max_attempts": int(config.get("SOCIAL_AUTH_AMAZON_LINK_MAX_PASSWORD_ATTEMPTS", 5)),
        "lockout_seconds": int(config.get("SOCIAL_AUTH_AMAZON_LINK_LOCKOUT_SECONDS", 900)),
        "scope": SIGN_IN,
    }
    # Waits while other tries of this account are being checked: a right
    # password is refused only once wrong ones locked the account.
    reservation = attempts.reserve(user.id, wait=10.0, **limits)
    if not reservation.allowed:
        return reservation
    try:
        right = user.check_password(password)
    except BaseException:
        attempts.release(user.id, scope=SIGN_IN)
        raise
    if right:
        attempts.clear(user.id, scope=SIGN_IN)
    else:
        attempts.fail(user.id, **limits)
    return right


def _locked(form: dict[str, str], retry_after: int) -> Response:
    minutes = max(1, round(retry_after / 60))
    wait = f"{retry_after} seconds" if retry_after < 90 else f"{minutes} minutes"
    message = (
        "Too many wrong passwords were tried for this account, so signing in with its "
        f"password is paused. Try again in {wait}."
    )
    page = render_template("login.html", form=form, locked=message)
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
        errors = _registration_errors(form, password)
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
    username = username.strip()
    # Not even a query: PostgreSQL refuses a NUL in a string (an error, not
    # "no such user"), and a name longer than the column matches nothing.
    if has_control_characters(username) or len(username) > _max_length("username"):
        return None
    query = select(User).where(func.lower(User.username) == username.lower())
    user: User | None = _db().scalars(query).first()
    return user


def _registration_errors(form: dict[str, str], password: str) -> dict[str, str]:
    """What to correct before the account can be created, by field."""
    # Control characters and lengths first, the lengths those of the columns:
    # PostgreSQL refuses a NUL or an over-long string with an error (a 500),
    # where SQLite would have stored it.
    errors = {
        name: "Remove the control characters."
        for name, value in [*form.items(), ("password", password)]
        if has_control_characters(value)
    }
    for name in ("email", "name"):  # the username's own rule is stricter
        if name not in errors and len(form[name]) > _max_length(name):
            errors[name] = f"At most {_max_length(name)} characters."
    if "username" not in errors:
        if not USERNAME.fullmatch(form["username"]):
            errors["username"] = "3 to 40 letters, digits, dots, dashes or underscores."
        elif _find_user(form["username"]) is not None:
            errors["username"] = "This username is taken."
    postal_code, longest = form["postal_code"], _max_length("postal_code")
    if "postal_code" not in errors and postal_code:
        if len(postal_code) > longest or not POSTAL_CODE.fullmatch(postal_code):
            errors["postal_code"] = f"Letters, digits, spaces or dashes, at most {longest}."
    # The library's rule: one canonical spelling per address (no trailing dot).
    if "email" not in errors and not valid_email(form["email"]):
        errors["email"] = "Enter an email address."
    if "password" not in errors and len(password) < 8:
        errors["password"] = "At least 8 characters."
    return errors


def _max_length(column: str) -> int:
    """The length of a users column (``String(n)`` in :mod:`demo.models`)."""
    return int(cast(String, User.__table__.c[column].type).length or 0)


@bp.get("/account")
@login_required
def account() -> str:
    links = sorted(current_user.social_auth, key=lambda link: link.id)
    amazon_links = [link for link in links if link.provider == "amazon"]
    allowed = FlaskStorage.user.allowed_to_disconnect
    return render_template(
        "account.html",
        user=current_user,
        amazon_links=amazon_links,
        # Asked of the storage the disconnect pipeline asks: never the last
        # way to sign in, so a link may go while a password or another stays.
        can_unlink={link.id for link in amazon_links if allowed(current_user, "amazon", link.id)},
        events=FlaskStorage.link_events.for_user(current_user.id, limit=10),
        event_labels=EVENT_LABELS,
        detail_labels=DETAIL_LABELS,
    )


@bp.post("/logout")
def logout() -> Response:
    check_csrf()
    logout_user()
    flash("You are signed out.", "info")
    return redirect(url_for("accounts.login"))
