"""The request cycle every app shares (appbase): Flask's hooks resolved once per function, and
the security headers added to every response in one pass without overriding a view's own."""

from __future__ import annotations

import flask.app

from madoguchi.appbase import MadoguchiFlask


def test_hooks_are_resolved_once_per_function(app, monkeypatch):
    """R9.2: Flask asks for every hook in every request whether it is a coroutine function; the
    answer is kept per function, the same callable is used again, and the map is capped (per-request
    callables such as ``after_this_request`` must not grow it)."""
    assert isinstance(app, MadoguchiFlask)
    asked = []
    real = flask.app.iscoroutinefunction
    monkeypatch.setattr(flask.app, "iscoroutinefunction", lambda func: asked.append(func) or real(func))

    def hook():
        return None

    assert app.ensure_sync(hook) is hook
    assert app.ensure_sync(hook) is hook
    assert asked.count(hook) == 1  # Flask's own check ran once, not on each use
    monkeypatch.setattr(MadoguchiFlask, "SYNCED_CAP", len(app._synced) + 2)
    for n in range(10):
        app.ensure_sync(lambda n=n: n)
    assert len(app._synced) == MadoguchiFlask.SYNCED_CAP


def test_security_headers_once_each_and_a_views_own_kept(app, client):
    """Standard (security headers): a page gets each header exactly once; a view that sets its own
    Cache-Control keeps it (no second one); static files are not marked no-store."""

    @app.get("/_test/own-cache")
    def _own_cache():
        return "ok", 200, {"Cache-Control": "private, max-age=60"}

    page = client.get("/start")
    for name in ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy"):
        assert len(page.headers.getlist(name)) == 1, name
    assert page.headers.getlist("Cache-Control") == ["no-store"]
    own = client.get("/_test/own-cache")
    assert own.headers.getlist("Cache-Control") == ["private, max-age=60"]
    assert own.headers["X-Frame-Options"] == "DENY"
    static = client.get("/static/css/site.css")
    assert static.status_code == 200
    assert "no-store" not in static.headers.get("Cache-Control", "")
    assert static.headers["X-Content-Type-Options"] == "nosniff"
