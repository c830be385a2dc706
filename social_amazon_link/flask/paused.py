"""Loading a paused sign-in back: the rules every resume must pass.

The HTML prompts (:mod:`.views`) and the JSON API (:mod:`.api`) both resume a
sign-in that ``social_amazon_link.pipelines.pause`` stored. Both must refuse the same things, so
the checks live here, once:

- the partial exists and waits for a prompt this caller can answer,
- it belongs to this client: its token is the one social-core put in *this*
  session when it paused (a token alone, leaked or guessed, resumes nothing),
- it belongs to this person: whoever is signed in now is who was signed in
  when it paused (nobody, or the same user). On a shared browser the next
  person to sign in, or a sign-out, must not inherit a sign-in left waiting:
  it would link the first person's Amazon account to the second's account,
- it is younger than ``LINK_PROMPT_MAX_AGE``.

A pause that fails any check is removed, and :class:`InvalidPartial` raised.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, NoReturn

from flask import url_for
from social_core.utils import PARTIAL_TOKEN_SESSION_NAME, constant_time_compare
from social_flask.utils import load_backend, load_strategy

from social_amazon_link.pipelines.pause import SIGNED_IN_KEY, prompt_expired, prompt_of, signed_in

from ..errors import InvalidPartial

__all__ = ["PROMPT_KINDS", "PausedSignIn", "load_paused"]

#: Every prompt ``social_amazon_link.pipelines`` can pause on.
PROMPT_KINDS = ("password", "email_code", "registration")


@dataclass(frozen=True)
class PausedSignIn:
    """A paused sign-in that passed the checks, ready to be resumed."""

    token: str
    strategy: Any
    backend: Any
    #: social-core's partial, as ``strategy.partial_load`` returned it (detached).
    partial: Any
    #: What the pause waits for: ``social_amazon_link.pipelines.pause.prompt_of(partial)``.
    prompt: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.prompt["kind"])


def load_paused(
    token: str | None, kinds: Collection[str] = PROMPT_KINDS, *, strategy: Any = None
) -> PausedSignIn:
    """The paused sign-in ``token`` names, or :class:`InvalidPartial` (and it is removed).

    ``kinds``: the prompts the caller can answer; any other is refused as
    unknown. ``reason`` on the error says which check failed (``unknown``,
    ``other_session``, ``other_user``, ``expired``), for logs; the client
    only ever sees ``invalid_partial``.
    """
    strategy = strategy if strategy is not None else load_strategy()
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
    backend = load_backend(
        strategy,
        partial.backend,
        redirect_uri=url_for("social.complete", backend=partial.backend),
    )
    if prompt_expired(backend, prompt):
        _refuse(strategy, token, partial, "expired")
    return PausedSignIn(token, strategy, backend, partial, prompt)


def _refuse(strategy: Any, token: str, partial: Any, reason: str) -> NoReturn:
    if partial is not None:
        strategy.clean_partial_pipeline(token)
    raise InvalidPartial(reason=reason, stage="callback")
