"""The base of every form in every front end."""

from __future__ import annotations

import functools

from babel import support
from flask import request
from flask_wtf import FlaskForm
from flask_wtf.form import _Auto, _is_submitted
from markupsafe import Markup, escape
from werkzeug.datastructures import ImmutableMultiDict
from wtforms.i18n import messages_path
from wtforms.widgets import TextInput
from wtforms.widgets.core import clean_key

from .config import LOCALE


def _text_only(data) -> ImmutableMultiDict:
    """Form values as text, with NUL characters removed (PostgreSQL text cannot hold them, and no
    person types one)."""
    return ImmutableMultiDict(
        [(key, value.replace("\x00", "")) for key, value in data.items(multi=True) if isinstance(value, str)]
    )


@functools.lru_cache(maxsize=4)
def _wtforms_translations(locale: str) -> support.Translations:
    return support.Translations.load(messages_path(), [locale], domain="wtforms")


class Form(FlaskForm):
    """A FlaskForm that reads only submitted text fields.

    Flask-WTF merges uploaded files and JSON bodies into the form data, so a file or a JSON number
    posted under a text field's name would reach the validators as a FileStorage or an int and fail
    with a TypeError (a 500). None of our forms takes a file or JSON.
    """

    class Meta:
        def get_translations(self, form):
            # Flask-WTF reads and parses WTForms' message catalogue again in every request
            # (profiled: a tenth of a booking request, R9.2); it never changes while we run.
            return _wtforms_translations(LOCALE)

        def wrap_formdata(self, form, formdata):
            if formdata is _Auto:
                return _text_only(request.form) if _is_submitted() else None
            return None if formdata is None else _text_only(formdata)


def _html_params(**kwargs) -> Markup:
    """WTForms' ``html_params`` with the same output, without a ``Markup.format`` per attribute
    (that was most of rendering an input, R9.2)."""
    params = []
    for key, value in sorted(kwargs.items()):
        if value is True:
            params.append(escape(clean_key(key)))
        elif value is not False:
            params.append(escape(clean_key(key)) + _EQUALS + escape(value) + _QUOTE)
    return _SPACE.join(params)


_EQUALS, _QUOTE, _SPACE = Markup('="'), Markup('"'), Markup(" ")


class LeanTextInput(TextInput):
    """A text input rendered as WTForms renders it, faster: for the forms of the hot paths (the
    operator's search box is rendered with every search)."""

    html_params = staticmethod(_html_params)
