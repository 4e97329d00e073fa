"""Instructions per booking request, counted by valgrind (R9.2): a figure that does not drift.

    .venv/bin/python benchmarks/instructions.py              # ours and the ceiling, SQLite
    .venv/bin/python benchmarks/instructions.py --requests 600

This machine's speed drifts by tens of percent within minutes (see RESULTS.md), so a change worth a
few percent of the booking request cannot be seen in timings (``hotpath.py``) or in the burst
(``burst.py``). Here the same prepared requests as in ``hotpath.py`` — POST /confirm with a real
session cookie, CSRF token, admitted waiting-room ticket and hold, and the ceiling's POST /book —
are called as WSGI applications in two processes run under ``valgrind --tool=callgrind``, which
counts the instructions executed while the measured requests run (and only then: the app is built
and warmed before). Counted twice, the same code gives the same figure to within 0.3 %.

Also printed: WAL frames (pages) written per request, each of which SQLite writes with two
``pwrite`` calls and later copies back into the database file (that copy, a checkpoint at the
end, is counted too). Kernel time is not in the count: a page's two system calls are what the
instructions leave out. Needs Debian's ``valgrind``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmarks import common  # noqa: E402

WORK = Path("/tmp/madoguchi-instructions")
WARM = 50


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=300, help="measured requests of each app")
    parser.add_argument("--child", choices=("ours", "ceiling"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args.child, args.requests)
    if shutil.which("valgrind") is None:
        raise SystemExit("needs valgrind (apt-get install valgrind)")
    print(f"machine: {common.machine()}")
    setup = prepare(args.requests)
    runs = {
        which: subprocess.Popen(
            [
                "valgrind",
                "--tool=callgrind",
                # Counted only inside functools.reduce, which ``child`` runs the measured requests in.
                "--collect-atstart=no",
                "--toggle-collect=functools_reduce",
                f"--callgrind-out-file={WORK / f'callgrind.{which}'}",
                sys.executable,
                __file__,
                "--child",
                which,
                "--requests",
                str(args.requests),
            ],
            env={**setup.env, "PYTHONHASHSEED": "0", "MADOGUCHI_SQLITE_CHECKPOINT_SECONDS": "0"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for which in ("ours", "ceiling")
    }
    figures = {}
    for which, run in runs.items():
        output, _ = run.communicate()
        if run.returncode != 0:
            raise SystemExit(f"{which} failed:\n{output[-3000:]}")
        frames = int(re.search(r"^frames (\d+)$", output, re.M).group(1))
        summary = (WORK / f"callgrind.{which}").read_text()
        instructions = int(re.search(r"^summary: (\d+)", summary, re.M).group(1))
        figures[which] = (instructions / args.requests, frames / args.requests)
    (ours, our_pages), (ceiling, ceiling_pages) = figures["ours"], figures["ceiling"]
    print(f"booking request (POST /confirm): {ours:,.0f} instructions, {our_pages:.1f} WAL pages per request")
    print(
        f"ceiling endpoint (POST /book):   {ceiling:,.0f} instructions, {ceiling_pages:.1f} WAL pages per request"
    )
    print(f"ours ÷ ceiling: {ours / ceiling:.2f}× ({args.requests} requests each)")
    return 0


def prepare(requests: int) -> common.Setup:
    """The database of both apps, with holds for ``WARM + requests`` residents (their cookies are
    signed by the child, just before it measures: the app signs again what is a minute old)."""
    setup = common.configure("sqlite", WORK)
    from benchmarks.burst import make_holds

    app = common.make_app()
    common.migrate(app)
    venue_ids = common.seed_venues_and_slots(app, weeks=12)
    people = common.seed_applicants(app, WARM + requests + 100, venue_ids)
    holds = make_holds(app, people, WARM + requests, timedelta(weeks=5))
    import ceiling_app

    ceiling_app.prepare()
    (WORK / "holds.json").write_text(json.dumps(holds))
    from madoguchi.extensions import db

    with app.app_context():
        db.engine.dispose()
    # Everything into the database file itself: the children copy that file alone.
    sqlite3.connect(setup.database_url.removeprefix("sqlite:///")).execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return setup


def child(which: str, requests: int) -> int:
    """Under callgrind: build the app on a copy of the database, warm it, then run the measured
    requests inside ``functools.reduce`` (the only time instructions are counted)."""
    source = Path(os.environ["DATABASE_URL"].removeprefix("sqlite:///"))
    database = source.with_name(f"run-{which}.sqlite3")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    shutil.copy(source, database)
    os.environ["DATABASE_URL"] = f"sqlite:///{database}"
    os.environ.update(
        {
            "MADOGUCHI_DELIVER_INLINE": "0",
            "MADOGUCHI_WAITING_ROOM_ENABLED": "1",
            "MADOGUCHI_WAITING_ROOM_RATE_PER_MINUTE": "300",
        }
    )
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _no_checkpoints_in_commits(dbapi_connection, _record):
        # Checkpointed once, at the end of the measured part: every commit's pages are counted
        # in the log, none is copied back while it runs.
        dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")

    from hotpath import _call, _environ

    if which == "ours":
        from benchmarks.burst import signed_requests
        from madoguchi import admission
        from madoguchi.appbase import ready_to_serve
        from reservation import create_app

        app = create_app()
        ready_to_serve(app, "reservation/")
        app.extensions["madoguchi.admission"] = admission.settings_from(app.config)
        holds = [tuple(pair) for pair in json.loads((WORK / "holds.json").read_text())]
        environs = [
            _environ("/confirm", {"csrf_token": token, "hold_id": hold}, cookie)
            for cookie, token, hold in signed_requests(app, holds[: WARM + requests])
        ]
        expected = "302"
    else:
        import ceiling_app

        app = ceiling_app.create_app()
        rng = random.Random(1)
        environs = [_environ("/book", {"slot_id": str(rng.randint(1, 1000))}) for _ in range(WARM + requests)]
        expected = "200"
    if len(environs) < WARM + requests:
        raise SystemExit(f"only {len(environs) - WARM} requests could be prepared")
    wsgi = app.wsgi_app
    for environ in environs[:WARM]:
        _call(wsgi, environ)
    checkpoint = sqlite3.connect(database)
    checkpoint.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    log = Path(f"{database}-wal")

    def measured(_done, environ):
        status = _call(wsgi, environ)
        if not status.startswith(expected):
            raise SystemExit(f"unexpected answer {status!r}")

    before = log.stat().st_size
    functools.reduce(measured, environs[WARM:], None)
    frames = (log.stat().st_size - before) // (4096 + 24)
    functools.reduce(
        lambda _d, _e: checkpoint.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall(), [0], None
    )
    print(f"frames {frames}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
