"""`madoguchi keys …` (R2.4), driven through the real click commands against the test app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo

from madoguchi import keys
from madoguchi.appbase import create_base_app
from madoguchi.cli import main
from madoguchi.crypto import KeyRing
from madoguchi.extensions import db
from madoguchi.models import Applicant
from tests.conftest import base_overrides
from tests.factories import make_applicant

FIELDS_PER_APPLICANT = (
    9  # reservation_number, name, name_kana, birth_date, sex, postal_code, address, email, phone
)


def run(app, *args: str):
    """Invoke `madoguchi <args>` with the CLI bound to ``app`` (no app context is pushed by the test)."""
    return CliRunner().invoke(main, list(args), obj=ScriptInfo(create_app=lambda: app))


def key_file(app) -> Path:
    return Path(app.config["MADOGUCHI_KEY_FILE"])


def add_applicants(app, count: int) -> list[str]:
    with app.app_context():
        ids = [make_applicant(name=f"端末　{i}号").id for i in range(count)]
        db.session.commit()
        return ids


def read_names(app, ids: list[str]) -> list[str]:
    with app.app_context():
        app.extensions["madoguchi.keys"].reload()
        return [db.session.get(Applicant, i).name for i in ids]


def usage(app) -> dict[str, int]:
    with app.app_context():
        return dict(keys.usage())


def test_keys_init_refuses_to_overwrite_an_existing_file(app):
    """R2.4: `keys init` never replaces existing keys (that would make every stored value unreadable)."""
    ids = add_applicants(app, 1)
    before = key_file(app).read_text()

    result = run(app, "keys", "init")
    assert result.exit_code != 0
    assert "exists" in result.output
    assert key_file(app).read_text() == before

    result = run(app, "keys", "init", "--if-missing")
    assert result.exit_code == 0, result.output
    assert key_file(app).read_text() == before
    assert read_names(app, ids) == ["端末　0号"]


def test_keys_init_creates_an_owner_only_key_file(tmp_path, database_url):
    """R2.5: `keys init` creates a loadable key file, readable by its owner only, and prints no key."""
    path = tmp_path / "fresh" / "keys.json"
    overrides = base_overrides(tmp_path, database_url)
    overrides["MADOGUCHI_KEY_FILE"] = str(path)
    cli_app = create_base_app("madoguchi", overrides=overrides, require_keys=False)
    try:
        result = run(cli_app, "keys", "init")
        assert result.exit_code == 0, result.output
        assert path.exists()
        assert path.stat().st_mode & 0o777 == 0o600
        ring = KeyRing.from_json(path.read_text())
        assert len(ring.data_keys) == 1 and ring.active in ring.data_keys
        for material in json.loads(path.read_text())["data_keys"].values():
            assert material not in result.output
        assert json.loads(path.read_text())["index_key"] not in result.output
    finally:
        with cli_app.app_context():
            db.engine.dispose()


def test_keys_rotate_reencrypts_and_status_reports_counts(app):
    """R2.4: `keys rotate` introduces a new key and re-encrypts every row; `keys status` reports counts."""
    ids = add_applicants(app, 3)
    old_key = KeyRing.from_json(key_file(app).read_text()).active

    result = run(app, "keys", "status")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"active {old_key}: {3 * FIELDS_PER_APPLICANT} values"]

    result = run(app, "keys", "rotate", "--batch-size", "2")
    assert result.exit_code == 0, result.output
    ring = KeyRing.from_json(key_file(app).read_text())
    new_key = ring.active
    assert new_key != old_key
    assert set(ring.data_keys) == {old_key, new_key}
    assert f"active key is now {new_key}" in result.output
    assert "re-encrypted 3 rows" in result.output

    assert usage(app) == {new_key: 3 * FIELDS_PER_APPLICANT}
    assert read_names(app, ids) == ["端末　0号", "端末　1号", "端末　2号"]

    result = run(app, "keys", "status")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert f"active {new_key}: {3 * FIELDS_PER_APPLICANT} values" in lines
    assert f"       {old_key}: 0 values" in lines
    assert len(lines) == 2


def test_keys_retire_refuses_while_values_use_the_key(app):
    """R2.4: `keys retire` refuses while stored values still use the key; after `keys reencrypt` it
    removes it, and every row still reads."""
    ids = add_applicants(app, 2)
    path = key_file(app)
    ring = KeyRing.from_json(path.read_text())
    old_key = ring.active
    new_key = ring.add_key()  # a new key, without re-encrypting (an interrupted rotation)
    ring.save(path)
    with app.app_context():
        app.extensions["madoguchi.keys"].reload()
        newer = make_applicant(name="端末　新").id
        db.session.commit()

    result = run(app, "keys", "retire", old_key)
    assert result.exit_code != 0
    assert f"{2 * FIELDS_PER_APPLICANT} values still use {old_key}" in result.output
    assert set(KeyRing.from_json(path.read_text()).data_keys) == {old_key, new_key}
    assert read_names(app, [*ids, newer]) == ["端末　0号", "端末　1号", "端末　新"]

    result = run(app, "keys", "reencrypt")
    assert result.exit_code == 0, result.output
    assert "re-encrypted 2 rows" in result.output
    assert usage(app) == {new_key: 3 * FIELDS_PER_APPLICANT}

    result = run(app, "keys", "retire", old_key)
    assert result.exit_code == 0, result.output
    assert f"retired {old_key}" in result.output
    ring = KeyRing.from_json(path.read_text())
    assert set(ring.data_keys) == {new_key} and ring.active == new_key
    assert read_names(app, [*ids, newer]) == ["端末　0号", "端末　1号", "端末　新"]


def test_keys_retire_refuses_the_active_key(app):
    """R2.4: the active key is never retired, even when no value uses it yet."""
    path = key_file(app)
    before = path.read_text()
    active = KeyRing.from_json(before).active

    result = run(app, "keys", "retire", active)
    assert result.exit_code == 1  # a clear CLI error, not a traceback
    assert "active key cannot be retired" in result.output
    assert path.read_text() == before


def test_keys_retire_refuses_an_unknown_key(app):
    """R2.4: a mistyped key id is refused with a message, and the key file is untouched."""
    path = key_file(app)
    before = path.read_text()
    result = run(app, "keys", "retire", "k20000101000000")
    assert result.exit_code == 1
    assert "no key k20000101000000" in result.output
    assert path.read_text() == before


@pytest.mark.parametrize("command", [["keys", "init"], ["keys", "rotate"], ["keys", "retire", "k1"]])
def test_key_commands_need_a_key_file(tmp_path, database_url, command):
    """R2.5: key commands manage a key file; with keys only in the environment they refuse."""
    ring = KeyRing.generate()
    overrides = base_overrides(tmp_path, database_url)
    overrides.update(MADOGUCHI_KEY_FILE="", MADOGUCHI_KEYS=ring.to_json())
    env_app = create_base_app("madoguchi", overrides=overrides, require_keys=True)
    try:
        result = run(env_app, *command)
        assert result.exit_code != 0
        assert "MADOGUCHI_KEY_FILE is not set" in result.output
    finally:
        with env_app.app_context():
            db.engine.dispose()
