"""The Django strategy: social_django's, with the flow's hooks (``flow.AdapterStrategy``).

Select it with ``SOCIAL_AUTH_STRATEGY =
"social_amazon_link.django.strategy.DjangoStrategy"`` (and the storage with
``SOCIAL_AUTH_STORAGE = "social_amazon_link.django.storage.DjangoStorage"``).
Rule 7 is ``django.contrib.auth.login`` with the backend's dotted path: the
app's session, ``user_logged_in`` signal and session-key rotation behave as
for its own sign-in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

from django.contrib.auth import login
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_variables
from social_core.utils import user_is_authenticated
from social_django.strategy import DjangoStrategy as SocialDjangoStrategy

from ..flow.prompts import prompt_request_data

__all__ = ["PROMPT_VIEWS", "DjangoStrategy", "backend_path", "load_strategy", "signed_in_user"]

#: The URL names of the prompt pages (:mod:`.views`).
PROMPT_VIEWS = ("amazon_link_password", "amazon_link_register")


class DjangoStrategy(SocialDjangoStrategy):
    """Bind social-core to the current Django request, session and settings."""

    def get_request_data(self, merge: bool = True) -> Any:
        match = getattr(self.request, "resolver_match", None)
        if self.request is not None and match is not None and match.url_name in PROMPT_VIEWS:
            values = self.request.GET.dict()
            values.update(self.request.POST.dict())
            return prompt_request_data(values)
        return super().get_request_data(merge)  # type: ignore[no-untyped-call]

    @method_decorator(sensitive_variables())
    def authenticate(self, backend: Any, *args: Any, **kwargs: Any) -> Any:
        """Run the backend's pipeline (what ``django.contrib.auth.authenticate`` does
        for a social backend), every variable below hidden from Django's error
        reports: a prompt's answer (a typed password or code) travels in the
        pipeline's keywords, which Django's ``authenticate`` would show, as it
        hides only its own ``credentials``."""
        kwargs.update(strategy=self, storage=self.storage, backend=backend)
        kwargs.pop("request", None)
        user = backend.authenticate(self.request, *args, **kwargs)
        if isinstance(user, self.storage.user.user_model()):
            # As Django's authenticate marks the user it returns.
            cast(Any, user).backend = backend_path(backend)
        return user

    def session_keys(self) -> Iterable[str]:
        return list(self.session.keys())

    def request_remote_addr(self) -> str | None:
        return None if self.request is None else self.request.META.get("REMOTE_ADDR")

    def complete_url(self, backend_name: str) -> str:
        return str(reverse("social:complete", args=(backend_name,)))

    def send_link_signal(self, event: str, user: Any, details: Mapping[str, Any]) -> None:
        """A committed security event: its Django signal (:data:`.signals.SIGNALS`)."""
        from .signals import send

        send(self, event, user, details)

    def signed_in_user(self) -> Any:
        """The user the app's Django session has signed in, or None."""
        return signed_in_user(self.request)

    def login_user(self, backend: Any, user: Any, social_user: Any) -> None:
        """Rule 7: ``django.contrib.auth.login`` with the backend's dotted path
        (which must be in ``AUTHENTICATION_BACKENDS``: the system checks say so),
        the session's lifetime as social_django sets it (``SESSION_EXPIRATION``,
        ``MAX_SESSION_LENGTH``)."""
        # Imported here: social_django.utils imports this module (SOCIAL_AUTH_STRATEGY).
        from social_django.views import get_session_timeout

        request = self._require_request()
        login(request, user, backend=backend_path(backend))
        try:
            longest = int(backend.setting("MAX_SESSION_LENGTH", None))
        except (TypeError, ValueError):
            longest = None
        from_amazon = social_user is not None and backend.setting("SESSION_EXPIRATION", False)
        expiry = get_session_timeout(
            social_user, enable_session_expiration=bool(from_amazon), max_session_length=longest
        )
        try:
            request.session.set_expiry(expiry)
        except OverflowError:
            request.session.set_expiry(None)


def load_strategy(request: Any = None) -> Any:
    """The strategy ``SOCIAL_AUTH_STRATEGY`` names, bound to ``request`` (social_django's).

    Made once per request and kept as ``request.social_strategy``, where
    social_django's views keep theirs: the view, its error page and the end
    of its transaction share one.
    """
    if request is not None:
        made = getattr(request, "social_strategy", None)
        if made is not None and getattr(made, "request", None) is request:
            return made
    from social_django.utils import load_strategy as social_load_strategy

    strategy = social_load_strategy(request)  # type: ignore[no-untyped-call]
    if request is not None:
        request.social_strategy = strategy
    return strategy


def backend_path(backend: Any) -> str:
    """The dotted path Django's session keeps for ``backend`` (a class or an instance)."""
    cls = backend if isinstance(backend, type) else type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


def signed_in_user(request: Any) -> Any:
    """The user the app's session has signed in on ``request``, or None."""
    user = getattr(request, "user", None)
    return user if user is not None and user_is_authenticated(user) else None
