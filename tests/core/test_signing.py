"""Signed values read quickly (madoguchi/signing.py, R9.2) are decided exactly as itsdangerous decides
them (R9.3): the session cookie, Flask-WTF's CSRF token and the waiting-room ticket."""

from __future__ import annotations

import hashlib

import pytest
from flask.sessions import session_json_serializer
from itsdangerous import Signer, TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode, int_to_bytes
from markupsafe import Markup

from madoguchi.admission import _ClockSigner
from madoguchi.signing import QuickTimedSerializer

SECRET, OLD_SECRET = "test-secret-key-0123456789", "an-older-secret-key-9876543210"
NOW = 1_800_000_000  # a fixed clock for signing and reading

# The three uses: (salt, constructor arguments beyond the keys, a value as the app signs it).
USES = {
    "session": (
        "cookie-session",
        dict(
            serializer=session_json_serializer,
            signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha1},
        ),
        {"applicant_id": "a" * 32, "flow": "book", "csrf_token": "c" * 40, "_permanent": True},
    ),
    "csrf": ("wtf-csrf-token", {}, "0123456789abcdef" * 2),
    "ticket": ("madoguchi.admission.v1", dict(signer=_ClockSigner), ["room", 7, 0, "n" * 32, 0.0]),
}


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch):
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: NOW)


def pair(use: str, keys=SECRET):
    salt, kwargs, value = USES[use]
    return (
        URLSafeTimedSerializer(keys, salt=salt, **kwargs),
        QuickTimedSerializer(keys, salt=salt, **kwargs),
        value,
    )


def outcome(serializer, signed, **kwargs):
    """What ``loads`` gives: ("ok", value) or (exception type, message)."""
    try:
        return "ok", serializer.loads(signed, **kwargs)
    except Exception as exc:  # noqa: BLE001 - compared as they come
        return type(exc), str(exc)


def signed_at(serializer, value, when: int) -> str:
    """``value`` as ``serializer`` signs it at the epoch second ``when``."""
    clock = TimestampSigner.get_timestamp
    try:
        TimestampSigner.get_timestamp = lambda self: when
        return serializer.dumps(value)
    finally:
        TimestampSigner.get_timestamp = clock


def forged_payload(serializer, payload: bytes) -> str:
    """``payload`` signed with the right key though it is no serialized value (a forger with the key
    or a bug): the signature passes, the payload must still be refused."""
    return Signer.sign(serializer.make_signer(), payload).decode()  # the HMAC alone: no stamp added


@pytest.mark.parametrize("use", USES)
def test_a_valid_value_reads_the_same_without_the_librarys_loads(use, monkeypatch):
    """R9.2: a value the app signed is read by the quick check alone (the library's ``loads`` is not
    called), with the same payload and the same signing time as the library gives."""
    library, quick, value = pair(use)
    signed = library.dumps(value)
    expected = library.loads(signed, max_age=60, return_timestamp=True)

    def refuse(*_args, **_kwargs):
        raise AssertionError("the library's loads was called for a valid value")

    monkeypatch.setattr(URLSafeTimedSerializer, "loads", refuse)
    assert quick.loads(signed, max_age=60, return_timestamp=True) == expected
    assert quick.loads(signed) == expected[0]
    assert quick.loads(signed.encode(), max_age=0) == expected[0]


@pytest.mark.parametrize("use", USES)
def test_a_value_signed_with_an_older_key_still_reads(use, monkeypatch):
    """R9.3 (key rotation, SECRET_KEY_FALLBACKS): a value signed before the key changed reads while the
    old key is listed; once it is not, it is refused as the library refuses it."""
    old, _, value = pair(use, OLD_SECRET)
    signed = old.dumps(value)
    library, quick, _ = pair(use, [OLD_SECRET, SECRET])
    assert outcome(quick, signed) == outcome(library, signed) == ("ok", value)
    library, quick, _ = pair(use, SECRET)
    assert outcome(quick, signed) == outcome(library, signed)
    assert outcome(quick, signed)[0] is not str  # refused


def _bad_values(library, value) -> dict[str, str]:
    good = library.dumps(value)
    payload, stamp, signature = good.rsplit(".", 2)
    other = URLSafeTimedSerializer("another-secret", salt=library.salt, serializer=library.serializer)
    return {
        "empty": "",
        "no separator": "abcdef",
        "only a signature": "." + signature,
        "payload changed": ("x" + payload[1:]) + f".{stamp}.{signature}",
        "stamp changed": f"{payload}.{base64_encode(int_to_bytes(NOW - 1)).decode()}.{signature}",
        "signature changed": f"{payload}.{stamp}.{signature[:-2]}AA",
        "signature not base64": f"{payload}.{stamp}.!!!",
        "signature cut": f"{payload}.{stamp}.{signature[:10]}",
        "signed with another key": other.dumps(value),
        "timestamp not base64": forged_payload(library, payload.encode() + b".!!"),
        "timestamp too long": forged_payload(library, payload.encode() + b"." + base64_encode(b"\x01" * 9)),
        "timestamp missing": forged_payload(library, b"bm90aGluZw"),
        "payload not JSON": forged_payload(library, base64_encode(b"{not json") + f".{stamp}".encode()),
        "payload not zlib": forged_payload(library, b"." + base64_encode(b"not zlib") + f".{stamp}".encode()),
        "payload not base64": forged_payload(library, f"!!.{stamp}".encode()),
        "expired": signed_at(library, value, NOW - 3601),
        "signed in the future": signed_at(library, value, NOW + 5),
    }


@pytest.mark.parametrize("use", USES)
def test_every_bad_value_is_refused_as_the_library_refuses_it(use):
    """R9.3: forged, altered, truncated, expired, future-dated and malformed values get the library's
    own exception and message (the quick check hands each of them to it)."""
    library, quick, value = pair(use)
    for what, bad in _bad_values(library, value).items():
        for kwargs in ({"max_age": 3600}, {"max_age": 3600, "return_timestamp": True}):
            expected = outcome(library, bad, **kwargs)
            assert outcome(quick, bad, **kwargs) == expected, what
            assert expected[0] != "ok", what


@pytest.mark.parametrize("use", USES)
def test_what_the_library_tolerates_is_tolerated_alike(use):
    """R9.3: itsdangerous drops characters outside base64 when it decodes a signature; whatever it makes
    of such a value, the quick check makes the same."""
    library, quick, value = pair(use)
    for odd in (library.dumps(value) + "é", library.dumps(value) + "\n"):
        assert outcome(quick, odd, max_age=60) == outcome(library, odd, max_age=60)


@pytest.mark.parametrize("use", USES)
def test_age_limits_are_the_librarys(use):
    """R9.3: ``max_age`` bounds included as the library includes them; without ``max_age`` an old value
    reads (the session cookie's own lifetime is checked by Flask with ``max_age``)."""
    library, quick, value = pair(use)
    for age in (0, 59, 60, 61):
        signed = signed_at(library, value, NOW - age)
        assert outcome(quick, signed, max_age=60) == outcome(library, signed, max_age=60), age
        assert outcome(quick, signed) == ("ok", value)
    assert outcome(quick, signed_at(library, value, NOW - 61), max_age=60)[0] is not str


def test_a_salt_named_in_the_call_is_the_librarys_to_check():
    """R9.3: ``loads(..., salt=...)`` is left to the library: a value of another salt is refused."""
    library, quick, value = pair("csrf")
    signed = library.dumps(value)
    assert outcome(quick, signed, salt="another") == outcome(library, signed, salt="another")
    assert outcome(quick, signed, salt="wtf-csrf-token") == ("ok", value)


def test_like_copies_flasks_session_serializer(app):
    """R9.2: the session interface reads with a quick copy of the serializer Flask builds (same keys,
    salt, payload format and signer settings): cookies Flask signs read back, and the reverse."""
    from flask.sessions import SecureCookieSessionInterface

    flask_made = SecureCookieSessionInterface().get_signing_serializer(app)
    ours = app.session_interface.get_signing_serializer(app)
    assert isinstance(ours, QuickTimedSerializer)
    # Flask's tagged values too (the flashed messages are tuples): read by the json module directly.
    value = {
        **USES["session"][2],
        "_flashes": [("error", "もう一度")],
        "b": b"\x00\x01",
        "m": Markup("<b>x</b>"),
    }
    assert ours.loads(flask_made.dumps(value)) == value
    assert flask_made.loads(ours.dumps(value)) == value
