"""The demo's own account system under Django: the same ``users`` table as Flask's.

The columns (and their lengths, :data:`demo.rules.MAX_LENGTHS`) are those of
:class:`demo.models.User`, so what reads the demo's database (the tests, a
person with ``sqlite3``) reads either framework's the same way; the password
hash is Django's own (scrypt, as Werkzeug's default).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models
from django.utils import timezone

from demo.rules import MAX_LENGTHS


class UserManager(BaseUserManager["User"]):
    def create_user(self, username: str, email: str | None = None, **fields: Any) -> User:
        """A new account; without a ``password`` it has none (it signs in with Amazon)."""
        password = fields.pop("password", None)
        user = self.model(username=username, email=email, **fields)
        if password is not None:
            user.set_password(password)
        user.save(using=self._db)
        return user


class User(AbstractBaseUser):
    id = models.AutoField(primary_key=True)
    username = models.CharField(max_length=MAX_LENGTHS["username"], unique=True)
    email = models.CharField(max_length=MAX_LENGTHS["email"], null=True, db_index=True)
    # None for accounts that sign in with Amazon only (Django's "unusable" too).
    password = models.CharField(max_length=255, null=True, db_column="password_hash")
    name = models.CharField(max_length=MAX_LENGTHS["name"], null=True)
    postal_code = models.CharField(max_length=MAX_LENGTHS["postal_code"], null=True)
    created = models.DateTimeField(default=timezone.now)
    # social_django looks accounts up among active ones; the Flask table has none inactive.
    is_active = models.BooleanField(default=True, db_default=True)

    USERNAME_FIELD = "username"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["email"]

    objects = UserManager()

    class Meta:
        db_table = "users"

    # Django counts a NULL password as usable; here it means "none", as on Flask.
    def set_unusable_password(self) -> None:
        self.password = None

    def has_usable_password(self) -> bool:
        return bool(self.password) and super().has_usable_password()

    def check_password(self, raw_password: str) -> bool:
        return bool(self.password) and super().check_password(raw_password)
