"""Identifying and registering applicants (R3.1, R3.5, R2.1)."""

from __future__ import annotations

import inspect
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from madoguchi import applicants, demo, numbers
from madoguchi.errors import IdentityMismatch, LookupLocked
from madoguchi.extensions import db
from madoguchi.models import Applicant, LookupFailure
from madoguchi.numbers import InvalidReservationNumber
from tests.factories import make_applicant, new_number

R21_FIELDS = {
    "reservation_number",
    "name",
    "name_kana",
    "birth_date",
    "sex",
    "postal_code",
    "address",
    "email",
    "phone",
}
BIRTH = date(1980, 4, 1)


@pytest.fixture
def koto(ctx) -> dict[str, int]:
    """The three Koto venues of 004, by code → id."""
    created = {spec["code"]: demo.ensure_venue(spec).id for spec in demo.KOTO_VENUES}
    db.session.commit()
    return created


def _clock(app):
    return app.extensions["madoguchi.clock"]


def _mismatch(number: str, birth: date) -> str:
    with pytest.raises(IdentityMismatch) as info:
        applicants.identify(number, birth)
    return str(info.value)


# ---- identification (R3.1, R3.5) ---------------------------------------------------------
def test_identify_with_number_and_birth_date(ctx):
    """R3.1: the 予約管理番号 and 生年月日 identify the applicant."""
    target = make_applicant(birth_date=BIRTH)
    make_applicant(birth_date=BIRTH)  # another person born the same day
    number, target_id = target.reservation_number, target.id
    db.session.commit()
    db.session.expunge_all()

    found = applicants.identify(number, BIRTH)
    assert found.id == target_id
    assert found.reservation_number == number
    # The typed form (full width, 4-4-4) works once parsed.
    assert (
        applicants.identify(numbers.parse("　".join(numbers.display(number).split("-"))), BIRTH).id
        == target_id
    )


def test_wrong_birth_date_and_unknown_number_give_the_same_error(ctx):
    """R3.5: a wrong birth date and an unknown number raise the same IdentityMismatch, so the form
    does not tell a guesser which numbers exist."""
    target = make_applicant(birth_date=BIRTH)
    number = target.reservation_number
    db.session.commit()

    wrong_birth = _mismatch(number, date(1980, 4, 2))
    unknown = new_number()
    assert applicants.find_by_number(unknown) is None
    unknown_number = _mismatch(unknown, BIRTH)
    assert wrong_birth == unknown_number
    assert number not in wrong_birth and "1980" not in wrong_birth
    # Identification reads only: no failure is counted by identify itself.
    assert db.session.scalar(select(func.count()).select_from(LookupFailure)) == 0


def test_number_is_locked_after_max_failures_until_the_window_passes(ctx):
    """R3.5: after LOOKUP_MAX_FAILURES failed look-ups the number is locked — even the right birth
    date is refused — until the lock window passes."""
    target = make_applicant(birth_date=BIRTH)
    number, target_id = target.reservation_number, target.id
    db.session.commit()
    max_failures = ctx.config["LOOKUP_MAX_FAILURES"]
    window = ctx.config["LOOKUP_LOCK_MINUTES"]
    assert max_failures >= 2

    for attempt in range(1, max_failures + 1):
        with pytest.raises(IdentityMismatch):
            applicants.identify(number, date(1999, 1, 1))
        locked = applicants.record_failed_lookup(number)
        assert locked is (attempt == max_failures), attempt
        if attempt < max_failures:
            assert applicants.identify(number, BIRTH).id == target_id  # not locked yet
    db.session.commit()

    with pytest.raises(LookupLocked):
        applicants.identify(number, BIRTH)
    with pytest.raises(LookupLocked):
        applicants.identify(number, date(1999, 1, 1))

    _clock(ctx).offset = timedelta(minutes=window - 1)
    with pytest.raises(LookupLocked):
        applicants.identify(number, BIRTH)

    _clock(ctx).offset = timedelta(minutes=window + 1)
    assert applicants.identify(number, BIRTH).id == target_id

    # The lock is per number: another applicant was never affected.
    other = make_applicant(birth_date=BIRTH)
    assert applicants.identify(other.reservation_number, BIRTH).id == other.id


def test_unknown_number_is_locked_the_same_way(ctx):
    """R3.5: guessing at a number that does not exist is locked like guessing at a real one."""
    unknown = new_number()
    for _ in range(ctx.config["LOOKUP_MAX_FAILURES"]):
        applicants.record_failed_lookup(unknown)
    db.session.commit()
    with pytest.raises(LookupLocked):
        applicants.identify(unknown, BIRTH)


def test_failures_outside_the_window_do_not_add_up(ctx):
    """R3.5: the count restarts when the window has passed, so occasional typos never lock a number."""
    target = make_applicant(birth_date=BIRTH)
    number = target.reservation_number
    max_failures = ctx.config["LOOKUP_MAX_FAILURES"]
    window = ctx.config["LOOKUP_LOCK_MINUTES"]
    for _ in range(max_failures - 1):
        assert applicants.record_failed_lookup(number) is False
    _clock(ctx).offset = timedelta(minutes=window + 1)
    assert applicants.record_failed_lookup(number) is False
    db.session.commit()
    assert applicants.identify(number, BIRTH).id == target.id
    row = db.session.scalars(select(LookupFailure)).one()
    assert row.failures == 1


def test_clear_failed_lookups_resets_the_count(ctx):
    target = make_applicant(birth_date=BIRTH)
    number = target.reservation_number
    for _ in range(ctx.config["LOOKUP_MAX_FAILURES"] - 1):
        applicants.record_failed_lookup(number)
    applicants.clear_failed_lookups(number)
    assert applicants.record_failed_lookup(number) is False
    assert db.session.scalars(select(LookupFailure)).one().failures == 1


def test_failure_rows_hold_no_reservation_number(ctx):
    """R2.2: the failure counter is keyed by the number's blind index, not by the number."""
    number = new_number()
    applicants.record_failed_lookup(number)
    db.session.commit()
    row = db.session.scalars(select(LookupFailure)).one()
    assert row.number_bidx == Applicant.number_key(number)
    assert number not in row.number_bidx


# ---- registration (R2.1, R3.1, R3.2) -----------------------------------------------------
def test_applicant_stores_only_the_minimal_fields():
    """R2.1: the applicant table holds exactly the minimal personal fields, each encrypted, and
    nothing else personal (the rest are ids, blind indexes, venue, source and timestamps)."""
    columns = {c.name for c in Applicant.__table__.columns}
    assert {c.removesuffix("_ct") for c in columns if c.endswith("_ct")} == R21_FIELDS
    others = {c for c in columns if not c.endswith("_ct") and not c.endswith("_bidx")}
    assert others == {"id", "venue_id", "source", "created_at", "updated_at"}
    assert {c for c in columns if c.endswith("_bidx")} == {
        "reservation_number_bidx",
        "name_kana_bidx",
        "kana_birth_bidx",
        "phone_bidx",
    }
    params = set(inspect.signature(applicants.register).parameters)
    assert params == R21_FIELDS.union({"number", "source", "venue_code", "now"}) - {"reservation_number"}


def test_register_stores_the_fields_and_routes_the_venue(koto):
    """R3.1, R3.2: a resident registered with the minimal fields gets the venue of the address."""
    applicant = applicants.register(
        number=numbers.display(numbers.make("20260401001")),
        name="大島　次郎",
        name_kana="オオシマ　ジロウ",
        birth_date=date(1970, 1, 2),
        sex="男",
        postal_code="136-0072",
        address="東京都江東区大島四丁目5番1号",
        email="jiro@example.jp",
        phone="03-1234-5678",
        source="web",
    )
    row_id = applicant.id
    db.session.commit()
    db.session.expunge_all()

    row = db.session.get(Applicant, row_id)
    assert row.venue_id == koto["sogo"]
    assert row.venue.code == "sogo"
    assert row.reservation_number == numbers.make("20260401001")  # stored normalised
    assert (row.name, row.name_kana, row.birth_date, row.sex) == (
        "大島　次郎",
        "オオシマ　ジロウ",
        date(1970, 1, 2),
        "男",
    )
    assert (row.postal_code, row.address, row.email, row.phone) == (
        "136-0072",
        "東京都江東区大島四丁目5番1号",
        "jiro@example.jp",
        "03-1234-5678",
    )
    assert row.source == "web"
    assert row.created_at == row.updated_at and row.created_at.tzinfo is not None
    assert applicants.identify(row.reservation_number, date(1970, 1, 2)).id == row_id


@pytest.mark.parametrize(
    "address, venue",
    [
        ("東京都江東区豊洲2丁目2番18号", "toyosu"),
        ("東京都江東区東陽4丁目11番28号", "honchosha"),
        ("江東区亀戸1-2-3", "sogo"),
        ("江東区東砂6丁目1番", "honchosha"),
        ("江東区東砂1丁目1番", "sogo"),
    ],
)
def test_register_routes_by_address(koto, address, venue):
    """R3.2: the venue follows from the address."""
    applicant = make_applicant(address=address)
    assert applicant.venue_id == koto[venue]


def test_chosen_venue_is_accepted_only_where_the_table_allows_a_choice(koto):
    """R3.2: an ambiguous or unknown address lets the resident choose; a routed address does not."""
    # 東砂 without 丁目: honchosha or sogo.
    assert make_applicant(address="東京都江東区東砂", venue_code="sogo").venue_id == koto["sogo"]
    assert make_applicant(address="東京都江東区東砂", venue_code="toyosu").venue_id is None
    assert make_applicant(address="東京都江東区東砂").venue_id is None
    # Outside the table: any venue may be chosen.
    assert make_applicant(address="東京都江東区高橋1番", venue_code="toyosu").venue_id == koto["toyosu"]
    assert (
        make_applicant(address="東京都中央区銀座1丁目", venue_code="honchosha").venue_id == koto["honchosha"]
    )
    # A routed address keeps its venue whatever is chosen.
    assert make_applicant(address="東京都江東区豊洲1丁目", venue_code="sogo").venue_id == koto["toyosu"]
    # An unknown venue code is ignored.
    assert make_applicant(address="東京都江東区東砂", venue_code="nowhere").venue_id is None


def test_register_refuses_a_mistyped_number(ctx):
    """R1.4: registration refuses a number whose check digit is wrong."""
    number = new_number()
    typo = number[:-1] + str((int(number[-1]) + 1) % 10)
    with pytest.raises(InvalidReservationNumber):
        make_applicant(number=typo)
    assert db.session.scalar(select(func.count()).select_from(Applicant)) == 0


def test_one_applicant_per_number(ctx):
    """R3.1: the same 予約管理番号 cannot be registered twice."""
    from sqlalchemy.exc import IntegrityError

    number = new_number()
    make_applicant(number=number)
    db.session.commit()
    with pytest.raises(IntegrityError):
        make_applicant(number=numbers.display(number))
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Applicant)) == 1


def test_update_contact_changes_email_phone_and_their_index(ctx):
    applicant = make_applicant(phone="090-1111-2222", email="old@example.jp")
    old_index = applicant.phone_bidx
    applicants.update_contact(applicant, email="new@example.jp", phone="080-3333-4444")
    assert (applicant.email, applicant.phone) == ("new@example.jp", "080-3333-4444")
    assert applicant.phone_bidx == Applicant.phone_key("08033334444") != old_index
    applicants.update_contact(applicant, email=None, phone="")
    assert applicant.email is None and applicant.phone is None
    assert applicant.email_ct is None and applicant.phone_bidx is None
