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


def test_limited_views_keep_their_rate_limit_headers_and_others_skip_the_hook(overrides, request):
    """R3.5, R9.2: Flask-Limiter's response hook runs for the views marked ``rate_limited`` only —
    their answers still carry the X-RateLimit headers, other pages none — and its teardown is gone
    (the limiter's state of a request lives in the request context)."""
    from madoguchi.extensions import limiter

    overrides["RATELIMIT_ENABLED"] = True
    app = request.getfixturevalue("app")
    client = app.test_client()
    assert not any(getattr(hook, "__self__", None) is limiter for hook in app.teardown_request_funcs[None])
    assert getattr(app.view_functions["reservation.start"], "rate_limited", False)
    limited = client.post("/start", data={})
    assert limited.headers["X-RateLimit-Limit"] == "10"
    assert limited.headers["X-RateLimit-Remaining"] == "9"
    plain = client.get("/")
    assert plain.status_code == 200
    assert "X-RateLimit-Limit" not in plain.headers


def test_no_limit_is_charged_by_its_response():
    """The hook skipped for unmarked views is also the one that charges ``deduct_when`` limits: no
    view may declare one (``appbase._limits_where_decorated_only``)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    views = [
        path
        for folder in ("reservation", "callcenter", "staffweb", "admin")
        for path in (root / folder).rglob("*.py")
    ]
    assert len(views) > 5
    assert not [path for path in views if "deduct_when" in path.read_text(encoding="utf-8")]


def test_an_unchanged_session_sends_no_cookie_but_varies_on_it(app, client):
    """R9.2: the session's cookie is signed again only when it changed or is due for a refresh; the
    response still says it depends on the cookie (Vary), once."""
    client.get("/start")  # the form's CSRF token is put into the session: a cookie is set
    again = client.get("/start")
    assert "session=" not in again.headers.get("Set-Cookie", "")
    assert again.headers.getlist("Vary").count("Cookie") == 1


def test_session_cookies_are_flask_s_own_signature(app):
    """The session is signed with HMAC-SHA1 through OpenSSL: a cookie it signs is read by Flask's
    own interface, and the other way round (cookies issued before the change stay valid)."""
    from flask.sessions import SecureCookieSessionInterface

    ours = app.session_interface.get_signing_serializer(app)
    flasks = SecureCookieSessionInterface().get_signing_serializer(app)
    assert flasks.loads(ours.dumps({"applicant_id": "a"})) == {"applicant_id": "a"}
    assert ours.loads(flasks.dumps({"applicant_id": "b"})) == {"applicant_id": "b"}


def test_page_addresses_are_built_once_and_as_flask_builds_them(app, monkeypatch):
    """R9.2: ``url_for`` for a page without parameters is built once per mount point and then reused;
    every address is the one Flask builds, relative endpoints resolve in the request's blueprint,
    each mount point (SCRIPT_NAME) gets its own, and anything with parameters, an anchor, a method or
    an external address is Flask's own work each time."""
    import flask

    built = []
    real = flask.Flask.url_for
    monkeypatch.setattr(flask.Flask, "url_for", lambda self, *a, **k: built.append(a) or real(self, *a, **k))
    for root in ("", "/yoyaku"):
        with app.test_request_context("/confirm", base_url=f"http://localhost{root}/"):
            assert flask.request.blueprint == "reservation"
            first = flask.url_for(".done")
            assert first == f"{root}/done" == flask.url_for("reservation.done")
            assert flask.url_for("static", filename="css/site.css") == f"{root}/static/css/site.css"
            assert flask.url_for(".done", _anchor="x") == f"{root}/done#x"
            assert flask.url_for(".done", _external=True) == f"http://localhost{root}/done"
    # Built by Flask: ".done" once per mount point, the others every time.
    assert [args for args in built if args == ("reservation.done",)] == [("reservation.done",)] * 2
    assert sum(1 for args in built if args == ("static",)) == 2
