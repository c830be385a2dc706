"""The sign-in's views on Django: social_django's three, with this library's
rules, the prompt pages, and the error pages.

- ``/login/<backend>/`` (social_django's ``auth``, POST with a CSRF token)
  first ends the sign-in this browser left waiting
  (:func:`..flow.paused.end_waiting_prompt`).
- ``/complete/<backend>/`` is social_django's callback with rule 7's hook
  (:func:`..flow.login.login`) in place of its own ``_do_login``.
- ``/disconnect/<backend>/[<id>/]`` is social_django's, its link id read as
  written (``054`` names no link).
- ``/link/amazon/password`` and ``/link/amazon/register``: the prompt pages
  (:mod:`..flow.pages`); override ``social_amazon_link/password.html`` and
  ``register.html`` in the app's templates.

Every social-auth error on these views becomes the library's page (or a
redirect to ``LOGIN_ERROR_URL``) with its stable code and status, before
social_django's middleware could replace a 409 or a 429 with its own.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_POST
from social_core.actions import do_auth, do_complete
from social_core.exceptions import SocialAuthBaseException
from social_django import views as social_views

from ..errors import DatabaseUnavailable, InvalidRequest
from ..flow.login import login
from ..flow.pages import PromptPage, answer_prompt, cancel_prompt, error_page, open_prompt
from ..flow.paused import end_waiting_prompt, load_backend
from ..flow.prompts import FORM_EXPIRED
from ..storage_rules import parse_association_id
from .strategy import load_strategy, signed_in_user

__all__ = [
    "begin",
    "check_csrf",
    "complete",
    "database_outage",
    "disconnect",
    "password_prompt",
    "register_prompt",
]

View = Callable[..., HttpResponse]


def amazon_errors(view: View) -> View:
    """Answer a social-auth error (or a database outage) with the library's page."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            response = view(request, *args, **kwargs)
        except SocialAuthBaseException as error:
            response = error_response(request, error)
        except Exception as error:
            unavailable = database_outage(request, error)
            if unavailable is None:
                raise
            response = error_response(request, unavailable)
        end_transaction(request)
        return response

    return wrapper


def database_outage(request: HttpRequest, error: BaseException) -> DatabaseUnavailable | None:
    """``database_unavailable`` when ``error`` says the database is out of reach, else None.

    Before answering, the request lets go of the database, as on Flask: what
    the storage opened is rolled back (nothing half-written), and the person
    counts as signed out for the rest of it, so that the error page, or the
    app's layout around it, does not read Django's session or the user again
    (a second failure there would be Django's own 500, with its traceback).
    """
    storage = load_strategy(request).storage
    unavailable: DatabaseUnavailable | None = storage.database_unavailable(error)
    if unavailable is not None:
        # DjangoStorage's; another storage an app brings may not have it.
        abandon = getattr(storage, "abandon_transaction", None)
        if callable(abandon):
            abandon()
        request.user = AnonymousUser()
    return unavailable


def end_transaction(request: HttpRequest) -> None:
    """Commit what the storage still holds open (an identity lock whose sign-in
    found the account made meanwhile), before the session middleware writes
    the session on the same connection: what Flask's session teardown does."""
    load_strategy(request).storage.end_transaction()


def error_response(request: HttpRequest, error: SocialAuthBaseException) -> HttpResponse:
    page = error_page(load_strategy(request), error, signed_in=signed_in_user(request) is not None)
    response: HttpResponse
    if page.redirect_url:
        response = HttpResponseRedirect(page.redirect_url)
    else:
        response = render(request, page.template, page.context, status=page.status)
    for name, value in page.headers.items():
        response[name] = value
    add_never_cache_headers(response)
    return response


def check_csrf(request: HttpRequest) -> None:
    """Django's CSRF check of a form of ours, its token in ``csrf_token`` (or
    Django's ``csrfmiddlewaretoken``): ``invalid_request`` when it fails."""
    sent = request.POST.get("csrf_token")
    if isinstance(sent, str) and "csrfmiddlewaretoken" not in request.POST:
        request.META[settings.CSRF_HEADER_NAME] = sent
    if CsrfViewMiddleware(_no_response).process_view(request, None, (), {}) is not None:
        raise InvalidRequest(FORM_EXPIRED)


def _no_response(_request: HttpRequest) -> HttpResponse:
    raise AssertionError("only process_view is called")  # pragma: no cover


def _forms(view: View) -> View:
    """Our views' common frame: no cache, open to anonymous visitors, our errors."""
    framed: View = never_cache(login_not_required(csrf_exempt(amazon_errors(view))))
    return framed


@_forms
@require_POST
def begin(request: HttpRequest, backend: str) -> HttpResponse:
    """social_django's ``auth``: a new sign-in ends what this browser left waiting."""
    check_csrf(request)
    strategy = _bind(request, backend)
    end_waiting_prompt(strategy, backend, starting=True, state=None)
    response: HttpResponse = do_auth(
        request.backend, redirect_name=REDIRECT_FIELD_NAME, user=signed_in_user(request)
    )
    return response


@_forms
def complete(request: HttpRequest, backend: str, *args: Any, **kwargs: Any) -> HttpResponse:
    """Amazon's redirect back (or the app's own paused step resumed): rule 7 through the flow."""
    strategy = _bind(request, backend)
    state = request.GET.get("state") or request.GET.get("redirect_state")
    end_waiting_prompt(strategy, backend, starting=False, state=state)
    kwargs.update(user=signed_in_user(request), redirect_name=REDIRECT_FIELD_NAME, request=request)
    response: HttpResponse = do_complete(request.backend, login, *args, **kwargs)
    return response


def _bind(request: Any, name: str) -> Any:
    """What social_django's ``psa`` does, with an unknown backend left to our error page."""
    strategy = load_strategy(request)  # kept as request.social_strategy
    request.backend = load_backend(strategy, name)
    return strategy


@_forms
@require_POST
def disconnect(request: HttpRequest, backend: str, association_id: str = "") -> HttpResponse:
    """social_django's ``disconnect``, its CSRF token checked as the prompts' are."""
    check_csrf(request)
    link = None if not association_id else parse_association_id(association_id)
    response: HttpResponse = social_views.disconnect(request, backend, link)
    return response


# A typed password or code never reaches Django's error report: not as a
# POST field, nor as a variable of any frame below the view (the steps, the
# app's password checker).
@sensitive_post_parameters("password", "code")
@_forms
@sensitive_variables()
def password_prompt(request: HttpRequest) -> HttpResponse:
    return _prompt(request, "password")


@sensitive_post_parameters("password", "code")
@_forms
@sensitive_variables()
def register_prompt(request: HttpRequest) -> HttpResponse:
    return _prompt(request, "registration")


def _prompt(request: HttpRequest, name: str) -> HttpResponse:
    post = request.method == "POST"
    strategy = load_strategy(request)
    page = open_prompt(strategy, name, post=post, form=request.POST, query=request.GET)
    if post:
        check_csrf(request)
        if request.POST.get("action") == "cancel":
            return HttpResponseRedirect(cancel_prompt(page))
        result = answer_prompt(page, request.POST.dict(), signed_in_user(request))
        if not isinstance(result, PromptPage):
            response: HttpResponse = result
            return response
    context = {**page.context, "action": request.path}
    return render(request, page.template, context, status=page.status)
