"""Call-center forms."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import DateField, HiddenField, IntegerField, RadioField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from madoguchi.calls import NOTE_MAX_LENGTH
from madoguchi.models import CALL_CATEGORY_LABELS, CallCategory
from madoguchi.recordings import BASIS_LABELS
from madoguchi.webforms import Form, LeanTextInput


class PlainForm(Form):
    """A button that changes something: only the CSRF token."""


class SearchForm(Form):
    # POSTed, never in a URL: a phone number or a name must not reach logs or history (standard 4).
    # Rendered with every search: the lean widget writes the same input faster (R9.2).
    q = StringField(
        _l("予約管理番号・電話番号・氏名（カナ）"),
        validators=[
            DataRequired(_l("予約管理番号、電話番号、または氏名のカナを入力してください。")),
            Length(max=100),
        ],
        widget=LeanTextInput(),
    )
    birth = StringField(
        _l("生年月日（カナ検索で絞り込むとき）"),
        validators=[Optional(), Length(max=30)],
        widget=LeanTextInput(),
    )


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


class ExtendForm(Form):
    until = DateField(_l("延長後の保存期限"), validators=[InputRequired(_l("日付を入力してください。"))])
    reason = TextAreaField(
        _l("延長する理由"),
        validators=[DataRequired(_l("理由を入力してください。")), Length(max=500)],
    )


class ProvisionForm(Form):
    requester = StringField(
        _l("提供先（機関・部署・担当者）"),
        validators=[DataRequired(_l("提供先を入力してください。")), Length(max=200)],
    )
    basis = RadioField(
        _l("提供の根拠"),
        choices=[SelectChoice(b.value, label) for b, label in BASIS_LABELS.items()],
        validators=[InputRequired(_l("提供の根拠を選んでください。"))],
    )
    basis_detail = StringField(_l("照会文書の番号・同意書など"), validators=[Optional(), Length(max=200)])
    scope = TextAreaField(
        _l("提供する範囲（必要最小限）"),
        validators=[DataRequired(_l("提供する範囲を入力してください。")), Length(max=1000)],
    )


class DecisionForm(Form):
    approve = HiddenField(validators=[InputRequired()])


class ProvisionCloseForm(Form):
    closure = RadioField(
        _l("返却・廃棄"),
        choices=[SelectChoice("returned", _l("返却された")), SelectChoice("destroyed", _l("廃棄を確認した"))],
        validators=[InputRequired()],
    )
