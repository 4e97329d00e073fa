"""SQLite's WAL checkpoints off the request path (R9.2; docs/capacity.md).

In WAL mode SQLite copies the log back into the database file ("checkpoint") from inside the commit
that makes the log pass 1,000 pages: that request then waits for the copy and its fsyncs. Measured
under the admitted-rate burst on this machine's disk, such a commit took 20–25 ms, and a checkpoint
up to 460 ms. Each web worker therefore runs one daemon thread that checkpoints (PASSIVE: it never
waits for or blocks readers and writers) every ``SQLITE_CHECKPOINT_SECONDS``, and the app's own
connections checkpoint by themselves only if the log grows past ``FALLBACK_PAGES`` (the thread
stopped, or writes outran it), so the log stays bounded whatever happens to the thread.
"""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import threading

from sqlalchemy import event

log = logging.getLogger(__name__)

# The log size (pages of 4 kB) past which a committing connection checkpoints anyway: far above
# what a second of a burst writes (a booking writes a handful of pages), bounded (40 MB).
FALLBACK_PAGES = 10_000


class Checkpointer:
    """One thread per process that checkpoints the database at ``path`` every ``every`` seconds."""

    def __init__(self, path: str, every: float):
        self.path = path
        self.every = every
        self.stopped = threading.Event()
        self.pid = os.getpid()
        self.done = 0  # checkpoints run (SQLite answered)
        self.last: tuple[int, int, int] | None = None
        self.thread = threading.Thread(target=self._run, name="sqlite-checkpoints", daemon=True)

    def start(self) -> Checkpointer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)

    def checkpoint_once(self, connection: sqlite3.Connection) -> tuple[int, int, int]:
        """(busy, pages in the log, pages copied): SQLite's answer to a PASSIVE checkpoint."""
        busy, pages, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.done += 1
        self.last = (busy, pages, copied)
        return self.last

    def _run(self) -> None:
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            connection.execute("PRAGMA busy_timeout=0")  # another worker checkpointing: skip this turn
            # Workers started together would all checkpoint at the same instants: spread them.
            while not self.stopped.wait(self.every * random.uniform(0.75, 1.25)):  # noqa: S311
                try:
                    self.checkpoint_once(connection)
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) and "busy" not in str(exc):
                        log.warning(
                            "WAL checkpoint failed (%s); commits checkpoint past %d pages",
                            type(exc).__name__,
                            FALLBACK_PAGES,
                        )
        finally:
            connection.close()


_lock = threading.Lock()


def install(app) -> None:
    """Checkpoint in the background in each process that serves the app's requests: started at its
    first request (so a gunicorn worker, forked after the app was built, starts its own; the CLI,
    which serves none, starts none). Nothing on PostgreSQL, in tests, or when
    ``SQLITE_CHECKPOINT_SECONDS`` is 0 (SQLite then checkpoints inside commits, its default)."""
    if app.testing or app.config.get("SQLITE_CHECKPOINT_SECONDS", 0) <= 0:
        return
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        return

    @app.before_request
    def _checkpoints():
        running = app.extensions.get("madoguchi.checkpointer")
        if running is None or running.pid != os.getpid():
            start_for(app)


def start_for(app) -> Checkpointer | None:
    """Start this process's checkpointer for the app's SQLite database, once per process."""
    from .extensions import db

    engine = db.engine  # inside the request: this app's engine
    if engine.dialect.name != "sqlite" or not engine.url.database:
        return None
    with _lock:
        running = app.extensions.get("madoguchi.checkpointer")
        if running is not None and running.pid == os.getpid() and running.thread.is_alive():
            return running
        if not event.contains(engine, "connect", _checkpoint_late):
            event.listen(engine, "connect", _checkpoint_late)
            # Connections made before checkpoint at 1,000 pages: let the pool make new ones.
            engine.dispose()
        checkpointer = Checkpointer(engine.url.database, app.config["SQLITE_CHECKPOINT_SECONDS"]).start()
        app.extensions["madoguchi.checkpointer"] = checkpointer
        return checkpointer


def _checkpoint_late(dbapi_connection, _record) -> None:
    dbapi_connection.execute(f"PRAGMA wal_autocheckpoint={FALLBACK_PAGES}")
