"""Back-office forms."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    DateField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, Regexp, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from madoguchi.permissions import ROLE_LABELS, VENUE_SCOPED, Role
from madoguchi.webforms import Form


class MultiCheckbox(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class StaffForm(Form):
    login_id = StringField(
        _l("職員ID"),
        validators=[
            DataRequired(_l("職員IDを入力してください。")),
            Length(max=64),
            Regexp(r"^[a-z0-9._-]+$", message=_l("職員IDは半角英小文字・数字・._- で入力してください。")),
        ],
    )
    name = StringField(_l("氏名"), validators=[DataRequired(_l("氏名を入力してください。")), Length(max=100)])
    affiliation = StringField(
        _l("所属"), validators=[DataRequired(_l("所属を入力してください。")), Length(max=100)]
    )
    roles = MultiCheckbox(
        _l("役割"),
        choices=[SelectChoice(r.value, ROLE_LABELS[r]) for r in Role],
        validators=[DataRequired(_l("役割を1つ以上選んでください。"))],
    )
    venue_id = SelectField(_l("担当会場（会場担当のみ）"), coerce=lambda v: int(v) if v else None)
    duty_start = DateField(
        _l("従事期間の開始日"), validators=[DataRequired(_l("開始日を入力してください。"))]
    )
    duty_end = DateField(
        _l("従事期間の終了予定日"), validators=[DataRequired(_l("終了予定日を入力してください。"))]
    )
    active = BooleanField(_l("有効"), default=True)
    password = PasswordField(
        _l("初期パスワード"),
        validators=[Optional(), Length(max=200)],
        description=_l("12文字以上。本人に安全な方法で伝え、初回に変更してもらってください。"),
    )
    submit = SubmitField(_l("保存する"))

    def validate_duty_end(self, field):
        if self.duty_start.data and field.data and field.data < self.duty_start.data:
            raise ValidationError(_l("終了予定日は開始日以降にしてください。"))

    def validate_venue_id(self, field):
        scoped = {r.value for r in VENUE_SCOPED} & set(self.roles.data or [])
        if scoped and not field.data:
            raise ValidationError(_l("会場担当には担当会場を1つ選んでください。"))


class AuditFilterForm(Form):
    class Meta:
        csrf = False

    login_id = StringField(_l("職員ID"), validators=[Optional(), Length(max=64)])
    action = StringField(_l("操作"), validators=[Optional(), Length(max=64)])
    since = DateField(_l("開始日"), validators=[Optional()])
    until = DateField(_l("終了日"), validators=[Optional()])
