from __future__ import annotations

import pytest

from tests.medsyn_site.core.s3_server import s3, s3_bucket, s3_server  # noqa: F401 - the S3 server of test_storage


@pytest.fixture
def curator(make_user):
    return make_user("curator")
