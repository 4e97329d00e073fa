"""A local fake of the parts of Twilio's REST API (2010-04-01) that Madoguchi uses.

Tests point the real ``twilio`` library at it (``TWILIO_API_BASE_URL``), so the product's requests go
through the same client code, URLs, form encoding, Basic auth and error parsing as in production.
It serves on 127.0.0.1 only, records everything it receives, and answers with the shapes Twilio's
documentation gives: message and recording resources, list pages with paging fields, and the JSON error
body (``code``, ``message``, ``more_info``, ``status``) — whose message, like Twilio's, echoes the To
number, so tests can prove the product never stores or logs it.

    fake = FakeTwilio().start()
    fake.base_url                       # http://127.0.0.1:PORT
    fake.messages                       # message resources created, oldest first
    fake.fail_next(2, status=500)       # the next two requests fail with a Twilio-shaped error
    fake.drop_next()                    # the next request's connection is closed without an answer
    fake.add_recording(call_sid=...)    # seed a recording (metadata + .wav/.mp3 bytes)
    fake.stop()
"""

from __future__ import annotations

import base64
import io
import json
import re
import secrets
import socket
import threading
import wave
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

API = "/2010-04-01"
E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_ACCOUNT = r"/2010-04-01/Accounts/(?P<account>AC[0-9a-f]{32})"
_ROUTES = [
    ("POST", re.compile(_ACCOUNT + r"/Messages\.json$"), "create_message"),
    ("GET", re.compile(_ACCOUNT + r"/Recordings\.json$"), "list_recordings"),
    ("GET", re.compile(_ACCOUNT + r"/Recordings/(?P<sid>RE[0-9a-f]{32})\.json$"), "fetch_recording"),
    ("DELETE", re.compile(_ACCOUNT + r"/Recordings/(?P<sid>RE[0-9a-f]{32})\.json$"), "delete_recording"),
    ("GET", re.compile(_ACCOUNT + r"/Recordings/(?P<sid>RE[0-9a-f]{32})\.(?P<ext>wav|mp3)$"), "media"),
]
ERROR_MESSAGES = {
    20003: "Authenticate",
    20404: "The requested resource {path} was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    20503: "Service is unavailable. Please try again",
}
_DEFAULT_CODE = {401: 20003, 404: 20404, 429: 20429, 500: 20500, 503: 20503}


def sid(prefix: str) -> str:
    """A Twilio SID: two letters and 32 hex digits."""
    return prefix + secrets.token_hex(16)


def rfc2822(moment: datetime) -> str:
    """Twilio's 2010-04-01 API writes dates as RFC 2822 in UTC."""
    return format_datetime(moment.astimezone(UTC), usegmt=False).replace("-0000", "+0000")


def silent_wav(seconds: float = 1.0, rate: int = 8000) -> bytes:
    """A real (silent) mono 8 kHz WAV file, the format Twilio records calls in."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * int(seconds * rate))
    return buffer.getvalue()


def sms_segments(body: str) -> int:
    """How many parts Twilio bills: GSM-7 (approximated as ASCII) 160/153, otherwise UCS-2 70/67."""
    single, part = (160, 153) if body.isascii() else (70, 67)
    return 1 if len(body) <= single else -(-len(body) // part)


@dataclass
class Received:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    form: dict[str, str]
    auth: tuple[str, str] | None
    headers: dict[str, str]


@dataclass
class _Failure:
    status: int | None  # None: drop the connection
    code: int | None
    message: str | None


@dataclass
class FakeTwilio:
    account_sid: str = field(default_factory=lambda: sid("AC"))
    auth_token: str = field(default_factory=lambda: secrets.token_hex(16))
    # The account's numbers: a From other than these is refused (21606), as Twilio refuses numbers
    # the account does not own. An empty tuple accepts any From.
    from_numbers: tuple[str, ...] = ("+815012345678",)
    media_auth_required: bool = True

    def __post_init__(self):
        self.requests: list[Received] = []
        self.messages: list[dict] = []
        self.recordings: dict[str, dict] = {}
        self.media: dict[str, dict[str, bytes]] = {}
        self.deleted: list[str] = []
        self.unsubscribed: set[str] = set()
        self._failures: deque[_Failure] = deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ----------------------------------------------------------------------------
    def start(self) -> FakeTwilio:
        fake = self

        class Handler(_Handler):
            twilio = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-twilio", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ---- test controls ------------------------------------------------------------------------
    def fail_next(
        self, count: int = 1, status: int = 500, code: int | None = None, message: str | None = None
    ):
        """The next ``count`` requests get a Twilio-shaped JSON error instead of being served."""
        with self._lock:
            self._failures.extend(_Failure(status, code, message) for _ in range(count))

    def drop_next(self, count: int = 1) -> None:
        """The next ``count`` requests are read and their connection closed without an answer."""
        with self._lock:
            self._failures.extend(_Failure(None, None, None) for _ in range(count))

    def unsubscribe(self, number: str) -> None:
        """The resident replied STOP: Twilio then refuses messages to the number (21610)."""
        self.unsubscribed.add(number)

    def add_recording(
        self,
        *,
        call_sid: str | None = None,
        recording_sid: str | None = None,
        date_created: datetime | None = None,
        duration: int = 42,
        status: str = "completed",
        wav: bytes | None = None,
        mp3: bytes | None = None,
    ) -> dict:
        """Seed a recording; returns its resource as the API will serve it."""
        created = date_created or datetime.now(UTC)
        rec_sid = recording_sid or sid("RE")
        path = f"{API}/Accounts/{self.account_sid}/Recordings/{rec_sid}"
        resource = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "call_sid": call_sid or sid("CA"),
            "conference_sid": None,
            "date_created": rfc2822(created),
            "date_updated": rfc2822(created),
            "start_time": rfc2822(created),
            "duration": str(duration),
            "sid": rec_sid,
            "price": "-0.0025",
            "price_unit": "USD",
            "status": status,
            "channels": 1,
            "source": "DialVerb",
            "error_code": None,
            "track": "both",
            "encryption_details": None,
            "uri": f"{path}.json",
            # As Twilio gives it: a client must send it through its configured base URL too.
            "media_url": f"https://api.twilio.com{path}",
            "subresource_uris": {
                "add_on_results": f"{path}/AddOnResults.json",
                "transcriptions": f"{path}/Transcriptions.json",
            },
        }
        with self._lock:
            self.recordings[rec_sid] = {"resource": resource, "created": created}
            self.media[rec_sid] = {
                "wav": wav if wav is not None else silent_wav(),
                "mp3": mp3
                if mp3 is not None
                else b"ID3\x04\x00\x00\x00\x00\x00\x00" + secrets.token_bytes(64),
            }
        return resource

    def overrides(self) -> dict:
        """The Madoguchi settings that point the product at this fake (merge into ``overrides``)."""
        return {
            "TWILIO_ACCOUNT_SID": self.account_sid,
            "TWILIO_AUTH_TOKEN": self.auth_token,
            "TWILIO_FROM_NUMBER": self.from_numbers[0] if self.from_numbers else "+815012345678",
            "TWILIO_API_BASE_URL": self.base_url,
        }

    def requests_to(self, suffix: str) -> list[Received]:
        return [r for r in self.requests if r.path.endswith(suffix)]

    # ---- the API ------------------------------------------------------------------------------
    def _error(self, status: int, code: int | None = None, message: str | None = None, path: str = ""):
        code = code or _DEFAULT_CODE.get(status, status)
        text = message or ERROR_MESSAGES.get(code, "Error").format(path=path)
        return status, {
            "code": code,
            "message": text,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }

    def create_message(self, request: Received, account: str):
        form = request.form
        to, sender, body = form.get("To", ""), form.get("From", ""), form.get("Body", "")
        if not to:
            return self._error(400, 21604, "A 'To' phone number is required.")
        if not E164.match(to):
            return self._error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if not sender and not form.get("MessagingServiceSid"):
            return self._error(400, 21603, "A 'From' phone number is required.")
        if self.from_numbers and sender not in self.from_numbers:
            return self._error(
                400,
                21606,
                f"The 'From' phone number provided ({sender}) is not a valid message-capable Twilio phone "
                "number for this destination/account.",
            )
        if not body and not form.get("MediaUrl"):
            return self._error(400, 21602, "Message body is required.")
        if len(body) > 1600:
            return self._error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        if to in self.unsubscribed:
            return self._error(400, 21610, f"Attempt to send to unsubscribed recipient {to}")
        now = rfc2822(datetime.now(UTC))
        message_sid = sid("SM")
        uri = f"{API}/Accounts/{account}/Messages/{message_sid}"
        resource = {
            "account_sid": account,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender or None,
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "num_media": "0",
            "num_segments": str(sms_segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": message_sid,
            "status": "queued",
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": to,
            "uri": f"{uri}.json",
        }
        with self._lock:
            self.messages.append(resource)
        return 201, resource

    def _recording(self, rec_sid: str) -> dict | None:
        with self._lock:
            entry = self.recordings.get(rec_sid)
            return None if entry is None else entry["resource"]

    def fetch_recording(self, request: Received, account: str, sid: str):
        resource = self._recording(sid)
        if resource is None:
            return self._error(404, path=request.path)
        return 200, resource

    def delete_recording(self, request: Received, account: str, sid: str):
        with self._lock:
            entry = self.recordings.pop(sid, None)
            self.media.pop(sid, None)
            if entry is not None:
                self.deleted.append(sid)
        if entry is None:
            return self._error(404, path=request.path)
        return 204, None

    def list_recordings(self, request: Received, account: str):
        query = {k: v[-1] for k, v in request.query.items()}
        page_size = min(int(query.get("PageSize", 50)), 1000)
        page = int(query.get("Page", 0))
        with self._lock:
            entries = sorted(self.recordings.values(), key=lambda e: e["created"], reverse=True)
        if "CallSid" in query:
            entries = [e for e in entries if e["resource"]["call_sid"] == query["CallSid"]]
        for name, keep in (
            ("DateCreated", lambda c, v: c == v),
            ("DateCreated<", lambda c, v: c <= v),
            ("DateCreated>", lambda c, v: c >= v),
        ):
            if name in query:
                bound, whole_day = _parse_date(query[name])
                entries = [
                    e for e in entries if keep(e["created"].date() if whole_day else e["created"], bound)
                ]
        chunk = entries[page * page_size : (page + 1) * page_size]
        filters = {k: v for k, v in query.items() if k not in ("Page", "PageSize", "PageToken")}
        base = f"{API}/Accounts/{account}/Recordings.json"

        def page_uri(number: int) -> str:
            return f"{base}?{urlencode({**filters, 'PageSize': page_size, 'Page': number})}"

        more = (page + 1) * page_size < len(entries)
        return 200, {
            "recordings": [e["resource"] for e in chunk],
            "page": page,
            "page_size": page_size,
            "start": page * page_size,
            "end": page * page_size + max(len(chunk) - 1, 0),
            "uri": page_uri(page),
            "first_page_uri": page_uri(0),
            "next_page_uri": page_uri(page + 1) if more else None,
            "previous_page_uri": page_uri(page - 1) if page > 0 else None,
        }

    def media_file(self, request: Received, account: str, sid: str, ext: str):
        with self._lock:
            files = self.media.get(sid)
        if files is None:
            return self._error(404, path=request.path)
        return 200, files[ext]


def _parse_date(value: str) -> tuple[date | datetime, bool]:
    """Twilio's filters take a day in GMT (YYYY-MM-DD; "on or before/after" that day) or an ISO 8601
    instant. The python library sends a ``date`` as midnight (2026-03-02T00:00:00Z): read as the day."""
    if len(value) == 10 or value.endswith("T00:00:00Z"):
        return date.fromisoformat(value[:10]), True
    return datetime.fromisoformat(value.replace("Z", "+00:00")), False


class _Handler(BaseHTTPRequestHandler):
    twilio: FakeTwilio
    server_version = "FakeTwilio/1.0"

    def do_GET(self):  # noqa: N802 - http.server's naming
        self._serve()

    def do_POST(self):  # noqa: N802
        self._serve()

    def do_DELETE(self):  # noqa: N802
        self._serve()

    def log_message(self, format, *args):  # noqa: A002 - keep test output quiet
        pass

    def _serve(self):
        fake = self.twilio
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        form = {k: v[-1] for k, v in parse_qs(raw.decode("utf-8"), keep_blank_values=True).items()}
        request = Received(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            form=form,
            auth=_basic_auth(self.headers.get("Authorization", "")),
            headers=dict(self.headers.items()),
        )
        with fake._lock:
            fake.requests.append(request)
            failure = fake._failures.popleft() if fake._failures else None
        if failure is not None and failure.status is None:
            # As a network cut would: the request was read, no answer comes back.
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if failure is not None:
            self._reply(*fake._error(failure.status, failure.code, failure.message, parts.path))
            return
        self._reply(*self._route(request))

    def _route(self, request: Received):
        fake = self.twilio
        for method, pattern, name in _ROUTES:
            match = pattern.match(request.path)
            if not match or method != request.method:
                continue
            args = match.groupdict()
            media = name == "media"
            if request.auth != (fake.account_sid, fake.auth_token) and (
                not media or fake.media_auth_required
            ):
                return fake._error(401)
            if args["account"] != fake.account_sid:
                return fake._error(404, path=request.path)
            handler = fake.media_file if media else getattr(fake, name)
            return handler(request, **args)
        return fake._error(404, path=request.path)

    def _reply(self, status: int, payload) -> None:
        if payload is None:
            body, kind = b"", None
        elif isinstance(payload, bytes):
            body = payload
            kind = "audio/x-wav" if payload[:4] == b"RIFF" else "audio/mpeg"
        else:
            body, kind = json.dumps(payload).encode("utf-8"), "application/json; charset=utf-8"
        self.send_response(status)
        if kind:
            self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)


def _basic_auth(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value).decode("utf-8").partition(":")
    except ValueError:
        return None
    return user, password
