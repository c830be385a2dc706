"""The demo app's own sign-in, registration, account page and sign-out."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from .csrf import check_csrf
from .models import User

bp = Blueprint("accounts", __name__)

USERNAME = re.compile(r"[A-Za-z0-9_.-]{3,40}")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


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
    return render_template("account.html", user=current_user, amazon=links[0] if links else None)


@bp.post("/logout")
def logout() -> Response:
    check_csrf()
    logout_user()
    flash("You are signed out.", "info")
    return redirect(url_for("accounts.login"))
