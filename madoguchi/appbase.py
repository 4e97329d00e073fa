"""``create_base_app``: what every front end shares — extensions, keys, headers, errors, and one
commit per request (DESIGN: "The rules that keep it simple" 3)."""

from __future__ import annotations

import functools
import gc
import hashlib
import json
import logging
import traceback
from datetime import UTC, datetime, timedelta

from babel import support
from flask import (
    Flask,
    Request,
    Response,
    current_app,
    g,
    has_request_context,
    make_response,
    render_template,
    request,
)
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SecureCookieSessionInterface
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from itsdangerous import BadSignature
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from . import checkpoints, dates, notify, numbers
from . import config as config_module
from .crypto import KeyError_, KeySource
from .extensions import (
    babel,
    begin_read_only,
    begin_write,
    csrf,
    db,
    existing_session,
    forget_deferred,
    limiter,
    migrate,
    read_then_write,
    write_deferred,
)

# Register every model with the metadata (migrations and the app need them all).
from .models import OutboundMessage  # noqa: F401
from .models.bookings import Channel, Status
from .signing import QuickTimedSerializer
from .templating import FoldedGettext

ROOT = config_module.ROOT
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

ERROR_MESSAGES = {
    400: "入力内容を確認できませんでした。もう一度お試しください。",
    403: "このページを表示する権限がありません。",
    404: "お探しのページは見つかりませんでした。",
    405: "この操作はできません。",
    413: "送信された内容が大きすぎます。入力内容を確認して、もう一度お試しください。",
    429: "短い時間に多くの操作がありました。しばらく時間をおいてからお試しください。",
    500: "システムで問題が発生しました。お手数ですが、時間をおいて再度お試しください。",
    503: "ただいま混み合っています。お手数ですが、少し時間をおいて再度お試しください。",
}


class MadoguchiFlask(Flask):
    """Flask, remembering what never changes while it runs: for each hook, view and handler whether
    it must be wrapped to run synchronously (Flask asks ``inspect`` anew for each of them in every
    request, some fourteen calls per booking request, R9.2; Madoguchi has no coroutine views), and
    the address of each page without parameters (``url_for``)."""

    # Hooks and views are a few dozen functions; the cap keeps per-request callables (Flask's
    # ``after_this_request``) from growing the map.
    SYNCED_CAP = 1024

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._synced: dict = {}
        self._urls: dict[tuple[str, str], str] = {}

    def ensure_sync(self, func):
        synced = self._synced.get(func)
        if synced is None:
            synced = _remember(self._synced, self.SYNCED_CAP, func, super().ensure_sync(func))
        return synced

    # Addresses of pages without parameters, as built in a request, per mount point (SCRIPT_NAME):
    # every page links to a dozen of them (the staff apps' navigation), each built by Werkzeug's
    # URL map in ~8 µs, a twentieth of an operator's search (R9.2). Capped like the map above.
    URL_CAP = 1024

    def url_for(self, endpoint, /, *, _anchor=None, _method=None, _scheme=None, _external=None, **values):
        plain = not values and _anchor is None and _method is None and _scheme is None and not _external
        defaults = self.url_default_functions  # none in Madoguchi: each would have to run
        if not plain or (defaults and any(defaults.values())) or not has_request_context():
            return super().url_for(
                endpoint, _anchor=_anchor, _method=_method, _scheme=_scheme, _external=_external, **values
            )
        req = request._get_current_object()
        if endpoint[:1] == ".":  # relative to the request's blueprint, as Flask resolves it
            blueprint = req.blueprint
            endpoint = f"{blueprint}{endpoint}" if blueprint is not None else endpoint[1:]
        key = (endpoint, req.script_root)
        url = self._urls.get(key)
        if url is None:
            url = _remember(self._urls, self.URL_CAP, key, super().url_for(endpoint))
        return url


def _remember(memo: dict, cap: int, key, value):
    """``value``, kept in ``memo`` under ``key`` while the memo holds fewer than ``cap`` entries."""
    if len(memo) < cap:
        memo[key] = value
    return value


def create_base_app(
    import_name: str,
    *,
    overrides: dict | None = None,
    blueprints=(),
    require_keys: bool = True,
    write_every_request: bool = False,
) -> Flask:
    app = MadoguchiFlask(
        import_name,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=str(config_module.INSTANCE),
    )
    app.config.update(config_module.load(overrides))
    if app.config["PROXY_FIX_HOPS"]:
        hops = app.config["PROXY_FIX_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    app.request_class = _request_class(app.config)
    app.session_interface = ThriftySessionInterface()
    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    csrf.init_app(app)
    babel.init_app(app, locale_selector=lambda: config_module.LOCALE)
    # Pages are written in Japanese, the one locale: the catalogue is loaded once per process, not
    # looked up through the request for each of the hundreds of strings a page has (profiled: a
    # tenth of the calendar and of the call-center console, R9.2). Same new-style gettext as Babel's.
    app.jinja_env.install_gettext_translations(
        support.Translations.load(str(ROOT / "translations"), [config_module.LOCALE]), newstyle=True
    )
    # Fixed texts are translated once, when a template is compiled (R9.2; madoguchi/templating.py).
    app.jinja_env.add_extension(FoldedGettext)
    limiter.init_app(app)
    _limits_where_decorated_only(app)

    _load_keys(app, require_keys)
    app.extensions["madoguchi.clock"] = dates.Clock()
    _register_filters(app)
    _register_request_cycle(app, write_every_request)
    checkpoints.install(app)
    _register_errors(app)
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    return app


# Templates every app renders (the layout, the error page, the form macros).
_SHARED_TEMPLATES = ("base.html", "errors.html", "_macros/")


def warm_templates(app: Flask, *folders: str) -> int:
    """Compile the app's templates when a worker starts, not in its first requests: under a burst
    each fresh worker's first pages took 50–150 ms more (R9.2). Tests skip it (``app.testing``)
    unless they call it. Returns how many were compiled."""
    env = app.jinja_env
    names = [name for name in env.list_templates() if name.startswith((*_SHARED_TEMPLATES, *folders))]
    for name in names:
        env.get_template(name)
    return len(names)


def ready_to_serve(app: Flask, *folders: str) -> None:
    """What a web worker does once its app is built, before its first request (not in tests): its
    templates are compiled (``warm_templates``), then everything made so far is moved out of the
    garbage collector's reach (``gc.freeze``): the app, its templates and its libraries live as long
    as the process, and each full collection walked them all — traced under the 10× burst, the first
    full collection of each worker paused its request for 75–95 ms (R9.2)."""
    if app.testing:
        return
    warm_templates(app, *folders)
    gc.collect()
    gc.freeze()


def _request_class(config) -> type[Request]:
    """Flask's Request with the app's limits on request bodies set on the class, as read when the app
    is built: Flask looks each of MAX_CONTENT_LENGTH, MAX_FORM_MEMORY_SIZE and MAX_FORM_PARTS up
    through the app in every request that reads a form (eight look-ups per booking, R9.2)."""
    return type(
        "Request",
        (Request,),
        {
            "_max_content_length": config["MAX_CONTENT_LENGTH"],
            "_max_form_memory_size": config["MAX_FORM_MEMORY_SIZE"],
            "_max_form_parts": config["MAX_FORM_PARTS"],
        },
    )


class _SessionJSON(TaggedJSONSerializer):
    """Flask's tagged JSON for the session cookie, parsed by the json module directly: Flask's own
    ``loads`` goes through the app (``current_app.json``), whose default provider calls the json
    module (R9.2). Writing is Flask's, unchanged."""

    def loads(self, value: str):
        return self._untag_scan(json.loads(value))


class ThriftySessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, signed again for an unchanged session at most once a minute.

    Flask re-signs a permanent session's cookie on every response to slide its expiry; that was a
    twentieth of a booking request (R9.2). The expiry still slides, to within a minute.
    """

    REFRESH_AFTER = timedelta(seconds=60)
    serializer = _SessionJSON()
    # The same HMAC-SHA1 as Flask's, which passes a Python function (so that a FIPS build without
    # SHA-1 fails late): the hmac module then runs HMAC in Python instead of OpenSSL's C (R9.2).
    digest_method = staticmethod(hashlib.sha1)

    def __init__(self):
        self._serializers: dict[tuple, object] = {}

    def get_signing_serializer(self, app: Flask):
        # Flask builds a new serializer for every request (twice); it holds nothing per request.
        # Flask's own, read quickly (madoguchi/signing.py).
        key = (app.secret_key, tuple(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        serializer = self._serializers.get(key)
        if serializer is None:
            made = super().get_signing_serializer(app)
            serializer = self._serializers[key] = made and QuickTimedSerializer.like(made)
        return serializer

    def open_session(self, app: Flask, request):
        serializer = self.get_signing_serializer(app)
        if serializer is None:
            return None
        value = request.cookies.get(self.get_cookie_name(app))
        if not value:
            return self.session_class()
        try:
            data, signed_at = serializer.loads(
                value, max_age=int(app.permanent_session_lifetime.total_seconds()), return_timestamp=True
            )
        except BadSignature:
            return self.session_class()
        session = self.session_class(data)
        session.signed_at = signed_at
        return session

    def save_session(self, app: Flask, session, response) -> None:
        # The usual end of a request: the session unchanged, its cookie not due for a refresh. Flask
        # reads the cookie's seven settings before finding that out, and parses the Vary header to
        # add one value (R9.2).
        if session and not self.should_set_cookie(app, session):
            if session.accessed:
                if "Vary" in response.headers:
                    response.vary.add("Cookie")
                else:
                    response.headers["Vary"] = "Cookie"
            return
        super().save_session(app, session, response)

    def should_set_cookie(self, app: Flask, session) -> bool:
        if session.modified:
            return True
        if not (session.permanent and app.config["SESSION_REFRESH_EACH_REQUEST"]):
            return False
        signed_at = getattr(session, "signed_at", None)
        return signed_at is None or datetime.now(UTC) - signed_at >= self.REFRESH_AFTER


def _limits_where_decorated_only(app: Flask) -> None:
    """Flask-Limiter looks for application-wide limits before every request; Madoguchi sets none
    (``default_limits=[]``): the limited views (look-ups, staff sign-in) check their own limits in
    their decorator. The per-request look-up was 4 % of a booking request (R9.2)."""
    if any(app.config.get(name) for name in ("RATELIMIT_DEFAULT", "RATELIMIT_APPLICATION", "RATELIMIT_META")):
        return
    hooks = app.before_request_funcs.get(None, [])
    if limiter._check_request_limit in hooks:  # absent when RATELIMIT_ENABLED is off
        hooks.remove(limiter._check_request_limit)
    # Its response hook adds the X-RateLimit headers of a limited view and charges ``deduct_when``
    # limits (Madoguchi has none); every other response paid for it, and for the teardown that
    # clears the limiter's state of the request, which goes with the request context anyway: 2 % of
    # a booking request (R9.2). It now runs for the views marked by ``extensions.rate_limited``.
    after = app.after_request_funcs.setdefault(None, [])
    for position, hook in enumerate(after):
        if isinstance(hook, functools.partial) and hook.args == (limiter,):
            after[position] = _for_limited_views(app, hook)
    teardown = app.teardown_request_funcs.setdefault(None, [])
    teardown[:] = [hook for hook in teardown if getattr(hook, "__self__", None) is not limiter]


def _for_limited_views(app: Flask, hook):
    def _rate_limit_headers(response):
        view = app.view_functions.get(request.endpoint)
        return hook(response) if getattr(view, "rate_limited", False) else response

    return _rate_limit_headers


def _load_keys(app: Flask, required: bool) -> None:
    try:
        app.extensions["madoguchi.keys"] = KeySource(app.config)
    except KeyError_:
        if required:
            # R2.5: no keys, no service — and the message never prints key material.
            raise config_module.ConfigError(
                "field keys are missing or unreadable: run `madoguchi keys init` "
                "or set MADOGUCHI_KEY_FILE / MADOGUCHI_KEYS"
            ) from None


# What staff read for a booking's status and channel (the stored values are English codes).
STATUS_LABELS = {
    Status.BOOKED: _l("予約済み"),
    Status.ARRIVED: _l("受付済み"),
    Status.HANDED_OVER: _l("交付済み"),
    Status.CANCELLED: _l("取消し"),
    Status.NO_SHOW: _l("来庁なし"),
    Status.POSTPONED: _l("後日受取"),
}
# A booking's history (BookingEvent.action).
ACTION_LABELS = {
    "booked": _l("予約"),
    "changed": _l("日時の変更"),
    "cancelled": _l("取消し"),
    "venue:arrived": _l("会場で受付"),
    "venue:handed_over": _l("カード交付"),
    "venue:no_show": _l("来庁なし"),
    "venue:postponed": _l("後日受取"),
    "venue:undone": _l("会場記録の訂正"),
}
CHANNEL_LABELS = {
    Channel.WEB: _l("ウェブ"),
    Channel.PHONE: _l("電話"),
    Channel.FAX: _l("FAX"),
    Channel.COUNTER: _l("窓口"),
}


def _register_filters(app: Flask) -> None:
    weekdays = "月火水木金土日"

    def jp_date(value) -> str:
        return f"{value.year}年{value.month}月{value.day}日（{weekdays[value.weekday()]}）"

    def jp_datetime(value) -> str:
        local = dates.tokyo(value)
        return f"{jp_date(local)} {local:%H:%M}"

    app.jinja_env.filters.update(
        jp_date=jp_date,
        jp_datetime=jp_datetime,
        hhmm=lambda value: f"{dates.tokyo(value):%H:%M}",
        wareki=dates.wareki,
        reservation_number=numbers.display,
        booking_status=lambda value: STATUS_LABELS.get(value, value),
        booking_channel=lambda value: CHANNEL_LABELS.get(value, value),
        booking_action=lambda value: ACTION_LABELS.get(value, value),
    )


def _register_request_cycle(app: Flask, write_every_request: bool) -> None:
    app.extensions["madoguchi.write_every_request"] = write_every_request
    app.before_request(begin_request_transaction)

    # Flask runs after_request functions last registered first: the headers are set on whatever
    # response ``_commit`` ends with (its error page too).
    # (lower-cased name, name, value): set once here, added to each response in one pass where the
    # view has not set its own (werkzeug's setdefault scans the headers once per name; R9.2).
    security_headers = [
        (
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
        ),
        ("X-Frame-Options", "DENY"),
        ("X-Content-Type-Options", "nosniff"),
        # Our own address to ourselves only: no other site learns which page linked to it, and over
        # HTTPS Flask-WTF refuses a form whose Referer is not this site (with "no-referrer" the
        # browser sent none, and every form was refused: tests/e2e test_book_over_https).
        ("Referrer-Policy", "same-origin"),
        ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
    ]
    if app.config["MADOGUCHI_ENV"] == "production":
        security_headers.append(("Strict-Transport-Security", "max-age=63072000; includeSubDomains"))
    for_pages = [(name.lower(), name, value) for name, value in security_headers]
    # Pages may show personal data: never keep them in a shared or browser cache.
    for_static = list(for_pages)
    for_pages.append(("cache-control", "Cache-Control", "no-store"))

    @app.after_request
    def _security_headers(response):
        headers = response.headers
        present = {name.lower() for name, _value in headers}  # (name, value) pairs
        wanted = for_static if request.endpoint == "static" else for_pages
        headers.extend([(name, value) for lower, name, value in wanted if lower not in present])
        return response

    @app.after_request
    def _commit(response):
        session = existing_session()
        if session is None:  # nothing read or written through the session (the confirmation)
            return _after_commit(response)
        if response.status_code >= 500:
            session.rollback()
            forget_deferred(session)
            return response
        # A read-only staff request: its audit entries are written before its page leaves; if
        # they cannot be, the page is replaced by the error page (nothing read goes unlogged).
        try:
            wrote = write_deferred(session)
        except SQLAlchemyError as exc:
            session.rollback()
            app.logger.error(
                "the audit entries of %s %s could not be written (%s); its page was not sent",
                request.method,
                request.url_rule,
                type(exc).__name__,
            )
            return error_response(503)
        # A writes_late view may have committed already: nothing begun, nothing pending, no commit.
        if not wrote and (session.in_transaction() or session.new or session.dirty or session.deleted):
            session.commit()
        return _after_commit(response)

    def _after_commit(response):
        request_g = g._get_current_object()  # one look-up through Flask's proxy, not two
        queued = request_g.pop("queued_messages", [])
        if queued and request_g.pop("deliver_messages", True):
            response.call_on_close(functools.partial(_deliver_after_response, app, queued))
        return response

    @app.teardown_request
    def _rollback(exc):
        session = existing_session()
        if exc is not None and session is not None:
            session.rollback()


def begin_request_transaction() -> None:
    """Begin the request's transaction as its kind needs (also after a hook committed early).

    SQLite: a request that changes data takes the write lock at BEGIN (see extensions); staff apps
    write on every request (session touch, audit entries for each view); a ``writes_late`` view
    begins its own write transaction in its service.
    """
    app = current_app._get_current_object()  # used three times: one look-up through the proxy
    view = app.view_functions.get(request.endpoint)
    if getattr(view, "writes_late", False):
        # Read-only until its service asks for the write lock (SQLite refuses a write before it).
        begin_read_only()
        return
    if app.extensions["madoguchi.write_every_request"]:
        if request.method not in WRITE_METHODS or getattr(view, "reads_only", False):
            # Staff pages that only show data: their audit entries and session touch are written
            # in one short write transaction once the page is rendered (extensions.read_then_write).
            read_then_write()
        else:
            begin_write()
    elif request.method in WRITE_METHODS:
        begin_write()


def reads_only(view):
    """Mark a staff view that changes nothing though it is a POST (a search: its terms stay out of
    the URL): it reads like a GET, its audit entry is written after it rendered (R9.2)."""
    view.reads_only = True
    return view


def writes_late(view):
    """Mark a view whose service starts its own short write transaction (``begin_write_now``): the
    request does not take SQLite's write lock at its start, so reading the session, validating the
    form and rendering never hold it (the residents' hold and confirm in a burst, R9.2)."""
    view.writes_late = True
    return view


def _deliver_after_response(app: Flask, message_ids: list[str]) -> None:
    """Send what the request queued once its response has gone out: a resident never waits for
    a mail server or Twilio. A failure stays queued for `madoguchi outbox deliver`."""
    with app.app_context():
        try:
            notify.deliver_these(message_ids)
        except Exception:  # noqa: BLE001 - delivery must never turn a done booking into an error
            db.session.rollback()
            app.logger.exception("delivery after the response failed; messages stay queued")
        finally:
            db.session.remove()


def render_error(status: int):
    message = _(ERROR_MESSAGES.get(status, ERROR_MESSAGES[500]))
    return render_template("errors.html", status=status, message=message), status


def error_response(status: int) -> Response:
    g.deliver_messages = False
    return make_response(render_error(status))


def _register_errors(app: Flask) -> None:

    @app.errorhandler(CSRFError)
    def _csrf(_exc):
        g.deliver_messages = False
        return render_template(
            "errors.html",
            status=400,
            message=_(
                "画面を開いてから時間がたったため、操作を受け付けられませんでした。もう一度はじめからお試しください。"
            ),
        ), 400

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        g.deliver_messages = False
        return render_error(exc.code or 500)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        # Log the type, the route and (if enabled) the frames, never the message: messages and
        # chained exceptions can carry personal values (standard 4).
        db.session.rollback()
        frames = ""
        if app.config.get("LOG_TRACEBACKS", False):
            frames = "\n" + "".join(traceback.format_list(traceback.extract_tb(exc.__traceback__)))
        app.logger.error(
            "unhandled %s at %s %s%s", type(exc).__name__, request.method, request.url_rule, frames
        )
        return render_error(500)


logging.getLogger("werkzeug").setLevel(logging.WARNING)
