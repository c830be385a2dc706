"""The storage for Flask apps: :mod:`social_amazon_link.sqlalchemy_storage`, bound to Flask.

Select it with ``SOCIAL_AUTH_STORAGE = "social_amazon_link.flask.storage.FlaskStorage"``
and call :func:`init_social` once per app.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, has_app_context
from social_core.utils import module_member
from sqlalchemy.exc import SQLAlchemyError

from ..errors import DatabaseUnavailable
from ..sqlalchemy_storage import (
    AnySession,
    SocialModels,
    SQLAlchemyStorage,
    bind_secret,
    bind_session,
    models_for,
    use_models,
)

__all__ = ["FlaskStorage", "database_outage", "init_social"]

EXTENSION = "social_amazon_link"


class FlaskStorage(SQLAlchemyStorage):
    """social-core's storage for Flask apps (``SOCIAL_AUTH_STORAGE``)."""


@dataclass
class _AppState:
    session: AnySession
    models: SocialModels
    app: Flask


_last_state: _AppState | None = None


def _current_state() -> _AppState:
    # Several apps may share a process (tests do): each request uses its own
    # app's session; outside a request, the one bound last.
    if has_app_context():
        state = current_app.extensions.get(EXTENSION)
        if isinstance(state, _AppState):
            return state
    if _last_state is None:
        raise RuntimeError("init_social(app, session) has not been called")
    return _last_state


def init_social(
    app: Flask,
    session: AnySession,
    user_model: type[Any] | str | None = None,
) -> SocialModels:
    """Map the social tables beside the app's user model and bind ``session``.

    ``user_model`` defaults to the ``SOCIAL_AUTH_USER_MODEL`` setting (a dotted
    path). It must be declared with SQLAlchemy 2's declarative mapping and have
    ``id``, ``username`` and ``email``. The tables join the user model's
    ``MetaData``: the app's ``create_all()`` or migrations create them.
    """
    global _last_state
    model = user_model or app.config.get("SOCIAL_AUTH_USER_MODEL")
    if model is None:
        raise RuntimeError("init_social needs user_model or SOCIAL_AUTH_USER_MODEL")
    resolved: type[Any] = module_member(model) if isinstance(model, str) else model  # type: ignore[no-untyped-call]
    models = models_for(resolved)
    use_models(FlaskStorage, models)
    app.extensions[EXTENSION] = _last_state = _AppState(session=session, models=models, app=app)
    bind_session(lambda: _current_state().session)
    # The key of the emailed codes' hashes is derived from SECRET_KEY.
    bind_secret(lambda: _current_state().app.secret_key)
    app.config.setdefault("SOCIAL_AUTH_STORAGE", f"{__name__}.FlaskStorage")
    return models


def database_outage(error: BaseException) -> DatabaseUnavailable | None:
    """``database_unavailable`` when ``error`` says the database is out of reach, else None.

    Before answering, the request lets go of the database: its transaction
    is rolled back (nothing half-written, and the next request finds a clean
    session; a dead connection leaves the pool), and the person counts as
    signed out for the rest of it, so that the error page, or the app's
    layout around it, does not ask the database for them again.
    """
    unavailable = FlaskStorage.database_unavailable(error)
    if unavailable is None:
        return None
    try:
        _current_state().session.rollback()
    except SQLAlchemyError:
        pass  # nothing left to roll back on a connection that is gone
    login_manager = getattr(current_app, "login_manager", None)
    if login_manager is not None:
        login_manager._update_request_context_with_user()
    return unavailable
