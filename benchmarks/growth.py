"""Cost growth (R9.2): how booking and search latency change as the store grows from 10,000 to
1,000,000 bookings.

    .venv/bin/python benchmarks/growth.py --db sqlite
    .venv/bin/python benchmarks/growth.py --db postgresql --sizes 10000,100000,1000000

The store is filled in bulk — applicants with precomputed ciphertexts and blind indexes (two
processes), one past booking each with its history event — never through the ORM one by one. At
each size the same servers (residents' app and call center, gunicorn on 127.0.0.1) are measured
with a light, steady load, so the figures show the cost of the data, not of saturation:

* book      — POST /confirm of a prepared hold (the booking request), 4 clients
* calendar  — GET /slots of an identified resident
* search    — call-center POST /search by phone and by 予約管理番号 (blind index), 1 operator
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402
from benchmarks.common import Client, Stats, csrf_of, pct  # noqa: E402

BOOKABLE = 5_000  # applicants kept without a booking, for the booking measurements
HISTORY_DAYS = 400


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--bookings", type=int, default=300, help="bookings measured at each size")
    parser.add_argument("--searches", type=int, default=400, help="searches measured at each size")
    parser.add_argument("--out", type=Path, default=None)
    return parser.parse_args(argv)


def _rows(job):
    """Worker process: applicant rows for [start, start + count) and one past booking each."""
    key_file, start, count, venue_ids, history = job
    from madoguchi.crypto import KeyRing

    ring = KeyRing.from_json(Path(key_file).read_text())
    now = datetime.now(UTC)
    rows, people = common.applicant_rows(ring, start, count, venue_ids, now, full=False)
    rng = random.Random(start)
    bookings, events = [], []
    for person in people:
        slot_id, at = history[rng.randrange(len(history))]
        status = rng.choices(("handed_over", "cancelled", "no_show"), weights=(90, 7, 3))[0]
        booking_id = common.secrets.token_hex(16)
        bookings.append(
            dict(
                id=booking_id,
                applicant_id=person.id,
                slot_id=slot_id,
                status=status,
                channel="web",
                staff_id=None,
                request_key=None,
                created_at=at - timedelta(days=10),
                updated_at=at,
            )
        )
        events.append(
            dict(
                booking_id=booking_id,
                at=at - timedelta(days=10),
                action="booked",
                channel="web",
                to_slot_id=slot_id,
            )
        )
    return rows, bookings, events


def history_slots(app, venue_ids) -> list[tuple[int, datetime]]:
    """Past slots (one a day per venue and half hour) to hang the stored bookings on."""
    from sqlalchemy import select

    from madoguchi.extensions import db
    from madoguchi.models import Slot

    with app.app_context():
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        rows = []
        for day in range(1, HISTORY_DAYS + 1):
            for venue_id in venue_ids:
                for half in range(16):
                    start = today - timedelta(days=day) + timedelta(minutes=30 * half)
                    rows.append(
                        dict(
                            venue_id=venue_id,
                            starts_at=start,
                            ends_at=start + timedelta(minutes=30),
                            capacity=0,
                            taken=0,
                        )
                    )
        db.session.execute(Slot.__table__.insert(), rows)
        db.session.commit()
        return [
            (i, at)
            for i, at in db.session.execute(
                select(Slot.id, Slot.starts_at).where(Slot.starts_at < today - timedelta(hours=12))
            )
        ]


def grow(app, setup, venue_ids, history, start: int, count: int) -> None:
    """Bulk-insert ``count`` applicants with one past booking each; slot counters follow."""
    from sqlalchemy import text

    from madoguchi.extensions import db
    from madoguchi.models import Applicant, Booking, BookingEvent

    chunk = 10_000
    jobs = [
        (str(setup.workdir / "keys.json"), first, min(chunk, start + count - first), venue_ids, history)
        for first in range(start, start + count, chunk)
    ]
    with ProcessPoolExecutor(max_workers=2) as pool, app.app_context():
        for rows, bookings, events in pool.map(_rows, jobs):
            db.session.execute(Applicant.__table__.insert(), rows)
            db.session.execute(Booking.__table__.insert(), bookings)
            db.session.execute(BookingEvent.__table__.insert(), events)
            db.session.commit()
        # Past slots hold exactly their live bookings: capacity = taken keeps the CHECKs true.
        db.session.execute(
            text(
                "UPDATE slots SET taken = (SELECT count(*) FROM bookings b WHERE b.slot_id = slots.id "
                "AND b.status IN ('booked', 'arrived', 'handed_over')), "
                "capacity = (SELECT count(*) FROM bookings b WHERE b.slot_id = slots.id "
                "AND b.status IN ('booked', 'arrived', 'handed_over')) WHERE starts_at < :now"
            ),
            {"now": datetime.now(UTC).replace(tzinfo=None) if setup.kind == "sqlite" else datetime.now(UTC)},
        )
        db.session.commit()
        if setup.kind == "postgresql":
            db.session.execute(text("ANALYZE"))
            db.session.commit()


async def measure(servers, prepared, people, staff_secret, args) -> dict:
    import aiohttp

    stats = Stats()
    connector = aiohttp.TCPConnector(limit=16)
    # Booking and calendar: 4 residents' clients, each request another resident.
    queue = iter(prepared)

    async def booker():
        client = Client(servers["residents"].base, stats, connector, cookies=False)
        for cookie, token, hold_id in iter(lambda: next(queue, None), None):
            await client.request("calendar", "GET", "/slots", headers={"Cookie": cookie})
            await client.request(
                "book",
                "POST",
                "/confirm",
                data={"csrf_token": token, "hold_id": hold_id},
                headers={"Cookie": cookie},
            )
        await client.close()

    await asyncio.gather(*(booker() for _ in range(4)))
    operator = Client(servers["callcenter"].base, stats, connector)
    if not await common.staff_sign_in(operator, "bench-operator", staff_secret):
        raise SystemExit("the operator could not sign in")
    _, _, page = await operator.request("console", "GET", "/")
    token = csrf_of(page)
    rng = random.Random(len(people))
    for n in range(args.searches):
        p = rng.choice(people)
        kind, q = ("search_phone", p.phone) if n % 2 else ("search_number", p.number)
        await operator.request(kind, "POST", "/search", data={"csrf_token": token, "q": q, "birth": ""})
    await operator.close()
    await connector.close()
    return stats


def main(argv=None) -> int:
    args = parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"machine: {common.machine()}")
    setup = common.configure(args.db, Path(f"/tmp/madoguchi-growth-{args.db}"))
    app = common.make_app()
    common.migrate(app)
    venue_ids = common.seed_venues_and_slots(app, weeks=8)
    bookable = common.seed_applicants(app, BOOKABLE, venue_ids, start=10**7)
    staff = common.seed_staff(app, venue_ids)
    history = history_slots(app, venue_ids)
    from benchmarks.burst import prepare_holds
    from madoguchi import admission

    app.extensions["madoguchi.admission"] = admission.settings_from(
        {**app.config, "WAITING_ROOM_ENABLED": False}
    )
    servers = {
        "residents": common.Server(
            setup,
            "reservation:create_app()",
            workers=args.workers,
            name="residents",
            niceness=common.RESIDENTS_NICENESS,
        ),
        "callcenter": common.Server(
            setup, "callcenter:create_app()", workers=2, worker_class="gthread", threads=16, name="callcenter"
        ),
    }
    table, stored, results = [], 0, {}
    try:
        for size in sizes:
            t = time.perf_counter()
            grow(app, setup, venue_ids, history, stored, size - stored)
            seeded = time.perf_counter() - t
            stored = size
            common.wait_until_quiet(servers.values())  # the call center warms its FAX reader once
            prepared = prepare_holds(app, bookable[: args.bookings], args.bookings, timedelta(days=1))
            bookable = bookable[args.bookings :]
            people = []
            for i in random.Random(size).sample(range(size), min(size, 2000)):
                number, _, birth, phone, venue_id = common.person(i, venue_ids)
                people.append(common.Person("", number, birth, phone, venue_id))
            stats = asyncio.run(measure(servers, prepared, people, staff["bench-operator"], args))
            row = {
                k: (pct(stats.latencies[k], 50), pct(stats.latencies[k], 99))
                for k in ("book", "calendar", "search_phone", "search_number")
            }
            row["errors"] = stats.total_server_errors
            results[size] = row
            table.append((size, row))
            print(f"\n{size:>9,} stored bookings (filled in {seeded:.0f} s)")
            print(stats.table("latency"))
    finally:
        for server in servers.values():
            server.stop()
    print(
        "\nstored bookings | book p50 / p99 ms | calendar p50 / p99 ms | search phone p50 / p99 ms | search number p50 / p99 ms"
    )
    for size, row in table:
        print(
            f"{size:>15,} | "
            + " | ".join(
                f"{row[k][0]:6.1f} / {row[k][1]:6.1f}"
                for k in ("book", "calendar", "search_phone", "search_number")
            )
        )
    check = common.overbooking(app)
    print(
        f"overbooking check: {check['overbooked']} overbooked slots; {check['counter_mismatch']} counter mismatches"
    )
    if args.out:
        args.out.write_text(
            json.dumps(
                {"machine": common.machine(), "db": setup.kind, "sizes": results, "overbooking": check},
                indent=2,
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
