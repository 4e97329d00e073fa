"""CPU per request of the residents' booking request, in-process (R9.2): where the burst's ratio
to the ceiling is won or lost, measured without HTTP, gunicorn or the load client.

    .venv/bin/python benchmarks/hotpath.py                 # SQLite
    .venv/bin/python benchmarks/hotpath.py --db postgresql # as root: creates madoguchi_bench
    .venv/bin/python benchmarks/hotpath.py --profile 40    # cProfile of the booking request

Both apps are called as WSGI applications with prepared requests: the residents' app built as a
gunicorn worker builds it (templates compiled, heap frozen) answering POST /confirm with a real
session cookie, CSRF token, admitted waiting-room ticket and hold, and the ceiling app
(``ceiling_app.py``: one raw conditional UPDATE + INSERT). They take turns in ``--rounds`` rounds;
the figures are thread CPU per request (median of the rounds) and their ratio. This machine's
speed drifts by tens of percent within a minute: compare figures taken in the same run.

Under load (``burst.py``) every figure is 2–3 times higher (two cores shared by eight server
processes and the load client), and gunicorn adds the same cost to both apps; the in-process
figures say which change buys what.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmarks import common  # noqa: E402
from benchmarks.burst import prepare_holds  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--requests", type=int, default=1000, help="booking requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    add_profile_option(parser)
    return parser.parse_args(argv)


def add_profile_option(parser) -> None:
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="profile one round instead; print the top N functions",
    )


def print_profile(run, top: int) -> None:
    """Run ``run()`` under cProfile; print its top functions by cumulative and by own time."""
    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    print(out.getvalue())


def _call(wsgi, environ) -> str:
    status: list[str] = []
    body = wsgi(environ, lambda line, _headers, _exc=None: status.append(line))
    b"".join(body)
    if hasattr(body, "close"):
        body.close()  # what gunicorn does: the app's close hooks run
    return status[0]


def _environ(path: str, form: dict, cookie: str = "") -> dict:
    from werkzeug.test import EnvironBuilder

    headers = {"Host": "127.0.0.1:8000", **({"Cookie": cookie} if cookie else {})}
    return EnvironBuilder(path=path, method="POST", data=form, headers=headers).get_environ()


def _round(wsgi, environs, expected: str) -> float:
    """Thread CPU per request, in µs, over the next ``len(environs)`` requests."""
    started = time.thread_time()
    for environ in environs:
        status = _call(wsgi, environ)
        if not status.startswith(expected):
            raise SystemExit(f"unexpected answer {status!r} (expected {expected})")
    return (time.thread_time() - started) / len(environs) * 1e6


def main(argv=None) -> int:
    args = parse_args(argv)
    setup = common.configure(args.db, Path(f"/tmp/madoguchi-hotpath-{args.db}"))
    os.environ.update(
        {
            "MADOGUCHI_DELIVER_INLINE": "0",
            "MADOGUCHI_WAITING_ROOM_ENABLED": "1",
            "MADOGUCHI_WAITING_ROOM_RATE_PER_MINUTE": "300",
        }
    )
    warm = 50
    rounds = 1 if args.profile else args.rounds
    count = warm + rounds * args.requests
    print(f"machine: {common.machine()}\ndatabase: {setup.kind}")
    app = common.make_app()
    common.migrate(app)
    venue_ids = common.seed_venues_and_slots(app, weeks=12)
    people = common.seed_applicants(app, count + 100, venue_ids)
    from madoguchi import admission

    app.extensions["madoguchi.admission"] = admission.settings_from(app.config)
    prepared = prepare_holds(app, people, count, timedelta(weeks=5))
    bookings = [
        _environ("/confirm", {"csrf_token": token, "hold_id": hid}, cookie) for cookie, token, hid in prepared
    ]

    import ceiling_app

    from madoguchi.appbase import ready_to_serve
    from reservation import create_app

    ceiling_app.prepare()
    ceiling = ceiling_app.create_app()
    rng = random.Random(1)
    ceilings = [_environ("/book", {"slot_id": str(rng.randint(1, 1000))}) for _ in range(count)]
    served = create_app()
    ready_to_serve(served, "reservation/")  # as scripts/serve's workers: templates compiled, heap frozen

    _round(served.wsgi_app, bookings[:warm], "302")
    _round(ceiling.wsgi_app, ceilings[:warm], "200")
    if args.profile:
        print_profile(lambda: _round(served.wsgi_app, bookings[warm:], "302"), args.profile)
        return 0
    ours, theirs = [], []
    for n in range(rounds):
        part = slice(warm + n * args.requests, warm + (n + 1) * args.requests)
        theirs.append(_round(ceiling.wsgi_app, ceilings[part], "200"))
        ours.append(_round(served.wsgi_app, bookings[part], "302"))
    booking_us, ceiling_us = statistics.median(ours), statistics.median(theirs)
    print(
        f"booking request (POST /confirm): {booking_us:,.0f} µs CPU per request  (rounds {' '.join(f'{v:.0f}' for v in ours)})"
    )
    print(
        f"ceiling endpoint (POST /book):   {ceiling_us:,.0f} µs CPU per request  (rounds {' '.join(f'{v:.0f}' for v in theirs)})"
    )
    print(f"ours ÷ ceiling: {booking_us / ceiling_us:.1f}×")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
