"""The demo's seed (:mod:`demo.seed`) into the Django demo's tables."""

from __future__ import annotations

from demo.seed import LocalUser, seed_into
from social_amazon_link.django.storage import DjangoStorage

from .models import User


class DjangoAccounts:
    def find(self, username: str) -> User | None:
        return User.objects.filter(username=username).first()

    def add(self, local: LocalUser) -> None:
        User.objects.create_user(
            username=local.username, email=local.email, name=local.name, password=local.password
        )


def seed() -> None:
    """Everything the demo starts with (safe to run again: nothing is duplicated)."""
    seed_into(DjangoAccounts(), DjangoStorage)
