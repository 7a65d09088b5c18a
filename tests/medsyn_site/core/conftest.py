"""The S3 server of the storage tests (tests/medsyn_site/core/s3_server.py)."""

from tests.medsyn_site.core.s3_server import s3, s3_bucket, s3_server  # noqa: F401
