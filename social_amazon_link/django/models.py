"""This library's own tables as Django models, the same tables as the SQLAlchemy storage's.

social_django's models hold the links, nonces, associations, codes and
pauses; these two hold what the linking steps add. The table and column
names are those of :mod:`social_amazon_link.sqlalchemy_storage` (and
:mod:`social_amazon_link.migrations`, schema version 2), so a database moved
from one integration to the other keeps its rows, and a test's SQL reads both.
Only :class:`~social_amazon_link.django.storage.DjangoStorage` writes them.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class PasswordAttempts(models.Model):
    """Wrong passwords (and codes) counted per local account and door (``scope``)."""

    pk = models.CompositePrimaryKey("user_id", "scope")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,  # the primary key (user_id, scope) serves lookups by user
    )
    # Which door the count is for: "link" (this library's prompt), or the app's own.
    scope = models.CharField(max_length=16, default="link")
    failures = models.IntegerField(default=0)
    # Tries reserved and being checked right now.
    pending = models.IntegerField(default=0)
    # Epoch seconds: compared inside UPDATE statements on every database.
    last_failure_at = models.IntegerField(default=0)
    locked_until = models.IntegerField(default=0)

    class Meta:
        db_table = "amazon_link_password_attempts"
        verbose_name = "wrong-password count"

    def __str__(self) -> str:
        return f"{self.user_id} ({self.scope}): {self.failures}"


class LinkEvent(models.Model):
    """One security event of the linking flow (linked, unlinked, wrong_password...)."""

    id = models.AutoField(primary_key=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    event = models.CharField(max_length=32)
    amazon_user_id = models.CharField(max_length=255, null=True, blank=True)
    detail = models.CharField(max_length=200, default="", blank=True)
    created = models.DateTimeField(default=timezone.now)
    # The same event again since, counted here instead of written again.
    repeats = models.IntegerField(default=0, db_default=0)

    class Meta:
        db_table = "amazon_link_events"
        verbose_name = "link event"

    def __str__(self) -> str:
        return f"{self.event} ({self.user_id})"
