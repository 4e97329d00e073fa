"""Staff sign-in (R7.1): password (argon2id) + TOTP, lock-out, duty periods, server-side sessions.

The caller passes the remote address; nothing here reads the request. Every failure and every lock
is written to the audit log in the caller's transaction (so the caller must commit even when it
shows an error page — which the one-commit-per-request cycle does for any non-5xx response).
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pyotp
import segno
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from sqlalchemy import bindparam, select, update
from zxcvbn import zxcvbn

from . import dates
from .audit import AuditTag, record
from .crypto import current_keyring
from .extensions import db, defer_write, stop_deferring
from .models import RecoveryCode, Staff, StaffSession

# OWASP's argon2id baseline (19 MiB, t=2, p=1): ~30 ms here, and sign-in is rate-limited anyway.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# Verified against when the login id is unknown, so both paths cost the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))
ISSUER = "Madoguchi"


class SignInRefused(Exception):
    """``reason``: bad_credentials | locked | backoff | off_duty | inactive | bad_code. Shown generically."""

    def __init__(self, reason: str, retry_after: int = 0):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


# ---- passwords ------------------------------------------------------------------------------
def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_problems(password: str, *, user_inputs: tuple[str, ...] = ()) -> list[str]:
    """Japanese messages for a password that must not be used (empty list = acceptable)."""
    problems = []
    minimum = current_app.config["STAFF_PASSWORD_MIN_LENGTH"]
    if len(password) < minimum:
        problems.append(f"パスワードは{minimum}文字以上にしてください。")
    strength = zxcvbn(password[:100], user_inputs=[u for u in user_inputs if u])
    if strength["score"] < 3:
        problems.append(
            "よく使われる言葉や推測されやすい並びが含まれています。別のパスワードにしてください。"
        )
    return problems


def set_password(staff: Staff, password: str) -> None:
    staff.password_hash = hash_password(password)
    staff.updated_at = dates.now()


# ---- step 1: ID + password --------------------------------------------------------------------
def authenticate(login_id: str, password: str, *, remote_addr: str, now: datetime | None = None) -> Staff:
    """Check ID and password; raise SignInRefused. Slows down after a few failures, then locks."""
    now = now or dates.now()
    staff = db.session.scalars(select(Staff).where(Staff.login_id == login_id)).one_or_none()
    if staff is None:
        _verify(_DUMMY_HASH, password)
        record(
            AuditTag.SIGNIN_FAILED,
            login_id=login_id,
            result="failed",
            remote_addr=remote_addr,
            reason="unknown_id",
        )
        raise SignInRefused("bad_credentials")
    if staff.locked_until is not None and staff.locked_until > now:
        record(AuditTag.SIGNIN_FAILED, staff=staff, result="denied", remote_addr=remote_addr, reason="locked")
        raise SignInRefused("locked", retry_after=int((staff.locked_until - now).total_seconds()))
    wait = _backoff_seconds(staff, now)
    if wait:
        record(
            AuditTag.SIGNIN_FAILED, staff=staff, result="denied", remote_addr=remote_addr, reason="backoff"
        )
        raise SignInRefused("backoff", retry_after=wait)
    if not _verify(staff.password_hash, password):
        _count_failure(staff, now, remote_addr, reason="bad_password")
        raise SignInRefused("bad_credentials")
    check_may_work(staff, now, remote_addr=remote_addr)
    if _hasher.check_needs_rehash(staff.password_hash):
        staff.password_hash = hash_password(password)
    return staff


def password_matches(staff: Staff, password: str) -> bool:
    return _verify(staff.password_hash, password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _backoff_seconds(staff: Staff, now: datetime) -> int:
    """After STAFF_SIGNIN_BACKOFF_AFTER failures, wait 2, 4, 8 … seconds (max 5 min) between tries."""
    excess = staff.failed_attempts - current_app.config["STAFF_SIGNIN_BACKOFF_AFTER"]
    if excess < 0 or staff.last_failed_at is None:
        return 0
    until = staff.last_failed_at + timedelta(seconds=min(2 ** (excess + 1), 300))
    return max(int((until - now).total_seconds()) + 1, 0) if until > now else 0


def _count_failure(staff: Staff, now: datetime, remote_addr: str, *, reason: str) -> None:
    config = current_app.config
    staff.failed_attempts += 1
    staff.last_failed_at = now
    tag = AuditTag.MFA_FAILED if reason.startswith("bad_code") else AuditTag.SIGNIN_FAILED
    record(
        tag,
        staff=staff,
        result="failed",
        remote_addr=remote_addr,
        reason=reason,
        attempt=staff.failed_attempts,
    )
    if staff.failed_attempts >= config["STAFF_SIGNIN_LOCK_AFTER"]:
        staff.locked_until = now + timedelta(minutes=config["STAFF_SIGNIN_LOCK_MINUTES"])
        record(
            AuditTag.ACCOUNT_LOCKED,
            staff=staff,
            result="ok",
            remote_addr=remote_addr,
            until=staff.locked_until.isoformat(),
            attempts=staff.failed_attempts,
        )
    db.session.flush()


def check_may_work(staff: Staff, now: datetime, *, remote_addr: str = "") -> None:
    """Only active accounts within their period of duty may sign in or keep a session (R7.3)."""
    today = now.astimezone(dates.TOKYO).date()
    if not staff.active:
        record(
            AuditTag.SIGNIN_FAILED, staff=staff, result="denied", remote_addr=remote_addr, reason="inactive"
        )
        raise SignInRefused("inactive")
    if not staff.on_duty(today):
        record(
            AuditTag.SIGNIN_FAILED, staff=staff, result="denied", remote_addr=remote_addr, reason="off_duty"
        )
        raise SignInRefused("off_duty")


def _succeeded(staff: Staff) -> None:
    staff.failed_attempts = 0
    staff.last_failed_at = None
    staff.locked_until = None


# ---- step 2: TOTP or a recovery code ------------------------------------------------------------
def verify_second_factor(staff: Staff, code: str, *, remote_addr: str, now: datetime | None = None) -> None:
    now = now or dates.now()
    if staff.locked_until is not None and staff.locked_until > now:
        raise SignInRefused("locked")
    wait = _backoff_seconds(staff, now)
    if wait:
        raise SignInRefused("backoff", retry_after=wait)
    code = "".join(code.split())
    if staff.totp_secret and code.isdigit() and len(code) == 6 and _accept_totp(staff, code, now):
        _succeeded(staff)
        return
    if _use_recovery_code(staff, code, now):
        record(AuditTag.RECOVERY_CODE_USED, staff=staff, remote_addr=remote_addr)
        _succeeded(staff)
        return
    _count_failure(staff, now, remote_addr, reason="bad_code")
    raise SignInRefused("bad_code")


def _accept_totp(staff: Staff, code: str, now: datetime) -> bool:
    """Accept the current, previous or next 30-second step, but never a step already used (replay)."""
    totp = pyotp.TOTP(staff.totp_secret)
    step_now = int(now.timestamp()) // 30
    for step in (step_now - 1, step_now, step_now + 1):
        if secrets.compare_digest(totp.generate_otp(step), code):
            if staff.totp_last_step is not None and step <= staff.totp_last_step:
                return False
            # Conditional update: two requests racing with the same code cannot both win.
            won = db.session.execute(
                update(Staff)
                .where(Staff.id == staff.id, (Staff.totp_last_step.is_(None)) | (Staff.totp_last_step < step))
                .values(totp_last_step=step)
                .execution_options(synchronize_session=False)
            ).rowcount
            db.session.refresh(staff, ["totp_last_step"])
            return bool(won)
    return False


def _recovery_hash(code: str) -> str:
    return current_keyring().mac("recovery-code", code.upper().replace("-", ""))


def _use_recovery_code(staff: Staff, code: str, now: datetime) -> bool:
    if not code:
        return False
    found = db.session.scalars(
        select(RecoveryCode).where(
            RecoveryCode.staff_id == staff.id,
            RecoveryCode.code_hash == _recovery_hash(code),
            RecoveryCode.used_at.is_(None),
        )
    ).one_or_none()
    if found is None:
        return False
    found.used_at = now
    return True


# ---- enrolment --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Enrolment:
    secret: str
    uri: str
    qr_svg_data_uri: str


def begin_enrolment(staff: Staff, secret: str | None = None) -> Enrolment:
    """A new secret to show as a QR code; it is stored only once the first code is confirmed."""
    secret = secret or pyotp.random_base32()
    uri = pyotp.TOTP(secret).provisioning_uri(name=staff.login_id, issuer_name=ISSUER)
    return Enrolment(secret, uri, segno.make(uri, error="m").svg_data_uri(scale=5, border=4))


def confirm_enrolment(
    staff: Staff, secret: str, code: str, *, remote_addr: str, now: datetime | None = None
) -> list[str]:
    """Store the secret once a code from the authenticator matches; returns fresh recovery codes."""
    now = now or dates.now()
    if not (code.isdigit() and pyotp.TOTP(secret).verify(code, for_time=now, valid_window=1)):
        _count_failure(staff, now, remote_addr, reason="bad_code_enrolment")
        raise SignInRefused("bad_code")
    staff.totp_secret = secret
    staff.totp_enrolled_at = now
    staff.totp_last_step = int(now.timestamp()) // 30
    _succeeded(staff)
    codes = new_recovery_codes(staff)
    record(AuditTag.MFA_ENROLLED, staff=staff, remote_addr=remote_addr)
    return codes


def new_recovery_codes(staff: Staff, count: int = 10) -> list[str]:
    db.session.execute(RecoveryCode.__table__.delete().where(RecoveryCode.staff_id == staff.id))
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    codes = []
    for _ in range(count):
        raw = "".join(secrets.choice(alphabet) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
        db.session.add(RecoveryCode(staff_id=staff.id, code_hash=_recovery_hash(raw)))
    db.session.flush()
    return codes


def reset_second_factor(staff: Staff) -> None:
    """An administrator's reset: the person enrols again at the next sign-in."""
    staff.totp_secret = None
    staff.totp_enrolled_at = None
    staff.totp_last_step = None
    db.session.execute(RecoveryCode.__table__.delete().where(RecoveryCode.staff_id == staff.id))
    end_sessions_of(staff, "mfa_reset")


# ---- sessions ---------------------------------------------------------------------------------
def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(staff: Staff, *, remote_addr: str, now: datetime | None = None) -> str:
    """A session after the password step; ``complete_session`` marks the second factor passed."""
    now = now or dates.now()
    token = secrets.token_urlsafe(32)
    db.session.add(
        StaffSession(
            token_hash=_token_hash(token),
            staff_id=staff.id,
            mfa_passed=False,
            created_at=now,
            last_seen_at=now,
            remote_addr=remote_addr[:64],
        )
    )
    db.session.flush()
    return token


def complete_session(session: StaffSession, *, remote_addr: str) -> None:
    session.mfa_passed = True
    record(AuditTag.SIGNED_IN, staff=session.staff, remote_addr=remote_addr, session=session.id)


# A session's last use is written at most this often: idle time is counted to within it, and a
# staff member's requests in a burst do not each write the session row (R9.2).
SESSION_TOUCH_EVERY = timedelta(seconds=30)
_SESSION_WITH_STAFF = (
    select(StaffSession, Staff)
    .join(Staff, Staff.id == StaffSession.staff_id)
    .where(StaffSession.token_hash == bindparam("token_hash"), StaffSession.ended_at.is_(None))
)


def load_session(
    token: str | None, *, remote_addr: str, now: datetime | None = None, touch: bool = True
) -> StaffSession | None:
    """The live session for this cookie, or None. Ends sessions that are idle, too old, or whose
    account may no longer work (disabled, out of its duty period). ``touch=False`` for requests a
    page makes by itself (the call pop-up feed): they must not keep an unattended screen signed in."""
    if not token:
        return None
    now = now or dates.now()
    config = current_app.config
    # The session and its staff member in one statement, read on every request: disabling an
    # account, ending its period of duty or changing its roles takes effect at its next request
    # (the staff member lands in the identity map, so ``found.staff`` loads nothing more).
    row = db.session.execute(_SESSION_WITH_STAFF, {"token_hash": _token_hash(token)}).one_or_none()
    if row is None:
        return None
    found = row[0]
    reason = None
    if now - found.last_seen_at > timedelta(minutes=config["STAFF_SESSION_IDLE_MINUTES"]):
        reason = "idle"
    elif now - found.created_at > timedelta(hours=config["STAFF_SESSION_MAX_HOURS"]):
        reason = "max_age"
    else:
        try:
            check_may_work(found.staff, now, remote_addr=remote_addr)
        except SignInRefused as refused:
            reason = refused.reason
    if reason:
        stop_deferring()  # a read-only request too: ending the session is written at once
        end_session(found, reason, now=now, remote_addr=remote_addr)
        return None
    if touch and now - found.last_seen_at >= SESSION_TOUCH_EVERY:
        # A Core UPDATE, deferred in a read-only request: it never makes the session dirty.
        defer_write(functools.partial(_touch, found.id, now))
    return found


def _touch(session_id: str, now: datetime) -> None:
    db.session.execute(
        update(StaffSession)
        .where(StaffSession.id == session_id)
        .values(last_seen_at=now)
        .execution_options(synchronize_session=False)
    )


def end_session(
    session: StaffSession, reason: str, *, remote_addr: str = "", now: datetime | None = None
) -> None:
    session.ended_at = now or dates.now()
    session.ended_reason = reason
    tag = AuditTag.SIGNED_OUT if reason == "signed_out" else AuditTag.SESSION_ENDED
    record(tag, staff=session.staff, remote_addr=remote_addr, session=session.id, reason=reason)
    db.session.flush()


def end_sessions_of(staff: Staff, reason: str) -> None:
    for live in db.session.scalars(
        select(StaffSession).where(StaffSession.staff_id == staff.id, StaffSession.ended_at.is_(None))
    ):
        end_session(live, reason)


# ---- the registry -----------------------------------------------------------------------------
def create_staff(
    *,
    login_id: str,
    name: str,
    affiliation: str,
    roles,
    venue_id: int | None,
    duty_start: date,
    duty_end: date,
    password: str,
    actor: Staff | None = None,
    remote_addr: str = "",
) -> Staff:
    now = dates.now()
    staff = Staff(
        login_id=login_id,
        name=name,
        affiliation=affiliation,
        roles=",".join(sorted(roles)),
        venue_id=venue_id,
        duty_start=duty_start,
        duty_end=duty_end,
        active=True,
        password_hash=hash_password(password),
        failed_attempts=0,
        created_at=now,
        updated_at=now,
    )
    db.session.add(staff)
    db.session.flush()
    record(
        AuditTag.STAFF_CREATED,
        staff=actor,
        subject_type="staff",
        subject_id=staff.id,
        remote_addr=remote_addr,
        roles=staff.roles,
        venue_id=venue_id,
        duty_start=duty_start.isoformat(),
        duty_end=duty_end.isoformat(),
    )
    return staff


REGISTRY_FIELDS = ("name", "affiliation", "roles", "venue_id", "duty_start", "duty_end", "active")


def update_staff(staff: Staff, *, actor: Staff | None, remote_addr: str = "", **changes) -> list[str]:
    """Apply registry changes; audit which fields changed (before → after; registry data is not
    resident data). Deactivating or shortening the period ends live sessions at once."""
    changed = {}
    for field in REGISTRY_FIELDS:
        if field in changes:
            value = changes[field]
            if field == "roles":
                value = ",".join(sorted(value))
            if getattr(staff, field) != value:
                changed[field] = [str(getattr(staff, field)), str(value)]
                setattr(staff, field, value)
    if changed:
        staff.updated_at = dates.now()
        record(
            AuditTag.STAFF_UPDATED,
            staff=actor,
            subject_type="staff",
            subject_id=staff.id,
            remote_addr=remote_addr,
            changes=changed,
        )
        if not staff.active or not staff.on_duty(dates.today()):
            end_sessions_of(staff, "registry_change")
    db.session.flush()
    return list(changed)
