"""The booking burst (R9.2): a wave of notices lands and residents book all at once, while
operators search and venue staff check people in.

    .venv/bin/python benchmarks/burst.py --db sqlite
    .venv/bin/python benchmarks/burst.py --db postgresql     # as root: creates madoguchi_bench

Phases, all against gunicorn on 127.0.0.1 with the same worker settings:

1. ceiling   — a minimal Flask endpoint doing one raw conditional UPDATE + INSERT per request
               (benchmarks/ceiling_app.py), closed loop: the most bookings/s this machine serves.
2. booking   — the residents' real booking request (POST /confirm: CSRF, session, the booking
               service, the confirmation e-mail queued), closed loop with prepared holds:
               bookings/s and its ratio to the ceiling. Phases 1 and 2 take turns, every process
               at the same CPU priority.
3. admitted  — residents arrive at the waiting room's admitted rate and walk the whole flow
               (waiting room, identify, contact, venue, calendar, hold, confirm, done), while
               operators search by phone/number (call center) and venue staff look numbers up
               (in a process of their own). From here the residents' site runs as scripts/serve
               serves it, at a lower CPU priority than the staff apps (nice 10).
4. overload  — ten times more arrivals than the admitted rate, starting before the opening:
               admitted residents and staff must keep their latency targets; the rest wait.

Then every slot is checked for overbooking. Each phase is bounded in time; the whole run takes
3–5 minutes. Figures and how to read them: docs/capacity.md; recorded ones: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402
from benchmarks.common import REFRESH, SLOT_ID, Client, Stats, csrf_of, pct  # noqa: E402

TARGETS = {"book": 200.0, "hold": 200.0, "calendar": 50.0, "search_phone": 20.0, "search_number": 20.0}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--applicants", type=int, default=40_000)
    parser.add_argument(
        "--workers", type=int, default=4, help="gunicorn sync workers (residents and ceiling)"
    )
    parser.add_argument(
        "--clients", type=int, default=32, help="concurrent clients in the closed-loop phases"
    )
    parser.add_argument(
        "--closed-seconds", type=float, default=15.0, help="time of each closed-loop phase (ceiling, booking)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="the ceiling and the booking phase take turns in this many rounds: this machine's speed "
        "drifts by tens of percent within minutes, and the ratio must compare like with like",
    )
    parser.add_argument(
        "--rate", type=float, default=5.0, help="admitted residents per second (waiting room)"
    )
    parser.add_argument("--scenario-seconds", type=float, default=45.0)
    parser.add_argument("--overload", type=float, default=10.0, help="arrivals / admitted rate in phase 4")
    parser.add_argument("--staff-rate", type=float, default=4.0, help="operator searches per second")
    parser.add_argument("--checkin-rate", type=float, default=2.0, help="venue look-ups per second")
    parser.add_argument("--max-refresh", type=float, default=60.0, help="cap on a waiting page's refresh (s)")
    parser.add_argument(
        "--skip", default="", help="comma-separated phases to skip (ceiling,booking,admitted,overload)"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    return parser.parse_args(argv)


# ---- phase 1 and 2: closed loops -------------------------------------------------------------------
async def closed_loop(make_request, clients: int, seconds: float) -> tuple[int, float]:
    """``clients`` coroutines call ``make_request(i)`` back to back; returns (successes, elapsed)."""
    done = 0
    stop = time.perf_counter() + seconds
    started = time.perf_counter()

    async def worker(i):
        nonlocal done
        n = 0
        while time.perf_counter() < stop:
            ok = await make_request(i, n)
            if ok is None:
                return
            done += bool(ok)
            n += 1

    await asyncio.gather(*(worker(i) for i in range(clients)))
    return done, time.perf_counter() - started


async def run_ceiling(base: str, args, stats: Stats, seconds: float) -> float:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=args.clients * 2)
    client = Client(base, stats, connector)
    rng = random.Random(1)

    async def one(_i, _n):
        status, _, _ = await client.request(
            "ceiling", "POST", "/book", data={"slot_id": str(rng.randint(1, 1000))}
        )
        return status == 200

    done, elapsed = await closed_loop(one, args.clients, seconds)
    await client.close()
    await connector.close()
    return done / elapsed


def prepare_holds(app, people, count: int, after: timedelta):
    """Holds made in the database for ``count`` residents, with each one's session cookie, CSRF
    token and admitted waiting-room ticket made as the app would (the harness knows SECRET_KEY)."""
    return signed_requests(app, make_holds(app, people, count, after))


def make_holds(app, people, count: int, after: timedelta) -> list[tuple[str, str]]:
    """Holds (two hours long) in the database for up to ``count`` of ``people`` on free places of
    their venue at least ``after`` ahead: (applicant id, hold id) pairs."""
    from sqlalchemy import select, update

    from madoguchi import dates
    from madoguchi.crypto import new_row_id
    from madoguchi.extensions import db
    from madoguchi.models import Hold, Slot

    with app.app_context():
        now = dates.now()
        slots = db.session.execute(
            select(Slot.id, Slot.venue_id, Slot.capacity - Slot.taken).where(Slot.starts_at > now + after)
        ).all()
        free = {}
        for sid, vid, left in slots:
            free.setdefault(vid, []).extend([sid] * left)
        holds, taken, made = [], {}, []
        for p in people:
            if len(holds) >= count or not free.get(p.venue_id):
                continue
            sid = free[p.venue_id].pop()
            hid = new_row_id()
            holds.append(
                dict(
                    id=hid,
                    slot_id=sid,
                    applicant_id=p.id,
                    expires_at=now + timedelta(hours=2),
                    created_at=now,
                )
            )
            taken[sid] = taken.get(sid, 0) + 1
            made.append((p.id, hid))
        db.session.execute(Hold.__table__.insert(), holds)
        for sid, n in taken.items():
            db.session.execute(update(Slot).where(Slot.id == sid).values(taken=Slot.taken + n))
        db.session.commit()
    return made


def signed_requests(app, holds: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """For each (applicant id, hold id): the Cookie header (session and admitted waiting-room ticket),
    the CSRF token and the hold id of its confirmation, signed now (the app signs a session or
    ticket again once it is a minute old, which a measured request must not have to do)."""
    from flask import g, session
    from flask_wtf.csrf import generate_csrf

    from madoguchi import admission, dates
    from madoguchi.crypto import new_row_id

    settings = app.extensions["madoguchi.admission"]
    serializer = app.session_interface.get_signing_serializer(app)
    with app.app_context():
        now = dates.now()
    out = []
    for applicant_id, hid in holds:
        with app.test_request_context("/confirm"):
            g.pop("csrf_token", None)  # Flask-WTF caches the token in g, which this loop shares
            session.permanent = True
            session["applicant_id"] = applicant_id
            session["flow"] = "book"
            token = generate_csrf()
            cookie = serializer.dumps(dict(session))
            ticket = admission.Ticket(settings.room, 1, False, new_row_id(), now.timestamp())
            queue = admission.sign(ticket, app.config["SECRET_KEY"], now)
        out.append((f"session={cookie}; {admission.COOKIE}={queue}", token, hid))
    return out


async def run_booking(base: str, holds: deque, args, stats: Stats, seconds: float) -> float:
    """POST /confirm in a closed loop, each request with the next of the prepared ``holds`` (shared
    by the rounds; a client stops when they run out)."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=args.clients * 2)
    client = Client(base, stats, connector, cookies=False)

    async def one(_i, _n):
        if not holds:
            return None
        cookie, token, hold_id = holds.popleft()
        # A plain header, no cookie jar: every request is another resident.
        status, where, _ = await client.request(
            "book",
            "POST",
            "/confirm",
            data={"csrf_token": token, "hold_id": hold_id},
            headers={"Cookie": cookie},
        )
        return status == 302 and where.endswith("/done")

    done, elapsed = await closed_loop(one, args.clients, seconds)
    await client.close()
    await connector.close()
    return done / elapsed


# ---- phase 3 and 4: residents, operators, venue staff ----------------------------------------------
async def resident(base, person, stats: Stats, connector, rng, deadline, args, outcome: dict) -> None:
    client = Client(base, stats, connector)
    try:
        while True:
            status, _, body = await client.request("entry", "GET", "/")
            waiting = REFRESH.search(body)
            stats.latencies["waiting" if waiting else "index"].append(stats.latencies["entry"].pop())
            if status == 0 or status >= 500:
                outcome["error"] += 1
                return
            if not waiting:
                break
            # As a browser does: reload after the page's refresh time. A visitor whose next reload
            # falls after the scenario's end stops here: cutting every sleep short at the end sent
            # all of them (some 1,700 at 10×) in the same instant, a herd no browser makes, which
            # was the seconds-long top of the waiting page's percentiles.
            pause = max(min(float(waiting.group(1)), args.max_refresh), 0.1)
            if time.monotonic() + pause > deadline:
                outcome["still_waiting"] += 1
                return
            await asyncio.sleep(pause)
        outcome["admitted"] += 1
        _, _, page = await client.request("start", "GET", "/start")
        status, where, _ = await client.request(
            "identify",
            "POST",
            "/start",
            data={
                "csrf_token": csrf_of(page),
                "reservation_number": person.number,
                "birth_date": person.birth.isoformat().replace("-", "/"),
            },
        )
        if not where.endswith("/contact"):
            outcome[f"identify:{status}"] += 1
            return
        _, _, page = await client.request("contact", "GET", "/contact")
        await client.request(
            "contact",
            "POST",
            "/contact",
            data={"csrf_token": csrf_of(page), "email": "", "phone": person.phone},
        )
        await client.request("venue", "GET", "/venue")
        for attempt in range(4):
            week = (datetime.now(UTC) + timedelta(days=7 * attempt)).date().isoformat()
            _, _, page = await client.request(
                "calendar", "GET", "/slots" + (f"?from={week}" if attempt else "")
            )
            free = SLOT_ID.findall(page)
            if not free:
                continue
            status, where, _ = await client.request(
                "hold", "POST", "/hold", data={"csrf_token": csrf_of(page), "slot_id": rng.choice(free)}
            )
            if where.endswith("/confirm"):
                break
            outcome["slot_taken_meanwhile"] += 1
        else:
            outcome["no_place"] += 1
            return
        _, _, page = await client.request("confirm_page", "GET", "/confirm")
        hold = common.HOLD_ID.search(page)
        if not hold:
            outcome["hold_lost"] += 1
            return
        status, where, _ = await client.request(
            "book", "POST", "/confirm", data={"csrf_token": csrf_of(page), "hold_id": hold.group(1)}
        )
        if not where.endswith("/done"):
            outcome[f"book:{status}"] += 1
            return
        await client.request("done", "GET", "/done")
        outcome["booked"] += 1
    finally:
        await client.close()


async def operator(base, login, secret, people, stats, rate, stop: asyncio.Event, connector):
    client = Client(base, stats, connector)
    rng = random.Random(login)
    try:
        if not await common.staff_sign_in(client, login, secret):
            stats.failures["operator_signin"] += 1
            return
        _, _, page = await client.request("console", "GET", "/")
        token = csrf_of(page)
        n = 0
        while not stop.is_set():
            p = rng.choice(people)
            kind, q = ("search_phone", p.phone) if n % 2 else ("search_number", p.number)
            await client.request(kind, "POST", "/search", data={"csrf_token": token, "q": q, "birth": ""})
            n += 1
            await asyncio.sleep(common.jitter(rng, 1 / rate))
    finally:
        await client.close()


async def venue_desk(base, secret, venue_id, people, stats, rate, stop: asyncio.Event, connector):
    client = Client(base, stats, connector)
    rng = random.Random(venue_id)
    try:
        if not await common.staff_sign_in(client, "bench-venue", secret):
            stats.failures["venue_signin"] += 1
            return
        path = f"/venues/{venue_id}/checkin"
        _, _, page = await client.request("checkin_page", "GET", path)
        token = csrf_of(page)
        while not stop.is_set():
            p = rng.choice(people)
            await client.request("checkin", "POST", path, data={"csrf_token": token, "number": p.number})
            await asyncio.sleep(common.jitter(rng, 1 / rate))
    finally:
        await client.close()


class StaffAtWork:
    """The operators and the venue desk, in a process of their own for the whole scenario.

    Staff work at their own computers: their requests must not wait in the residents' load client,
    one event loop busy with thousands of simulated visitors (measured: it added 5–10 ms to the
    slowest staff requests, which the servers had answered in under 17 ms). The process shares the
    machine's two cores with everything else, as before; it signs the staff in, works until told to
    stop, and sends back what it measured.
    """

    def __init__(self, servers, staff: dict, people, venue_ids: list[int], args):
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no state of this one
        self.stop_event = context.Event()
        self.results = context.Queue()
        bases = {name: servers[name].base for name in ("callcenter", "admin")}
        self.process = context.Process(
            target=_staff_process,
            args=(bases, staff, people, venue_ids[0], args.staff_rate, args.checkin_rate),
            kwargs={"stop": self.stop_event, "results": self.results},
            name="staff-at-work",
        )
        self.process.start()

    def finish(self) -> Stats:
        self.stop_event.set()
        plain = self.results.get(timeout=60)
        self.process.join(timeout=30)
        stats = Stats()
        for name, values in plain.items():
            mine = getattr(stats, name)
            mine.update(values) if isinstance(mine, dict) else mine.extend(values)
        return stats


def _staff_process(bases, staff, people, venue_id, staff_rate, checkin_rate, *, stop, results) -> None:
    stats = asyncio.run(_staff_loop(bases, staff, people, venue_id, staff_rate, checkin_rate, stop))
    # As plain dicts and lists: the defaultdicts' factories do not travel between processes.
    results.put(
        {name: value if isinstance(value, list) else dict(value) for name, value in vars(stats).items()}
    )


async def _staff_loop(bases, staff, people, venue_id, staff_rate, checkin_rate, stop_event) -> Stats:
    import aiohttp

    stats, stop = Stats(), asyncio.Event()
    connector = aiohttp.TCPConnector(limit=20)
    tasks = [
        asyncio.create_task(
            operator(bases["callcenter"], login, staff[login], people, stats, staff_rate / 2, stop, connector)
        )
        for login in ("bench-operator", "bench-operator2")
    ] + [
        asyncio.create_task(
            venue_desk(
                bases["admin"], staff["bench-venue"], venue_id, people, stats, checkin_rate, stop, connector
            )
        )
    ]
    while not stop_event.is_set():
        await asyncio.sleep(0.2)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    await connector.close()
    return stats


async def scenario(
    servers, people, staff, venue_ids, args, rate: float, seconds: float, *, grace: float = 20.0
):
    """Residents arriving at ``rate`` per second for ``seconds`` (Poisson), staff working throughout
    (in a process of their own, ``StaffAtWork``)."""
    import aiohttp

    residents_stats = Stats()
    outcome: dict = __import__("collections").defaultdict(int)
    connector = aiohttp.TCPConnector(limit=400)
    rng = random.Random(int(rate * 1000))
    at_work = StaffAtWork(servers, staff, people, venue_ids, args)
    await asyncio.sleep(3)  # staff sign in first (argon2 is slow on purpose)
    deadline = time.monotonic() + seconds + grace
    started = time.monotonic()
    tasks = []
    crowd = iter(people)
    while time.monotonic() - started < seconds:
        person = next(crowd, None)
        if person is None:
            break
        tasks.append(
            asyncio.create_task(
                resident(
                    servers["residents"].base,
                    person,
                    residents_stats,
                    connector,
                    rng,
                    deadline,
                    args,
                    outcome,
                )
            )
        )
        await asyncio.sleep(common.jitter(rng, 1 / rate))
    arrivals = len(tasks)
    _, pending = await asyncio.wait(tasks, timeout=max(deadline - time.monotonic(), 1) + 15)
    # Residents still on their way when the scenario ends are stopped and counted, not failed.
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    outcome["cut_off_at_the_end"] += len(pending)
    elapsed = time.monotonic() - started
    staff_stats = at_work.finish()
    await connector.close()
    return {
        "arrivals": arrivals,
        "elapsed": elapsed,
        "outcome": dict(outcome),
        "residents": residents_stats,
        "staff": staff_stats,
        "bookings_per_second": outcome["booked"] / elapsed,
    }


def report(result: dict, share: dict, residents_title: str) -> dict:
    """Print a scenario's tables, the cores used and the verdicts; return its figures for --out."""
    print(result["residents"].table(residents_title))
    print(result["staff"].table("staff (call center search, venue look-up)"))
    print(common.cores_line(share))
    # Whether the slowest request of each kind with a target was slow alone or with everything else.
    everyone = result["residents"].timeline + result["staff"].timeline
    for kind in TARGETS:
        mine = [one for one in everyone if one[2] == kind]
        if mine:
            slow = max(mine, key=lambda one: one[3])
            print(f"   slowest {kind}: {slow[3]:.1f} ms; {common.overlapping(slow, everyone)}")
    print("\n".join(verdicts(result)))
    return {
        "cores": share,
        "arrivals": result["arrivals"],
        "outcome": result["outcome"],
        "bookings_per_second": result["bookings_per_second"],
        "residents": summary(result["residents"]),
        "staff": summary(result["staff"]),
        "errors": result["residents"].total_server_errors + result["staff"].total_server_errors,
    }


class Turns:
    """A closed-loop phase measured in rounds that alternate with another phase's: its rate, the
    cores used and the latencies of every round."""

    def __init__(self):
        self.stats = Stats()
        self.rates: list[float] = []
        self.shares: list[dict] = []

    def run(self, servers, phase) -> None:
        """Run one round (``phase``: the coroutine of a closed loop, returning its rate)."""
        with common.cores_used(list(servers)) as share:
            self.rates.append(asyncio.run(phase))
        self.shares.append(share)

    @property
    def per_second(self) -> float:
        return sum(self.rates) / len(self.rates)

    def report(self, heading: str, title: str, lines=()) -> dict:
        """Print the phase (heading, rounds, ``lines``, latencies, cores); return its figures."""
        share = {key: sum(one[key] for one in self.shares) / len(self.shares) for key in self.shares[0]}
        print(heading)
        print(f"   rounds: {' '.join(f'{rate:,.0f}' for rate in self.rates)} bookings/s")
        for line in lines:
            print(line)
        print(self.stats.table(title))
        print(common.cores_line(share))
        return {
            "per_second": self.per_second,
            "rounds": self.rates,
            "cores": share,
            "latency": summary(self.stats),
            "errors": self.stats.total_server_errors,
        }


def summary(stats: Stats) -> dict:
    return {
        kind: {"n": len(v), "p50": pct(v, 50), "p95": pct(v, 95), "p99": pct(v, 99), "max": max(v)}
        for kind, v in stats.latencies.items()
        if v
    }


def verdicts(result: dict) -> list[str]:
    lines = []
    merged = {**summary(result["residents"]), **summary(result["staff"])}
    for kind, target in TARGETS.items():
        if kind in merged:
            p99 = merged[kind]["p99"]
            ok = p99 <= target if kind in ("book", "hold") else p99 < target
            lines.append(
                f"    {kind:<14} p99 {p99:7.1f} ms  target {'≤' if kind in ('book', 'hold') else '<'} {target:.0f} ms  {'ok' if ok else 'MISSED'}"
            )
    errors = result["residents"].total_server_errors + result["staff"].total_server_errors
    lines.append(f"    server errors  {errors}  {'ok' if errors == 0 else 'MISSED'}")
    return lines


# ---- the run ----------------------------------------------------------------------------------------
def main(argv=None) -> int:
    args = parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    print(f"machine: {common.machine()}")
    setup = common.configure(args.db)
    print(f"database: {setup.kind}; work folder {setup.workdir}")
    t = time.perf_counter()
    app = common.make_app()
    common.migrate(app)
    venue_ids = common.seed_venues_and_slots(app, weeks=12)
    people = common.seed_applicants(app, args.applicants, venue_ids)
    staff = common.seed_staff(app, venue_ids)
    from benchmarks import ceiling_app

    ceiling_app.prepare()
    slots = common.future_slots(app)
    print(
        f"seeded {len(people):,} applicants (bulk, precomputed ciphertexts), {len(slots):,} future slots with "
        f"{sum(s[2] for s in slots):,} places, 3 staff, in {time.perf_counter() - t:.1f} s"
    )
    rng = random.Random(2026)
    rng.shuffle(people)
    results: dict = {
        "machine": common.machine(),
        "db": setup.kind,
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    room_env = {
        # Messages go out by `madoguchi outbox deliver`, not inside the booking requests (docs/capacity.md).
        "MADOGUCHI_DELIVER_INLINE": "0",
        "MADOGUCHI_WAITING_ROOM_ENABLED": "1",
        "MADOGUCHI_WAITING_ROOM_RATE_PER_MINUTE": str(args.rate * 60),
        "MADOGUCHI_WAITING_ROOM_BURST": str(max(int(args.rate * 2), 1)),
    }

    # All servers start before any phase and are left to settle: nothing they do once at start is
    # measured in a phase (the ceiling's phase included).
    servers = {
        "residents": common.Server(
            setup, "reservation:create_app()", workers=args.workers, env=room_env, name="residents"
        ),
        "callcenter": common.Server(
            setup, "callcenter:create_app()", workers=2, worker_class="gthread", threads=16, name="callcenter"
        ),
        "admin": common.Server(setup, "admin:create_app()", workers=2, name="admin"),
    }
    print(f"servers started; quiet after {common.wait_until_quiet(servers.values()):.0f} s")

    ceiling_server = None
    try:
        used = 0
        ceiling, per_second, ratios = None, None, []
        measure_ceiling, measure_booking = "ceiling" not in skip, "booking" not in skip
        holds: deque = deque()
        made = 0
        if measure_ceiling:
            ceiling_server = common.Server(
                setup,
                "ceiling_app:create_app()",
                workers=args.workers,
                chdir=common.ROOT / "benchmarks",
                name="ceiling",
            )
        if measure_booking:
            app.extensions["madoguchi.admission"] = __import__(
                "madoguchi.admission", fromlist=["x"]
            ).settings_from(
                {**app.config, "WAITING_ROOM_ENABLED": True, "WAITING_ROOM_RATE_PER_MINUTE": args.rate * 60}
            )
            count = int(min(12_000, len(people) // 3))
            prepared = prepare_holds(app, people[:count], count, timedelta(weeks=5))
            holds, used, made = deque(prepared), count, len(prepared)
        # Phases 1 and 2 take turns: each round runs the ceiling, then our booking request, for a
        # share of --closed-seconds each; the ratio is the total of ours over the total of the ceiling.
        rounds = max(args.rounds, 1) if measure_ceiling and measure_booking else 1
        seconds = args.closed_seconds / rounds
        ceiling_turns, booking_turns = Turns(), Turns()
        for done_rounds in range(rounds):
            if measure_booking and not holds:
                # A fast machine books them all before the last rounds: a round without holds
                # would count as 0 bookings/s, so the rounds end here (the ratio stays like with like).
                print(f"   the prepared holds ran out after {done_rounds} of {rounds} rounds")
                break
            if measure_ceiling:
                ceiling_turns.run(
                    [ceiling_server], run_ceiling(ceiling_server.base, args, ceiling_turns.stats, seconds)
                )
            if measure_booking:
                booking_turns.run(
                    servers.values(),
                    run_booking(servers["residents"].base, holds, args, booking_turns.stats, seconds),
                )
        if ceiling_server is not None:
            ceiling_server.stop()
            ceiling_server = None
        if measure_ceiling:
            ceiling = ceiling_turns.per_second
            results["ceiling"] = ceiling_turns.report(
                f"\n1. ceiling: {ceiling:,.0f} bookings/s (raw conditional UPDATE + INSERT, "
                f"{args.workers} sync workers, {args.clients} clients)",
                "ceiling requests",
            )
        if measure_booking:
            per_second = booking_turns.per_second
            lines = []
            if ceiling:
                ratios = [
                    ours / theirs
                    for ours, theirs in zip(booking_turns.rates, ceiling_turns.rates, strict=True)
                ]
                lines.append(
                    f"   ratio to the ceiling: {per_second / ceiling:.0%}  (target ≥ 50%; "
                    f"round by round {min(ratios):.0%}–{max(ratios):.0%})"
                )
            results["booking"] = booking_turns.report(
                f"\n2. booking request alone: {per_second:,.0f} bookings/s with {made:,} prepared holds",
                "booking requests (POST /confirm)",
                lines,
            )
            results["booking"].update(ratio=per_second / ceiling if ceiling else None, ratio_by_round=ratios)
        if "admitted" not in skip:
            # From here on the residents' site runs as scripts/serve serves it: at a lower CPU priority
            # than the staff apps (phases 1 and 2 compare request paths, every process at one priority).
            servers["residents"].stop()
            servers["residents"] = common.Server(
                setup,
                "reservation:create_app()",
                workers=args.workers,
                env=room_env,
                name="residents-admitted",
                niceness=common.RESIDENTS_NICENESS,
            )
            common.wait_until_quiet([servers["residents"]])
            crowd = people[used:]
            with common.cores_used(servers.values()) as share:
                result = asyncio.run(
                    scenario(servers, crowd, staff, venue_ids, args, args.rate, args.scenario_seconds)
                )
            used += result["arrivals"]
            print(
                f"\n3. admitted rate: {result['arrivals']} residents arrived at {args.rate}/s over "
                f"{args.scenario_seconds:.0f} s; {result['bookings_per_second']:.1f} bookings/s; outcome {result['outcome']}"
            )
            results["admitted"] = report(result, share, "residents")
        if "overload" not in skip:
            # A new opening a few seconds ahead: the first arrivals are early and get shuffled.
            servers["residents"].stop()
            opens = datetime.now(UTC) + timedelta(seconds=8)
            servers["residents"] = common.Server(
                setup,
                "reservation:create_app()",
                workers=args.workers,
                name="residents-overload",
                env={**room_env, "MADOGUCHI_WAITING_ROOM_OPENS_AT": opens.isoformat()},
                niceness=common.RESIDENTS_NICENESS,
            )
            crowd = people[used:]
            arrival_rate = args.rate * args.overload
            with common.cores_used(servers.values()) as share:
                result = asyncio.run(
                    scenario(
                        servers,
                        crowd,
                        staff,
                        venue_ids,
                        args,
                        arrival_rate,
                        args.scenario_seconds,
                        grace=10.0,
                    )
                )
            print(
                f"\n4. overload: {result['arrivals']} residents arrived at {arrival_rate:.0f}/s "
                f"({args.overload:.0f}× the admitted {args.rate}/s, opening {8} s after the start); "
                f"{result['bookings_per_second']:.1f} bookings/s; outcome {result['outcome']}"
            )
            results["overload"] = report(
                result, share, "residents (admitted ones; 'waiting' = the waiting page)"
            )
    finally:
        for server in [*servers.values(), *([ceiling_server] if ceiling_server is not None else [])]:
            server.stop()
    check = common.overbooking(app)
    print(
        f"\noverbooking check: {check['overbooked']} overbooked slots of {check['slots']:,} "
        f"({check['bookings']:,} bookings; {check['counter_mismatch']} slots whose counter differs from "
        f"live bookings + holds)"
    )
    results["overbooking"] = check
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str))
    return 0 if check["overbooked"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
