from __future__ import annotations

import pytest

from .flow import seed_world


@pytest.fixture
def world(app):
    """Two venues (本庁舎 = honchosha, 総合区民センター = sogo), three future slots at 本庁舎 and one
    roster applicant served there, committed."""
    return seed_world(app)
