"""The demo's own account system: the app *before* Login with Amazon."""

from __future__ import annotations

from datetime import UTC, datetime

from flask_login import UserMixin
from sqlalchemy import DateTime, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from .rules import MAX_LENGTHS


class Base(DeclarativeBase):
    pass


class User(UserMixin, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(MAX_LENGTHS["username"]), unique=True)
    email: Mapped[str | None] = mapped_column(String(MAX_LENGTHS["email"]), index=True)
    # None for accounts that sign in with Amazon only.
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    name: Mapped[str | None] = mapped_column(String(MAX_LENGTHS["name"]), default=None)
    postal_code: Mapped[str | None] = mapped_column(
        String(MAX_LENGTHS["postal_code"]), default=None
    )
    created: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=lambda: datetime.now(UTC)
    )

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return bool(self.password_hash) and check_password_hash(str(self.password_hash), password)

    def has_usable_password(self) -> bool:
        return bool(self.password_hash)
