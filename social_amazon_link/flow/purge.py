"""Deleting what abandoned sign-ins and old events leave behind (run it from cron)."""

from __future__ import annotations

from typing import Any

from social_amazon_link.pipelines.events import DEFAULT_EVENTS_MAX_AGE
from social_amazon_link.pipelines.pause import DEFAULT_MAX_AGE

from ..settings import strategy_setting

__all__ = ["purge"]


def purge(strategy: Any) -> str:
    """Purge the storage with the lifetimes the settings give; what was deleted, in words."""

    setting = strategy_setting(strategy)
    counts = strategy.storage.purge(
        state_max_age=int(setting("STATE_LIFETIME", 1800)),
        pause_max_age=int(setting("LINK_PROMPT_MAX_AGE", DEFAULT_MAX_AGE)),
        lockout_seconds=int(setting("LINK_LOCKOUT_SECONDS", 900)),
        events_max_age=int(setting("LINK_EVENTS_MAX_AGE", DEFAULT_EVENTS_MAX_AGE)),
    )
    return (
        f"purged {counts['nonces']} OAuth2 states, {counts['partials']} paused sign-ins, "
        f"{counts['codes']} emailed codes, {counts['attempts']} password-attempt counters, "
        f"{counts['events']} link events"
    )
