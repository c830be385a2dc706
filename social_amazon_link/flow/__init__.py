"""The sign-in flow around the pipeline, for any web framework.

What every integration does the same way lives here, and imports no web
framework; an integration (``social_amazon_link.flask``) maps requests and
answers and supplies the hooks of :class:`AdapterStrategy`.

- :mod:`.prompts`: the prompts a sign-in can pause on, their pages, JSON
  statuses and fields (one table).
- :mod:`.paused`: loading a paused sign-in back (the checks every resume
  passes), and ending one that must not go on.
- :mod:`.pages`: the prompt pages and the error page, as data to render.
- :mod:`.api`: the mobile JSON API: reading a body, ``/token``,
  ``/continue``, ``/code/challenge`` and ``/code``, the transport check
  (rule 1), and every answer.
- :mod:`.challenge`: the PKCE challenge of the LWA SDK's code grant.
- :mod:`.login`: rule 7, marking the user authenticated.
- :mod:`.purge`: deleting what abandoned sign-ins leave behind.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

__all__ = ["AdapterStrategy"]


class AdapterStrategy(Protocol):
    """What an integration's social-core strategy adds to ``BaseStrategy``."""

    def signed_in_user(self) -> Any:
        """The user the app has signed in on this request, or None."""

    def login_user(self, backend: Any, user: Any, social_user: Any) -> Any:
        """Sign ``user`` in exactly as the app's own sign-in does (rule 7)."""

    def complete_url(self, backend_name: str) -> str:
        """The URL of the OAuth2 callback for ``backend_name``."""

    def request_remote_addr(self) -> str | None:
        """The address the request came from (for the transport check)."""

    def session_keys(self) -> Iterable[str]:
        """Every key in this client's session."""

    def send_link_signal(self, event: str, user: Any, details: Mapping[str, Any]) -> None:
        """Optional: send the framework's signal for a committed security event.

        ``event`` is the event table's name (``linked``, ``unlinked``,
        ``email_updated``, ``locked_out``, ``link_refused``, ``wrong_password``,
        ``wrong_code``, ``email_sync_skipped``: ``pipelines.events.EVENTS``);
        ``details`` is :func:`social_amazon_link.notifications.link_details`.
        Called once per committed event (a repeat counted on its row is not
        one); an exception is logged and the sign-in goes on. A strategy
        without this method sends no signal.
        """
