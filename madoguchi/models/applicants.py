"""交付対象者 (applicants): the only personal record, every personal field encrypted (R2)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .. import normalize
from ..crypto import EncryptedField, blind_index
from ..extensions import db
from .types import BlindIndex, Ciphertext, RowId, UTCDateTime
from .venues import Venue

SEXES = ("男", "女")
SOURCES = ("roster", "web", "phone", "fax", "counter")


class Applicant(db.Model):
    """One person with one 予約管理番号.

    R2.1: 住所 (postal code + address), 氏名 (and its kana reading, used to find the person by phone),
    生年月日, 性別, メールアドレス, 電話番号 — nothing else. R2.3: equality search through blind indexes;
    生年月日 is indexed only together with the kana name, never alone (it has too few values).
    """

    __tablename__ = "applicants"

    id: Mapped[str] = mapped_column(RowId(), primary_key=True)
    reservation_number_ct: Mapped[str] = mapped_column(Ciphertext())
    reservation_number_bidx: Mapped[str] = mapped_column(BlindIndex(), unique=True)
    name_ct: Mapped[str | None] = mapped_column(Ciphertext())
    name_kana_ct: Mapped[str | None] = mapped_column(Ciphertext())
    name_kana_bidx: Mapped[str | None] = mapped_column(BlindIndex(), index=True)
    birth_date_ct: Mapped[str | None] = mapped_column(Ciphertext())
    kana_birth_bidx: Mapped[str | None] = mapped_column(BlindIndex(), index=True)
    sex_ct: Mapped[str | None] = mapped_column(Ciphertext())
    postal_code_ct: Mapped[str | None] = mapped_column(Ciphertext())
    address_ct: Mapped[str | None] = mapped_column(Ciphertext())
    email_ct: Mapped[str | None] = mapped_column(Ciphertext())
    phone_ct: Mapped[str | None] = mapped_column(Ciphertext())
    phone_bidx: Mapped[str | None] = mapped_column(BlindIndex(), index=True)
    # The venue that serves the address (R3.2), or the one the resident chose when the address
    # is outside the table. Not personal: three venues serve the whole city.
    venue_id: Mapped[int | None] = mapped_column(ForeignKey("venues.id"))
    source: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    venue: Mapped[Venue | None] = relationship()

    reservation_number = EncryptedField()
    name = EncryptedField()
    name_kana = EncryptedField()
    birth_date = EncryptedField(to_text=date.isoformat, from_text=date.fromisoformat)
    sex = EncryptedField()
    postal_code = EncryptedField()
    address = EncryptedField()
    email = EncryptedField()
    phone = EncryptedField()

    def refresh_blind_indexes(self) -> None:
        table = self.__tablename__
        number = self.reservation_number if self.reservation_number_ct else None
        self.reservation_number_bidx = blind_index(table, "reservation_number", number)
        kana = normalize.kana(self.name_kana) if self.name_kana_ct else None
        self.name_kana_bidx = blind_index(table, "name_kana", kana)
        birth = self.birth_date if self.birth_date_ct else None
        self.kana_birth_bidx = blind_index(
            table, "kana_birth", f"{kana}|{birth.isoformat()}" if kana and birth else None
        )
        self.phone_bidx = blind_index(table, "phone", normalize.phone(self.phone) if self.phone_ct else None)

    # Search keys computed the same way, for the queries.
    @classmethod
    def number_key(cls, number: str) -> str | None:
        return blind_index(cls.__tablename__, "reservation_number", number)

    @classmethod
    def phone_key(cls, phone: str) -> str | None:
        return blind_index(cls.__tablename__, "phone", normalize.phone(phone))

    @classmethod
    def kana_key(cls, kana: str) -> str | None:
        return blind_index(cls.__tablename__, "name_kana", normalize.kana(kana))

    @classmethod
    def kana_birth_key(cls, kana: str, birth: date) -> str | None:
        return blind_index(cls.__tablename__, "kana_birth", f"{normalize.kana(kana)}|{birth.isoformat()}")


class LookupFailure(db.Model):
    """Failed 予約管理番号 + 生年月日 look-ups per number, to stop guessing (R3.5)."""

    __tablename__ = "lookup_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number_bidx: Mapped[str] = mapped_column(BlindIndex(), unique=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
