"""Back-office forms for venue settings, the roster import and the incident register (R3.3, R8)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import (
    DateField,
    DateTimeLocalField,
    IntegerField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
    TimeField,
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

from madoguchi.calendar_admin import MAX_CAPACITY, SLOT_MINUTES
from madoguchi.incidents import TEXT_MAX
from madoguchi.webforms import Form

from .forms import MultiCheckbox

WEEKDAYS = [SelectChoice(str(i), label) for i, label in enumerate("月火水木金土日")]
NO_PERSONAL = _l("個人を特定できる情報は書かないでください。")


def _capacity(label):
    return IntegerField(
        label,
        validators=[
            InputRequired(_l("定員を入力してください。")),
            NumberRange(min=0, max=MAX_CAPACITY, message=_l("定員は0〜999の整数で入力してください。")),
        ],
    )


class VenueInfoForm(Form):
    name = StringField(
        _l("会場名"), validators=[DataRequired(_l("会場名を入力してください。")), Length(max=100)]
    )
    floor = StringField(_l("階・場所"), validators=[Optional(), Length(max=100)])
    address = StringField(_l("所在地"), validators=[Optional(), Length(max=200)])
    map_url = StringField(
        _l("地図のリンク"),
        validators=[
            Optional(),
            Length(max=500),
            Regexp(
                r"^https?://[^\s]+$",
                message=_l("地図のリンクは http:// または https:// で始まるURLにしてください。"),
            ),
        ],
    )
    directions = TextAreaField(_l("行き方"), validators=[Optional(), Length(max=2000)])
    submit = SubmitField(_l("保存する"))


class TemplateForm(Form):
    open_time = TimeField(
        _l("受付開始"), validators=[InputRequired(_l("受付開始の時刻を入力してください。"))]
    )
    close_time = TimeField(
        _l("受付終了"), validators=[InputRequired(_l("受付終了の時刻を入力してください。"))]
    )
    slot_minutes = IntegerField(
        _l("1枠の長さ（分）"),
        validators=[
            InputRequired(_l("1枠の長さを入力してください。")),
            NumberRange(
                min=SLOT_MINUTES[0],
                max=SLOT_MINUTES[1],
                message=_l("1枠の長さは5〜240分で入力してください。"),
            ),
        ],
    )
    slot_capacity = _capacity(_l("1枠の定員"))
    open_weekdays = MultiCheckbox(_l("開庁する曜日（祝日と年末年始は休み）"), choices=WEEKDAYS)
    first_day = DateField(
        _l("適用する最初の日"),
        validators=[InputRequired(_l("適用する最初の日を入力してください。"))],
        description=_l(
            "この日以降の予約枠を作り直します。予約が入っている枠は、予約を残したまま変えられる場合だけ変えます。"
        ),
    )
    submit = SubmitField(_l("確認して適用する"))

    def validate_close_time(self, field):
        if self.open_time.data and field.data and field.data <= self.open_time.data:
            raise ValidationError(_l("受付終了は受付開始より後にしてください。"))


class CapacityForm(Form):
    capacity = _capacity(_l("定員"))


class DayForm(Form):
    day = DateField(_l("日付"), validators=[InputRequired(_l("日付を入力してください。"))])


class SpecialOpeningForm(Form):
    day = DateField(_l("日付"), validators=[InputRequired(_l("日付を入力してください。"))])
    open_time = TimeField(
        _l("受付開始"), validators=[InputRequired(_l("受付開始の時刻を入力してください。"))]
    )
    close_time = TimeField(
        _l("受付終了"), validators=[InputRequired(_l("受付終了の時刻を入力してください。"))]
    )
    note = StringField(
        _l("メモ（例: 休日開庁）"), validators=[Optional(), Length(max=200)], description=NO_PERSONAL
    )
    submit = SubmitField(_l("休日開庁を追加"))

    def validate_close_time(self, field):
        if self.open_time.data and field.data and field.data <= self.open_time.data:
            raise ValidationError(_l("受付終了は受付開始より後にしてください。"))


class RosterUploadForm(Form):
    """CSRF only: the file itself is read from ``request.files`` by the view, with a size limit
    (``webforms.Form`` ignores files on purpose)."""

    submit = SubmitField(_l("取り込む"))


def _text(label, *, required=False):
    validators = [Length(max=TEXT_MAX, message=_l("4000文字以内で入力してください。"))]
    validators.insert(0, DataRequired(_l("入力してください。")) if required else Optional())
    return TextAreaField(label, validators=validators)


class IncidentForm(Form):
    content = _text(_l("事案の内容（漏えい等の内容）"), required=True)
    affected_count = IntegerField(
        _l("件数（対象となった人数・件数）"),
        validators=[
            Optional(),
            NumberRange(min=0, max=10_000_000, message=_l("件数は0以上の整数で入力してください。")),
        ],
    )
    place = _text(_l("発生場所"))
    circumstances = _text(_l("発生状況・経緯"))
    actions = _text(_l("対応・再発防止策"))
    occurred_on = DateField(_l("発生日"), validators=[Optional()])
    discovered_at = DateTimeLocalField(
        _l("発見日時"),
        format=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"],
        validators=[InputRequired(_l("発見日時を入力してください。"))],
    )
    reported_to_city_at = DateTimeLocalField(
        _l("区への報告日時"), format=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"], validators=[Optional()]
    )
    reported_to_commission_at = DateTimeLocalField(
        _l("個人情報保護委員会への報告日時"),
        format=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"],
        validators=[Optional()],
    )
    status = SelectField(
        _l("状態"),
        choices=[SelectChoice("open", _l("対応中")), SelectChoice("closed", _l("完了"))],
        validators=[DataRequired()],
    )
    submit = SubmitField(_l("保存する"))
