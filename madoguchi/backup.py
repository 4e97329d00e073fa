"""Encrypted, verifiable backups and their restore (R8.4; 004 別紙⑥2(2)④).

A backup is a logical dump of every table (database-agnostic: taken on SQLite it restores on SQLite,
and on PostgreSQL too, as long as the target is at the same migration). Field ciphertexts stay
ciphertexts; the whole dump is then sealed (``madoguchi.sealed``: AES-256-GCM in authenticated
chunks) with the backup key derived from the key file (``crypto.backup_key``). So a backup is as
unreadable as the database without the key file, and destroying the keys at the end of the contract
makes every backup unreadable too (R8.2).

Payload: gzip of JSON lines — ``{"table": name, "columns": [...]}`` then one JSON array per row.
The header (clear) names the format, the time, the dialect, the Alembic revision and the row count
of each table; nothing personal.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import Date, DateTime, Integer, Time, delete, func, inspect, select, text, update

from . import audit, crypto, dates, deletion, sealed, wipe
from .audit import AuditTag
from .crypto import DecryptionError, current_keyring
from .extensions import WRITE, db
from .models import stored_columns

MAGIC = "MADOGUCHI-BACKUP 1"
FORMAT_VERSION = 1
BATCH = 500
SEEDED_BY_MIGRATIONS = frozenset({"audit_chain_head"})  # replaced by the backup's row on restore


class BackupError(DecryptionError):
    """A backup cannot be verified or restored; the message says why (never a value)."""


@dataclass(frozen=True)
class BackupInfo:
    path: Path
    sha256: str
    tables: dict[str, int]
    created_at: str


def _revision(conn) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _encode(value):
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return value


def _decoder(column):
    kind = getattr(column.type, "impl", column.type)
    kind = kind if not isinstance(kind, type) else kind()
    if isinstance(kind, DateTime):
        return datetime.fromisoformat
    if isinstance(kind, Date):
        return date.fromisoformat
    if isinstance(kind, Time):
        return time.fromisoformat
    return None


def _lines(conn, counts: dict[str, int]) -> Iterator[bytes]:
    for table in db.metadata.sorted_tables:
        kept = stored_columns(table)
        columns = [c.name for c in kept]
        yield json.dumps({"table": table.name, "columns": columns}).encode() + b"\n"
        n = 0
        query = select(*kept).order_by(*table.primary_key.columns)
        for row in conn.execute(query.execution_options(yield_per=BATCH)):
            yield json.dumps([_encode(v) for v in row], ensure_ascii=False).encode() + b"\n"
            n += 1
        counts[table.name] = n


def _gzip(pieces: Iterator[bytes]) -> Iterator[bytes]:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    for piece in pieces:
        out = compressor.compress(piece)
        if out:
            yield out
    yield compressor.flush()


def make(path: str | Path) -> BackupInfo:
    """Write a backup of the whole database to ``path`` (atomically: a temporary name, then rename).
    Rows are read in one snapshot, so the backup is consistent while the app runs."""
    path = Path(path)
    key = crypto.backup_key(current_keyring())
    engine = db.engine
    created = dates.now().isoformat()
    counts: dict[str, int] = {}
    tmp = path.with_name(path.name + ".part")
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"isolation_level": "REPEATABLE READ"} if engine.dialect.name == "postgresql" else {}
    try:
        with engine.connect().execution_options(**options) as conn, conn.begin():
            # Counted in the same snapshot as the dump, so the header's counts are the payload's.
            expected = {
                t.name: conn.execute(select(func.count()).select_from(t)).scalar() or 0
                for t in db.metadata.sorted_tables
            }
            header = {
                "format": "madoguchi-backup",
                "version": FORMAT_VERSION,
                "created_at": created,
                "dialect": engine.dialect.name,
                "alembic_revision": _revision(conn),
                "tables": expected,
                "payload": "jsonl.gz",
            }
            with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
                sha256 = sealed.write(
                    out, magic=MAGIC, header=header, key=key, pieces=_gzip(_lines(conn, counts))
                )
        if counts != expected:
            raise BackupError("the database changed under the dump; nothing was written")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return BackupInfo(path, sha256, counts, created)


def _records(path: Path) -> tuple[dict, Iterator[tuple[str, list[str] | None, list | None]]]:
    """Open and decrypt the backup, yielding ("table", columns, None) and (table, None, row)."""
    fh = open(path, "rb")  # noqa: SIM115 - closed by the generator below
    try:
        header, head = sealed.read_header(fh, MAGIC)
        sealed.check_key(
            header,
            crypto.backup_key(current_keyring()),
            "this backup was made with other keys (or the key file is wrong)",
        )
    except BaseException:
        fh.close()
        raise

    def generate():
        try:
            decompressor = zlib.decompressobj(31)
            pending = b""
            table = None
            for chunk in sealed.body(fh, header=header, head=head, key=crypto.backup_key(current_keyring())):
                pending += decompressor.decompress(chunk)
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    item = json.loads(line)
                    if isinstance(item, dict):
                        table = item["table"]
                        yield table, item["columns"], None
                    else:
                        yield table, None, item
            pending += decompressor.flush()
            if pending.strip() or not decompressor.eof:
                raise BackupError("the backup's contents are incomplete")
        except (ValueError, zlib.error) as exc:
            raise BackupError("the backup's contents are damaged") from exc
        finally:
            fh.close()

    return header, generate()


def verify(path: str | Path) -> dict[str, int]:
    """Decrypt and parse the whole backup; return the row count per table. Raises BackupError or
    DecryptionError (wrong keys, altered or truncated file)."""
    header, records = _records(Path(path))
    counts: dict[str, int] = {}
    for table, columns, _row in records:
        if columns is not None:
            counts[table] = 0
        else:
            counts[table] += 1
    if header.get("version") != FORMAT_VERSION:
        raise BackupError("unknown backup version")
    if counts != header.get("tables"):
        raise BackupError("the backup's row counts do not match its header")
    return counts


def restore(path: str | Path, *, replace: bool = False) -> dict[str, int]:
    """Restore into this database, in one transaction. The file is verified completely first; the
    target must be at the backup's migration and empty (or ``replace``: its rows are deleted first).
    A failure at any point leaves the database as it was."""
    path = Path(path)
    verify(path)
    header, records = _records(path)
    engine = db.engine
    db.session.remove()
    with engine.connect().execution_options(**WRITE) as conn, conn.begin():
        current = _revision(conn)
        if header.get("alembic_revision") and current != header["alembic_revision"]:
            raise BackupError(
                f"the database is at migration {current}, the backup at {header['alembic_revision']}: "
                "run `madoguchi db upgrade` to the same revision first"
            )
        filled = [
            t.name
            for t in db.metadata.sorted_tables
            if t.name not in SEEDED_BY_MIGRATIONS
            and conn.execute(select(func.count()).select_from(t)).scalar()
        ]
        if filled and not replace:
            raise BackupError(f"the database is not empty ({len(filled)} tables hold rows); use --replace")
        if engine.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL madoguchi.audit_purge = 'on'"))
        for table in reversed(db.metadata.sorted_tables):
            conn.execute(delete(table))
        counts = _insert_all(conn, records)
        if engine.dialect.name == "postgresql":
            _reset_sequences(conn)
    return counts


def _insert_all(conn, records) -> dict[str, int]:
    tables = {t.name: t for t in db.metadata.sorted_tables}
    counts: dict[str, int] = {}
    table = columns = decoders = None
    batch: list[dict] = []
    late: list[tuple] = []  # self-references, set once every row of the table exists

    def flush():
        if batch:
            conn.execute(table.insert(), batch)
            batch.clear()

    def finish_table():
        flush()
        for statement in late:
            conn.execute(statement)
        late.clear()

    for name, names, row in records:
        if names is not None:
            if table is not None:
                finish_table()
            if name not in tables:
                raise BackupError(f"the backup has a table this version does not know: {name}")
            table, columns = tables[name], names
            unknown = set(columns) - set(table.c.keys())
            if unknown:
                raise BackupError(f"the backup has columns this version does not know in {name}")
            decoders = [_decoder(table.c[c]) for c in columns]
            self_refs = [fk.parent.name for fk in table.foreign_keys if fk.column.table is table]
            counts[name] = 0
            continue
        values = {
            c: (d(v) if d and v is not None else v) for c, d, v in zip(columns, decoders, row, strict=True)
        }
        for column in self_refs:
            if values.get(column) is not None:
                pk = {k.name: values[k.name] for k in table.primary_key.columns}
                late.append(update(table).filter_by(**pk).values({column: values[column]}))
                values[column] = None
        batch.append(values)
        counts[name] += 1
        if len(batch) >= BATCH:
            flush()
    if table is not None:
        finish_table()
    return counts


def _reset_sequences(conn) -> None:
    """Rows came with their ids: move each serial's sequence past the largest one."""
    for table in db.metadata.sorted_tables:
        for column in table.primary_key.columns:
            if isinstance(column.type, Integer) and column.autoincrement in (True, "auto"):
                # Names come from our own metadata, never from input or from the file.
                largest = conn.execute(select(func.max(column))).scalar() or 0
                conn.execute(
                    text("SELECT setval(pg_get_serial_sequence(:t, :c), :v, false)"),
                    {"t": table.name, "c": column.name, "v": largest + 1},
                )


def record_made(info: BackupInfo) -> None:
    audit.record(AuditTag.BACKUP_MADE, login_id="backup", sha256=info.sha256, rows=sum(info.tables.values()))


def record_restored(counts: dict[str, int], sha256: str) -> None:
    audit.record(AuditTag.BACKUP_RESTORED, login_id="restore", sha256=sha256, rows=sum(counts.values()))


def prune(
    folder: str | Path, *, keep_days: int, now: datetime | None = None, witness: str | None = None
) -> int:
    """Shred backups in ``folder`` older than ``keep_days`` (by file time) and record the deletion:
    purged records disappear from backups once the backups that still held them are gone (R8.1)."""
    folder = Path(folder)
    now = now or dates.now()
    limit = (now - timedelta(days=keep_days)).timestamp()
    old = [p for p in sorted(folder.glob("*")) if p.is_file() and is_backup(p) and p.stat().st_mtime < limit]
    for item in old:
        wipe.shred_file(item)
    if old:
        deletion.record(
            kind="backups",
            medium="バックアップファイル（暗号化済み）",
            count=len(old),
            method="乱数で上書きした後にファイルを削除",
            witness_name=witness,
            details={
                "items": f"保存期間（{keep_days}日）を過ぎたバックアップ（全テーブル、暗号化済み）",
                "files": [p.name for p in old],
            },
            now=now,
        )
    return len(old)


def is_backup(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.readline(len(MAGIC) + 2).rstrip(b"\n") == MAGIC.encode()
    except OSError:
        return False
