"""持ち出し管理簿 (R7.5; 003 第20条⑶⑷): what left, how many records, who asked, who approved, why,
where to, when, and when it came back or was destroyed. A4 landscape, for the city.

Pure: rows are prepared by the caller (``exports``); purpose and destination are the staff's words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from .. import dates
from .register import Column, build

TITLE = "個人情報の持ち出し管理簿"
COLUMNS = (
    Column("No.", 9, "right"),
    Column("申請日時・申請者", 30),
    Column("持ち出す情報", 50),
    Column("件数", 14, "right"),
    Column("目的", 38),
    Column("持ち出し先", 32),
    Column("承認者・日時", 30),
    Column("作成日時・SHA-256", 34),
    Column("返却・廃棄", 36),
)


@dataclass(frozen=True)
class LedgerLine:
    requested: str  # "令和8年4月1日 10:00\n職員名"
    what: str
    count: str
    purpose: str
    destination: str
    decision: str
    produced: str
    closure: str


def when(value: datetime | None) -> str:
    if value is None:
        return ""
    local = dates.tokyo(value)
    return f"{dates.wareki(local.date())} {local:%H:%M}"


def export_ledger(lines: Sequence[LedgerLine], *, period: str, printed_at: datetime, city_name: str) -> bytes:
    rows = [
        [
            str(number),
            line.requested,
            line.what,
            line.count,
            line.purpose,
            line.destination,
            line.decision,
            line.produced,
            line.closure,
        ]
        for number, line in enumerate(lines, start=1)
    ]
    return build(
        title=TITLE,
        meta_lines=[f"委託者: {city_name}", f"対象期間（申請日）: {period}", f"作成日時: {when(printed_at)}"],
        columns=COLUMNS,
        rows=rows,
        closing=[
            f"合計 {len(rows)} 件。持ち出しファイルは暗号化され、パスフレーズは作成者にのみ一度表示されます。",
            "返却・廃棄の欄が空の行は、まだ持ち出し中です。",
        ],
        signatures=("確認者 署名",),
        author=city_name,
    )
