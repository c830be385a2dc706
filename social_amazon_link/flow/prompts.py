"""The questions a paused sign-in can wait on, declared once.

Each prompt the steps pause on (``social_amazon_link.pipelines.pause``) has
one row here: the page that shows it, the JSON API's status for it, and the
fields that answer it. The integrations' views, their request-data filter
and the JSON API all read this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from social_amazon_link.pipelines.registration import DEFAULT_REQUIRED_FIELDS, FORM_FIELDS

__all__ = [
    "FORM_EXPIRED",
    "NOT_ANSWERS",
    "PAGES",
    "PROMPTS",
    "Prompt",
    "answer_fields",
    "pause_answer",
    "prompt_fields",
    "prompt_request_data",
]


@dataclass(frozen=True)
class Prompt:
    kind: str
    #: The page that shows it: ``password`` (``LINK_PASSWORD_URL``) or
    #: ``registration`` (``LINK_REGISTRATION_URL``).
    page: str
    #: Its template, the same name in every integration.
    template: str
    #: The JSON API's ``status`` for a sign-in waiting on it.
    status: str
    #: The fields that answer it (registration adds ``LINK_REQUIRED_FIELDS``).
    fields: tuple[str, ...]


PROMPTS: dict[str, Prompt] = {
    prompt.kind: prompt
    for prompt in (
        Prompt(
            "password",
            "password",
            "social_amazon_link/password.html",
            "password_required",
            ("password", "username"),
        ),
        Prompt(
            "email_code",
            "password",
            "social_amazon_link/password.html",
            "code_required",
            ("code",),
        ),
        Prompt(
            "registration",
            "registration",
            "social_amazon_link/register.html",
            "registration_required",
            FORM_FIELDS,
        ),
    )
}

#: Which prompts each page answers.
PAGES: dict[str, tuple[str, ...]] = {
    page: tuple(kind for kind, prompt in PROMPTS.items() if prompt.page == page)
    for page in ("password", "registration")
}

#: A prompt page's form fields that are not part of the person's answer.
NOT_ANSWERS = ("csrf_token", "partial_token", "action", "next")

#: What a form of the integration whose CSRF token is wrong or missing shows.
FORM_EXPIRED = "The form expired. Please reload the page and try again."


def prompt_request_data(values: Any) -> dict[str, Any]:
    """The request data of a prompt page's request (the strategy's ``get_request_data``).

    Its form holds a password or a code: that reaches the steps as their
    answer keyword, and must not become request data, which social-core
    stores with any later pause.
    """
    return {k: values[k] for k in ("partial_token", "next") if k in values}


def prompt_fields(kind: str, backend: Any) -> tuple[str, ...]:
    """The fields that answer the prompt ``kind``."""
    fields = PROMPTS[kind].fields
    if kind == "registration":
        required = backend.setting("LINK_REQUIRED_FIELDS", DEFAULT_REQUIRED_FIELDS)
        fields = (*fields, *(str(name) for name in required))
    return tuple(dict.fromkeys(fields))


def answer_fields(backend: Any) -> tuple[str, ...]:
    """Every field some prompt reads: checked before a pause is even loaded."""
    return tuple(dict.fromkeys(name for kind in PROMPTS for name in prompt_fields(kind, backend)))


def pause_answer(partial_token: str, prompt: dict[str, Any]) -> dict[str, Any]:
    """The JSON API's answer for a sign-in waiting on ``prompt``."""
    kind = prompt["kind"]
    answer: dict[str, Any] = {"status": PROMPTS[kind].status, "partial_token": partial_token}
    if kind == "registration":
        answer["prefill"] = dict(prompt.get("prefill") or {})
        answer["required"] = list(prompt.get("required") or [])
        if prompt.get("errors"):
            answer["errors"] = dict(prompt["errors"])
    else:
        answer["email"] = prompt.get("email")
        if kind == "password" and prompt.get("choose_account"):
            answer["choose_account"] = True
        if prompt.get("reauth"):
            # The signed-in user's own password (or code), before a link.
            answer["reauth"] = True
    return answer
