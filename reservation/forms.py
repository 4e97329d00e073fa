"""Residents' forms. Every message says in Japanese what to fix (R3.6, standard 3)."""

from __future__ import annotations

import re

from flask_babel import lazy_gettext as _l
from wtforms import HiddenField, RadioField, StringField, SubmitField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, Regexp, ValidationError

from madoguchi import dates, normalize, numbers
from madoguchi.models import SEXES
from madoguchi.webforms import Form


def _reservation_number(_form, field):
    try:
        field.data = numbers.parse(field.data or "")
    except numbers.InvalidReservationNumber as exc:
        if exc.reason == "length":
            raise ValidationError(
                _l("予約管理番号は12桁の数字で入力してください（交付通知書に記載されています）。")
            ) from None
        raise ValidationError(
            _l("予約管理番号が正しくありません。交付通知書の番号をもう一度お確かめください。")
        ) from None


def _birth_date(_form, field):
    try:
        field.parsed = dates.parse_birth_date(field.data or "")
    except dates.InvalidDate as exc:
        messages = {
            "format": _l("生年月日は「1980年4月1日」「昭和55年4月1日」「S55.4.1」のように入力してください。"),
            "nonexistent": _l("その日付はありません。生年月日をもう一度お確かめください。"),
            "era": _l("元号と年の組み合わせが正しくありません（例: 平成は31年4月30日まで）。"),
        }
        raise ValidationError(messages[exc.reason]) from None


def _kana(_form, field):
    if not normalize.is_kana(field.data or ""):
        raise ValidationError(_l("フリガナはカタカナまたはひらがなで入力してください。"))
    field.data = normalize.kana(field.data)


def _phone(_form, field):
    if not field.data:
        return
    digits = normalize.phone(field.data)
    if not (10 <= len(digits) <= 11 and digits.startswith("0")):
        raise ValidationError(
            _l("電話番号は市外局番から、10桁または11桁の数字で入力してください（例: 090-1234-5678）。")
        )
    field.data = digits


def _email(_form, field):
    if not field.data:
        return
    from email_validator import EmailNotValidError, validate_email

    try:
        field.data = validate_email(normalize.email(field.data), check_deliverability=False).normalized
    except EmailNotValidError:
        raise ValidationError(_l("メールアドレスの形式が正しくありません（例: name@example.jp）。")) from None


def _postal(_form, field):
    if not field.data:
        return
    digits = normalize.digits(field.data).replace("〒", "")
    if not (len(digits) == 7 and digits.isdigit()):
        raise ValidationError(_l("郵便番号は7桁の数字で入力してください（例: 135-8383）。"))
    field.data = f"{digits[:3]}-{digits[3:]}"


REQUIRED = {
    "reservation_number": _l("予約管理番号を入力してください。"),
    "birth_date": _l("生年月日を入力してください。"),
    "name": _l("氏名を入力してください。"),
    "name_kana": _l("フリガナを入力してください。"),
    "sex": _l("性別を選んでください。"),
    "address": _l("住所を入力してください。"),
}


class IdentifyForm(Form):
    reservation_number = StringField(
        _l("予約管理番号（12桁）"),
        validators=[DataRequired(REQUIRED["reservation_number"]), _reservation_number],
        description=_l("交付通知書（はがき）の右上に記載されている12桁の番号です。"),
        render_kw={"inputmode": "numeric", "autocomplete": "off"},
    )
    birth_date = StringField(
        _l("生年月日"),
        validators=[DataRequired(REQUIRED["birth_date"]), _birth_date],
        description=_l("例: 1980年4月1日、昭和55年4月1日、S55.4.1"),
        render_kw={"autocomplete": "bday"},
    )
    submit = SubmitField(_l("次へ進む"))


class ContactForm(Form):
    email = StringField(
        _l("メールアドレス（任意）"),
        validators=[Optional(), Length(max=254), _email],
        description=_l("予約内容の確認メールをお送りします。"),
        render_kw={"autocomplete": "email", "inputmode": "email"},
    )
    phone = StringField(
        _l("電話番号（任意）"),
        validators=[Optional(), Length(max=20), _phone],
        description=_l("日中に連絡のとれる番号。例: 090-1234-5678"),
        render_kw={"autocomplete": "tel", "inputmode": "tel"},
    )
    submit = SubmitField(_l("次へ進む"))


class RegisterForm(ContactForm):
    """For applicants the city's roster does not hold: the minimal fields of R2.1, no more."""

    reservation_number = IdentifyForm.reservation_number
    name = StringField(
        _l("氏名"),
        validators=[DataRequired(REQUIRED["name"]), Length(max=60)],
        description=_l("住民票に記載されている氏名。例: 江東 太郎"),
        render_kw={"autocomplete": "name"},
    )
    name_kana = StringField(
        _l("フリガナ"),
        validators=[DataRequired(REQUIRED["name_kana"]), Length(max=60), _kana],
        description=_l("例: コウトウ タロウ"),
    )
    birth_date = IdentifyForm.birth_date
    sex = RadioField(
        _l("性別"),
        choices=[SelectChoice(s, s) for s in SEXES],
        validators=[DataRequired(REQUIRED["sex"])],
        description=_l("住民票の記載のとおりに選んでください。"),
    )
    postal_code = StringField(
        _l("郵便番号（任意）"),
        validators=[Optional(), _postal],
        description=_l("入力して「住所を検索」を押すと、住所の前半を入力します。例: 135-8383"),
        render_kw={"autocomplete": "postal-code", "inputmode": "numeric"},
    )
    lookup_postal = SubmitField(_l("住所を検索"))
    address = StringField(
        _l("住所"),
        validators=[DataRequired(REQUIRED["address"]), Length(max=200)],
        description=_l("丁目・番地まで入力してください。例: 東京都江東区東陽4丁目11番28号"),
        render_kw={"autocomplete": "street-address"},
    )
    submit = SubmitField(_l("登録して次へ進む"))


class VenueChoiceForm(Form):
    venue = RadioField(_l("受け取り会場"), validators=[DataRequired(_l("受け取る会場を選んでください。"))])
    submit = SubmitField(_l("この会場で日時を選ぶ"))


class HoldForm(Form):
    slot_id = HiddenField(validators=[DataRequired(), Regexp(r"^[0-9]{1,9}$")])


HOLD_ID = r"[0-9a-f]{32}"
_HOLD_ID = re.compile(HOLD_ID)


class ConfirmForm(Form):
    """The confirmation page's form. Its POST is checked by ``confirmed_hold_id``."""

    # The token is checked once, by CSRFProtect before the view (as for every POST): the form's own
    # check would make a new token for nothing in the request a burst makes (R9.2).
    class Meta:
        csrf = False

    hold_id = HiddenField(validators=[DataRequired(), Regexp(f"^{HOLD_ID}$")])
    submit = SubmitField(_l("この内容で予約する"))


def confirmed_hold_id(formdata) -> str | None:
    """The one value POST /confirm sends, the hold's id, as ``ConfirmForm`` would accept it, or None.
    Checked without building the form: this is the request a burst makes, and binding the form's
    fields was a tenth of it (R9.2, ``benchmarks/hotpath.py``)."""
    value = formdata.get("hold_id")
    return value if isinstance(value, str) and _HOLD_ID.fullmatch(value) else None


class PlainForm(Form):
    """A POST with nothing but its CSRF token (cancel, release, sign out)."""

    submit = SubmitField(_l("実行する"))
