"""Staff sign-in forms."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length

from madoguchi.webforms import Form


class SignInForm(Form):
    login_id = StringField(
        _l("職員ID"),
        validators=[DataRequired(_l("職員IDを入力してください。")), Length(max=64)],
        render_kw={"autocomplete": "username", "autofocus": True},
    )
    password = PasswordField(
        _l("パスワード"),
        validators=[DataRequired(_l("パスワードを入力してください。")), Length(max=200)],
        render_kw={"autocomplete": "current-password"},
    )
    submit = SubmitField(_l("次へ"))


class CodeForm(Form):
    code = StringField(
        _l("確認コード"),
        validators=[DataRequired(_l("確認コードを入力してください。")), Length(max=20)],
        description=_l("認証アプリに表示されている6桁の数字。スマートフォンがない場合は回復コード。"),
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True},
    )
    submit = SubmitField(_l("サインイン"))


class EnrolForm(Form):
    code = StringField(
        _l("確認コード（6桁）"),
        validators=[DataRequired(_l("確認コードを入力してください。")), Length(max=6)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"},
    )
    submit = SubmitField(_l("登録する"))


class PasswordForm(Form):
    current = PasswordField(
        _l("現在のパスワード"),
        validators=[DataRequired(_l("現在のパスワードを入力してください。"))],
        render_kw={"autocomplete": "current-password"},
    )
    new = PasswordField(
        _l("新しいパスワード"),
        validators=[DataRequired(_l("新しいパスワードを入力してください。")), Length(max=200)],
        description=_l("12文字以上。推測されやすい言葉や並びは使えません。"),
        render_kw={"autocomplete": "new-password"},
    )
    confirm = PasswordField(
        _l("新しいパスワード（確認）"),
        validators=[EqualTo("new", _l("確認のパスワードが一致しません。"))],
        render_kw={"autocomplete": "new-password"},
    )
    submit = SubmitField(_l("変更する"))
