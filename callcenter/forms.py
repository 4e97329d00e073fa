"""Call-center forms."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import HiddenField, IntegerField, RadioField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from madoguchi.calls import NOTE_MAX_LENGTH
from madoguchi.models import CALL_CATEGORY_LABELS, CallCategory
from madoguchi.webforms import Form


class PlainForm(Form):
    """A button that changes something: only the CSRF token."""


class SearchForm(Form):
    # POSTed, never in a URL: a phone number or a name must not reach logs or history (standard 4).
    q = StringField(
        _l("予約管理番号・電話番号・氏名（カナ）"),
        validators=[
            DataRequired(_l("予約管理番号、電話番号、または氏名のカナを入力してください。")),
            Length(max=100),
        ],
    )
    birth = StringField(_l("生年月日（カナ検索で絞り込むとき）"), validators=[Optional(), Length(max=30)])


class SlotForm(Form):
    slot_id = IntegerField(validators=[InputRequired(_l("日時を選んでください。"))])
    # One key per form shown: a double submit or a retried request books once (R1.2).
    request_key = HiddenField(validators=[Optional(), Length(max=64)])
    call_id = HiddenField(validators=[Optional(), Length(max=32)])


class CancelForm(Form):
    call_id = HiddenField(validators=[Optional(), Length(max=32)])


class CallLogForm(Form):
    category = RadioField(
        _l("区分"),
        choices=[SelectChoice(c.value, CALL_CATEGORY_LABELS[c]) for c in CallCategory],
        validators=[InputRequired(_l("区分を選んでください。"))],
    )
    note = TextAreaField(
        _l("内容（記録票）"),
        validators=[Length(max=NOTE_MAX_LENGTH, message=_l("内容は2000文字以内で入力してください。"))],
    )
    about = RadioField(_l("関連する予約"), validators=[Optional()], validate_choice=False)
