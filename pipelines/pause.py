"""Pausing the pipeline to ask the person something, and resuming it safely.

social-core's ``partial`` decorator stores the request that led to the pause,
and pauses again with the *answer's* request data when a step asks twice; an
answer here is a password or a one-time code, which must never be written to
the database. These helpers store a pause with no request data, mark which
prompt it waits for, and time it out.

The steps read the answer from the ``ANSWER_KEY`` keyword, which only the
integration's checked prompt pages and API set, and never from the request:
otherwise any URL that resumes the pipeline (social-core's callback, reached
by a forged link with the person's cookies) could answer for them.

A pause also remembers who was signed in when it began (``SIGNED_IN_KEY``:
nobody, or which user): on a shared browser the next person to sign in must
not answer, and so own, the previous person's sign-in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from social_core.pipeline.utils import partial_prepare
from social_core.utils import PARTIAL_TOKEN_SESSION_NAME, url_add_parameters

from social_amazon_link.errors import InvalidPartial

__all__ = [
    "ANSWER_KEY",
    "DONE",
    "PROMPT_KEY",
    "SIGNED_IN_KEY",
    "answer_of",
    "check_resumed_by",
    "pause",
    "prompt_expired",
    "prompt_of",
    "resumed_prompt",
    "signed_in",
    "user_key",
]

#: The pipeline keyword that says which prompt a paused sign-in waits for.
PROMPT_KEY = "amazon_link_prompt"
#: The pipeline keyword that carries the person's answer to it. Only the
#: integration's prompt pages (CSRF-checked) and its JSON API set it, never
#: the request: a pause resumed any other way (social-core's own callback
#: URL, say) gets no answer, so a forged link cannot answer for a person.
ANSWER_KEY = "amazon_link_answer"
#: The prompt's entry for who was signed in when it paused: a user id as a
#: string, or None for nobody. Only that same person may resume it.
SIGNED_IN_KEY = "signed_in"
#: How long a person has to answer a prompt (setting ``LINK_PROMPT_MAX_AGE``).
DEFAULT_MAX_AGE = 15 * 60

_PIPELINE_ARGS = ("strategy", "backend", "pipeline_index", "user", "social", ANSWER_KEY)


def pause(
    backend: Any,
    pipeline_index: int,
    url: str,
    prompt: dict[str, Any],
    kwargs: dict[str, Any],
    *,
    before_store: Callable[[str], dict[str, Any]] | None = None,
) -> Any:
    """Store the paused pipeline and redirect to ``url?partial_token=...``.

    ``prompt`` (kind and what the page needs to show) travels in the partial's
    keywords, so the view, the JSON API and the step itself read the same thing.
    ``before_store(token)`` runs before anything is stored (sending the code,
    say: when it fails, no pause is left behind) and adds to the prompt.
    """
    strategy = backend.strategy
    prompt = {**prompt, "paused_at": time.time(), SIGNED_IN_KEY: signed_in(strategy)}
    rest = {k: v for k, v in kwargs.items() if k not in _PIPELINE_ARGS}
    rest[PROMPT_KEY] = prompt
    partial = partial_prepare(
        strategy,
        backend,
        pipeline_index,
        kwargs.get("user"),
        kwargs.get("social"),
        **rest,
    )
    partial.data["request_data"] = {}
    if before_store is not None:
        partial.extend_kwargs({PROMPT_KEY: {**prompt, **before_store(partial.token)}})
    strategy.storage.partial.store(partial)
    strategy.session_set(PARTIAL_TOKEN_SESSION_NAME, partial.token)
    return strategy.redirect(url_add_parameters(url, {"partial_token": partial.token}))


#: What a step returns when it has nothing to ask: no prompt waits any more,
#: and an answer it was resumed with goes no further down the pipeline.
DONE: dict[str, Any] = {PROMPT_KEY: None, ANSWER_KEY: None}


def answer_of(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The answer the integration resumed this pause with (empty when none)."""
    answer = kwargs.get(ANSWER_KEY)
    return dict(answer) if isinstance(answer, dict) else {}


def prompt_of(partial: Any) -> dict[str, Any] | None:
    """The prompt a stored partial waits for, or None."""
    prompt = partial.kwargs.get(PROMPT_KEY) if partial is not None else None
    return prompt if isinstance(prompt, dict) else None


def user_key(user: Any) -> str | None:
    """How a pause names a user: its id as a string (None: nobody)."""
    return None if user is None else str(user.id)


def signed_in(strategy: Any) -> str | None:
    """Who the app has signed in on this request, as :func:`user_key` names them.

    Asked of the strategy's ``signed_in_user()`` (the integration's have it);
    a strategy that cannot tell counts as nobody signed in, so a pause it
    stores is refused to anyone the integration later sees signed in.
    """
    who = getattr(strategy, "signed_in_user", None)
    return user_key(who()) if callable(who) else None


def check_resumed_by(
    backend: Any, kwargs: dict[str, Any], user: Any, kinds: tuple[str, ...]
) -> None:
    """Refuse this step's prompt (one of ``kinds``) resumed by anyone but who started it.

    A step resumed with a signed-in ``user`` must not take that as proof for
    a prompt that paused with nobody (or someone else) signed in. The
    integration refuses such a resume before the pipeline runs
    (``social_amazon_link.flow.paused``); this keeps the step safe behind
    any other way of resuming it.
    """
    prompt = kwargs.get(PROMPT_KEY)
    if not isinstance(prompt, dict) or prompt.get("kind") not in kinds:
        return
    if prompt.get(SIGNED_IN_KEY) != user_key(user):
        raise InvalidPartial(backend=backend, reason="other_user", stage="pipeline")


def prompt_expired(backend: Any, prompt: dict[str, Any]) -> bool:
    """Whether the person took longer than ``LINK_PROMPT_MAX_AGE`` to answer."""
    max_age = int(backend.setting("LINK_PROMPT_MAX_AGE", DEFAULT_MAX_AGE))
    return time.time() - float(prompt.get("paused_at", 0)) > max_age


def resumed_prompt(backend: Any, kwargs: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The prompt of ``kind`` this step is being resumed with, checked for age."""
    prompt = kwargs.get(PROMPT_KEY)
    if not isinstance(prompt, dict) or prompt.get("kind") != kind:
        return None
    if prompt_expired(backend, prompt):
        raise InvalidPartial(backend=backend, reason="expired", stage="pipeline")
    return prompt
