"""A custom user model on the ``users`` table, with tests/accounts.py's columns."""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models


class UserManager(BaseUserManager["User"]):
    def create_user(
        self, username: str, email: str | None = None, password: str | None = None, **fields: Any
    ) -> User:
        user = self.model(username=username, email=email, **fields)
        user.set_password(password)  # None: an unusable password (signs in with Amazon)
        user.save(using=self._db)
        return user


class User(AbstractBaseUser):
    """An app's own account: what the storage and the steps read of a user model."""

    id = models.AutoField(primary_key=True)
    username = models.CharField(max_length=80, unique=True)
    email = models.CharField(max_length=254, null=True, blank=True)
    # The hash in the column the Flask sample app names, so the suites' SQL fits both.
    password = models.CharField(max_length=255, null=True, blank=True, db_column="password_hash")
    name = models.CharField(max_length=120, null=True, blank=True)
    postal_code = models.CharField(max_length=20, null=True, blank=True)
    is_active = models.BooleanField(default=True, db_default=True)
    last_login = models.DateTimeField(null=True, blank=True)

    USERNAME_FIELD = "username"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = ["email"]

    objects = UserManager()

    class Meta:
        db_table = "users"

    def __str__(self) -> str:
        return self.username
