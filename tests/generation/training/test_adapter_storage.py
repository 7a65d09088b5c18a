"""Adapters in a bucket (MEDSYN_STORAGE_URL=s3://...): a fine-tuning job publishes its adapter to a real S3 endpoint
(moto's server, tests/medsyn_site/core/s3_server.py); a fresh process with an empty model cache, configured only by
its environment as another worker host would be, fetches it, checks it and generates what the adapter on the
training host generates; a changed object in the bucket is refused; the adapter's zip is served from the bucket."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile

import pytest
from django.urls import reverse

from generation.backends import GenerationRequest, local_backend
from generation.backends.local_backend import LocalBackend
from generation.models import ModelConfig
from generation.training.finetune import finetune_job_run
from medsyn_site.core.storage import MANIFEST, StoredFolderInvalid
from medsyn_site.stack import BASE_DIR
from tests.generation.training.test_finetune import RECORDS, finetune_dir, start, tiny_set  # noqa: F401
from tests.medsyn_site.core.s3_server import storages_use

PROMPTS = [{"key": str(i), "system": record["instruction"], "user": record["input"]}
           for i, record in enumerate(RECORDS[:2])]

# A worker host: settings from its environment only, nothing from the test's process.
WORKER_SCRIPT = """
import json, sys
import django
django.setup()
from django.conf import settings
from generation.backends import GenerationRequest
from generation.backends.local_backend import LocalBackend
from generation.models import ModelConfig

config = ModelConfig(**json.loads(sys.argv[1]))
backend = LocalBackend(config)
texts = [result.text for result in backend.generate([GenerationRequest(**p) for p in json.loads(sys.argv[2])])]
cached = settings.MODEL_CACHE_DIR / config.adapter_path
print(json.dumps({"model": type(backend.loaded.model).__name__, "texts": texts, "storage": settings.STORAGES[
    "adapters"]["BACKEND"], "cached": sorted(p.name for p in cached.iterdir())}))
"""


@pytest.fixture(autouse=True)
def fresh_model_cache():
    local_backend.loaded_models_clear()
    yield
    local_backend.loaded_models_clear()


@pytest.fixture
def published(tiny_model_config, tiny_set, finetune_dir, s3, s3_bucket, settings):  # noqa: F811
    """A finished fine-tuning job whose adapter went to the bucket."""
    storages_use(settings, s3, s3_bucket, "adapters")
    job = start(tiny_model_config, tiny_set, max_steps=3, checkpoint_every=3, eval_every=3)
    finetune_job_run(job.pk)
    job.refresh_from_db()
    assert job.status == "done", job.error
    return job


def _generate(config: ModelConfig) -> list[str]:
    return [result.text for result in LocalBackend(config).generate([GenerationRequest(**p) for p in PROMPTS])]


def test_an_adapter_published_to_a_bucket_is_fetched_and_loaded_by_a_fresh_worker(published, s3, s3_bucket,
                                                                                   finetune_dir, tiny_model_dir,  # noqa: F811
                                                                                   tmp_path):
    key = published.run_info["adapter"]
    config = published.result_config
    assert config.adapter_path == f"adapters/{key}"
    assert s3.keys(s3_bucket) == sorted(f"medsyn/adapters/{key}/{name}" for name in (
        "adapter_config.json", "adapter_model.safetensors", "README.md", MANIFEST))
    # What the adapter writes on the host that trained it, loaded from the run's own folder.
    trained_here = ModelConfig(name="here", backend="local", model_path=str(tiny_model_dir), temperature=0.0,
                               max_new_tokens=10, batch_size=4, prompt_format=config.prompt_format,
                               adapter_path=str(finetune_dir / str(published.pk) / "adapter"))
    expected = _generate(trained_here)

    fields = {"name": config.name, "backend": "local", "model_path": config.model_path, "temperature": 0.0,
              "max_new_tokens": 10, "batch_size": 4, "prompt_format": config.prompt_format,
              "adapter_path": config.adapter_path}
    fresh_cache = tmp_path / "other-host-models"
    env = {**os.environ, **s3.environment(s3_bucket), "MEDSYN_MODEL_DIR": str(fresh_cache),
           "DJANGO_SETTINGS_MODULE": "medsyn_site.settings.test"}
    done = subprocess.run([sys.executable, "-c", WORKER_SCRIPT, json.dumps(fields), json.dumps(PROMPTS)], env=env,
                          cwd=BASE_DIR, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    worker = json.loads(done.stdout.strip().splitlines()[-1])
    assert worker["storage"] == "storages.backends.s3.S3Storage" and worker["model"] == "PeftModelForCausalLM"
    assert worker["cached"] == sorted(["adapter_config.json", "adapter_model.safetensors", "README.md", MANIFEST])
    assert worker["texts"] == expected
    assert [path.name for path in fresh_cache.iterdir()] == ["adapters"]  # nothing else was written


def test_an_adapter_changed_in_the_bucket_is_refused(published, s3, s3_bucket, settings, tmp_path):
    settings.MODEL_CACHE_DIR = tmp_path / "models"
    key = published.run_info["adapter"]
    s3.client().put_object(Bucket=s3_bucket, Key=f"medsyn/adapters/{key}/adapter_config.json", Body=b"{}")
    config = published.result_config
    with pytest.raises(StoredFolderInvalid, match="adapter_config.json"):
        LocalBackend(config)
    assert list((tmp_path / "models" / "adapters").iterdir()) == []  # nothing half-fetched is left to load


def test_an_adapter_missing_from_the_storage_says_where_it_was_looked_for(published, s3, s3_bucket, settings,
                                                                         tmp_path):
    settings.MODEL_CACHE_DIR = tmp_path / "models"
    config = ModelConfig(name="gone", backend="local", model_path=published.result_config.model_path,
                         adapter_path="adapters/ft0-0123456789abcdef")
    with pytest.raises(FileNotFoundError, match=f"nor in the adapters storage \\(s3://{s3_bucket}/medsyn/adapters/"):
        LocalBackend(config)


def test_the_adapter_zip_is_served_from_the_bucket(published, client, make_user, finetune_dir):  # noqa: F811
    import shutil

    shutil.rmtree(finetune_dir / str(published.pk))  # the training host's folder is not on the web host
    client.force_login(make_user("researcher"))
    page = client.get(reverse("training:finetune_job", kwargs={"pk": published.pk})).content.decode()
    assert 'data-testid="download-adapter"' in page
    archive = client.get(reverse("training:finetune_adapter", kwargs={"pk": published.pk}))
    assert archive.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(b"".join(archive.streaming_content))).namelist()
    assert {"adapter/adapter_config.json", "adapter/adapter_model.safetensors", f"adapter/{MANIFEST}"} <= set(names)
