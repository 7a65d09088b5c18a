from __future__ import annotations

import pytest


@pytest.fixture
def curator(make_user):
    return make_user("curator")
