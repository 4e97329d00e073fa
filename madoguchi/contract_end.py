"""End of contract (R8.2; 000 第9条, 003 第22条・第23条, 002 第11): return everything, then destroy
everything — data, files and keys — and leave the certificate of deletion outside the database.

The order is what makes it safe:
1. the return export (every table, decrypted into CSV, sealed with a passphrase shown once) is
   written AND opened again to check it, before anything is destroyed;
2. the database is destroyed: SQLite's file (and its -wal/-shm) overwritten and removed;
   PostgreSQL's tables truncated and vacuumed (VACUUM FULL);
3. folders that held personal data (e-mail and SMS outboxes, export spool, local recordings, any
   extra folder named) are overwritten and removed;
4. the key file is overwritten and removed: every copy of the data encrypted under it — backups,
   remnants on disk — becomes unreadable (crypto-shredding);
5. the final deletion report is written as JSON and PDF next to the return file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from flask import current_app
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from . import audit, backup, dates, exports, retention, sealed, wipe
from .audit import AuditTag
from .crypto import new_passphrase
from .extensions import db
from .models import Staff
from .printing.deletion_report import DeletionRow, deletion_report

# Settings naming folders that may hold personal data outside the database.
FOLDER_SETTINGS = (
    "MAIL_OUTBOX_DIR",
    "SMS_OUTBOX_DIR",
    "EXPORT_SPOOL_DIR",
    "RECORDINGS_LOCAL_DIR",
    "FAX_IMAGE_DIR",
)


class ContractEndRefused(RuntimeError):
    """Nothing was destroyed; the message says why."""


@dataclass
class Outcome:
    export_path: Path
    passphrase: str
    export_sha256: str
    report_json: Path
    report_pdf: Path
    rows: list[DeletionRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _row(kind, items, medium, count, method, responsible, witness, outcome="done") -> DeletionRow:
    return DeletionRow(dates.now(), kind, items, medium, count, method, responsible, witness or "", outcome)


def run(
    return_dir: str | Path,
    *,
    responsible: Staff | None,
    witness: str | None,
    extra_folders: tuple[str, ...] = (),
    backup_dir: str | Path | None = None,
) -> Outcome:
    return_dir = Path(return_dir)
    config = current_app.config
    responsible_name = (
        responsible.name if responsible is not None else "契約終了処理（madoguchi contract-end）"
    )
    stamp = dates.tokyo(dates.now()).strftime("%Y%m%d-%H%M%S")
    export_path = return_dir / f"madoguchi-return-{stamp}{exports.FILE_SUFFIX}"
    return_dir.mkdir(parents=True, exist_ok=True)
    if export_path.exists():
        raise ContractEndRefused(f"{export_path} exists")
    key_file = Path(config["MADOGUCHI_KEY_FILE"]) if config.get("MADOGUCHI_KEY_FILE") else None
    folders = [Path(config[s]) for s in FOLDER_SETTINGS if config.get(s)] + [Path(f) for f in extra_folders]
    for folder in folders:
        if return_dir.resolve().is_relative_to(folder.resolve()):
            raise ContractEndRefused(f"the return folder lies inside {folder}, which is destroyed")

    # 0. The last audit entry, so the returned log says who ended the contract and when.
    audit.record(AuditTag.CONTRACT_ENDED, staff=responsible, login_id="contract-end", witness=bool(witness))
    db.session.commit()

    # 1. The return export, checked by opening it again before anything is destroyed.
    passphrase = new_passphrase()
    tables = {f"{name}.csv": (columns, rows) for name, columns, rows in exports.all_tables()}
    export_sha256 = exports.write_file(
        export_path,
        passphrase=passphrase,
        dataset=exports.Dataset.ALL,
        request_id="contract-end",
        tables=tables,
        manifest={"dataset": exports.Dataset.ALL, "city": config["CITY_NAME"]},
        now=dates.now(),
    )
    header = exports.read_header(export_path)
    check_dir = return_dir / f".check-{stamp}"
    try:
        exports.open_file(export_path, passphrase, check_dir)
    finally:
        if check_dir.exists():
            wipe.shred_tree(check_dir)
    if sealed.file_sha256(export_path) != export_sha256:
        raise ContractEndRefused("the return file changed after it was written")

    rows = list(retention.report_rows())  # the contract's earlier deletions, for the final report
    rows.append(
        _row(
            "return_export",
            "返還用の全データ（暗号化ファイル）: "
            + ", ".join(f"{k[:-4]} {v}件" for k, v in header["tables"].items()),
            f"返還用ファイル {export_path.name}（SHA-256 {export_sha256}）",
            sum(header["tables"].values()),
            "scrypt で導出した鍵による AES-256-GCM 暗号化。パスフレーズは作成時に一度だけ表示",
            responsible_name,
            witness,
        )
    )

    # 2. The database.
    counts = {
        t.name: db.session.execute(select(func.count()).select_from(t)).scalar() or 0
        for t in db.metadata.sorted_tables
    }
    db.session.commit()
    rows.append(_destroy_database(counts, responsible_name, witness))

    # 3. Folders with personal data outside the database.
    warnings: list[str] = []
    for folder in folders:
        files = wipe.shred_tree(folder) if folder.exists() else 0
        if files:
            rows.append(
                _row(
                    "files",
                    f"ファイル（{folder.name}）: 送信メール・SMS、持ち出しファイル、録音・FAX画像等",
                    f"サーバーのディスク {folder}",
                    files,
                    "乱数で上書きした後にファイルを削除",
                    responsible_name,
                    witness,
                )
            )

    # 4. The keys.
    backups = _backups(backup_dir)
    if key_file is not None and key_file.exists():
        wipe.shred_file(key_file)
        wipe.shred_file(key_file.with_suffix(".tmp"))
        rows.append(
            _row(
                "keys",
                "暗号鍵（項目暗号化鍵・検索用索引鍵・バックアップ鍵）",
                f"鍵ファイル {key_file.name}",
                1,
                "乱数で上書きした後にファイルを削除（暗号化消去: データベースの残存領域と全バックアップが復号不能になる）",
                responsible_name,
                witness,
            )
        )
    if config.get("MADOGUCHI_KEYS"):
        warnings.append(
            "鍵が環境変数 MADOGUCHI_KEYS で与えられています: 秘密情報の保管場所から削除し、その記録を添付してください。"
        )
    if backups:
        rows.append(
            _row(
                "backups",
                "バックアップ（全テーブル、暗号化済み）",
                f"バックアップ保存先 {Path(backup_dir)}",
                backups,
                "鍵の破棄により復号不能（暗号化消去）。媒体は委託者の指示により物理破壊または消去",
                responsible_name,
                witness,
            )
        )

    # 5. The certificate, outside the database.
    report_json = return_dir / f"deletion-report-{stamp}.json"
    report_pdf = return_dir / f"deletion-report-{stamp}.pdf"
    report = {
        "format": "madoguchi-deletion-report",
        "version": 1,
        "city": config["CITY_NAME"],
        "completed_at": dates.now().isoformat(),
        "responsible": responsible_name,
        "witness": witness or "",
        "return_file": {"name": export_path.name, "sha256": export_sha256, "tables": header["tables"]},
        "warnings": warnings,
        "records": [{**asdict(r), "executed_at": r.executed_at.isoformat()} for r in rows],
    }
    report_json.write_text(json.dumps(report, ensure_ascii=False, indent=2))
    report_pdf.write_bytes(
        deletion_report(
            rows,
            period="契約期間の全期間（契約終了時の最終報告）",
            printed_at=dates.now(),
            city_name=config["CITY_NAME"],
            notes=warnings,
        )
    )
    return Outcome(export_path, passphrase, export_sha256, report_json, report_pdf, rows, warnings)


def _destroy_database(counts: dict[str, int], responsible: str, witness: str | None) -> DeletionRow:
    engine = db.engine
    total = sum(counts.values())
    items = "全テーブルの全行（交付対象者・予約・通話記録・送信メッセージ・アクセス記録・職員名簿ほか）"
    db.session.remove()
    if engine.dialect.name == "sqlite":
        database = make_url(str(engine.url)).database
        engine.dispose()
        for suffix in ("", "-wal", "-shm", "-journal"):
            wipe.shred_file(f"{database}{suffix}")
        return _row(
            "database",
            items,
            f"データベースファイル（SQLite）{Path(database).name}",
            total,
            "データベースファイル（-wal/-shm を含む）を乱数で上書きした後に削除",
            responsible,
            witness,
        )
    names = ", ".join(t.name for t in db.metadata.sorted_tables)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        conn.execute(text("VACUUM FULL"))
    engine.dispose()
    return _row(
        "database",
        items,
        "データベース（PostgreSQL）",
        total,
        "全テーブルを TRUNCATE し VACUUM FULL で領域を解放。WAL・ベースバックアップは鍵の破棄により復号不能",
        responsible,
        witness,
    )


def _backups(folder) -> int:
    if not folder or not Path(folder).is_dir():
        return 0
    return sum(1 for p in Path(folder).iterdir() if p.is_file() and backup.is_backup(p))
