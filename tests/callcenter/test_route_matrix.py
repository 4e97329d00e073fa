"""Route × role matrix for the call center (R7.2): every rule of the URL map, every method, anonymous
and each role alone — deny by default; Twilio's webhooks are the only public routes."""

from __future__ import annotations

import pytest
from flask import url_for
from sqlalchemy import select

from madoguchi import calls, recordings
from madoguchi.extensions import db
from madoguchi.fax import queue
from madoguchi.models import Call, FaxItem
from madoguchi.permissions import Permission, Role, permissions_of
from tests.conftest import built
from tests.factories import make_staff
from tests.staffsupport import audit_entries, location, seed_staff, signed_in

from .conftest import AUTH_TOKEN, incoming_call, seed_caller

METHODS = ("GET", "POST")
PUBLIC = {"auth.signin", "auth.second_factor", "auth.enrol", "auth.signout"}


@pytest.fixture
def matrix_app(overrides):
    from callcenter import create_app

    with built(create_app, {**overrides, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "CALL_STREAM_SECONDS": 0}) as app:
        yield app


@pytest.fixture
def ids(matrix_app):
    """Real ids for every rule argument: an applicant, their venue, a call; a message that does not exist."""
    caller = seed_caller(matrix_app)
    incoming_call(matrix_app.test_client())
    with matrix_app.app_context():
        call = db.session.scalars(select(Call)).one()
        recording = calls.recording_status("RE" + "7" * 32, call_sid=call.call_sid, status="completed")
        asker = make_staff(("supervisor",))
        provision = recordings.request_provision(
            [recording], requester="提供先", basis="consent", basis_detail="", scope="1件", staff=asker
        )
        fax_document = queue.receive(b"not a fax at all", source="upload")
        db.session.commit()
        found = {
            "call_id": call.id,
            "recording_id": recording.id,
            "provision_id": provision.id,
            "item_id": db.session.scalars(
                select(FaxItem.id).where(FaxItem.document_id == fax_document.id)
            ).one(),
        }
    return {"applicant_id": caller.applicant_id, "venue_id": caller.venue_id, "message_id": "0" * 32, **found}


def _cases(app, ids):
    rules = sorted((r for r in app.url_map.iter_rules() if r.endpoint != "static"), key=lambda r: r.rule)
    for rule in rules:
        with app.test_request_context():
            url = url_for(rule.endpoint, **{name: ids[name] for name in rule.arguments})
        for method in METHODS:
            if method in rule.methods:
                yield rule, method, url


def test_only_sign_in_and_twilio_webhooks_are_public(matrix_app):
    """R7.2, R4.2: every other view declares a Permission; the webhooks are public only because
    their signature is checked (and the tests of telephony prove it)."""
    public = {e for e, view in matrix_app.view_functions.items() if getattr(view, "public", False)}
    assert public == PUBLIC | {
        f"telephony.{name}" for name in ("voice", "dial_ended", "call_status", "recording_status")
    }
    undeclared = [
        e
        for e, view in matrix_app.view_functions.items()
        if e != "static"
        and e not in public
        and not isinstance(getattr(view, "required_permission", None), Permission)
    ]
    assert not undeclared


def test_anonymous_is_sent_to_signin_or_refused(matrix_app, ids):
    """R7.2: pages redirect to sign-in; scripts' feeds answer 401; unsigned webhooks 403."""
    client = matrix_app.test_client()
    wrong = []
    for rule, method, url in _cases(matrix_app, ids):
        if rule.endpoint.startswith("auth.") and rule.endpoint != "auth.change_password":
            continue
        status = client.open(url, method=method).status_code
        view = matrix_app.view_functions[rule.endpoint]
        expected = (
            403
            if rule.endpoint.startswith("telephony.")
            else (401 if getattr(view, "background", False) else 302)
        )
        if status != expected:
            wrong.append(f"{method} {url} → {status}, expected {expected}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
def test_each_role_alone_gets_exactly_its_permissions(matrix_app, ids, role):
    """R7.2: 403 exactly where the role lacks the view's permission; let through elsewhere."""
    person = seed_staff(
        matrix_app, (role.value,), venue_id=ids["venue_id"] if role == Role.VENUE_STAFF else None
    )
    granted = permissions_of({role})
    client = matrix_app.test_client()
    signed_in(client, person, matrix_app)
    wrong = []
    cases = sorted(_cases(matrix_app, ids), key=lambda c: c[0].endpoint == "auth.signout")
    for rule, method, url in cases:
        if rule.endpoint.startswith("telephony."):
            continue
        view = matrix_app.view_functions[rule.endpoint]
        status = client.open(url, method=method).status_code
        denied = not getattr(view, "public", False) and view.required_permission not in granted
        if denied and status != 403:
            wrong.append(f"{method} {url} should be 403, got {status}")
        # 503: playback while Twilio is unreachable (here: not configured) says so honestly.
        allowed = (
            (200, 204, 302, 404, 422, 503)
            if rule.endpoint == "callcenter.recording_audio"
            else (200, 204, 302, 404, 422)
        )
        if not denied and status not in allowed:
            wrong.append(f"{method} {url} should be allowed, got {status}")
    assert not wrong, f"role {role.value}:\n" + "\n".join(wrong)
    assert all(e["staff_id"] == person.id for e in audit_entries(matrix_app, "access:denied"))


def test_signed_in_staff_never_lose_their_session_to_a_page(matrix_app, ids):
    client = matrix_app.test_client()
    signed_in(client, seed_staff(matrix_app, ("supervisor",)), matrix_app)
    assert location(client.get("/")) == ""
