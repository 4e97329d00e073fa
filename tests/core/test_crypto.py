"""Field-level encryption, blind indexes and keys (R2.2–R2.5), through the real Applicant model."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import traceback
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text, update

from madoguchi import config as config_module
from madoguchi import keys, numbers
from madoguchi.crypto import DecryptionError, KeyError_, KeyRing
from madoguchi.extensions import db
from madoguchi.models import Applicant
from tests.conftest import ON_POSTGRES, base_overrides
from tests.factories import make_applicant

ENCRYPTED_FIELDS = (
    "reservation_number",
    "name",
    "name_kana",
    "birth_date",
    "sex",
    "postal_code",
    "address",
    "email",
    "phone",
)


# ---- helpers -------------------------------------------------------------------------------
def _unb64(body: str) -> bytes:
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))


def _b64(blob: bytes) -> str:
    return base64.urlsafe_b64encode(blob).decode("ascii").rstrip("=")


def _flip_body_char(stored: str) -> str:
    """Change one base64 character in the middle of the body so that the decoded bytes change."""
    key_id, _, body = stored.partition(".")
    i = len(body) // 2
    replacement = "A" if body[i] != "A" else "B"
    tampered = body[:i] + replacement + body[i + 1 :]
    assert _unb64(tampered) != _unb64(body)  # the edit really changes the ciphertext
    return f"{key_id}.{tampered}"


def _flip_tag(stored: str) -> str:
    """Flip one bit of the last byte (the GCM tag)."""
    key_id, _, body = stored.partition(".")
    blob = bytearray(_unb64(body))
    blob[-1] ^= 0x01
    return f"{key_id}.{_b64(bytes(blob))}"


def _flip_nonce(stored: str) -> str:
    key_id, _, body = stored.partition(".")
    blob = bytearray(_unb64(body))
    blob[0] ^= 0x80
    return f"{key_id}.{_b64(bytes(blob))}"


def _store(row_id: str, **columns) -> None:
    """Write raw column values as someone with database access would, then forget cached objects."""
    db.session.execute(update(Applicant).where(Applicant.id == row_id).values(**columns))
    db.session.commit()
    db.session.expunge_all()


def _load(row_id: str) -> Applicant:
    db.session.expunge_all()
    return db.session.scalars(select(Applicant).where(Applicant.id == row_id)).one()


def _key_file(app) -> Path:
    return Path(app.config["MADOGUCHI_KEY_FILE"])


def _full_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


# ---- R2.2 authenticated encryption ------------------------------------------------------------
def test_round_trip_through_model(ctx):
    """R2.2: every personal field is stored encrypted and reads back as written."""
    applicant = make_applicant(
        name="暗号　往復",
        name_kana="アンゴウ　オウフク",
        birth_date=date(1975, 12, 3),
        sex="女",
        postal_code="135-0016",
        address="東京都江東区東陽4丁目11番28号",
        email="roundtrip@example.jp",
        phone="03-3647-9111",
    )
    number = applicant.reservation_number
    row_id = applicant.id
    db.session.commit()

    row = _load(row_id)
    assert row.reservation_number == number
    assert row.name == "暗号　往復"
    assert row.name_kana == "アンゴウ　オウフク"
    assert row.birth_date == date(1975, 12, 3)
    assert row.sex == "女"
    assert row.postal_code == "135-0016"
    assert row.address == "東京都江東区東陽4丁目11番28号"
    assert row.email == "roundtrip@example.jp"
    assert row.phone == "03-3647-9111"

    active = KeyRing.from_json(_key_file(ctx).read_text()).active
    for field in ENCRYPTED_FIELDS:
        stored = getattr(row, f"{field}_ct")
        plain = getattr(row, field)
        plain = plain.isoformat() if isinstance(plain, date) else plain
        assert stored.startswith(f"{active}."), field
        assert plain not in stored, field


def test_same_value_encrypts_differently_each_time(ctx):
    """R2.2: random nonces — two rows with the same name share no ciphertext."""
    a = make_applicant(name="同姓　同名")
    b = make_applicant(name="同姓　同名")
    assert a.name == b.name
    assert a.name_ct != b.name_ct
    # Re-writing the same value on the same row gives a new ciphertext too.
    before = a.name_ct
    a.name = "同姓　同名"
    assert a.name_ct != before and a.name == "同姓　同名"


@pytest.mark.parametrize("tamper", [_flip_body_char, _flip_tag, _flip_nonce], ids=["body", "tag", "nonce"])
def test_tampered_value_fails_to_decrypt(ctx, tamper):
    """R2.2: a tampered stored value fails to decrypt."""
    applicant = make_applicant()
    row_id, stored = applicant.id, applicant.name_ct
    db.session.commit()

    _store(row_id, name_ct=tamper(stored))
    row = _load(row_id)
    with pytest.raises(DecryptionError):
        _ = row.name
    # The untouched columns of the row still read: the failure is the tampering, not the keys.
    assert row.address == "東京都江東区東陽4丁目11番28号"

    _store(row_id, name_ct=stored)
    assert _load(row_id).name == "江東　太郎"


def test_value_not_in_encrypted_format_fails(ctx):
    """R2.2: a plain-text value put into a ciphertext column is refused, not passed through."""
    applicant = make_applicant()
    row_id = applicant.id
    db.session.commit()
    _store(row_id, name_ct="江東　花子")
    with pytest.raises(DecryptionError):
        _ = _load(row_id).name


def test_ciphertext_copied_to_another_row_fails(ctx):
    """R2.2: a ciphertext copied from one applicant row to another (same column) fails to decrypt."""
    a = make_applicant(name="行　エー")
    b = make_applicant(name="行　ビー")
    a_id, b_id, a_name_ct = a.id, b.id, a.name_ct
    db.session.commit()

    _store(b_id, name_ct=a_name_ct)
    with pytest.raises(DecryptionError):
        _ = _load(b_id).name
    assert _load(a_id).name == "行　エー"


def test_ciphertext_copied_to_another_column_fails(ctx):
    """R2.2: a ciphertext copied between columns of one row (name_ct → address_ct) fails to decrypt."""
    applicant = make_applicant(name="列　移動")
    row_id, name_ct = applicant.id, applicant.name_ct
    db.session.commit()

    _store(row_id, address_ct=name_ct)
    row = _load(row_id)
    with pytest.raises(DecryptionError):
        _ = row.address
    assert row.name == "列　移動"


def test_decryption_error_never_contains_the_plaintext(ctx):
    """R2.2: the error raised for a value that does not open never carries a personal value."""
    secret_name = "秘密　漏洩子"
    secret_address = "東京都江東区豊洲2丁目2番18号"
    applicant = make_applicant(name=secret_name, address=secret_address)
    row_id, name_ct = applicant.id, applicant.name_ct
    db.session.commit()

    _store(row_id, address_ct=name_ct)  # a ciphertext that opens (under another AD) to the name
    with pytest.raises(DecryptionError) as info:
        _ = _load(row_id).address
    message = _full_text(info.value)
    assert "failed authentication" in str(info.value)
    for secret in (secret_name, secret_address, "秘密", "漏洩子", "豊洲2丁目"):
        assert secret not in message
        assert secret not in repr(info.value)


# ---- R2.3 blind indexes ----------------------------------------------------------------------
def test_kana_blind_index_matches_every_way_of_typing_the_name(ctx):
    """R2.3: kana typed in hiragana, katakana, half-width or with U+3000 spaces find the same row."""
    target = make_applicant(name_kana="コウトウ　タロウ")
    other = make_applicant(name_kana="コウトウ　ハナコ")
    # Stored under a hiragana spelling: the index is normalised on the way in too.
    twin = make_applicant(name_kana="こうとう たろう")
    db.session.commit()
    assert twin.name_kana_bidx == target.name_kana_bidx

    for typed in (
        "コウトウ　タロウ",
        "コウトウタロウ",
        "こうとう　たろう",
        "こうとうたろう",
        "ｺｳﾄｳ ﾀﾛｳ",
        "ｺｳﾄｳﾀﾛｳ",
        " コウトウ\u3000\u3000タロウ ",
        "コウトウ\tタロウ",
    ):
        found = set(
            db.session.scalars(
                select(Applicant.id).where(Applicant.name_kana_bidx == Applicant.kana_key(typed))
            )
        )
        assert found == {target.id, twin.id}, typed
    assert other.id not in found
    assert Applicant.kana_key("コウトウ　ジロウ") != target.name_kana_bidx


def test_voiced_half_width_kana_folds_to_the_same_index(ctx):
    """R2.3: half-width kana with separate dakuten (ﾀﾞ) find the name stored as ダ."""
    target = make_applicant(name_kana="ダイモン　ジュン")
    db.session.commit()
    assert Applicant.kana_key("ﾀﾞｲﾓﾝ ｼﾞｭﾝ") == target.name_kana_bidx
    assert Applicant.kana_key("だいもん　じゅん") == target.name_kana_bidx
    # Small kana are kept as typed: ジュン is not ジユン.
    assert Applicant.kana_key("ダイモン　ジユン") != target.name_kana_bidx


def test_phone_blind_index_matches_every_way_of_writing_the_number(ctx):
    """R2.3: phone "+81 90-1234-5678" and "09012345678" find the same row."""
    target = make_applicant(phone="090-1234-5678")
    other = make_applicant(phone="090-1234-5679")
    db.session.commit()

    for typed in (
        "+81 90-1234-5678",
        "09012345678",
        "090-1234-5678",
        "０９０－１２３４－５６７８",
        "090 1234 5678",
        "+819012345678",
    ):
        assert Applicant.phone_key(typed) == target.phone_bidx, typed
        found = db.session.scalars(
            select(Applicant.id).where(Applicant.phone_bidx == Applicant.phone_key(typed))
        ).all()
        assert found == [target.id], typed
    assert other.phone_bidx != target.phone_bidx
    assert Applicant.phone_key("09012345670") != target.phone_bidx


def test_reservation_number_and_kana_birth_search(ctx):
    """R2.3: 予約管理番号 and (kana + 生年月日) are found through their blind indexes."""
    target = make_applicant(name_kana="サトウ　ハナコ", birth_date=date(1990, 2, 3))
    same_birth = make_applicant(name_kana="スズキ　ハナコ", birth_date=date(1990, 2, 3))
    db.session.commit()

    assert Applicant.number_key(target.reservation_number) == target.reservation_number_bidx
    key = Applicant.kana_birth_key("さとう はなこ", date(1990, 2, 3))
    assert db.session.scalars(select(Applicant.id).where(Applicant.kana_birth_bidx == key)).all() == [
        target.id
    ]
    assert Applicant.kana_birth_key("サトウ　ハナコ", date(1990, 2, 4)) != target.kana_birth_bidx
    assert same_birth.kana_birth_bidx != target.kana_birth_bidx


def test_blind_indexes_differ_per_table_and_index(ctx):
    """R2.3: a separate key per (table, index): the same input gives different index values."""
    ring = KeyRing.from_json(_key_file(ctx).read_text())
    value = "09012345678"
    places = [
        ("applicants", "phone"),
        ("applicants", "name_kana"),
        ("applicants", "reservation_number"),
        ("applicants", "kana_birth"),
        ("lookup_failures", "phone"),
        ("outbound_messages", "phone"),
    ]
    values = {place: ring.blind_index(table=place[0], index=place[1], normalized=value) for place in places}
    assert len(set(values.values())) == len(places)
    # Keyed: not a bare hash, not an HMAC under the master index key.
    bare = hashlib.sha256(value.encode()).hexdigest()[:32]
    master = hmac.new(ring.index_key, value.encode(), hashlib.sha256).hexdigest()[:32]
    assert bare not in values.values() and master not in values.values()
    # Stable: the same input under the same key gives the same value (equality search works).
    assert (
        ring.blind_index(table="applicants", index="phone", normalized=value)
        == values[("applicants", "phone")]
    )
    # The model's keys are these.
    assert Applicant.phone_key(value) == values[("applicants", "phone")]
    assert Applicant.kana_key(value) == values[("applicants", "name_kana")]
    # Another key ring gives other values: indexes are useless without the key.
    assert (
        KeyRing.generate().blind_index(table="applicants", index="phone", normalized=value)
        != values[("applicants", "phone")]
    )


def test_no_blind_index_on_birth_date_alone(ctx):
    """R2.3: 生年月日 is indexed only together with the kana name, never alone."""
    birth = date(1980, 4, 1)
    applicant = make_applicant(birth_date=birth)
    db.session.commit()

    columns = {c.name for c in Applicant.__table__.columns}
    bidx_columns = {c for c in columns if c.endswith("_bidx")}
    assert {c for c in bidx_columns if "birth" in c} == {"kana_birth_bidx"}
    assert not any("birth" in c and c != "birth_date_ct" and c != "kana_birth_bidx" for c in columns)
    assert "birth_date_bidx" not in columns

    ring = KeyRing.from_json(_key_file(ctx).read_text())
    birth_texts = (birth.isoformat(), birth.strftime("%Y%m%d"))
    date_only = set()
    for text_ in birth_texts:
        date_only.add(hashlib.sha256(text_.encode()).hexdigest()[:32])
        for index in ("birth_date", "kana_birth", "name_kana", "phone", "reservation_number"):
            date_only.add(ring.blind_index(table="applicants", index=index, normalized=text_))
    row_indexes = {getattr(applicant, c) for c in bidx_columns}
    assert applicant.kana_birth_bidx is not None
    assert not (row_indexes & date_only)

    # Two people born the same day with different names share no birth-related index value.
    other = make_applicant(birth_date=birth, name_kana="ベツジン　サブロウ")
    assert other.kana_birth_bidx != applicant.kana_birth_bidx


# ---- R2.2: nothing in plain text in the store ------------------------------------------------
def _marker_people() -> list[dict]:
    people = []
    for i, (family, given) in enumerate(
        (("窓口試験", "壱太郎"), ("窓口試験", "弐花子"), ("窓口試験", "参次郎"))
    ):
        people.append(
            dict(
                number=numbers.make(f"7391628405{i}"),
                name=f"{family}　{given}",
                name_kana=f"マドグチシケン　マーカー{'イニサン'[i]}",
                birth_date=date(1961, 7, 23 + i),
                sex="女",
                postal_code=f"135-00{16 + i}",
                address=f"東京都江東区東陽4丁目{71 + i}番{36 + i}号マーカー荘{i + 1}号室",
                email=f"zq7marker{i}.kotoku@example.jp",
                phone=f"090-7345-26{18 + i}",
            )
        )
    return people


def _markers(people: list[dict]) -> list[str]:
    found = []
    for p in people:
        found += [
            p["number"],
            numbers.display(p["number"]),
            p["name"],
            p["name"].replace("\u3000", ""),
            p["name_kana"],
            p["name_kana"].replace("\u3000", ""),
            p["address"],
            p["address"].removeprefix("東京都江東区"),
            p["email"],
            p["phone"],
            p["phone"].replace("-", ""),
            p["birth_date"].isoformat(),
            p["birth_date"].strftime("%Y%m%d"),
            p["postal_code"],
            p["postal_code"].replace("-", ""),
        ]
    return found


def _commit_marker_people(ctx) -> list[str]:
    people = _marker_people()
    ids = []
    for p in people:
        ids.append(make_applicant(**p).id)
    db.session.commit()
    # The values really were written and read back (so the absence below means "encrypted").
    for p, row_id in zip(people, ids, strict=True):
        row = _load(row_id)
        assert (row.name, row.email, row.birth_date) == (p["name"], p["email"], p["birth_date"])
    return _markers(people)


@pytest.mark.skipif(ON_POSTGRES, reason="reads the SQLite file; the PostgreSQL variant reads the columns")
def test_sqlite_file_contains_no_plaintext(ctx):
    """R2.2: the SQLite database file (and its WAL/SHM) contain none of the personal values written."""
    markers = _commit_marker_people(ctx)
    path = Path(db.engine.url.database)
    db.session.remove()
    # Checkpoint outside any transaction (the engine's "begin" hook would wrap a session statement
    # in BEGIN, where SQLite refuses a checkpoint), so every committed page reaches the main file.
    raw = db.engine.raw_connection()
    try:
        busy, _log, _done = raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0
    finally:
        raw.close()
    db.engine.dispose()

    files = [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]
    assert path in files and path.stat().st_size > 0
    raw = b"".join(p.read_bytes() for p in files)
    # Control: the store does hold the rows (the table name and ciphertext prefixes are in the file).
    assert b"applicants" in raw
    for marker in markers:
        encodings = [marker.encode("utf-8")]
        if marker.isascii():
            encodings += [marker.encode("utf-16-le"), marker.encode("utf-16-be")]
        for encoded in encodings:
            assert encoded not in raw, f"plain text found in the database file: {marker!r}"


def test_database_columns_contain_no_plaintext(ctx):
    """R2.2: every column of every table, read back as raw SQL text, holds none of the personal values."""
    markers = _commit_marker_people(ctx)
    inspector = inspect(db.engine)
    dumped = []
    tables = inspector.get_table_names()
    assert "applicants" in tables
    for table in tables:
        columns = [c["name"] for c in inspector.get_columns(table)]
        select_list = ", ".join(f'CAST("{c}" AS TEXT)' for c in columns)
        for row in db.session.execute(text(f'SELECT {select_list} FROM "{table}"')):  # noqa: S608 - names from the schema
            dumped.extend(value for value in row if value is not None)
    blob = "\n".join(dumped)
    applicant_rows = db.session.execute(text("SELECT count(*) FROM applicants")).scalar_one()
    assert applicant_rows == 3
    for marker in markers:
        assert marker not in blob, f"plain text found in the database: {marker!r}"


# ---- R2.4 rotation ----------------------------------------------------------------------------
def test_key_rotation_reencrypt_and_retire(ctx):
    """R2.4: a new key is introduced while rows exist, old rows are re-encrypted online, the old key
    is retired, and every value still reads."""
    path = _key_file(ctx)
    source = ctx.extensions["madoguchi.keys"]
    old_rows = [make_applicant(name=f"旧鍵　{i}号") for i in range(3)]
    old_ids = [a.id for a in old_rows]
    old_name_ct = old_rows[0].name_ct
    db.session.commit()
    old_key = KeyRing.from_json(path.read_text()).active
    assert keys.usage() == {old_key: 3 * len(ENCRYPTED_FIELDS)}

    ring = KeyRing.from_json(path.read_text())
    new_key = ring.add_key()
    ring.save(path)
    assert source.reload().active == new_key
    assert new_key != old_key

    new_row = make_applicant(name="新鍵　一号")
    new_id = new_row.id
    db.session.commit()
    assert new_row.name_ct.startswith(f"{new_key}.")

    db.session.expunge_all()
    assert [_load(i).name for i in old_ids] == ["旧鍵　0号", "旧鍵　1号", "旧鍵　2号"]
    assert _load(new_id).name == "新鍵　一号"
    assert _load(old_ids[0]).name_ct.startswith(f"{old_key}.")
    usage = keys.usage()
    assert usage[old_key] == 3 * len(ENCRYPTED_FIELDS)
    assert usage[new_key] == len(ENCRYPTED_FIELDS)

    progress = []
    rewritten = keys.reencrypt(batch_size=2, progress=lambda table, n: progress.append((table, n)))
    assert rewritten == 3
    assert progress == [("applicants", 2), ("applicants", 3)]
    usage = keys.usage()
    assert usage[old_key] == 0
    assert usage[new_key] == 4 * len(ENCRYPTED_FIELDS)
    assert keys.reencrypt() == 0  # nothing left: a second run is a no-op

    ring = KeyRing.from_json(path.read_text())
    ring.retire(old_key)
    ring.save(path)
    assert set(source.reload().data_keys) == {new_key}

    db.session.expunge_all()
    for row_id, name in zip(old_ids, ["旧鍵　0号", "旧鍵　1号", "旧鍵　2号"], strict=True):
        row = _load(row_id)
        assert row.name == name
        assert row.birth_date == date(1980, 4, 1)
        for field in ENCRYPTED_FIELDS:
            assert getattr(row, f"{field}_ct").startswith(f"{new_key}.")
    assert _load(new_id).name == "新鍵　一号"
    # Blind indexes do not depend on the data key: search still works after rotation.
    assert Applicant.phone_key("09012345678") == _load(new_id).phone_bidx

    # A value written under the retired key (e.g. from an old backup) can no longer be read.
    _store(old_ids[0], name_ct=old_name_ct)
    with pytest.raises(DecryptionError):
        _ = _load(old_ids[0]).name


def test_value_under_removed_key_fails(ctx):
    """R2.4: a value under a key that was removed from the ring raises DecryptionError (crypto-shredding)."""
    path = _key_file(ctx)
    applicant = make_applicant()
    row_id = applicant.id
    db.session.commit()
    ring = KeyRing.from_json(path.read_text())
    old_key = ring.active
    ring.add_key()
    ring.retire(old_key)
    ring.save(path)
    ctx.extensions["madoguchi.keys"].reload()

    row = _load(row_id)
    assert row.name_ct.startswith(f"{old_key}.")
    with pytest.raises(DecryptionError) as info:
        _ = row.name
    assert "江東" not in _full_text(info.value)


def test_active_key_cannot_be_retired():
    """R2.4: retiring the key new values are written with is refused."""
    ring = KeyRing.generate()
    with pytest.raises(KeyError_):
        ring.retire(ring.active)
    assert ring.active in ring.data_keys


def test_another_key_ring_cannot_read_the_rows(ctx, tmp_path, database_url):
    """R2.4: an app with a different key ring reads none of the stored values (destroying the keys
    makes every copy unreadable)."""
    applicant = make_applicant(name="鍵違い　太郎")
    number = applicant.reservation_number
    db.session.commit()

    from reservation import create_app

    other_dir = tmp_path / "other-keys"
    other_dir.mkdir()
    other = create_app(base_overrides(other_dir, database_url))
    assert Path(other.config["MADOGUCHI_KEY_FILE"]).read_text() != _key_file(ctx).read_text()
    try:
        with other.app_context():
            rows = db.session.scalars(select(Applicant)).all()
            assert len(rows) == 1
            for field in ENCRYPTED_FIELDS:
                with pytest.raises(DecryptionError):
                    getattr(rows[0], field)
            # Its blind indexes differ too: the number is not even found.
            assert (
                db.session.scalars(
                    select(Applicant).where(Applicant.reservation_number_bidx == Applicant.number_key(number))
                ).all()
                == []
            )
            db.session.rollback()
    finally:
        with other.app_context():
            db.session.remove()
            db.engine.dispose()
    # The right keys still read it.
    assert _load(applicant.id).name == "鍵違い　太郎"


# ---- R2.5 keys outside the database and the repository ---------------------------------------
def test_production_refuses_to_start_without_keys():
    """R2.5: production refuses to start without keys."""
    with pytest.raises(config_module.ConfigError):
        config_module.load(
            {"MADOGUCHI_ENV": "production", "SECRET_KEY": "x", "MADOGUCHI_KEY_FILE": "", "MADOGUCHI_KEYS": ""}
        )


def test_production_refuses_a_key_file_inside_the_repository(tmp_path):
    """R2.5: keys never live in the repository: a key file inside it is refused in production."""
    for inside in (config_module.ROOT / "instance" / "keys.json", config_module.ROOT / "keys.json"):
        with pytest.raises(config_module.ConfigError):
            config_module.load(
                {
                    "MADOGUCHI_ENV": "production",
                    "SECRET_KEY": "x",
                    "MADOGUCHI_KEY_FILE": str(inside),
                    "MADOGUCHI_KEYS": "",
                }
            )
    # Control: the same settings with the key file outside the repository are accepted.
    outside = tmp_path / "keys.json"
    loaded = config_module.load(
        {
            "MADOGUCHI_ENV": "production",
            "SECRET_KEY": "x",
            "MADOGUCHI_KEY_FILE": str(outside),
            "MADOGUCHI_KEYS": "",
        }
    )
    assert loaded["MADOGUCHI_KEY_FILE"] == str(outside)
    loaded = config_module.load(
        {"MADOGUCHI_ENV": "production", "SECRET_KEY": "x", "MADOGUCHI_KEY_FILE": "", "MADOGUCHI_KEYS": "{}"}
    )
    assert loaded["MADOGUCHI_KEYS"] == "{}"


def test_app_refuses_to_start_with_a_missing_key_file(tmp_path, database_url):
    """R2.5: the app refuses to start when its key file is missing."""
    from reservation import create_app

    overrides = base_overrides(tmp_path, database_url)
    overrides["MADOGUCHI_KEY_FILE"] = str(tmp_path / "nowhere" / "keys.json")
    with pytest.raises(config_module.ConfigError):
        create_app(overrides)
    assert not (tmp_path / "nowhere").exists()  # and it did not quietly create keys


def test_app_refuses_to_start_with_malformed_keys_without_printing_them(tmp_path, database_url):
    """R2.5: unreadable key material stops the app, and the error shows none of it."""
    from reservation import create_app

    material = base64.b64encode(os.urandom(31)).decode()
    overrides = base_overrides(tmp_path, database_url)
    overrides["MADOGUCHI_KEYS"] = json.dumps(
        {"format": 1, "active": "k1", "data_keys": {"k1": material}, "index_key": material}
    )
    with pytest.raises(config_module.ConfigError) as info:
        create_app(overrides)
    assert material not in _full_text(info.value)


def _malformed_key_texts() -> dict[str, tuple[str, list[str]]]:
    good = base64.b64encode(os.urandom(32)).decode()
    short = base64.b64encode(os.urandom(31)).decode()
    other = base64.b64encode(os.urandom(32)).decode()

    def doc(**changes) -> str:
        value = {"format": 1, "active": "k1", "data_keys": {"k1": good}, "index_key": other}
        value.update(changes)
        return json.dumps(value)

    return {
        "truncated": (doc()[:-20], [good, other]),
        "short_data_key": (doc(data_keys={"k1": short}), [short, other]),
        "short_index_key": (doc(index_key=short), [good, short]),
        "bad_base64": (doc(index_key=other[:-3] + "!!!"), [good, other[:-3]]),
        "active_missing": (doc(active="k2"), [good, other]),
        "no_index_key": (json.dumps({"format": 1, "active": "k1", "data_keys": {"k1": good}}), [good]),
        "wrong_format": (doc(format=2), [good, other]),
        "not_an_object": (json.dumps([good, other]), [good, other]),
        "data_keys_not_strings": (doc(data_keys={"k1": 12345}), [other]),
    }


@pytest.mark.parametrize("case", sorted(_malformed_key_texts()))
def test_malformed_key_json_raises_without_key_material(case):
    """R2.5: malformed key JSON raises KeyError_ whose message contains no key material."""
    text_, material = _malformed_key_texts()[case]
    with pytest.raises(KeyError_) as info:
        KeyRing.from_json(text_)
    message = _full_text(info.value)
    for secret in material:
        assert secret not in message
        assert secret not in repr(info.value)


def test_saved_key_file_is_owner_only_and_round_trips(tmp_path):
    """R2.5: the key file is written owner-only, and reads back to the same keys."""
    ring = KeyRing.generate()
    second = ring.add_key()
    path = tmp_path / "k" / "keys.json"
    ring.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    loaded = KeyRing.from_json(path.read_text())
    assert loaded.active == second
    assert loaded.data_keys == ring.data_keys
    assert loaded.index_key == ring.index_key


def test_key_ring_repr_shows_no_key_material():
    """R2.5: a key ring printed by accident (log line, debugger, traceback locals) shows no key."""
    ring = KeyRing.generate()
    shown = repr(ring) + str(ring)
    assert repr(ring.index_key) not in shown
    for key in ring.data_keys.values():
        assert repr(key) not in shown
