"""How long the city's applicant list takes to import (issue 8, R8): a generated CP932 CSV with every
optional column, checked and imported into a fresh SQLite database built by the migrations.

    .venv/bin/python benchmarks/roster_import.py --rows 40000

Measured on the 2-core development machine: 40,000 rows — check ~2 s, import ~80 s (≈2 ms a row,
almost all in applicants.register). See docs/administration.md, "Roster import".
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask_migrate import upgrade  # noqa: E402

from admin import create_app  # noqa: E402
from madoguchi import demo, numbers, roster  # noqa: E402
from madoguchi.extensions import begin_write, db  # noqa: E402
from tests.conftest import MIGRATIONS, base_overrides  # noqa: E402

TOWNS = ("東陽", "豊洲", "大島", "亀戸", "北砂", "南砂", "深川")


def sample(rows: int) -> bytes:
    lines = ["予約管理番号,住所,氏名,氏名カナ,生年月日,性別,郵便番号,電話番号"]
    for i in range(rows):
        number = numbers.make(f"{i + 10**9:011d}")
        lines.append(
            f"{number},東京都江東区{TOWNS[i % 7]}{i % 6 + 1}丁目{i % 30 + 1}番{i % 9 + 1}号,江東　太郎{i},"
            f"コウトウ　タロウ,昭和{40 + i % 20}年{i % 12 + 1}月{i % 28 + 1}日,{'男女'[i % 2]},"
            f"135-{i % 10000:04d},090{i % 100_000_000:08d}"
        )
    return ("\r\n".join(lines) + "\r\n").encode("cp932")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=40_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    app = create_app(base_overrides(tmp, f"sqlite:///{tmp / 'bench.sqlite3'}"))
    data = sample(args.rows)
    with app.app_context():
        upgrade(directory=MIGRATIONS)
        for spec in demo.KOTO_VENUES:
            demo.ensure_venue(spec)
        db.session.commit()
        started = time.perf_counter()
        roster.check(data)
        checked = time.perf_counter() - started
        begin_write()
        started = time.perf_counter()
        report = roster.import_file(data, staff=None, login_id="benchmark")
        db.session.commit()
        imported = time.perf_counter() - started
    print(
        f"rows {args.rows}, {len(data) / 2**20:.1f} MB: check {checked:.1f} s; "
        f"check + import + commit {imported:.1f} s ({1000 * imported / args.rows:.2f} ms/row); "
        f"imported {report.rows_imported}"
    )


if __name__ == "__main__":
    main()
