"""Demo data: local accounts and emulated Amazon identities, one pair per path of the flow.

``python -m demo`` (with the emulator; never with real Amazon) and the browser
tests seed the same data with :func:`seed` (Flask) or :func:`seed_into` (either
framework: the Django demo's ``seed`` command):

- **Ada Lovelace** has no local account: Login with Amazon creates one at once.
- **Grace Hopper**'s email belongs to the local account ``grace``: linking asks
  for grace's password first.
- **Mary Jackson**'s email belongs to the local account ``mary``: the same
  prompt, kept for the lockout (five wrong passwords), so that trying it
  does not depend on whether Grace was linked already.
- **alan** on Amazon would get the username ``alan``, which a local account
  already has: the prefilled registration form asks for another one.
- **Katherine Johnson** is linked to the local account ``katherine`` already,
  and her email changed on Amazon: signing in updates the local email.
  Connecting her Amazon account while signed in as someone else is refused.
- **Margaret Hamilton**'s email belongs to two local accounts, ``margaret``
  and ``margaret.work``: linking asks which one, and its password.
- **Dorothy Vaughan**'s email belongs to the local account ``dorothy``, which
  has no password (it was imported, say): linking asks for a code "emailed"
  to that address, which the demo's Outbox page shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import select

from .models import User

if TYPE_CHECKING:
    from flask import Flask


@dataclass(frozen=True)
class LocalUser:
    username: str
    email: str
    #: None: the account has no password to sign in (or to link) with.
    password: str | None
    name: str


ADA_ID = "amzn1.account.AEDEMOADALOVELACE00000000001"
GRACE_ID = "amzn1.account.AEDEMOGRACEHOPPER0000000002"
ALAN_ID = "amzn1.account.AEDEMOALANTURING00000000003"
KATHERINE_ID = "amzn1.account.AEDEMOKATHERINEJOHNSON0004"
MARGARET_ID = "amzn1.account.AEDEMOMARGARETHAMILTON0005"
DOROTHY_ID = "amzn1.account.AEDEMODOROTHYVAUGHAN000006"
MARY_ID = "amzn1.account.AEDEMOMARYJACKSON00000000007"

#: Local accounts the demo starts with.
LOCAL_USERS = [
    LocalUser("grace", "grace@example.com", "grace-password-1", "Grace Hopper"),
    LocalUser("alan", "alan.local@example.com", "alan-password-1", "Alan Turing"),
    LocalUser(
        "katherine", "katherine.old@example.com", "katherine-password-1", "Katherine Johnson"
    ),
    LocalUser("margaret", "margaret@example.com", "margaret-password-1", "Margaret Hamilton"),
    LocalUser(
        "margaret.work", "margaret@example.com", "margaret-work-password-1", "Margaret Hamilton"
    ),
    LocalUser("dorothy", "dorothy@example.com", None, "Dorothy Vaughan"),
    LocalUser("mary", "mary@example.com", "mary-password-1", "Mary Jackson"),
]

#: Amazon identities the emulator offers on its sign-in page.
AMAZON_IDENTITIES = [
    {
        "user_id": ADA_ID,
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "postal_code": "10115",
    },
    {"user_id": GRACE_ID, "name": "Grace Hopper", "email": "grace@example.com"},
    {"user_id": ALAN_ID, "name": "alan", "email": "alan.amazon@example.com"},
    {"user_id": KATHERINE_ID, "name": "Katherine Johnson", "email": "katherine@example.com"},
    {"user_id": MARGARET_ID, "name": "Margaret Hamilton", "email": "margaret@example.com"},
    {"user_id": DOROTHY_ID, "name": "Dorothy Vaughan", "email": "dorothy@example.com"},
    {"user_id": MARY_ID, "name": "Mary Jackson", "email": "mary@example.com"},
]

#: Links that exist before the demo starts: (local username, Amazon user_id,
#: the Amazon email seen at that earlier sign-in). Katherine's has changed on
#: Amazon since, which is what lets her next sign-in update the local email.
LINKS = [("katherine", KATHERINE_ID, "katherine.old@example.com")]


class Accounts(Protocol):
    """How :func:`seed_into` reaches a framework's own user table."""

    def find(self, username: str) -> Any: ...

    def add(self, local: LocalUser) -> None: ...


def seed_into(accounts: Accounts, storage: Any) -> None:
    """The demo's local accounts and links that do not exist yet (either framework).

    ``storage`` is the integration's storage (``FlaskStorage``,
    ``DjangoStorage``): links are made as an earlier sign-in would have made them.
    """
    for local in LOCAL_USERS:
        if accounts.find(local.username) is None:
            accounts.add(local)
    for username, amazon_user_id, seen_email in LINKS:
        if storage.user.get_social_auth("amazon", amazon_user_id) is not None:
            continue
        user = accounts.find(username)
        social = storage.user.create_social_auth(user, amazon_user_id, "amazon", id_key="user_id")
        # What load_extra_data kept from that sign-in's profile.
        name = next(i["name"] for i in AMAZON_IDENTITIES if i["user_id"] == amazon_user_id)
        social.set_extra_data({"user_id": amazon_user_id, "name": name, "email": seen_email})
        social.save()


class _FlaskAccounts:
    def __init__(self, db: Any) -> None:
        self.db = db

    def find(self, username: str) -> User | None:
        user: User | None = self.db.scalars(select(User).where(User.username == username)).first()
        return user

    def add(self, local: LocalUser) -> None:
        user = User(username=local.username, email=local.email, name=local.name)
        if local.password is not None:
            user.set_password(local.password)
        self.db.add(user)
        self.db.commit()


def seed(app: Flask) -> None:
    """Everything the Flask demo starts with (safe to run again: nothing is duplicated)."""
    from social_amazon_link.flask.storage import FlaskStorage

    with app.app_context():
        seed_into(_FlaskAccounts(app.extensions["demo_db"]), FlaskStorage)
