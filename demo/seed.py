"""Demo data: local accounts and emulated Amazon identities that show each path."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from .models import User

#: Local accounts the demo starts with: (username, email, password, name).
LOCAL_USERS = [
    ("grace", "grace@example.com", "grace-password-1", "Grace Hopper"),
]

#: Amazon identities the emulator offers on its sign-in page.
AMAZON_IDENTITIES = [
    {
        "user_id": "amzn1.account.AEDEMOADALOVELACE00000000001",
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "postal_code": "10115",
    },
]


def seed_local_users(app: Flask) -> None:
    """Create the demo's local accounts once (idempotent)."""
    db = app.extensions["demo_db"]
    for username, email, password, name in LOCAL_USERS:
        if db.scalars(select(User.id).where(User.username == username)).first() is None:
            user = User(username=username, email=email, name=name)
            user.set_password(password)
            db.add(user)
    db.commit()
    db.remove()
