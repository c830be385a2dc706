"""The Django demo's own sign-in, registration, account page, sign-out and Outbox.

Each view is the Flask demo's (:mod:`demo.accounts`) with Django's request,
session and ``login``: the rules (:mod:`demo.rules`) and the pages
(demo/templates, through :mod:`.pages`) are the same files.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as django_login
from django.contrib.auth import logout as django_logout
from django.contrib.auth.hashers import check_password, make_password
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from demo.rules import (
    FIELDS,
    account_page,
    attempt_limits,
    counted_check,
    locked_message,
    registration_errors,
    usable_username,
)
from social_amazon_link.django.storage import DjangoStorage

from .models import User
from .outbox import MESSAGES
from .pages import render

#: Django's own backend signs in the accounts of the demo's own sign-in form.
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
#: Checked against when no account has the username, so that costs what a
#: wrong password costs (the same hasher as the accounts').
_UNUSED_HASH = make_password("no account has this password")

View = Callable[..., HttpResponse]


def _signed_in(request: HttpRequest) -> bool:
    return bool(request.user.is_authenticated)


def _to_account() -> HttpResponse:
    return HttpResponseRedirect("/account")


def login_required(view: View) -> View:
    """Flask-Login's ``login_required``, as the Flask demo words it."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not _signed_in(request):
            messages.info(request, "Please sign in to see your account.")
            return HttpResponseRedirect("/login?" + urlencode({"next": request.path}))
        return view(request, *args, **kwargs)

    return wrapper


def index(request: HttpRequest) -> HttpResponse:
    return _to_account() if _signed_in(request) else HttpResponseRedirect("/login")


@sensitive_post_parameters("password")
def login(request: HttpRequest) -> HttpResponse:
    # Signed in already: this page's Login with Amazon button would link a
    # second Amazon account to the signed-in one instead of signing in.
    if _signed_in(request):
        return _to_account()
    form = {"username": request.POST.get("username", "")}
    if request.method == "POST":
        user = _find_user(form["username"])
        password = request.POST.get("password", "")
        if user is None or not user.has_usable_password():
            # As slow as a wrong password: the answer's time must not tell
            # which usernames exist.
            check_password(password, _UNUSED_HASH)
        else:
            limits = attempt_limits(lambda name, default: getattr(settings, name, default))
            outcome = counted_check(
                DjangoStorage.link_attempts, user.pk, lambda: user.check_password(password), limits
            )
            if outcome is True:
                django_login(request, user, backend=MODEL_BACKEND)
                return _to_account()
            if outcome is not False:
                response = render(
                    request,
                    "login.html",
                    429,
                    form=form,
                    locked=locked_message(outcome.retry_after),
                )
                response["Retry-After"] = str(outcome.retry_after)
                return response
        messages.error(request, "Wrong username or password.")
    return render(request, "login.html", form=form)


@sensitive_post_parameters("password")
def register(request: HttpRequest) -> HttpResponse:
    if _signed_in(request):  # as on /login
        return _to_account()
    form = {name: request.POST.get(name, "").strip() for name in FIELDS}
    errors: dict[str, str] = {}
    if request.method == "POST":
        password = request.POST.get("password", "")
        errors = registration_errors(form, password, lambda name: _find_user(name) is not None)
        if not errors:
            user = User.objects.create_user(
                username=form["username"],
                email=form["email"],
                name=form["name"] or None,
                postal_code=form["postal_code"] or None,
                password=password,
            )
            django_login(request, user, backend=MODEL_BACKEND)
            return _to_account()
    return render(request, "register.html", form=form, errors=errors)


def _find_user(username: str) -> User | None:
    """The account with this username (in any case), or None: none has it, or none could."""
    usable = usable_username(username)
    if usable is None:
        return None
    return User.objects.filter(username__iexact=usable).order_by("id").first()


@login_required
def account(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    return render(
        request, "account.html", **account_page(user, user.social_auth.all(), DjangoStorage)
    )


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    django_logout(request)
    messages.info(request, "You are signed out.")
    return HttpResponseRedirect("/login")


def outbox(request: HttpRequest) -> HttpResponse:
    if not settings.DEMO_MODE:
        raise Http404  # real Amazon: no Outbox page
    return render(request, "outbox.html", messages=list(MESSAGES))


class HttpError:
    """What demo/templates/http_error.html shows (Werkzeug's names for an error)."""

    def __init__(self, code: int, name: str, description: str) -> None:
        self.code, self.name, self.description = code, name, description


def error_page(code: int, name: str, description: str) -> View:
    # One signature for Django's error handlers (request, exception) and its
    # CSRF failure view (request, reason).
    def view(request: HttpRequest, exception: Any = None, reason: str = "") -> HttpResponse:
        return render(request, "http_error.html", code, error=HttpError(code, name, description))

    return view


#: A refused form token: the Flask demo's 400 and its words.
csrf_failure = error_page(
    400, "Bad Request", "The form expired. Please reload the page and try again."
)
not_found = error_page(
    404,
    "Not Found",
    "The requested URL was not found on the server. If you entered the URL manually "
    "please check your spelling and try again.",
)
server_error = error_page(
    500,
    "Internal Server Error",
    "The server encountered an internal error and was unable to complete your request.",
)
