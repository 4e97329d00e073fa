"""Template compilation helpers shared by the apps (R9.2; docs/capacity.md).

``FoldedGettext`` translates ``{{ _('literal') }}`` once, when a template is compiled, instead of at
every render. Each app has one locale and one catalogue for the life of the process (see
``madoguchi.config.LOCALE``), so the text is a constant; at render time Jinja's new-style gettext
went through three context calls per string (profiled: about 25 µs each, some thirty strings on the
call-center console, a tenth of the page). The constant is the value the installed gettext itself
returns — escaped-safe (``Markup``) where autoescaping is on, ``%`` formatting applied — so the page
is the same. Calls with arguments (``_('%(n)d 件', n=…)``) are left to run at render time.
"""

from __future__ import annotations

from jinja2.ext import Extension
from jinja2.lexer import Token, TokenStream
from markupsafe import Markup


class FoldedGettext(Extension):
    """Replace ``_('literal')`` by its translation at compile time (needs the i18n extension's
    new-style gettext installed first)."""

    def filter_stream(self, stream: TokenStream):
        translate = self._translator(self._autoescape(stream.name))
        window: list[Token] = []
        for token in stream:
            window.append(token)
            if len(window) < 4:
                continue
            name, opening, text, closing = window[-4:]
            before = window[-5] if len(window) > 4 else None
            if (
                name.test("name:_")
                and opening.test("lparen")
                and text.test("string")
                and closing.test("rparen")
                and not (before is not None and before.test("dot"))
            ):
                del window[-4:]
                yield from window
                window.clear()
                yield from self._constant(name.lineno, translate(text.value))
                continue
            while len(window) > 4:
                yield window.pop(0)
        yield from window

    def _autoescape(self, template_name: str | None) -> bool:
        autoescape = self.environment.autoescape
        return bool(autoescape(template_name) if callable(autoescape) else autoescape)

    def _translator(self, autoescape: bool):
        """The installed gettext as a template with this autoescaping would call it."""
        gettext = self.environment.globals["gettext"]
        context = self.environment.context_class(self.environment, {}, None, {})
        context.eval_ctx.autoescape = autoescape
        return lambda text: gettext(context, text)

    @staticmethod
    def _constant(lineno: int, value: str):
        """Tokens for the translated text: ``('…'|safe)`` where the runtime gettext returns Markup."""
        if isinstance(value, Markup):
            yield Token(lineno, "lparen", "(")
            yield Token(lineno, "string", str(value))
            yield Token(lineno, "pipe", "|")
            yield Token(lineno, "name", "safe")
            yield Token(lineno, "rparen", ")")
        else:
            yield Token(lineno, "string", value)
