"""R9.2: SQLite's WAL checkpoints run in a background thread of each web worker, not inside the
commit of the request that fills the log (measured: such a commit took 20–25 ms, a checkpoint up
to 460 ms); the log stays bounded if the thread stops."""

from __future__ import annotations

import gc
import time

import pytest
from sqlalchemy import text

from madoguchi import checkpoints
from madoguchi.extensions import db
from reservation import create_app
from tests.conftest import ON_POSTGRES, built

pytestmark = pytest.mark.skipif(ON_POSTGRES, reason="SQLite's write-ahead log")


@pytest.fixture(autouse=True)
def _unfrozen():
    """A served app freezes the heap (``appbase.ready_to_serve``): give this test process its
    collector back afterwards."""
    yield
    gc.unfreeze()


def _autocheckpoint(app) -> int:
    with app.app_context():
        return db.session.execute(text("PRAGMA wal_autocheckpoint")).scalar()


def test_a_worker_checkpoints_in_the_background_from_its_first_request(overrides):
    """R9.2: a served app (not a test app) starts its checkpointer at its first request; its
    connections leave the log to it (they checkpoint only past FALLBACK_PAGES), and the thread
    copies what the requests wrote."""
    overrides.update(TESTING=False, SQLITE_CHECKPOINT_SECONDS=0.05)
    with built(create_app, overrides) as app:
        assert "madoguchi.checkpointer" not in app.extensions
        assert app.test_client().get("/").status_code == 200
        running = app.extensions["madoguchi.checkpointer"]
        try:
            assert running.thread.is_alive()
            assert _autocheckpoint(app) == checkpoints.FALLBACK_PAGES
            with app.app_context():
                db.session.execute(text("CREATE TABLE probe (x TEXT)"))
                db.session.execute(text("INSERT INTO probe VALUES (:x)"), [{"x": "-" * 500}] * 200)
                db.session.commit()
            before = running.done
            deadline = time.monotonic() + 5
            while (running.done <= before or not running.last[1]) and time.monotonic() < deadline:
                time.sleep(0.02)
            busy, pages, copied = running.last
            assert busy == 0 and pages > 0 and copied == pages
            assert app.test_client().get("/").status_code == 200
            assert app.extensions["madoguchi.checkpointer"] is running  # one per process
        finally:
            running.stop()
        assert not running.thread.is_alive()


def test_tests_and_the_default_setting_leave_checkpoints_to_sqlite(app, overrides):
    """R9.2: a test app (and any app with SQLITE_CHECKPOINT_SECONDS = 0) starts no thread and its
    connections keep SQLite's own checkpoint at 1,000 pages, so the log never grows unchecked."""
    assert app.test_client().get("/").status_code == 200
    assert "madoguchi.checkpointer" not in app.extensions
    assert _autocheckpoint(app) == 1000
    overrides.update(TESTING=False, SQLITE_CHECKPOINT_SECONDS=0)
    with built(create_app, overrides) as off:
        assert off.test_client().get("/").status_code == 200
        assert "madoguchi.checkpointer" not in off.extensions
        assert _autocheckpoint(off) == 1000
