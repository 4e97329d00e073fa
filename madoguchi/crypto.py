"""Field-level encryption and blind indexes (R2.2–R2.5). The only module that imports ``cryptography``.

Stored form of an encrypted value: ``<key id>.<base64url(nonce ‖ AES-256-GCM ciphertext+tag)>``.
The associated data binds it to ``table``, ``column``, the row's id and the key id, so a value copied
to another row or column, or edited, fails to decrypt. Blind indexes are HMAC-SHA256 of a normalised
value under a key derived per (table, index name); they allow equality search without decrypting.

Keys live in a JSON key file outside the database (or the MADOGUCHI_KEYS variable)::

    {"format": 1, "active": "<id>", "data_keys": {"<id>": "<base64 32 bytes>", ...},
     "index_key": "<base64 32 bytes>"}
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

KEY_FILE_FORMAT = 1


class KeyError_(RuntimeError):
    """Keys are missing, malformed or do not open a value. Messages never contain a value."""


class DecryptionError(KeyError_):
    """A stored value did not authenticate: wrong key, wrong row/column, or tampering."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_row_id() -> str:
    """Random row ids: known before INSERT (so they can be bound into the ciphertext) and unguessable."""
    return secrets.token_hex(16)


def new_row_ids(count: int) -> list[str]:
    """``count`` (at most 256) row ids next to each other in key order: one random prefix of 120 bits,
    then a counter. Rows written together then share their key's B-tree pages (R9.2)."""
    prefix = secrets.token_hex(15)
    return [f"{prefix}{n:02x}" for n in range(count)]


@dataclass
class KeyRing:
    active: str
    data_keys: dict[str, bytes] = field(repr=False)  # never printed: a repr lands in logs and tracebacks
    index_key: bytes = field(repr=False)
    _aead: dict[str, AESGCM] = field(default_factory=dict, repr=False)
    _index_keys: dict[str, bytes] = field(default_factory=dict, repr=False)

    # ---- loading and saving -------------------------------------------------------------
    @classmethod
    def from_json(cls, text: str) -> KeyRing:
        try:
            raw = json.loads(text)
            if raw.get("format") != KEY_FILE_FORMAT:
                raise KeyError_("unknown key file format")
            ring = cls(
                active=raw["active"],
                data_keys={k: base64.b64decode(v) for k, v in raw["data_keys"].items()},
                index_key=base64.b64decode(raw["index_key"]),
            )
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            raise KeyError_("the key material is malformed") from exc
        if ring.active not in ring.data_keys:
            raise KeyError_("the active key is not in the key ring")
        if any(len(k) != 32 for k in ring.data_keys.values()) or len(ring.index_key) != 32:
            raise KeyError_("every key must be 32 bytes")
        return ring

    @classmethod
    def from_config(cls, config) -> KeyRing:
        if config.get("MADOGUCHI_KEYS"):
            return cls.from_json(config["MADOGUCHI_KEYS"])
        path = config.get("MADOGUCHI_KEY_FILE")
        if not path or not Path(path).exists():
            raise KeyError_(
                "no field keys: run `madoguchi keys init` or set MADOGUCHI_KEY_FILE / MADOGUCHI_KEYS"
            )
        return cls.from_json(Path(path).read_text())

    @classmethod
    def generate(cls) -> KeyRing:
        key_id = cls._new_key_id()
        return cls(active=key_id, data_keys={key_id: os.urandom(32)}, index_key=os.urandom(32))

    @staticmethod
    def _new_key_id() -> str:
        return datetime.now(UTC).strftime("k%Y%m%d") + secrets.token_hex(3)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": KEY_FILE_FORMAT,
                "active": self.active,
                "data_keys": {k: base64.b64encode(v).decode() for k, v in self.data_keys.items()},
                "index_key": base64.b64encode(self.index_key).decode(),
            },
            indent=2,
        )

    def save(self, path: str | Path) -> None:
        """Write atomically with owner-only permissions."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.to_json())
        os.replace(tmp, path)

    def add_key(self) -> str:
        """Introduce a new data key and make it the one new values are written with (R2.4)."""
        key_id = self._new_key_id()
        while key_id in self.data_keys:
            key_id = self._new_key_id()
        self.data_keys[key_id] = os.urandom(32)
        self.active = key_id
        return key_id

    def retire(self, key_id: str) -> None:
        if key_id == self.active:
            raise KeyError_("the active key cannot be retired")
        if key_id not in self.data_keys:
            raise KeyError_(f"there is no key {key_id} in the key ring")
        self.data_keys.pop(key_id)
        self._aead.pop(key_id, None)

    # ---- encryption ----------------------------------------------------------------------
    @staticmethod
    def _associated_data(table: str, column: str, row_id: str, key_id: str) -> bytes:
        return f"madoguchi|{table}|{column}|{row_id}|{key_id}".encode()

    def _cipher(self, key_id: str) -> AESGCM:
        if key_id not in self._aead:
            try:
                self._aead[key_id] = AESGCM(self.data_keys[key_id])
            except KeyError:
                raise DecryptionError(
                    "the value was written with a key that is not in the key ring"
                ) from None
        return self._aead[key_id]

    def encrypt(self, plaintext: str, *, table: str, column: str, row_id: str) -> str:
        nonce = os.urandom(12)
        ad = self._associated_data(table, column, row_id, self.active)
        sealed = self._cipher(self.active).encrypt(nonce, plaintext.encode("utf-8"), ad)
        return f"{self.active}.{_b64(nonce + sealed)}"

    def decrypt(self, stored: str, *, table: str, column: str, row_id: str) -> str:
        key_id, sep, body = stored.partition(".")
        if not sep:
            raise DecryptionError(f"{table}.{column} holds a value that is not in the encrypted format")
        try:
            blob = _unb64(body)
            ad = self._associated_data(table, column, row_id, key_id)
            return self._cipher(key_id).decrypt(blob[:12], blob[12:], ad).decode("utf-8")
        except (InvalidTag, ValueError) as exc:
            raise DecryptionError(f"{table}.{column} of row {row_id} failed authentication") from exc

    @staticmethod
    def key_id_of(stored: str) -> str:
        return stored.partition(".")[0]

    # ---- blind indexes and MACs ----------------------------------------------------------
    def _derived(self, info: str) -> bytes:
        key = self._index_keys.get(info)
        if key is None:
            key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info.encode()).derive(
                self.index_key
            )
            self._index_keys[info] = key
        return key

    def blind_index(self, *, table: str, index: str, normalized: str) -> str:
        key = self._derived(f"bidx|{table}|{index}")
        return hmac.new(key, normalized.encode("utf-8"), hashlib.sha256).hexdigest()[:32]

    def mac(self, purpose: str, message: str) -> str:
        """HMAC-SHA256 under a key derived for ``purpose`` (audit chain, recovery codes, tokens)."""
        return hmac.new(self._derived(f"mac|{purpose}"), message.encode("utf-8"), hashlib.sha256).hexdigest()


class KeySource:
    """Where the app's key ring comes from. A key file is re-read when it changes, so running
    workers learn a rotated key without a restart (R2.4: rotation while the app runs)."""

    RECHECK_SECONDS = 2.0

    def __init__(self, config):
        self.config = config
        self.ring = KeyRing.from_config(config)
        self._path = None if config.get("MADOGUCHI_KEYS") else Path(config["MADOGUCHI_KEY_FILE"])
        self._mtime = self._path.stat().st_mtime_ns if self._path else None
        self._checked = time.monotonic()

    def current(self) -> KeyRing:
        if self._path is not None and time.monotonic() - self._checked > self.RECHECK_SECONDS:
            self._checked = time.monotonic()
            try:
                mtime = self._path.stat().st_mtime_ns
            except OSError:
                return self.ring  # keep serving with the keys in memory; the operator is told by CLI
            if mtime != self._mtime:
                self.ring, self._mtime = KeyRing.from_config(self.config), mtime
        return self.ring

    def reload(self) -> KeyRing:
        self.ring = KeyRing.from_config(self.config)
        self._mtime = self._path.stat().st_mtime_ns if self._path else None
        return self.ring


def current_keyring() -> KeyRing:
    source = current_app.extensions.get("madoguchi.keys")
    if source is None:
        raise KeyError_("no field keys are loaded: run `madoguchi keys init` or set MADOGUCHI_KEY_FILE")
    return source.current()


# ---- encrypted model attributes ----------------------------------------------------------
class EncryptedField:
    """A model attribute read and written in plain text, stored encrypted in ``<name>_ct``.

    ``codec`` converts between the Python value and text (dates, for instance). Blind indexes named
    in ``indexes`` are recomputed whenever the value (or a value they combine) is set; see
    ``Model.__blind_indexes__``.
    """

    def __init__(self, *, to_text=str, from_text=lambda s: s):
        self.to_text = to_text
        self.from_text = from_text

    def __set_name__(self, owner, name):
        self.name = name
        self.column = f"{name}_ct"

    def _table(self, owner) -> str:
        return owner.__tablename__

    def __get__(self, obj, owner=None) -> Any:
        if obj is None:
            return self
        stored = getattr(obj, self.column)
        if stored is None:
            return None
        cache = obj.__dict__.setdefault("_plain_cache", {})
        if self.name in cache and cache[self.name][0] == stored:
            return cache[self.name][1]
        value = self.plain(type(obj), stored, obj.id)
        cache[self.name] = (stored, value)
        return value

    def plain(self, owner, stored: str | None, row_id: str) -> Any:
        """The value of a stored ciphertext of this field, read without loading the row's object
        (a statement that selects ``<name>_ct`` only)."""
        if stored is None:
            return None
        text = current_keyring().decrypt(stored, table=self._table(owner), column=self.name, row_id=row_id)
        return self.from_text(text)

    def __set__(self, obj, value) -> None:
        if obj.id is None:
            if not getattr(type(obj), "__assign_row_id__", True):
                raise ValueError(f"{type(obj).__name__} must be flushed before its encrypted fields are set")
            obj.id = new_row_id()
        if value is None or value == "":
            setattr(obj, self.column, None)
        else:
            stored = current_keyring().encrypt(
                self.to_text(value), table=self._table(type(obj)), column=self.name, row_id=obj.id
            )
            setattr(obj, self.column, stored)
        obj.__dict__.setdefault("_plain_cache", {}).pop(self.name, None)
        refresh = getattr(obj, "refresh_blind_indexes", None)
        if refresh is not None:
            refresh()


def blind_index(table: str, index: str, normalized: str | None) -> str | None:
    if normalized is None or normalized == "":
        return None
    return current_keyring().blind_index(table=table, index=index, normalized=normalized)


# ---- per-file encryption (call recordings, FAX images) -------------------------------------------
# Each file gets its own random key; the key is stored in the database as an encrypted field (so
# it is wrapped by the field keys). Destroying that one key makes the file unreadable for good —
# the crypto-shredding that deletion and retention rely on — even if a copy of the file survives.
FILE_MAGIC = b"MDGF1"


def new_file_key() -> str:
    return _b64(os.urandom(32))


def encrypt_file_bytes(plaintext: bytes, *, file_key: str, purpose: str) -> bytes:
    """AES-256-GCM with a fresh nonce; ``purpose`` (e.g. "call_recordings:<id>") is bound as AD, so
    a file cannot be passed off as another."""
    nonce = os.urandom(12)
    sealed = AESGCM(_unb64(file_key)).encrypt(nonce, plaintext, purpose.encode())
    return FILE_MAGIC + nonce + sealed


def decrypt_file_bytes(data: bytes, *, file_key: str, purpose: str) -> bytes:
    if not data.startswith(FILE_MAGIC) or len(data) < len(FILE_MAGIC) + 12 + 16:
        raise DecryptionError("not an encrypted Madoguchi file")
    nonce = data[len(FILE_MAGIC) : len(FILE_MAGIC) + 12]
    try:
        return AESGCM(_unb64(file_key)).decrypt(nonce, data[len(FILE_MAGIC) + 12 :], purpose.encode())
    except InvalidTag:
        raise DecryptionError("the file was altered or the key is wrong") from None


# ---- sealed streams: export files and backups (R7.5, R8.2, R8.4) -----------------------------------
# A sealed file is a clear header (written by madoguchi.sealed) followed by AES-256-GCM chunks, the
# "STREAM" construction: chunk i uses nonce = 8-byte random prefix ‖ i, and its associated data is
# SHA-256(header) ‖ i ‖ last-flag. So the header cannot be edited, and chunks cannot be reordered,
# dropped or cut off at the end without the reader noticing. Chunking keeps memory flat for a
# database of any size (AES-GCM in one piece would need the whole file in memory).
STREAM_NONCE_PREFIX = 8
SCRYPT_MAX_N = 2**20  # an opener refuses costs above this (a crafted header must not eat the machine)
# No 0/O or 1/I: a passphrase is read aloud and typed by hand.
PASSPHRASE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # noqa: S105 - an alphabet, not a password


class WrongKeyError(DecryptionError):
    """The passphrase or key does not open this file (its key check does not match)."""


def new_passphrase(groups: int = 6, size: int = 5) -> str:
    """A random passphrase of 6×5 characters from 32 symbols (150 bits), in groups for reading out."""
    return "-".join("".join(secrets.choice(PASSPHRASE_ALPHABET) for _ in range(size)) for _ in range(groups))


def new_salt() -> str:
    return _b64(os.urandom(16))


def new_stream_prefix() -> str:
    return _b64(os.urandom(STREAM_NONCE_PREFIX))


def passphrase_key(passphrase: str, *, salt: str, n: int, r: int, p: int) -> bytes:
    """scrypt (RFC 7914) → 32 bytes. ``n``, ``r``, ``p`` come from the file's header."""
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    if not (1 < n <= SCRYPT_MAX_N and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
        raise DecryptionError("the file asks for key-derivation costs this program does not accept")
    normalized = passphrase.strip().upper()  # passphrases are typed by hand: case and edges do not count
    return Scrypt(salt=_unb64(salt), length=32, n=n, r=r, p=p).derive(normalized.encode("utf-8"))


def backup_key(ring: KeyRing) -> bytes:
    """The backup key, derived from the key file's index key (which never rotates): destroying the
    key file destroys it too, so every backup becomes unreadable with the data (R2.4, R8.2)."""
    return ring._derived("backup|v1")


def key_check(key: bytes) -> str:
    """A short MAC of a constant: tells "wrong passphrase/key" apart from "the file was altered"."""
    return hmac.new(key, b"madoguchi|key-check", hashlib.sha256).hexdigest()[:32]


def _chunk_nonce_ad(prefix: str, index: int, last: bool, header_digest: bytes) -> tuple[bytes, bytes]:
    if index >= 2**32:
        raise DecryptionError("too many chunks")
    counter = index.to_bytes(4, "big")
    return _unb64(prefix) + counter, header_digest + counter + (b"\x01" if last else b"\x00")


def seal_chunk(key: bytes, prefix: str, index: int, plaintext: bytes, *, last: bool, header: bytes) -> bytes:
    nonce, ad = _chunk_nonce_ad(prefix, index, last, hashlib.sha256(header).digest())
    return AESGCM(key).encrypt(nonce, plaintext, ad)


def open_chunk(key: bytes, prefix: str, index: int, sealed: bytes, *, last: bool, header: bytes) -> bytes:
    nonce, ad = _chunk_nonce_ad(prefix, index, last, hashlib.sha256(header).digest())
    try:
        return AESGCM(key).decrypt(nonce, sealed, ad)
    except InvalidTag:
        raise DecryptionError("the file was altered, cut short or reordered") from None
