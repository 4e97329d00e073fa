"""Back-office forms."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    DateField,
    IntegerField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)
from wtforms.widgets import CheckboxInput, ListWidget

from madoguchi.models import PER_VENUE
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


# ---- venues (R6) ---------------------------------------------------------------------------------
class ScanForm(Form):
    """A barcode scanner types the digits and Enter into the focused box; people type too."""

    number = StringField(
        _l("予約管理番号"),
        validators=[DataRequired(_l("予約管理番号を読み取るか入力してください。")), Length(max=40)],
        description=_l("通知書のバーコードを読み取るか、12桁の数字を入力して Enter を押してください。"),
        render_kw={"autofocus": True, "autocomplete": "off", "inputmode": "numeric"},
    )
    submit = SubmitField(_l("探す"))


class OutcomeForm(Form):
    outcome = StringField(validators=[DataRequired()])
    # A booking for another day is acted on only when the staff member says so (R6.1).
    other_day = BooleanField(_l("予約日以外の来庁として記録する"))


class UndoForm(Form):
    reason = SelectField(
        _l("取り消す理由"),
        choices=[
            SelectChoice("", _l("選んでください")),
            SelectChoice("wrong_booking", _l("別の予約に記録した")),
            SelectChoice("wrong_outcome", _l("記録の種類を誤った")),
            SelectChoice("came_later", _l("来庁なしと記録した後に来庁した")),
            SelectChoice("card_not_given", _l("交付を記録したがカードを渡していない")),
        ],
        validators=[DataRequired(_l("取り消す理由を選んでください。"))],
    )
    submit = SubmitField(_l("記録を取り消す"))


class PeriodForm(Form):
    first_day = DateField(_l("開始日"), validators=[DataRequired(_l("開始日を入力してください。"))])
    last_day = DateField(_l("終了日"), validators=[DataRequired(_l("終了日を入力してください。"))])
    submit = SubmitField(_l("台帳をPDFで作成"))

    def validate_last_day(self, field):
        if self.first_day.data and field.data:
            if field.data < self.first_day.data:
                raise ValidationError(_l("終了日は開始日以降にしてください。"))
            if (field.data - self.first_day.data).days > 31:
                raise ValidationError(_l("期間は31日以内にしてください。"))


class UncollectedForm(Form):
    kinds = MultiCheckbox(
        _l("対象"),
        choices=[
            SelectChoice("no_show", _l("予約したが来庁しなかった人")),
            SelectChoice("not_booked", _l("予約していない人")),
        ],
        validators=[DataRequired(_l("対象を1つ以上選んでください。"))],
    )
    document = StringField(validators=[Optional()])


class CountForm(Form):
    kind = SelectField(_l("項目"), validators=[DataRequired(_l("項目を選んでください。"))])
    venue_id = SelectField(
        _l("会場（カードの会場送付・交付・返却のみ）"), coerce=lambda v: int(v) if v else None
    )
    day = DateField(_l("日付"), validators=[DataRequired(_l("日付を入力してください。"))])
    quantity = IntegerField(
        _l("数量"),
        validators=[
            InputRequired(_l("数量を入力してください。")),
            NumberRange(min=0, max=1_000_000, message=_l("数量は0以上の整数で入力してください。")),
        ],
    )
    submit = SubmitField(_l("記録する"))

    def validate_venue_id(self, field):
        if self.kind.data in {k.value for k in PER_VENUE} and not field.data:
            raise ValidationError(_l("この項目は会場を選んでください。"))


class CorrectionForm(Form):
    quantity = IntegerField(
        _l("正しい数量"),
        validators=[
            InputRequired(_l("数量を入力してください。")),
            NumberRange(min=0, max=1_000_000, message=_l("数量は0以上の整数で入力してください。")),
        ],
    )
    reason = StringField(
        _l("訂正の理由"),
        validators=[DataRequired(_l("訂正の理由を入力してください。")), Length(max=200)],
        description=_l("個人を特定できる情報は書かないでください。"),
    )
    submit = SubmitField(_l("訂正する"))
