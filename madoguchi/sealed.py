"""The sealed-file container shared by export files (R7.5, R8.2) and backups (R8.4).

Layout (documented in docs/compliance.md so a city can open a file without this program)::

    <magic line>\\n                 e.g. "MADOGUCHI-EXPORT 1" or "MADOGUCHI-BACKUP 1"
    <header: one line of JSON>\\n   clear text, no personal value; authenticated with every chunk
    repeated: <4-byte big-endian length L><L bytes: AES-256-GCM ciphertext + 16-byte tag>

The header names the cipher (``stream``: nonce prefix, chunk size) and a ``key_check``; chunk i is
opened with nonce = prefix ‖ i (4 bytes) and associated data = SHA-256(magic line + header line) ‖ i ‖
last flag (1 byte, 1 on the final chunk). See ``crypto.seal_chunk``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from . import crypto
from .crypto import DecryptionError, WrongKeyError

CHUNK = 1 << 20
MAX_HEADER = 64 * 1024
MAX_SEALED_CHUNK = CHUNK + 16 + 1024  # a length beyond this is damage, not data


class NotASealedFile(DecryptionError):
    """The file is not of the expected kind (wrong magic line or unreadable header)."""


def rechunk(pieces: Iterable[bytes], size: int = CHUNK) -> Iterator[bytes]:
    """Regroup arbitrary byte pieces into chunks of exactly ``size`` (the last may be shorter)."""
    buffer = bytearray()
    for piece in pieces:
        buffer += piece
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    yield bytes(buffer)


def write(out: BinaryIO, *, magic: str, header: dict, key: bytes, pieces: Iterable[bytes]) -> str:
    """Write header and sealed body to ``out``; return the SHA-256 of everything written."""
    header = {**header, "key_check": crypto.key_check(key)}
    header.setdefault(
        "stream", {"cipher": "AES-256-GCM", "chunk": CHUNK, "nonce_prefix": crypto.new_stream_prefix()}
    )
    head = (
        magic.encode("ascii")
        + b"\n"
        + json.dumps(header, ensure_ascii=False, sort_keys=True).encode()
        + b"\n"
    )
    digest = hashlib.sha256(head)
    out.write(head)
    prefix = header["stream"]["nonce_prefix"]
    chunks = iter(rechunk(pieces))
    current = next(chunks)
    index = 0
    while True:
        following = next(chunks, None)
        sealed = crypto.seal_chunk(key, prefix, index, current, last=following is None, header=head)
        record = len(sealed).to_bytes(4, "big") + sealed
        digest.update(record)
        out.write(record)
        if following is None:
            return digest.hexdigest()
        current, index = following, index + 1


def read_header(source: BinaryIO, magic: str) -> tuple[dict, bytes]:
    """The clear header and the exact bytes it was authenticated as."""
    first = source.readline(len(magic) + 2)
    if first.rstrip(b"\n") != magic.encode("ascii"):
        raise NotASealedFile(f"not a {magic.split()[0]} file (or a version this program does not read)")
    line = source.readline(MAX_HEADER)
    if not line.endswith(b"\n"):
        raise NotASealedFile("the file's header is damaged")
    try:
        header = json.loads(line)
        stream = header["stream"]
        if stream["cipher"] != "AES-256-GCM" or not isinstance(header["key_check"], str):
            raise NotASealedFile("the file uses a cipher this program does not read")
    except (ValueError, KeyError, TypeError):
        raise NotASealedFile("the file's header is damaged") from None
    return header, first + line


def check_key(header: dict, key: bytes, what: str) -> None:
    if crypto.key_check(key) != header["key_check"]:
        raise WrongKeyError(what)


def body(source: BinaryIO, *, header: dict, head: bytes, key: bytes) -> Iterator[bytes]:
    """Yield the plaintext chunk by chunk; raise DecryptionError on any alteration, including a file
    cut short after a chunk boundary (the final chunk carries the "last" flag)."""
    prefix = header["stream"]["nonce_prefix"]
    index = 0
    record = _record(source)
    if record is None:
        raise DecryptionError("the file was cut short")
    while record is not None:
        following = _record(source)
        yield crypto.open_chunk(key, prefix, index, record, last=following is None, header=head)
        record, index = following, index + 1


def _record(source: BinaryIO) -> bytes | None:
    size = source.read(4)
    if not size:
        return None
    length = int.from_bytes(size, "big")
    if len(size) != 4 or length > MAX_SEALED_CHUNK:
        raise DecryptionError("the file was altered or cut short")
    data = source.read(length)
    if len(data) != length:
        raise DecryptionError("the file was cut short")
    return data


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()
