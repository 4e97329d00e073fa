"""CPU per request of the call center's search, in-process (R9.2): where a search's time goes,
measured without HTTP, gunicorn or the load client (the staff side of ``hotpath.py``).

    .venv/bin/python benchmarks/searchpath.py                 # SQLite
    .venv/bin/python benchmarks/searchpath.py --db postgresql # as root: creates madoguchi_bench
    .venv/bin/python benchmarks/searchpath.py --profile 40    # cProfile of the searches

The call-center app is built as a gunicorn worker builds it; an operator signs in with password and
TOTP through the real sign-in pages, then POST /search is called as a WSGI application with that
session cookie and CSRF token, alternately by phone and by 予約管理番号 of seeded applicants (each
search is audited, as in production). The figures are thread CPU and wall time per search (median
of the rounds); under load (``burst.py``) they are 2–3 times higher.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402
from benchmarks.common import csrf_of  # noqa: E402
from benchmarks.hotpath import _call, _environ, add_profile_option, print_profile  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--applicants", type=int, default=40_000)
    parser.add_argument("--requests", type=int, default=500, help="searches per round")
    parser.add_argument("--rounds", type=int, default=5)
    add_profile_option(parser)
    return parser.parse_args(argv)


def signed_in(app, login: str, secret: str) -> tuple[str, str]:
    """Sign ``login`` in through the real pages: the session's Cookie header and a CSRF token."""
    import pyotp

    from staffweb.guard import COOKIE

    client = app.test_client()
    page = client.get("/signin").get_data(as_text=True)
    data = {"csrf_token": csrf_of(page), "login_id": login, "password": common.STAFF_PASSWORD}
    if client.post("/signin", data=data).status_code != 302:
        raise SystemExit("the operator's password was refused")
    page = client.get("/signin/code").get_data(as_text=True)
    code = {"csrf_token": csrf_of(page), "code": pyotp.TOTP(secret).now()}
    if client.post("/signin/code", data=code).status_code != 302:
        raise SystemExit("the operator's TOTP code was refused")
    token = csrf_of(client.get("/").get_data(as_text=True))
    names = (COOKIE, app.config["SESSION_COOKIE_NAME"])  # the staff session's and the CSRF token's
    cookie = "; ".join(f"{name}={c.value}" for name in names if (c := client.get_cookie(name)) is not None)
    return cookie, token


def _round(wsgi, environs) -> tuple[float, float]:
    """Thread CPU and wall time per search, in µs, over ``environs``."""
    cpu, wall = time.thread_time(), time.perf_counter()
    for environ in environs:
        status = _call(wsgi, environ)
        if not status.startswith("200"):
            raise SystemExit(f"unexpected answer {status!r} to a search")
    n = len(environs)
    return (time.thread_time() - cpu) / n * 1e6, (time.perf_counter() - wall) / n * 1e6


def main(argv=None) -> int:
    args = parse_args(argv)
    setup = common.configure(args.db, Path(f"/tmp/madoguchi-searchpath-{args.db}"))
    os.environ["MADOGUCHI_DELIVER_INLINE"] = "0"
    print(f"machine: {common.machine()}\ndatabase: {setup.kind}")
    app = common.make_app()
    common.migrate(app)
    venue_ids = common.seed_venues_and_slots(app, weeks=2)
    people = common.seed_applicants(app, args.applicants, venue_ids)
    login, secret = next(iter(common.seed_staff(app, venue_ids).items()))

    from callcenter import create_app

    served = create_app()
    for thread in threading.enumerate():
        if thread.name == "fax-digits-warm-up":
            thread.join()  # its CPU is not the search's (and it must not be cut off at exit)
    cookie, token = signed_in(served, login, secret)
    warm = 50
    rounds = 1 if args.profile else args.rounds
    searches = []
    for n in range(warm + rounds * args.requests):
        p = people[(n * 7919) % len(people)]
        q = p.phone if n % 2 else p.number
        searches.append(_environ("/search", {"csrf_token": token, "q": q, "birth": ""}, cookie))

    _round(served.wsgi_app, searches[:warm])
    if args.profile:
        print_profile(lambda: _round(served.wsgi_app, searches[warm:]), args.profile)
        return 0
    measured = [
        _round(served.wsgi_app, searches[warm + n * args.requests : warm + (n + 1) * args.requests])
        for n in range(rounds)
    ]
    cpu = [c for c, _w in measured]
    wall = [w for _c, w in measured]
    print(
        f"search (POST /search, phone and number alternately): {statistics.median(cpu):,.0f} µs CPU, "
        f"{statistics.median(wall):,.0f} µs wall per request  (CPU rounds {' '.join(f'{v:.0f}' for v in cpu)})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
