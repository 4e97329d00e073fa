"""Staff accounts, their registry data (R7.3), second factor (R7.1) and server-side sessions."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..crypto import EncryptedField
from ..extensions import db
from .types import UTCDateTime
from .venues import Venue


class Staff(db.Model):
    """One person, one account (no shared logins). The registry a city asks for (003 第9条, 第10条):
    name, affiliation, role(s), venue scope, period of duty."""

    __tablename__ = "staff"
    __assign_row_id__ = False  # integer ids: flush before setting the encrypted TOTP secret

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    login_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    affiliation: Mapped[str] = mapped_column(String(100))
    roles: Mapped[str] = mapped_column(String(200))  # comma-separated Role values
    venue_id: Mapped[int | None] = mapped_column(ForeignKey("venues.id"))
    duty_start: Mapped[date] = mapped_column(Date)
    duty_end: Mapped[date] = mapped_column(Date)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    totp_secret_ct: Mapped[str | None] = mapped_column(String(200))
    totp_enrolled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    venue: Mapped[Venue | None] = relationship()

    totp_secret = EncryptedField()

    @property
    def role_set(self) -> frozenset[str]:
        return frozenset(r for r in self.roles.split(",") if r)

    def on_duty(self, day: date) -> bool:
        return self.duty_start <= day <= self.duty_end


class RecoveryCode(db.Model):
    """One-time codes for when the phone with the authenticator is lost. Only a keyed hash is kept."""

    __tablename__ = "staff_recovery_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class StaffSession(db.Model):
    """Server-side session: the cookie holds a random token, the table its hash. Ending a session
    here ends it everywhere at once (sign-out, timeout, disabled account) — a replayed cookie is dead."""

    __tablename__ = "staff_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    mfa_passed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_reason: Mapped[str | None] = mapped_column(String(32))
    remote_addr: Mapped[str] = mapped_column(String(64), default="")

    staff: Mapped[Staff] = relationship()
