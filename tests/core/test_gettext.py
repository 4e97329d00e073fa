"""Every user-facing string goes through gettext (issue 2.9): Japanese is the source language, so an
English catalogue can follow without touching templates (R3.6)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
JAPANESE = re.compile(
    r"[\u3041-\u3096\u30a1-\u30fa\u30fc-\u30ff\u3400-\u9fff]"
)  # kana and kanji; punctuation may stand alone
JINJA = re.compile(r"{{.*?}}|{%.*?%}|{#.*?#}", re.S)


def test_templates_have_no_japanese_outside_gettext_calls():
    offenders = []
    for path in sorted((ROOT / "templates").rglob("*.*")):
        text = JINJA.sub("", path.read_text(encoding="utf-8"))
        for number, line in enumerate(text.splitlines(), 1):
            if JAPANESE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_babel_extracts_the_japanese_messages(tmp_path):
    """The extraction configuration finds the messages in code and templates."""
    from babel.messages.frontend import CommandLineInterface

    pot = tmp_path / "messages.pot"
    CommandLineInterface().run(
        ["pybabel", "-q", "extract", "-F", str(ROOT / "babel.cfg"), "-o", str(pot), "-k", "_l", str(ROOT)]
    )
    catalogue = pot.read_text(encoding="utf-8")
    for message in (
        "予約管理番号と生年月日を入力してください",
        "当日お持ちいただくもの",
        "予約管理番号は12桁の数字で入力してください",
    ):
        assert message in catalogue
