"""Demo data: Koto City's three venues (004), four weeks of slots, and a roster of fictitious
applicants whose addresses come from the venue table. Every person here is invented."""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta

from . import applicants, booking, calls, dates, numbers, venues
from .extensions import db
from .models import CallCategory, Channel, SpecialOpening, Staff, Venue

# The venues named in 004 (履行場所); addresses and directions are the public facilities'.
KOTO_VENUES = (
    dict(
        code="honchosha",
        name="江東区役所 本庁舎",
        floor="2階",
        address="東京都江東区東陽4丁目11番28号",
        map_url="https://www.openstreetmap.org/search?query=%E6%B1%9F%E6%9D%B1%E5%8C%BA%E5%BD%B9%E6%89%80",
        directions="東京メトロ東西線「東陽町」駅 1番出口から徒歩5分。区役所2階の交付会場へお越しください。",
        open_time=time(8, 30),
        close_time=time(17, 0),
        slot_minutes=30,
        slot_capacity=8,
    ),
    dict(
        code="sogo",
        name="総合区民センター",
        floor="2階",
        address="東京都江東区大島4丁目5番1号",
        map_url="https://www.openstreetmap.org/search?query=%E6%B1%9F%E6%9D%B1%E5%8C%BA%E7%B7%8F%E5%90%88%E5%8C%BA%E6%B0%91%E3%82%BB%E3%83%B3%E3%82%BF%E3%83%BC",
        directions="都営新宿線「西大島」駅 A4出口すぐ。2階の交付会場へお越しください。",
        open_time=time(9, 0),
        close_time=time(17, 0),
        slot_minutes=30,
        slot_capacity=6,
    ),
    dict(
        code="toyosu",
        name="豊洲シビックセンター",
        floor="11階 区民広場",
        address="東京都江東区豊洲2丁目2番18号",
        map_url="https://www.openstreetmap.org/search?query=%E8%B1%8A%E6%B4%B2%E3%82%B7%E3%83%93%E3%83%83%E3%82%AF%E3%82%BB%E3%83%B3%E3%82%BF%E3%83%BC",
        directions="東京メトロ有楽町線「豊洲」駅 7番出口すぐ、ゆりかもめ「豊洲」駅から徒歩1分。11階 区民広場へお越しください。",
        open_time=time(9, 0),
        close_time=time(17, 0),
        slot_minutes=30,
        slot_capacity=6,
    ),
)

FAMILY = (
    ("佐藤", "サトウ"),
    ("鈴木", "スズキ"),
    ("高橋", "タカハシ"),
    ("田中", "タナカ"),
    ("伊藤", "イトウ"),
    ("渡辺", "ワタナベ"),
    ("山本", "ヤマモト"),
    ("中村", "ナカムラ"),
    ("小林", "コバヤシ"),
    ("加藤", "カトウ"),
    ("吉田", "ヨシダ"),
    ("山田", "ヤマダ"),
    ("松本", "マツモト"),
    ("井上", "イノウエ"),
    ("木村", "キムラ"),
)
GIVEN = (
    ("太郎", "タロウ", "男"),
    ("一郎", "イチロウ", "男"),
    ("健", "ケン", "男"),
    ("翔", "ショウ", "男"),
    ("大輔", "ダイスケ", "男"),
    ("花子", "ハナコ", "女"),
    ("美咲", "ミサキ", "女"),
    ("陽子", "ヨウコ", "女"),
    ("さくら", "サクラ", "女"),
    ("恵", "メグミ", "女"),
)


def load(*, applicants: int = 300, weeks: int = 4, seed: int = 2026) -> list[tuple[str, date]]:
    """Create venues, slots and applicants. Returns a few (number, birth date) pairs to try."""
    rng = random.Random(seed)
    created = [ensure_venue(spec) for spec in KOTO_VENUES]
    today = dates.today()
    # A 休日開庁 on the next Sunday at the main office, to show special openings.
    sunday = today + timedelta(days=(6 - today.weekday()) or 7)
    db.session.add(
        SpecialOpening(
            venue_id=created[0].id, day=sunday, open_time=time(9, 0), close_time=time(12, 0), note="休日開庁"
        )
    )
    db.session.flush()
    for venue in created:
        venues.generate_slots(venue, today, today + timedelta(weeks=weeks))
    people = [_applicant(rng) for _ in range(applicants)]
    _book_some(rng, people)
    _staff(today, created)
    _calls(rng, people, today)
    return [(numbers.display(p.reservation_number), p.birth_date) for p in people[:3]]


DEMO_STAFF_PASSWORD = "demo-madoguchi-2026"  # noqa: S105 - demo only; TOTP is enrolled at first sign-in
DEMO_STAFF = (
    ("admin", "管理 花子", "区民課", ("administrator",), None),
    ("auditor", "監査 一郎", "監査室", ("auditor",), None),
    ("operator", "電話 太郎", "コールセンター", ("operator",), None),
    ("supervisor", "指導 陽子", "コールセンター", ("supervisor",), None),
    ("fax", "受付 由美", "コールセンター FAX受付", ("fax_intake",), None),
    ("venue-honchosha", "本庁 健", "本庁舎会場", ("venue_staff",), "honchosha"),
    ("venue-toyosu", "豊洲 美咲", "豊洲会場", ("venue_staff",), "toyosu"),
    ("logistics", "物流 次郎", "事務センター", ("logistics",), None),
)


def _staff(today: date, created: list[Venue]) -> None:
    from . import auth

    by_code = {v.code: v.id for v in created}
    for login_id, name, affiliation, roles, venue_code in DEMO_STAFF:
        auth.create_staff(
            login_id=login_id,
            name=name,
            affiliation=affiliation,
            roles=roles,
            venue_id=by_code.get(venue_code),
            duty_start=today - timedelta(days=7),
            duty_end=today + timedelta(days=365),
            password=DEMO_STAFF_PASSWORD,
            remote_addr="demo",
        )


DEMO_NOTES = {
    CallCategory.APPLICATION: "申請方法（スマートフォン申請）の問い合わせ。手順を案内した。",
    CallCategory.ISSUANCE: "受け取り日時の予約・変更の依頼。空き枠を案内した。",
    CallCategory.RENEWAL: "電子証明書の更新について。必要書類を案内した。",
    CallCategory.OPINION: "会場の案内表示が分かりにくいとのご意見。区へ報告する。",
    CallCategory.OTHER: "交付通知書の再発行について。担当窓口を案内した。",
}


def _calls(rng: random.Random, people, today: date) -> None:
    """Two weeks of calls with their call log, so the statistics and the dashboard show something.
    Some callers are on the roster (their numbers pop their bookings up), some are not."""
    operator = db.session.scalars(db.select(Staff).where(Staff.login_id == "operator")).one()
    weights = (30, 45, 10, 5, 10)
    for back in range(13, -1, -1):
        day = today - timedelta(days=back)
        if day.weekday() >= 5:
            continue
        for _ in range(rng.randrange(4, 12)):
            at = datetime.combine(day, time(rng.randrange(9, 17), rng.randrange(60)), tzinfo=dates.TOKYO)
            if at > dates.now():
                continue
            person = rng.choice(people) if rng.random() < 0.7 else None
            caller = (
                person.phone
                if person is not None
                else f"03-{rng.randrange(10**4):04d}-{rng.randrange(10**4):04d}"
            )
            call = calls.incoming(f"CA{rng.getrandbits(128):032x}", caller, now=at)
            calls.status_changed(call.call_sid, "completed", duration=rng.randrange(60, 600), now=at)
            if rng.random() < 0.1:
                continue  # not logged yet: the statistics show it as 未入力
            category = rng.choices(list(CallCategory), weights)[0]
            calls.log(
                call,
                category=category.value,
                note=DEMO_NOTES[category],
                staff_id=operator.id,
                applicant_id=person.id if person is not None else None,
                now=at,
            )


def ensure_venue(spec: dict) -> Venue:
    venue = venues.by_code(spec["code"])
    if venue is None:
        venue = Venue(**spec)
        db.session.add(venue)
        db.session.flush()
    return venue


def _applicant(rng: random.Random):
    table = venues.route_table()
    town = rng.choice(sorted(table))
    chome = rng.choice(sorted(table[town]))
    family, family_kana = rng.choice(FAMILY)
    given, given_kana, sex = rng.choice(GIVEN)
    birth = date(1940, 1, 1) + timedelta(days=rng.randrange(0, 365 * 80))
    body = "".join(rng.choice("0123456789") for _ in range(numbers.LENGTH - 1))
    serial = rng.randrange(1, 60)
    return applicants.register(
        number=numbers.make(body),
        name=f"{family}　{given}",
        name_kana=f"{family_kana}　{given_kana}",
        birth_date=birth,
        sex=sex,
        postal_code=None,
        address=f"東京都江東区{town}{chome}丁目{serial}番{rng.randrange(1, 30)}号",
        email=f"demo{rng.randrange(10**6):06d}@example.jp" if rng.random() < 0.7 else None,
        phone=f"090-{rng.randrange(10**4):04d}-{rng.randrange(10**4):04d}",
        source="roster",
    )


def _book_some(rng: random.Random, people) -> None:
    """Book a fifth of those without e-mail (so the demo sends no mail) through the call center."""
    actor = booking.Actor(Channel.PHONE, staff_id=None)
    for person in people:
        if person.email or rng.random() > 0.5 or person.venue_id is None:
            continue
        slots = [
            s
            for s in db.session.scalars(db.select(venues.Slot).where(venues.Slot.venue_id == person.venue_id))
            if s.starts_at > dates.now()
        ]
        rng.shuffle(slots)
        for slot in slots[:3]:
            try:
                booking.book(person, slot.id, actor=actor)
                break
            except booking.SlotFull:
                continue
