"""End-to-end fixtures: the residents' app served for real (CSRF on) and Debian's chromium driven
by Playwright's sync API, as a person would use the pages (issue "Tests as a person would use it", R3).

Nothing here downloads a browser: it uses /usr/bin/chromium and skips the folder when it is missing.
"""

from __future__ import annotations

import re
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.conftest import built

ROOT = Path(__file__).resolve().parent.parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
TABLET = {"width": 1024, "height": 768}  # a tablet in landscape on a venue's counter
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    """No chromium, no e2e: skip every test of this folder with a reason that says what to install."""
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(
        reason=f"e2e tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)"
    )
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(skip)


# ---- the app, served ------------------------------------------------------------------------
@pytest.fixture
def overrides(overrides):
    """The base test settings, with CSRF protection ON as in production (forms carry real tokens).

    Same name as the parent fixture: ``app`` reads this dict when it is created, so every e2e test
    gets CSRF whatever order its fixtures are requested in.
    """
    overrides["WTF_CSRF_ENABLED"] = True
    return overrides


def _closing(app):
    """Close every response before it is sent, as gunicorn closes it right after sending.

    Werkzeug's development server skips ``close()`` when the browser resets the connection (Chromium
    does, following a redirect), and the app sends a request's messages on close: the tests would
    wait for mail that a production server sends. Event streams pass through unbuffered."""

    def app_closing_responses(environ, start_response):
        captured = {}

        def remember(status, headers, exc_info=None):
            captured["headers"] = headers
            return start_response(status, headers, exc_info)

        body = app(environ, remember)
        streaming = any(
            k.lower() == "content-type" and "event-stream" in v for k, v in captured.get("headers", [])
        )
        if streaming:
            return body
        try:
            return [b"".join(body)]
        finally:
            if hasattr(body, "close"):
                body.close()

    return app_closing_responses


@contextmanager
def serving(app, *, https: bool = False):
    """Serve ``app`` on a real HTTP server (127.0.0.1, a free port); yields the base URL. With
    ``https``, over TLS with a throwaway self-signed certificate, as production is served."""
    server = make_server("127.0.0.1", 0, _closing(app), threaded=True, ssl_context="adhoc" if https else None)
    thread = threading.Thread(target=server.serve_forever, name="e2e-live-server", daemon=True)
    thread.start()
    try:
        yield f"{'https' if https else 'http'}://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def live_server(app):
    """The residents' app (the ``app`` fixture) served for real; yields the base URL."""
    with serving(app) as url:
        yield url


@pytest.fixture
def admin_app(overrides):
    """The back office on this test's database, CSRF on."""
    from admin import create_app

    with built(create_app, overrides) as app:
        yield app


@pytest.fixture
def admin_server(admin_app):
    with serving(admin_app) as url:
        yield url


@pytest.fixture
def callcenter_app(overrides):
    """The call center on this test's database, CSRF on, with a Twilio auth token for webhooks."""
    from callcenter import create_app

    with built(create_app, {**overrides, "TWILIO_AUTH_TOKEN": "e2e-twilio-auth-token"}) as app:
        yield app


@pytest.fixture
def callcenter_server(callcenter_app):
    with serving(callcenter_app) as url:
        yield url


# ---- the browser ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"e2e tests need Debian's chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    finally:
        playwright.stop()


class PageProblems:
    """What went wrong in the browser behind the test's back: server errors, script errors, CSP."""

    def __init__(self):
        self.server_errors: list[str] = []
        self.page_errors: list[str] = []
        self.console_errors: list[str] = []
        self.allowed_statuses: set[int] = set()

    def attach(self, page):
        page.on("response", lambda r: r.status >= 500 and self.server_errors.append(f"{r.status} {r.url}"))
        page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))
        page.on("console", self._console)

    def _console(self, message):
        if message.type != "error":
            return
        url = message.location.get("url", "")
        if url.endswith("/favicon.ico"):
            return  # the browser asks for it by itself; the app has none (not a page's fault)
        if any(f"status of {code} " in message.text for code in self.allowed_statuses):
            return  # a refusal the test provoked on purpose (e.g. 401 for a wrong code)
        self.console_errors.append(f"{message.text} ({url})")

    def check(self):
        assert not self.server_errors, f"server errors: {self.server_errors}"
        assert not self.page_errors, f"script errors: {self.page_errors}"
        assert not self.console_errors, f"console errors (CSP, failed loads): {self.console_errors}"


@contextmanager
def _open_page(browser, base_url, request, viewport):
    """A fresh browser context on ``base_url``; on exit it closes and fails on what went wrong."""
    context = browser.new_context(
        base_url=base_url,
        viewport=viewport,
        locale="ja-JP",
        timezone_id="Asia/Tokyo",
        ignore_https_errors=base_url.startswith("https:"),  # the test server's self-signed certificate
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    problems = PageProblems()
    problems.attach(page)
    folder = ARTIFACTS / re.sub(r"[^\w.-]+", "_", request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    page._e2e_shots = {"folder": folder, "count": 0}  # read by shot()
    page._e2e_problems = problems  # read by allow_status()
    yield page
    context.close()
    problems.check()


@pytest.fixture
def page(browser, live_server, request):
    """A fresh browser context per test, as a phone (390×844). ``page.goto("/")`` opens the app."""
    with _open_page(browser, live_server, request, PHONE) as opened:
        yield opened


@pytest.fixture
def https_page(browser, app, request):
    """A phone on the residents' app served over HTTPS (as in production: Secure cookies, Flask-WTF's
    same-origin referrer check on every form)."""
    app.config["SESSION_COOKIE_SECURE"] = True  # as config.load sets it in production
    with serving(app, https=True) as url, _open_page(browser, url, request, PHONE) as opened:
        yield opened


@pytest.fixture
def desktop_page(browser, live_server, request):
    """The same on a desktop screen (1280×900)."""
    with _open_page(browser, live_server, request, DESKTOP) as opened:
        yield opened


def shot(page, name: str) -> Path:
    """Save a full-page screenshot as test-artifacts/e2e/<test name>/<NN>-<name>.png (gitignored)."""
    state = page._e2e_shots
    state["count"] += 1
    path = state["folder"] / f"{state['count']:02d}-{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture
def staff_page(browser, admin_server, request):
    """A desktop browser on the back office (staff work at desks)."""
    with _open_page(browser, admin_server, request, DESKTOP) as opened:
        yield opened


@pytest.fixture
def tablet_page(browser, admin_server, request):
    """A tablet (1024×768, landscape) on the back office: the venue counter's check-in screen."""
    with _open_page(browser, admin_server, request, TABLET) as opened:
        yield opened


@pytest.fixture
def operator_page(browser, callcenter_server, request):
    """A desktop browser on the call center (operators work at desks with a headset)."""
    with _open_page(browser, callcenter_server, request, DESKTOP) as opened:
        yield opened


def allow_status(page, code: int) -> None:
    """The test provokes responses with this status on purpose: the browser's console line is expected."""
    page._e2e_problems.allowed_statuses.add(code)
