"""Twilio's REST API for call recordings (R4.4): fetch, list, download and delete.

The rest of the core sees plain values and our own errors, never twilio's types: a deletion's
outcome is DELETED (204), ALREADY_GONE (404 — counts as deleted) or an error that leaves the
recording queued (network, 5xx, 20009 "call in progress"). Deleting removes the audio for good;
Twilio keeps the metadata for 40 days (PITFALLS), so the evidence of a deletion is the 204 and a
follow-up fetch answering 404.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

import requests
from flask import current_app
from twilio.base.exceptions import TwilioException, TwilioRestException

from .notify import twilio_client, twilio_configured


class TelephonyUnavailable(RuntimeError):
    """Twilio could not be reached or answered with an error worth retrying; ``reason`` has no
    personal value (status and code only)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Deleted(enum.StrEnum):
    DELETED = "deleted"  # 204
    ALREADY_GONE = "already_gone"  # 404: deleted before (by us, or in Twilio's console)


@dataclass(frozen=True)
class RemoteRecording:
    sid: str
    call_sid: str | None
    status: str
    started_at: datetime | None
    duration: int | None
    channels: int | None


def configured() -> bool:
    return twilio_configured(current_app.config)


def _reason(exc: Exception) -> str:
    if isinstance(exc, TwilioRestException):
        return f"HTTP {exc.status}/{exc.code}"
    return type(exc).__name__


def _is_not_found(exc: Exception) -> bool:
    return isinstance(exc, TwilioRestException) and exc.status == 404


def delete_recording(sid: str) -> Deleted:
    """Delete the audio at Twilio. 404 counts as deleted; anything else retryable raises."""
    try:
        deleted = twilio_client().recordings(sid).delete()
    except TwilioRestException as exc:
        if _is_not_found(exc):
            return Deleted.ALREADY_GONE
        raise TelephonyUnavailable(_reason(exc)) from None
    except (TwilioException, OSError) as exc:
        raise TelephonyUnavailable(_reason(exc)) from None
    if not deleted:
        raise TelephonyUnavailable("delete not acknowledged")
    return Deleted.DELETED


def confirm_gone(sid: str) -> bool:
    """The follow-up fetch: True when Twilio answers 404 (the evidence for the deletion record)."""
    try:
        twilio_client().recordings(sid).fetch()
    except TwilioRestException as exc:
        return _is_not_found(exc)
    except (TwilioException, OSError):
        return False
    return False


def list_recordings(since: datetime, limit: int = 1000) -> list[RemoteRecording]:
    """Recordings created since ``since`` — to reconcile callbacks that were lost."""
    try:
        found = twilio_client().recordings.list(date_created_after=since, limit=limit)
    except (TwilioException, OSError) as exc:
        raise TelephonyUnavailable(_reason(exc)) from None
    return [
        RemoteRecording(
            sid=r.sid,
            call_sid=r.call_sid,
            status=r.status,
            started_at=r.start_time,
            duration=int(r.duration) if r.duration not in (None, "") and int(r.duration) >= 0 else None,
            channels=int(r.channels) if r.channels else None,
        )
        for r in found
    ]


def download_recording(sid: str) -> bytes:
    """The audio (WAV) with the account's credentials. Through ``requests`` rather than the twilio
    client, whose responses are text: audio is bytes. Twilio answers with a redirect to its media
    storage, which is followed."""
    config = current_app.config
    base = config["TWILIO_API_BASE_URL"].rstrip("/")
    url = f"{base}/2010-04-01/Accounts/{config['TWILIO_ACCOUNT_SID']}/Recordings/{sid}.wav"
    try:
        response = requests.get(
            url, auth=(config["TWILIO_ACCOUNT_SID"], config["TWILIO_AUTH_TOKEN"]), timeout=60
        )
    except requests.RequestException as exc:
        raise TelephonyUnavailable(_reason(exc)) from None
    if response.status_code != 200:
        raise TelephonyUnavailable(f"HTTP {response.status_code}")
    return response.content
