"""Forms of the export ledger (R7.5) and the deletion records (R8.1)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import DateField, RadioField, SelectField, StringField, SubmitField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from madoguchi.exports import MAX_DAYS, TEXT_MAX
from madoguchi.webforms import Form

NO_PERSONAL = _l("個人を特定できる情報は書かないでください。")


class ExportRequestForm(Form):
    venue_id = SelectField(
        _l("会場"),
        coerce=lambda v: int(v) if v else None,
        validators=[DataRequired(_l("会場を選んでください。"))],
    )
    first_day = DateField(_l("予約日（開始）"), validators=[DataRequired(_l("開始日を入力してください。"))])
    last_day = DateField(_l("予約日（終了）"), validators=[DataRequired(_l("終了日を入力してください。"))])
    purpose = TextAreaField(
        _l("目的"),
        validators=[DataRequired(_l("目的を入力してください。")), Length(max=TEXT_MAX)],
        description=NO_PERSONAL,
    )
    destination = StringField(
        _l("持ち出し先"),
        validators=[DataRequired(_l("持ち出し先を入力してください。")), Length(max=TEXT_MAX)],
        description=_l("例: 江東区 区民課（USBメモリで手渡し）"),
    )
    submit = SubmitField(_l("承認を申請する"))

    def validate_last_day(self, field):
        if self.first_day.data and field.data:
            if field.data < self.first_day.data:
                raise ValidationError(_l("終了日は開始日以降にしてください。"))
            if (field.data - self.first_day.data).days >= MAX_DAYS:
                raise ValidationError(_l("期間は{n}日以内にしてください。").format(n=MAX_DAYS))


class DecisionForm(Form):
    decision = RadioField(
        _l("判断"),
        choices=[SelectChoice("approve", _l("承認する")), SelectChoice("reject", _l("却下する"))],
        validators=[DataRequired(_l("承認するか却下するかを選んでください。"))],
    )
    note = StringField(_l("コメント"), validators=[Optional(), Length(max=TEXT_MAX)], description=NO_PERSONAL)
    submit = SubmitField(_l("決定する"))


class ProduceForm(Form):
    submit = SubmitField(_l("暗号化ファイルを作成する"))


class CloseForm(Form):
    closure = RadioField(
        _l("結果"),
        choices=[SelectChoice("returned", _l("返却された")), SelectChoice("destroyed", _l("廃棄した"))],
        validators=[DataRequired(_l("返却か廃棄かを選んでください。"))],
    )
    note = StringField(
        _l("確認の内容"),
        validators=[Optional(), Length(max=TEXT_MAX)],
        description=_l("例: 区民課 担当者が受領を確認。個人を特定できる情報は書かないでください。"),
    )
    submit = SubmitField(_l("完了を記録する"))


class PeriodFilterForm(Form):
    class Meta:
        csrf = False

    since = DateField(_l("開始日"), validators=[Optional()])
    until = DateField(_l("終了日"), validators=[Optional()])

    def validate_until(self, field):
        if self.since.data and field.data and field.data < self.since.data:
            raise ValidationError(_l("終了日は開始日以降にしてください。"))
