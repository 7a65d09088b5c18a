"""A real S3 endpoint for the storage tests: moto's server mode (ThreadedMotoServer, a Werkzeug HTTP server) on a
free loopback port, spoken to over HTTP by boto3 and django-storages exactly as a MinIO would be. Not a mock of
boto3: nothing in the code under test is patched.

moto keeps its buckets in this process's memory, so a server stopped and started again on the same port (an outage
of the storage) finds them again.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

import pytest

from medsyn_site.core.storage import shared_storage_from_url
from medsyn_site.stack import free_port

REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "medsyn-test", "AWS_SECRET_ACCESS_KEY": "medsyn-test-secret",
               "AWS_DEFAULT_REGION": REGION}


@dataclass
class S3Server:
    port: int
    server: object = field(default=None, repr=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=REGION,
                            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])

    def bucket_create(self, name: str = "") -> str:
        name = name or f"medsyn-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sorted(entry["Key"] for page in pages for entry in page.get("Contents", ()))

    def storage_url(self, bucket: str, prefix: str = "medsyn") -> str:
        return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"

    def storages(self, bucket: str, prefix: str = "medsyn") -> dict[str, dict]:
        """The STORAGES entries MEDSYN_STORAGE_URL=s3://bucket/prefix with this endpoint gives the settings."""
        return shared_storage_from_url("MEDSYN_STORAGE_URL", self.storage_url(bucket, prefix),
                                       endpoint_url=self.endpoint_url).storages

    def environment(self, bucket: str, prefix: str = "medsyn") -> dict[str, str]:
        """What a host of a deployment on this bucket has in its environment."""
        return {**CREDENTIALS, "MEDSYN_STORAGE_URL": self.storage_url(bucket, prefix),
                "MEDSYN_S3_ENDPOINT_URL": self.endpoint_url}


@pytest.fixture(scope="session")
def s3_server():
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a log line per request otherwise
    server = S3Server(port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch):
    """The suite's S3 server with the credentials in the environment (where boto3 finds them)."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")  # nothing from the machine's own ~/.aws
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    return s3_server


@pytest.fixture
def s3_bucket(s3) -> str:
    return s3.bucket_create()


def storages_use(settings, s3: S3Server, bucket: str, *aliases: str, prefix: str = "medsyn") -> None:
    """Point the named storages (all shared ones when none is named) at the bucket."""
    shared = s3.storages(bucket, prefix)
    settings.STORAGES = {**settings.STORAGES, **{alias: shared[alias] for alias in aliases or shared}}
