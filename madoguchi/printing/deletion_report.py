"""消去・廃棄報告書 (R8.1, R8.2; 002 第11 2, 003 第23条, 004 別紙⑦第12条): one row per deletion with
削除した情報の項目, 媒体, 数量, 方法, 日時, 責任者, 立会者, then signature lines. A4 landscape.

Pure: the rows come from ``retention.report_rows`` (or, at the end of the contract, from memory —
the database is gone by then). No row holds a personal value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from .. import dates
from .register import Column, build

TITLE = "個人情報の消去・廃棄報告書"
COLUMNS = (
    Column("No.", 10, "right"),
    Column("日時", 30, "center"),
    Column("削除した情報の項目", 65),
    Column("媒体", 35),
    Column("数量", 16, "right"),
    Column("方法", 62),
    Column("責任者", 30),
    Column("立会者", 25),
)


@dataclass(frozen=True)
class DeletionRow:
    executed_at: datetime  # aware
    kind: str
    items: str
    medium: str
    count: int
    method: str
    responsible: str
    witness: str
    outcome: str = "done"  # done | partial


def _when(value: datetime) -> str:
    local = dates.tokyo(value)
    return f"{dates.wareki(local.date())}\n{local:%H:%M:%S}"


def deletion_report(
    rows: Sequence[DeletionRow],
    *,
    period: str,
    printed_at: datetime,
    city_name: str,
    notes: Sequence[str] = (),
) -> bytes:
    """The report as PDF bytes. ``period`` is printed as given (e.g. "令和8年4月1日〜令和8年4月30日")."""
    body = [
        [
            str(number),
            _when(row.executed_at),
            row.items + ("\n（一部未完了: 次回に再実行）" if row.outcome == "partial" else ""),
            row.medium,
            f"{row.count:,}",
            row.method,
            row.responsible,
            row.witness or "—",
        ]
        for number, row in enumerate(rows, start=1)
    ]
    printed = dates.tokyo(printed_at)
    return build(
        title=TITLE,
        meta_lines=[
            f"委託者: {city_name}",
            f"対象期間: {period}",
            f"作成日時: {dates.wareki(printed.date())} {printed:%H:%M}",
            "システム: Madoguchi（マイナンバーカード交付予約）",
        ],
        columns=COLUMNS,
        rows=body,
        closing=[
            f"合計 {len(body)} 件の消去・廃棄を記録しました。",
            *notes,
            "上記のとおり、個人情報を復元できない方法で消去・廃棄したことを報告します。",
        ],
        signatures=("責任者 署名", "立会者 署名"),
        author=city_name,
    )
