"""A paused sign-in: loading it back, and ending it when it must not go on.

The prompt pages and the JSON API resume a sign-in that
``social_amazon_link.pipelines.pause`` stored; :func:`load_paused` is their
one door, refusing (and removing) a pause unless

- it exists and waits for a prompt this caller can answer,
- it belongs to this client: its token is the one social-core put in *this*
  session when it paused (a token alone, leaked or guessed, resumes nothing),
- it belongs to this person: whoever is signed in now is who was signed in
  when it paused (nobody, or the same user). On a shared browser the next
  person must not inherit a sign-in left waiting: it would link the first
  person's Amazon account to the second's account,
- it is younger than ``LINK_PROMPT_MAX_AGE``.

The rest ends pauses that must not be resumed at all:
:func:`end_waiting_prompt` when a new sign-in starts or comes back from
Amazon, :func:`end_sign_ins` when the app signs someone in or out.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, NoReturn

from social_core.utils import (
    PARTIAL_TOKEN_PENDING_SESSION_NAME,
    PARTIAL_TOKEN_SESSION_NAME,
    constant_time_compare,
    module_member,
)

from social_amazon_link.pipelines.pause import SIGNED_IN_KEY, prompt_expired, prompt_of, signed_in
from social_amazon_link.pipelines.reauth import SIGNED_IN_AT_KEY

from ..errors import InvalidPartial
from .prompts import PROMPTS

__all__ = [
    "PausedSignIn",
    "end_sign_ins",
    "end_waiting_prompt",
    "load_backend",
    "load_paused",
    "returns_from_provider",
]


@dataclass(frozen=True)
class PausedSignIn:
    """A paused sign-in that passed the checks, ready to be resumed."""

    token: str
    strategy: Any
    backend: Any
    #: social-core's partial, as ``strategy.partial_load`` returned it (detached).
    partial: Any
    #: What the pause waits for: ``pipelines.pause.prompt_of(partial)``.
    prompt: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.prompt["kind"])


def load_backend(strategy: Any, name: str) -> Any:
    """The backend ``name``, its ``redirect_uri`` the integration's callback URL."""
    return strategy.get_backend(name, redirect_uri=strategy.complete_url(name))


def load_paused(
    strategy: Any, token: str | None, kinds: Collection[str] = tuple(PROMPTS)
) -> PausedSignIn:
    """The paused sign-in ``token`` names, or :class:`InvalidPartial` (and it is removed).

    ``kinds``: the prompts the caller can answer; any other is refused as
    unknown. ``reason`` on the error says which check failed (``unknown``,
    ``other_session``, ``other_user``, ``expired``), for logs; the client
    only ever sees ``invalid_partial``.
    """
    if not token:
        raise InvalidPartial(reason="unknown", stage="callback")
    partial = strategy.partial_load(token)
    prompt = prompt_of(partial)
    if partial is None or prompt is None or prompt.get("kind") not in kinds:
        _refuse(strategy, token, partial, "unknown")
    owner = strategy.session_get(PARTIAL_TOKEN_SESSION_NAME)
    if not isinstance(owner, str) or not constant_time_compare(owner, token):
        _refuse(strategy, token, partial, "other_session")
    if prompt.get(SIGNED_IN_KEY) != signed_in(strategy):
        _refuse(strategy, token, partial, "other_user")
    backend = load_backend(strategy, partial.backend)
    if prompt_expired(backend, prompt):
        _refuse(strategy, token, partial, "expired")
    return PausedSignIn(token, strategy, backend, partial, prompt)


def _refuse(strategy: Any, token: str, partial: Any, reason: str) -> NoReturn:
    if partial is not None:
        strategy.clean_partial_pipeline(token)
    raise InvalidPartial(reason=reason, stage="callback")


def end_waiting_prompt(strategy: Any, backend_name: Any, *, starting: bool, state: Any) -> None:
    """Before social-core's ``/login/`` (``starting``) or ``/complete/`` view for
    ``backend_name``: end a pause it must not resume.

    social-core's callback resumes a pause it finds in the session in place
    of a new sign-in: starting one, or Amazon's redirect back for one (its
    OAuth2 ``state``, :func:`returns_from_provider`), ends any pause this
    browser left (someone else's, on a shared computer). Otherwise the
    callback resumes the app's own pauses as social-core does, but a prompt
    of ours waiting there is refused and ended: only a forged link would try
    to answer it through the callback.
    """
    token = strategy.session_get(PARTIAL_TOKEN_SESSION_NAME)
    if not isinstance(token, str) or not token:
        return
    ours = prompt_of(strategy.partial_load(token)) is not None
    new_sign_in = starting or returns_from_provider(strategy, backend_name, state)
    if new_sign_in or ours:
        strategy.clean_partial_pipeline(token)
    if ours and not new_sign_in:
        raise InvalidPartial(reason="not_on_its_page", stage="callback")


def returns_from_provider(strategy: Any, name: Any, sent: Any) -> bool:
    """Whether a callback for backend ``name`` with OAuth2 state ``sent`` brings back
    a sign-in this browser started.

    Known by its ``state``, which social-core keeps in the session for every
    sign-in started there until it comes back: a value nobody else can put in
    this session, where a field name (``code``, ``error``) is anyone's to
    use, an app's own paused form's included.
    """
    if not isinstance(name, str) or not isinstance(sent, str) or not sent or len(sent) > 128:
        return False
    # social-core 7 keeps one transaction per started sign-in; older
    # backends (and association-only ones) one state per backend.
    transaction = strategy.session_get(f"{name}_oauth2_state_{sent}")
    held = (
        transaction.get("state")
        if isinstance(transaction, dict)
        else strategy.session_get(f"{name}_state")
    )
    return isinstance(held, str) and constant_time_compare(held, sent)


def end_sign_ins(strategy: Any) -> None:
    """The app signed someone in or out: end what this browser left waiting.

    A session keeps its other keys across a sign-in and a sign-out, so a
    sign-in paused (or started at Amazon) by the previous person would
    otherwise be finished by the next one, and linked to their account.
    Ended here: the pause (removed) and the OAuth2 sign-ins started and not
    back yet (every key social-core 7 keeps for one: ``<name>_state``,
    ``<name>_code_verifier`` and ``<name>_oauth2_*``, the transactions with
    their PKCE verifiers and their index). The session's sign-in time
    (``LINK_REAUTH_SECONDS``) goes too: the integration records it again
    after a sign-in (``pipelines.reauth.mark_signed_in``). The integration
    rotates its CSRF token besides.
    """
    strategy.session_pop(SIGNED_IN_AT_KEY)
    for name in (PARTIAL_TOKEN_SESSION_NAME, PARTIAL_TOKEN_PENDING_SESSION_NAME):
        token = strategy.session_get(name)
        if isinstance(token, str) and token:
            strategy.clean_partial_pipeline(token)
    names = _backend_names(strategy)
    keys = {f"{name}_{key}" for name in names for key in ("state", "code_verifier")}
    prefixes = tuple(f"{name}_oauth2_" for name in names)
    for key in [key for key in strategy.session_keys() if key in keys or key.startswith(prefixes)]:
        strategy.session_pop(key)


def _backend_names(strategy: Any) -> list[str]:
    names = []
    for backend in strategy.get_backends():
        if isinstance(backend, str):
            backend = module_member(backend)  # type: ignore[no-untyped-call]
        # Django's AUTHENTICATION_BACKENDS lists its own (ModelBackend) too.
        name = getattr(backend, "name", None)
        if isinstance(name, str):
            names.append(name)
    return names
