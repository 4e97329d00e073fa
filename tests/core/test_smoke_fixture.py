from madoguchi.models import Venue
from tests.factories import make_venue


def test_fixture_database_is_migrated_and_isolated(ctx):
    """Each test starts with an empty, migrated store."""
    from madoguchi.extensions import db

    assert db.session.query(Venue).count() == 0
    make_venue()
    db.session.commit()
    assert db.session.query(Venue).count() == 1
