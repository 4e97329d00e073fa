"""Settings from the environment (and an optional instance file).

Development runs on one machine with SQLite and a key file in ``instance/``; production must be
given its keys explicitly and refuses to start without them (R2.5).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = Path(os.environ.get("MADOGUCHI_INSTANCE", ROOT / "instance"))


class ConfigError(RuntimeError):
    """The configuration cannot run safely; the message says which setting to fix."""


# Every page and message is in Japanese; the one locale Babel and WTForms are given.
LOCALE = "ja"


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def load(overrides: dict | None = None) -> dict:
    """Build the Flask config mapping; ``overrides`` wins (tests and CLI use it)."""
    env = os.environ.get("MADOGUCHI_ENV", "development")
    config = {
        "MADOGUCHI_ENV": env,
        "SECRET_KEY": os.environ.get("MADOGUCHI_SECRET_KEY"),
        "SQLALCHEMY_DATABASE_URI": os.environ.get(
            "DATABASE_URL", f"sqlite:///{INSTANCE / 'madoguchi.sqlite3'}"
        ),
        # Keys live outside the database and the repository (R2.5): a JSON key file (its default
        # is set below) or the MADOGUCHI_KEYS variable holding the same JSON.
        "MADOGUCHI_KEYS": os.environ.get("MADOGUCHI_KEYS", ""),
        "MAIL_BACKEND": os.environ.get("MADOGUCHI_MAIL_BACKEND", "outbox"),  # outbox | smtp
        "MAIL_OUTBOX_DIR": os.environ.get("MADOGUCHI_OUTBOX_DIR", str(ROOT / "outbox")),
        "MAIL_FROM": os.environ.get("MADOGUCHI_MAIL_FROM", "madoguchi@example.lg.jp"),
        "SMTP_HOST": os.environ.get("MADOGUCHI_SMTP_HOST", "localhost"),
        "SMTP_PORT": int(os.environ.get("MADOGUCHI_SMTP_PORT", "25")),
        "SMTP_USER": os.environ.get("MADOGUCHI_SMTP_USER", ""),
        "SMTP_PASSWORD": os.environ.get("MADOGUCHI_SMTP_PASSWORD", ""),
        "CITY_NAME": os.environ.get("MADOGUCHI_CITY_NAME", "江東区"),
        "CALL_CENTER_PHONE": os.environ.get("MADOGUCHI_CALL_CENTER_PHONE", "03-0000-0000"),
        "CALL_CENTER_HOURS": os.environ.get("MADOGUCHI_CALL_CENTER_HOURS", "平日 8:30〜17:15"),
        # The residents' booking site, as printed on notices.
        "RESIDENTS_URL": os.environ.get("MADOGUCHI_RESIDENTS_URL", "http://127.0.0.1:8000/"),
        # A resident who is not on the city's roster may register with the minimal fields (R3.1).
        "ROSTER_REQUIRED": _bool("MADOGUCHI_ROSTER_REQUIRED", False),
        "HOLD_MINUTES": int(os.environ.get("MADOGUCHI_HOLD_MINUTES", "10")),
        "LOOKUP_MAX_FAILURES": int(os.environ.get("MADOGUCHI_LOOKUP_MAX_FAILURES", "5")),
        "LOOKUP_LOCK_MINUTES": int(os.environ.get("MADOGUCHI_LOOKUP_LOCK_MINUTES", "30")),
        "RATELIMIT_STORAGE_URI": os.environ.get("MADOGUCHI_RATELIMIT_STORAGE_URI", "memory://"),
        "RATELIMIT_LOOKUP": os.environ.get("MADOGUCHI_RATELIMIT_LOOKUP", "10 per minute;60 per hour"),
        "RATELIMIT_HEADERS_ENABLED": True,
        "AUDIT_RETENTION_DAYS": int(os.environ.get("MADOGUCHI_AUDIT_RETENTION_DAYS", str(365 * 5))),
        # Retention (R8.1; the periods are the city's instruction, 003 第22条): counted from the end of
        # a booking (hand-over, cancellation, no-show, postponement), from a call, from a message's
        # creation. `madoguchi purge expired` deletes what is past them (docs/compliance.md).
        "BOOKING_RETENTION_DAYS": int(os.environ.get("MADOGUCHI_BOOKING_RETENTION_DAYS", "365")),
        "CALL_NOTE_RETENTION_DAYS": int(os.environ.get("MADOGUCHI_CALL_NOTE_RETENTION_DAYS", "365")),
        "MESSAGE_RETENTION_DAYS": int(os.environ.get("MADOGUCHI_MESSAGE_RETENTION_DAYS", "90")),
        "BACKUP_RETENTION_DAYS": int(os.environ.get("MADOGUCHI_BACKUP_RETENTION_DAYS", "30")),
        # Export files wait here, encrypted, until their ledger entry is closed (R7.5).
        "EXPORT_SPOOL_DIR": os.environ.get("MADOGUCHI_EXPORT_SPOOL_DIR", str(INSTANCE / "exports")),
        "EXPORT_SCRYPT_N": int(os.environ.get("MADOGUCHI_EXPORT_SCRYPT_N", str(2**17))),
        # Audit analysis thresholds (R7.4).
        "AUDIT_BULK_VIEWS_PER_HOUR": int(os.environ.get("MADOGUCHI_AUDIT_BULK_VIEWS_PER_HOUR", "50")),
        "AUDIT_WORK_HOURS": os.environ.get("MADOGUCHI_AUDIT_WORK_HOURS", "08:00-20:00"),
        "AUDIT_FAILED_SIGNIN_BURST": int(os.environ.get("MADOGUCHI_AUDIT_FAILED_SIGNIN_BURST", "5")),
        "AUDIT_FAILED_SIGNIN_WINDOW_MINUTES": int(
            os.environ.get("MADOGUCHI_AUDIT_FAILED_SIGNIN_WINDOW_MINUTES", "10")
        ),
        "AUDIT_LARGE_SEARCH_RESULTS": int(os.environ.get("MADOGUCHI_AUDIT_LARGE_SEARCH_RESULTS", "20")),
        # Staff sign-in and sessions (R7.1).
        "STAFF_SESSION_IDLE_MINUTES": 15,
        "STAFF_SESSION_MAX_HOURS": 8,
        "STAFF_PASSWORD_MIN_LENGTH": 12,
        "STAFF_SIGNIN_BACKOFF_AFTER": 3,
        "STAFF_SIGNIN_LOCK_AFTER": 10,
        "STAFF_SIGNIN_LOCK_MINUTES": 30,
        "RATELIMIT_STAFF_SIGNIN": os.environ.get(
            "MADOGUCHI_RATELIMIT_STAFF_SIGNIN", "20 per minute;200 per hour"
        ),
        # Twilio (R4.2, SMS). Without an account SID, auth token and sender, SMS go to the outbox
        # folder like e-mail, and voice webhooks are refused (no token to check their signature).
        "TWILIO_ACCOUNT_SID": os.environ.get("MADOGUCHI_TWILIO_ACCOUNT_SID", ""),
        "TWILIO_AUTH_TOKEN": os.environ.get("MADOGUCHI_TWILIO_AUTH_TOKEN", ""),
        "TWILIO_FROM_NUMBER": os.environ.get("MADOGUCHI_TWILIO_FROM_NUMBER", ""),
        # Where the REST API lives: Twilio's, or a gateway the city's network routes through.
        "TWILIO_API_BASE_URL": os.environ.get("MADOGUCHI_TWILIO_API_BASE_URL", "https://api.twilio.com"),
        # The public base URL Twilio calls the webhooks on; signatures are computed over it
        # (PITFALLS: behind a TLS proxy Flask would otherwise see http://).
        "TWILIO_WEBHOOK_BASE_URL": os.environ.get("MADOGUCHI_TWILIO_WEBHOOK_BASE_URL", ""),
        # Where an incoming call is put through: a SIP URI of the operators' PBX, a phone number,
        # or "client:NAME" for Twilio Voice SDK softphones.
        "CALL_CENTER_OPERATOR_TARGET": os.environ.get(
            "MADOGUCHI_CALL_CENTER_OPERATOR_TARGET", "client:operators"
        ),
        # The console's "calls not logged yet" count, kept per operator in each worker process for
        # this many seconds (R9.2; docs/capacity.md): a count only, dropped in the worker where the
        # operator takes or logs a call, so only a call taken elsewhere shows this late. 0: none.
        "UNLOGGED_CALLS_SECONDS": float(os.environ.get("MADOGUCHI_UNLOGGED_CALLS_SECONDS", "5")),
        # Call recordings (R4.4): empty keeps the audio at Twilio (streamed through the app for
        # playback); a folder downloads each completed recording there, encrypted with its own key.
        "RECORDINGS_LOCAL_DIR": os.environ.get("MADOGUCHI_RECORDINGS_LOCAL_DIR", ""),
        # FAX sheets (R5): the folder a FAX server drops received files in, the encrypted store,
        # and how long an image is kept after its sheet was handled.
        "FAX_INBOX_DIR": os.environ.get("MADOGUCHI_FAX_INBOX_DIR", str(INSTANCE / "fax-inbox")),
        "FAX_STORE_DIR": os.environ.get("MADOGUCHI_FAX_STORE_DIR", str(INSTANCE / "fax-store")),
        "FAX_IMAGE_RETENTION_DAYS": int(os.environ.get("MADOGUCHI_FAX_IMAGE_RETENTION_DAYS", "30")),
        "FAX_NUMBER": os.environ.get("MADOGUCHI_FAX_NUMBER", "03-0000-0001"),
        "SMS_OUTBOX_DIR": os.environ.get("MADOGUCHI_SMS_OUTBOX_DIR", str(ROOT / "outbox" / "sms")),
        "BABEL_DEFAULT_LOCALE": LOCALE,
        "BABEL_DEFAULT_TIMEZONE": "Asia/Tokyo",
        "WTF_CSRF_TIME_LIMIT": 3600,
        # The largest request body an app reads, uploads included (a bigger one gets 413 before any
        # view runs, so nothing spools to disk): the staff apps' largest upload is a roster of up to
        # 32 MB (madoguchi/roster.py); the residents' app sets its own, much smaller limit.
        "MAX_CONTENT_LENGTH": int(os.environ.get("MADOGUCHI_MAX_REQUEST_BYTES", str(40 * 1024 * 1024))),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "PERMANENT_SESSION_LIFETIME": 1800,
        "PROXY_FIX_HOPS": int(os.environ.get("MADOGUCHI_PROXY_FIX_HOPS", "0")),
        # The waiting room in front of the residents' pages (R9.2; docs/capacity.md). Off by default.
        "WAITING_ROOM_ENABLED": _bool("MADOGUCHI_WAITING_ROOM_ENABLED", False),
        "WAITING_ROOM_RATE_PER_MINUTE": float(
            os.environ.get("MADOGUCHI_WAITING_ROOM_RATE_PER_MINUTE", "600")
        ),
        "WAITING_ROOM_BURST": int(os.environ.get("MADOGUCHI_WAITING_ROOM_BURST", "20")),
        "WAITING_ROOM_OPENS_AT": os.environ.get("MADOGUCHI_WAITING_ROOM_OPENS_AT", ""),
        "WAITING_ROOM_WAVES": os.environ.get("MADOGUCHI_WAITING_ROOM_WAVES", ""),
        "WAITING_ROOM_ADMITTED_MINUTES": float(
            os.environ.get("MADOGUCHI_WAITING_ROOM_ADMITTED_MINUTES", "30")
        ),
        "WAITING_ROOM_PASS_USES": int(os.environ.get("MADOGUCHI_WAITING_ROOM_PASS_USES", "5")),
        "WAITING_ROOM_LATENCY_TARGET_MS": float(
            os.environ.get("MADOGUCHI_WAITING_ROOM_LATENCY_TARGET_MS", "0")
        ),
        # The residents' calendar (R9.2; docs/capacity.md), cached in each worker process, in seconds:
        # a venue's week of slots (which exist, their times and capacities, the closed days), and
        # the week's rendered grid with its places left (a hold decides capacity anyway). 0: none.
        "CALENDAR_SLOTS_SECONDS": float(os.environ.get("MADOGUCHI_CALENDAR_SLOTS_SECONDS", "30")),
        "CALENDAR_PLACES_SECONDS": float(os.environ.get("MADOGUCHI_CALENDAR_PLACES_SECONDS", "1")),
        # SQLite: each web worker copies the write-ahead log into the database file in the
        # background this often, instead of inside the commit that fills it (docs/capacity.md). 0:
        # SQLite's default (the committing request does it).
        "SQLITE_CHECKPOINT_SECONDS": float(os.environ.get("MADOGUCHI_SQLITE_CHECKPOINT_SECONDS", "1")),
        # Residents' requests send the messages they queued right after their commit. During a wave,
        # set 0 and run `madoguchi outbox deliver` every minute: each message costs write
        # transactions that queue on SQLite's one write lock with the bookings (docs/capacity.md).
        "DELIVER_INLINE": _bool("MADOGUCHI_DELIVER_INLINE", True),
        # hide_parameters: a database error must not print values into a log (standard 4).
        "SQLALCHEMY_ENGINE_OPTIONS": {"hide_parameters": True},
        "LOG_TRACEBACKS": True,
    }
    if overrides:
        config.update(overrides)
    # Settings that follow the environment are derived after the overrides, so a production app
    # configured by overrides (tests, the CLI) gets the same secure defaults as one configured by env.
    production = config["MADOGUCHI_ENV"] == "production"
    # A lost server connection is replaced at checkout without a round trip to the server unless it
    # sat idle (``extensions._server_still_there``, R9.1), so SQLAlchemy's pre-ping, which would add
    # one to every checkout (R9.2), stays off as it is by default. Last in, first out: the connection
    # just returned is the one handed out next, so the ones in use stay warm and only spare ones
    # idle (and get pinged, or time out).
    if str(config["SQLALCHEMY_DATABASE_URI"]).startswith("postgresql"):
        config["SQLALCHEMY_ENGINE_OPTIONS"].setdefault("pool_use_lifo", True)
    config.setdefault("SESSION_COOKIE_SECURE", production)
    config.setdefault("SMTP_STARTTLS", _bool("MADOGUCHI_SMTP_STARTTLS", production))
    config.setdefault(
        "MADOGUCHI_KEY_FILE",
        os.environ.get("MADOGUCHI_KEY_FILE", "" if production else str(INSTANCE / "keys.json")),
    )
    _check(config)
    return config


def _check(config: dict) -> None:
    production = config["MADOGUCHI_ENV"] == "production"
    if production:
        if not config.get("SECRET_KEY"):
            raise ConfigError("MADOGUCHI_SECRET_KEY must be set in production")
        if not (config.get("MADOGUCHI_KEYS") or config.get("MADOGUCHI_KEY_FILE")):
            raise ConfigError(
                "production needs its field keys: set MADOGUCHI_KEY_FILE (outside the repository) "
                "or MADOGUCHI_KEYS; see docs/administration.md"
            )
        key_file = config.get("MADOGUCHI_KEY_FILE")
        if key_file and Path(key_file).resolve().is_relative_to(ROOT):
            raise ConfigError("MADOGUCHI_KEY_FILE must not lie inside the application directory")
    elif not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = _development_secret()


def _development_secret() -> str:
    """A per-installation secret for development, kept in the instance folder (never committed)."""
    path = INSTANCE / "secret_key"
    if not path.exists():
        INSTANCE.mkdir(parents=True, exist_ok=True)
        path.write_text(os.urandom(32).hex())
        path.chmod(0o600)
    return path.read_text().strip()
