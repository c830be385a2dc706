"""The demo app's own sign-in, registration, account page and sign-out."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from social_amazon_link.flask.storage import FlaskStorage

from .csrf import check_csrf
from .models import User

bp = Blueprint("accounts", __name__)

USERNAME = re.compile(r"[A-Za-z0-9_.-]{3,40}")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

#: How the account page words each security event of the linking flow.
EVENT_LABELS = {
    "linked": "Amazon account linked",
    "unlinked": "Amazon account unlinked",
    "wrong_password": "Wrong password while linking Amazon",
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
    "wrong_code": "wrong emailed code",
    "no_password": "the account has no password to prove it is yours",
    "identity_in_use": "that Amazon account belongs to another account",
}


def _db() -> Any:
    return current_app.extensions["demo_db"]


@bp.get("/")
def index() -> Response:
    if current_user.is_authenticated:
        return redirect(url_for("accounts.account"))
    return redirect(url_for("accounts.login"))


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    form = {"username": request.form.get("username", "")}
    if request.method == "POST":
        check_csrf()
        db = _db()
        user = db.scalars(
            select(User).where(func.lower(User.username) == form["username"].strip().lower())
        ).first()
        if user is not None and user.check_password(request.form.get("password", "")):
            login_user(user)
            return redirect(url_for("accounts.account"))
        flash("Wrong username or password.", "error")
    return render_template("login.html", form=form)


@bp.route("/register", methods=["GET", "POST"])
def register() -> Any:
    fields = ("username", "email", "name")
    form = {name: request.form.get(name, "").strip() for name in fields}
    errors: dict[str, str] = {}
    if request.method == "POST":
        check_csrf()
        db = _db()
        password = request.form.get("password", "")
        if not USERNAME.fullmatch(form["username"]):
            errors["username"] = "3 to 40 letters, digits, dots, dashes or underscores."
        elif db.scalars(
            select(User.id).where(func.lower(User.username) == form["username"].lower())
        ).first():
            errors["username"] = "This username is taken."
        if not EMAIL.fullmatch(form["email"]):
            errors["email"] = "Enter an email address."
        if len(password) < 8:
            errors["password"] = "At least 8 characters."
        if not errors:
            user = User(username=form["username"], email=form["email"], name=form["name"] or None)
            user.set_password(password)
            db.add(user)
            db.commit()
            login_user(user)
            return redirect(url_for("accounts.account"))
    return render_template("register.html", form=form, errors=errors)


@bp.get("/account")
@login_required
def account() -> str:
    links = [s for s in current_user.social_auth if s.provider == "amazon"]
    return render_template(
        "account.html",
        user=current_user,
        amazon=links[0] if links else None,
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
