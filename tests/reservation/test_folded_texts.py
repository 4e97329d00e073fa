"""R9.2: the residents' pages translate their fixed texts when a template is compiled
(``FoldedGettext``, as the staff pages do) and are the same pages as with the runtime gettext."""

from __future__ import annotations

import re

from madoguchi.templating import FoldedGettext
from reservation import create_app
from tests.conftest import built

from .flow import hold, sign_in

# What differs between two residents' walks: the CSRF token and the hold's id.
_TOKEN = re.compile(r'(name="(?:csrf_token|hold_id)"[^>]*value=")[^"]*(")')


def _pages(client, world) -> dict[str, str]:
    pages = {"/": client.get("/").text, "/start": client.get("/start").text}
    sign_in(client, world)
    for path in ("/contact", "/venue", "/slots"):
        pages[path] = client.get(path).text
    hold(client, world.slot_ids[0])
    pages["/confirm"] = client.get("/confirm").text
    client.post("/release")  # the place back, for the other walk's calendar
    # Everything else must be byte for byte the same.
    return {path: _TOKEN.sub(r"\1…\2", html) for path, html in pages.items()}


def test_the_residents_pages_are_the_same_with_folded_texts(app, world, overrides):
    """R9.2: the same walk through the booking pages on an app that folds its texts and on one
    that translates them at every render gives the same HTML."""
    assert any(isinstance(ext, FoldedGettext) for ext in app.jinja_env.extensions.values())
    folded = _pages(app.test_client(), world)
    with built(create_app, overrides) as plain_app:
        env = plain_app.jinja_env
        env.extensions = {k: v for k, v in env.extensions.items() if not isinstance(v, FoldedGettext)}
        plain = _pages(plain_app.test_client(), world)
    assert folded.keys() == plain.keys()
    for path in folded:
        assert folded[path] == plain[path], path
    assert "予約" in folded["/"] and "残り" in folded["/slots"]
