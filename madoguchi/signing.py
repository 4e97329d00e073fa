"""Signed values read quickly: the session cookie, the CSRF token and the waiting-room ticket (R9.2).

Every resident's booking request reads three values signed with itsdangerous. For each, the library
builds a signer, derives its key again (an HMAC or a hash over the secret), runs the HMAC through
Python's ``hmac`` wrapper and decodes the timestamp in several steps: measured, 12–20 µs per value,
the CSRF check being a tenth of the confirmation's instructions (``benchmarks/instructions.py``).

``QuickTimedSerializer`` keeps the library's format and its every rule. Its ``loads`` first checks a
value the quick way — keys derived once, the HMAC in one OpenSSL call, the timestamp and payload
read directly — and returns only a value that passes each check the library would make. Anything
else (a bad or missing signature, an expired or future timestamp, a payload that does not load, a
salt named in the call, a signer the quick check does not know) is handed to the library's own
``loads``, which decides and raises its usual exception. Signing is the library's, untouched.
"""

from __future__ import annotations

import binascii
import hmac
from base64 import urlsafe_b64decode
from typing import Any

from itsdangerous import URLSafeTimedSerializer
from itsdangerous.exc import BadData
from itsdangerous.signer import HMACAlgorithm


class QuickTimedSerializer(URLSafeTimedSerializer):
    """``URLSafeTimedSerializer`` whose ``loads`` answers a valid value without the library's
    per-call overhead, and leaves every other value to the library (see the module's docstring)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # One signer for the timestamp rule (a subclass may stamp with its own clock) and the keys.
        self._signer = signer = self.make_signer()
        algorithm = signer.algorithm
        self._keys: list[bytes] | None = None
        if type(algorithm) is HMACAlgorithm:
            # Newest key first, as the library tries them; derived by the library itself.
            self._keys = [signer.derive_key(key) for key in reversed(signer.secret_keys)]
            self._digest = algorithm.digest_method().name
            self._sep = signer.sep

    @classmethod
    def like(cls, serializer: URLSafeTimedSerializer) -> QuickTimedSerializer:
        """The same serializer (keys, salt, payload format, signer and its settings), read quickly."""
        return cls(
            serializer.secret_keys,
            salt=serializer.salt,
            serializer=serializer.serializer,
            serializer_kwargs=serializer.serializer_kwargs,
            signer=serializer.signer,
            signer_kwargs=serializer.signer_kwargs,
            fallback_signers=serializer.fallback_signers,
        )

    def loads(self, s, max_age=None, return_timestamp=False, salt=None) -> Any:
        found = self._quick(s, max_age) if salt is None and self._keys is not None else None
        if found is None:
            return super().loads(s, max_age=max_age, return_timestamp=return_timestamp, salt=salt)
        return found if return_timestamp else found[0]

    def _quick(self, s, max_age) -> tuple[Any, Any] | None:
        """(payload, signed at) for a value the library would accept, else None."""
        if isinstance(s, str):
            s = s.encode()
        value, sep, signature = s.rpartition(self._sep)
        if not sep:
            return None
        mac = _decoded(signature)
        if mac is None:
            return None
        for key in self._keys:
            if hmac.compare_digest(hmac.digest(key, value, self._digest), mac):
                break
        else:
            return None
        payload, sep, stamp = value.rpartition(self._sep)
        stamp = _decoded(stamp)
        if not sep or stamp is None or len(stamp) > 8:  # as the library's 64-bit timestamps
            return None
        signed = int.from_bytes(stamp, "big")
        if max_age is not None and not 0 <= self._signer.get_timestamp() - signed <= max_age:
            return None
        try:
            loaded = self.load_payload(payload)
            signed_at = self._signer.timestamp_to_datetime(signed)
        except (BadData, ValueError, OSError, OverflowError):
            return None
        return loaded, signed_at


def _decoded(value: bytes) -> bytes | None:
    """URL-safe base64 without padding, decoded as itsdangerous decodes it; None where it would fail."""
    try:
        return urlsafe_b64decode(value + b"=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None
