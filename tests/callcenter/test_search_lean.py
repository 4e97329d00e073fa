"""The operator's search made lean (R9.2: staff search p99 < 20 ms) without giving up what it must
do: every search is audited (R7.4), a disabled or re-roled staff member is refused at the next
request (R7.2, R7.3), the unlogged-calls reminder is at most its lifetime late, and nothing
personal is kept in a per-process cache."""

from __future__ import annotations

from datetime import timedelta

import pytest
from markupsafe import Markup
from sqlalchemy import update

from madoguchi import auth, cache, dates, numbers, search
from madoguchi.crypto import new_row_id
from madoguchi.extensions import db
from madoguchi.models import Call, Staff
from madoguchi.templating import FoldedGettext
from tests.staffsupport import advance, audit_entries

BADGE = "記録票が未入力の通話が"


def _search(client, q):
    return client.post("/search", data={"q": q, "birth": ""})


def _unlogged_call(app, operator_id: int) -> str:
    """A call this operator took elsewhere (another worker, the PBX) and has not logged."""
    with app.app_context():
        call = Call(
            id=new_row_id(),
            call_sid=None,
            direction="inbound",
            status="in-progress",
            started_at=dates.now(),
            operator_id=operator_id,
            answered_at=dates.now(),
        )
        db.session.add(call)
        db.session.commit()
        return call.id


def _change_staff(app, staff_id: int, **values) -> None:
    """What an administrator's change in the back office leaves in the database."""
    with app.app_context():
        db.session.execute(update(Staff).where(Staff.id == staff_id).values(**values))
        db.session.commit()


def test_every_search_is_audited_with_the_caches_warm(cc_app, operator_client, caller, operator):
    """R9.2, R7.4: one entry per search, however often the operator searches — nothing that is
    kept between requests skips the audit."""
    typed = [caller.number, "090-1111-2222", "コウトウタロウ", caller.number, "090-9999-0000"]
    for q in typed:
        assert _search(operator_client, q).status_code == 200
    entries = audit_entries(cc_app, "booking:searched")
    assert [e["staff_id"] for e in entries] == [operator.id] * len(typed)
    assert [e["subject_id"] for e in entries] == ["number", "phone", "kana", "number", "phone"]
    assert ['"results": 1' in e["details"] for e in entries] == [True, True, True, True, False]


def test_the_results_are_the_console_page(cc_app, operator_client, caller):
    """R9.2, R4.1: a plain form post (no script) gets the whole console — search box with a fresh
    token, the results, the call panel and the menu — and the live booking of each hit."""
    page = _search(operator_client, caller.number).get_data(as_text=True)
    assert 'name="csrf_token" value="' in page and 'id="q"' in page
    assert 'id="incoming-calls"' in page and "通話記録" in page
    assert "1件" in page and "江東　太郎" in page and numbers.display(caller.number) in page
    assert f"/applicants/{caller.applicant_id}" in page
    assert "予約済み" in page


@pytest.mark.parametrize(
    "change, refused",
    [
        ({"active": False}, 302),  # disabled: the session ends, back to sign-in
        ({"duty_end": "yesterday"}, 302),  # period of duty over (R7.3)
        ({"roles": "venue_staff"}, 403),  # the role that allowed searching was taken away (R7.2)
    ],
)
def test_a_changed_staff_member_is_refused_at_the_next_request(
    cc_app, operator_client, caller, operator, change, refused
):
    """R9.2, R7.2, R7.3, R7.4: the session check reads the staff member with the session on every
    request (one statement, no per-process copy): a change takes effect at once, with no search
    and no audit entry of a search after it."""
    assert _search(operator_client, caller.number).status_code == 200
    if change.get("duty_end") == "yesterday":
        with cc_app.app_context():
            change = {"duty_end": dates.today() - timedelta(days=1)}
    _change_staff(cc_app, operator.id, **change)
    response = _search(operator_client, caller.number)
    assert response.status_code == refused
    assert "江東　太郎" not in response.get_data(as_text=True)
    assert len(audit_entries(cc_app, "booking:searched")) == 1


def test_one_statement_checks_the_session_and_its_staff_member(cc_app, operator_client, operator):
    """R9.2: the session and the staff member are read together (it was a second, lazy load)."""
    from sqlalchemy import event

    statements = []
    with cc_app.app_context():
        engine = db.engine
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        assert operator_client.get("/").status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    on_staff = [s for s in statements if "FROM staff_sessions" in s or "FROM staff " in s]
    assert len(on_staff) == 1 and "JOIN staff" in on_staff[0]


def test_the_reminder_shows_a_call_taken_elsewhere_within_its_lifetime(cc_app, operator_client, operator):
    """R9.2, R4.3: the count is kept UNLOGGED_CALLS_SECONDS per worker; a call another worker
    recorded shows once that has passed (the app's clock is moved, nobody sleeps)."""
    lifetime = cc_app.config["UNLOGGED_CALLS_SECONDS"]
    assert 0 < lifetime <= 10
    assert BADGE not in _search(operator_client, "090-1111-2222").get_data(as_text=True)
    _unlogged_call(cc_app, operator.id)
    advance(cc_app, timedelta(seconds=lifetime / 2))
    assert BADGE not in _search(operator_client, "090-1111-2222").get_data(as_text=True)
    advance(cc_app, timedelta(seconds=lifetime / 2 + 0.1))
    assert f"{BADGE}1件" in _search(operator_client, "090-1111-2222").get_data(as_text=True)


def test_taking_or_logging_a_call_updates_the_reminder_at_once(cc_app, operator_client, operator):
    """R4.3: in the worker where the operator takes or logs a call, the count is read again."""
    assert BADGE not in operator_client.get("/").get_data(as_text=True)
    call_id = operator_client.post("/calls/manual").headers["Location"].rsplit("/", 1)[-1]
    assert f"{BADGE}1件" in operator_client.get("/").get_data(as_text=True)
    logged = operator_client.post(f"/calls/{call_id}", data={"category": "issuance", "note": "", "about": ""})
    assert logged.status_code == 302
    assert BADGE not in operator_client.get("/").get_data(as_text=True)


def test_with_lifetime_zero_the_reminder_is_read_every_time(overrides, request):
    """R4.3: UNLOGGED_CALLS_SECONDS=0 turns the per-worker count off."""
    overrides["UNLOGGED_CALLS_SECONDS"] = 0
    app, client = request.getfixturevalue("cc_app"), request.getfixturevalue("operator_client")
    operator = request.getfixturevalue("operator")
    assert BADGE not in _search(client, "090-1111-2222").get_data(as_text=True)
    _unlogged_call(app, operator.id)
    assert f"{BADGE}1件" in _search(client, "090-1111-2222").get_data(as_text=True)


def test_nothing_personal_is_kept_between_requests(cc_app, operator_client, caller, operator):
    """R9.2, standard 4: after searches, the per-process caches hold counts by staff id only, and
    the prepared search statements hold no searched value."""
    for q in (caller.number, "090-1111-2222", "コウトウタロウ"):
        _search(operator_client, q)
    _unlogged_call(cc_app, operator.id)
    with cc_app.app_context():
        kept = [item for named in cc_app.extensions["madoguchi.caches"].values() for item in named.items()]
        assert kept and all(type(key) is int and type(value) is int for key, value in kept), kept
        for index in ("reservation_number_bidx", "phone_bidx", "name_kana_bidx"):
            compiled = search._matching(index, search.MAX_RESULTS).compile()
            values = {bind.value for bind in compiled.binds.values()}
            assert values <= {None, search.MAX_RESULTS, "booked", "arrived", "handed_over"}, values


@pytest.mark.parametrize(
    "attributes",
    [
        {"class_": "input input-scan"},
        {"class_": "input", "aria-describedby": "q-hint q-error", "aria-invalid": "true"},
        {"value": "a\"<&>'b", "data_x_y": "1", "disabled": False, "readonly": True},
    ],
)
def test_the_lean_search_input_is_the_input_wtforms_writes(cc_app, attributes):
    """R9.2: the search box's faster widget writes exactly what WTForms' own writes."""
    from wtforms.widgets import TextInput

    from callcenter.forms import SearchForm
    from madoguchi.webforms import LeanTextInput

    with cc_app.test_request_context("/search", method="POST", data={"q": '090"<1>', "birth": ""}):
        form = SearchForm()
        form.validate()
        for field in (form.q, form.birth):
            assert isinstance(field.widget, LeanTextInput)
            assert LeanTextInput()(field, **attributes) == TextInput()(field, **attributes)


def test_a_cache_forgets_one_key():
    """The helper the reminder relies on: ``forget`` drops one value, the others stay."""
    now = [0.0]
    kept = cache.TimedCache(10, clock=lambda: now[0])
    assert kept.get("a", 5, lambda: 1) == 1 and kept.get("b", 5, lambda: 2) == 2
    kept.forget("a")
    kept.forget("missing")
    assert kept.get("a", 5, lambda: 3) == 3 and kept.get("b", 5, lambda: 4) == 2


SOURCES = [
    "{{ _('検索') }}",
    "{{ _('a & <b>') }}",  # a translation is markup-safe, as the runtime gettext makes it
    "{{ _('{n}件').format(n='<x>') }}",  # format escapes its values
    "{{ _('%(n)d 件', n=3) }}",  # arguments: left to the runtime
    "{{ _('100%%') }}",  # always %-formatted
    "{{ obj._('x') }}",  # an attribute called _ is not gettext
    "{% set label = _('氏名') %}{{ label }}{{ label ~ '<' }}",
    '<p title="{{ _(\'説明\') }}">{{ _("it\'s") }}</p>',
]


def _without_folding(env):
    plain = env.overlay(cache_size=0)
    plain.extensions = {k: v for k, v in plain.extensions.items() if not isinstance(v, FoldedGettext)}
    return plain


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("autoescape", [True, False], ids=["html", "text"])
def test_fixed_texts_are_translated_at_compile_time_with_the_same_result(cc_app, source, autoescape):
    """R9.2: ``_('…')`` is a constant once the template is compiled, and the page is the same as
    with the runtime gettext — escaping (HTML pages) and plain text (e-mail bodies) alike."""
    folded = cc_app.jinja_env.overlay(autoescape=autoescape, cache_size=0)
    assert any(isinstance(ext, FoldedGettext) for ext in folded.extensions.values())
    obj = {"_": lambda text: Markup("<i>") + text}
    ours = folded.from_string(source).render(obj=obj)
    assert ours == _without_folding(folded).from_string(source).render(obj=obj)
    if source == "{{ _('検索') }}":
        assert "gettext" not in folded.compile(source, raw=True)


def test_the_console_is_the_same_page_with_folded_texts(cc_app, operator_client, caller):
    """R9.2: the staff pages compile their fixed texts once; the console renders as before."""
    from flask import g

    plain = _without_folding(cc_app.jinja_env)
    with cc_app.test_request_context("/"):
        cookie = operator_client.get_cookie("madoguchi_staff").value
        g.staff = auth.load_session(cookie, remote_addr="127.0.0.1").staff
        hits = search.find(search.interpret(caller.number))
        from callcenter.forms import SearchForm

        context = {"form": SearchForm(), "hits": hits, "call": None, "unlogged": 2}
        cc_app.update_template_context(context)
        ours = cc_app.jinja_env.get_template("callcenter/console.html").render(context)
        theirs = plain.get_template("callcenter/console.html").render(context)
        db.session.rollback()
    assert ours == theirs
    assert "江東　太郎" in ours and f"{BADGE}2件" in ours
