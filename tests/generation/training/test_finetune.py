"""Fine-tuning jobs on the tiny model, run in-process (the worker test kills a real worker): the checks of a start,
the metrics and the model a finished job registers, cancel, a redelivery after a crash, the pages, the API, the
loss curve's escaping and `manage.py finetune`."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import zipfile

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from generation.backends import GenerationRequest, backend_for, local_backend
from generation.jobs import queue_for
from generation.models import ModelConfig
from generation.training import finetune
from generation.training.finetune import do_cancel_finetune, do_start_finetune, finetune_job_run
from generation.training.lora import CPU_WARNING, checkpoint_dirs
from generation.training.models import FineTuneJob, InstructionSet
from generation.training.views_finetune import loss_curve_svg
from medsyn_site.core.errors import StateConflict
from medsyn_site.core.models import AuditRecord

ANSWERS = ["кашель насморк кашель", "головная боль слабость"]
RECORDS = [{"instruction": "Напиши анамнез.", "input": f"Жалобы: {answer.split()[0]} {i}", "output": answer,
            "category": "J06" if j == 0 else "I10", "variant": "symptoms", "note_id": 10 * j + i,
            "part": "validation" if i >= 6 else "train"}
           for j, answer in enumerate(ANSWERS) for i in range(8)]
FAST = {"batch_size": 4, "micro_batch_size": 2, "max_steps": 8, "checkpoint_every": 4, "eval_every": 4,
        "max_length": 96, "learning_rate": 1e-2, "lora_r": 8, "lora_alpha": 16, "warmup_steps": 0,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "lm_head"]}


def instruction_set_write(directory, records=RECORDS, *, name: str = "tiny-set", version: int = 1,
                          status: str = "ready") -> InstructionSet:
    """A built instruction set as the instruction-set builder leaves it: its Alpaca JSONL, SHA-256 and counts."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-v{version}.jsonl"
    data = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records).encode()
    path.write_bytes(data)
    parts = [record["part"] for record in records]
    return InstructionSet.objects.create(name=name, version=version, status=status, split="train",
                                         file_path=str(path), sha256=hashlib.sha256(data).hexdigest(),
                                         n_train=parts.count("train"), n_validation=parts.count("validation"))


@pytest.fixture
def finetune_dir(settings, tmp_path):
    """The runs' folder, and the adapters storage in a folder of its own (as a folder shared by several hosts is):
    a model with a published adapter fetches it into the model cache when it loads."""
    settings.FINETUNE_DIR = tmp_path / "finetune"
    settings.ADAPTERS_DIR = tmp_path / "shared-adapters"
    return settings.FINETUNE_DIR


@pytest.fixture
def tiny_set(db, tmp_path) -> InstructionSet:
    return instruction_set_write(tmp_path / "sets")


@pytest.fixture(autouse=True)
def fresh_model_cache():
    local_backend.loaded_models_clear()
    yield
    local_backend.loaded_models_clear()


def start(base, instruction_set, name="tiny-ft", **parameters) -> FineTuneJob:
    return do_start_finetune(base_config=base, instruction_set=instruction_set, name=name,
                             parameters={**FAST, **parameters}, actor=None, enqueue=False)


def problems(error: pytest.ExceptionInfo) -> dict:
    return error.value.message_dict


def test_a_start_is_checked_by_field(tiny_model_config, tiny_set, finetune_dir, tmp_path):
    api = ModelConfig.objects.create(name="api", backend="openai", api_model="gpt-x")
    adapted = ModelConfig.objects.create(name="adapted", backend="local", model_path=tiny_model_config.model_path,
                                         adapter_path="/somewhere/adapter")
    missing = ModelConfig.objects.create(name="missing", backend="local", model_path="no-such-model")
    for base in (api, adapted, missing):
        with pytest.raises(ValidationError) as error:
            start(base, tiny_set)
        assert "base_config" in problems(error)
    building = instruction_set_write(tmp_path / "sets", name="other", status="building")
    with pytest.raises(ValidationError) as error:
        start(tiny_model_config, building)
    assert "instruction_set" in problems(error)
    with pytest.raises(ValidationError) as error:
        start(tiny_model_config, tiny_set, name="tiny-local")  # the base model's own name
    assert "name" in problems(error)
    with pytest.raises(ValidationError) as error:
        start(tiny_model_config, tiny_set, micro_batch_size=8)
    assert "micro_batch_size" in problems(error)
    with pytest.raises(ValidationError) as error:
        start(tiny_model_config, tiny_set, target_modules=["q_proj", "x; rm -rf"])
    assert "target_modules" in problems(error)
    with pytest.raises(ValidationError) as error:
        start(tiny_model_config, tiny_set, learning_rate=5.0, lora_r=0)
    assert {"learning_rate", "lora_r"} <= set(problems(error))
    with pytest.raises(ValidationError):
        start(tiny_model_config, tiny_set, nonsense=1)
    assert not FineTuneJob.objects.exists()

    job = do_start_finetune(base_config=tiny_model_config, instruction_set=tiny_set, name="paper-defaults",
                            parameters={}, actor=None, enqueue=False)
    assert (job.lora_r, job.lora_alpha, job.lora_dropout, job.learning_rate, job.batch_size, job.epochs) == (
        16, 16, 0.05, 2e-5, 256, 3)
    assert job.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert job.status == "queued" and job.progress_total == 3  # 12 train records: one step per epoch
    assert job.output_dir == str(finetune_dir / str(job.pk))
    record = AuditRecord.objects.get(object_type="FineTuneJob", object_id=str(job.pk))
    assert record.action == "start_finetune" and record.extra["base_config"] == "tiny-local"
    with pytest.raises(ValidationError) as error:  # the name is held by the job until it ends
        start(tiny_model_config, tiny_set, name="paper-defaults")
    assert "name" in problems(error)


def test_a_finished_job_registers_a_model_generation_can_use_at_once(tiny_model_config, tiny_set, finetune_dir,
                                                                     settings):
    job = start(tiny_model_config, tiny_set)
    steps = []
    finetune_job_run(job.pk, progress=lambda done, total: steps.append((done, total)))
    job.refresh_from_db()

    assert job.status == "done", job.error
    assert [entry["step"] for entry in job.metrics] == list(range(1, 9)) and steps[-1] == (8, 8)
    assert [entry["step"] for entry in job.metrics if entry["val_loss"] is not None] == [4, 8]
    assert job.metrics[-1]["train_loss"] < job.metrics[0]["train_loss"]
    assert all(entry["tokens_per_second"] > 0 and entry["eta_seconds"] >= 0 for entry in job.metrics)
    assert (job.progress_done, job.progress_total, job.checkpoint_step) == (8, 8, 8)
    assert job.device == "cpu" and job.dtype == "float32" and CPU_WARNING in job.run_info["warnings"]
    assert job.run_info["n_train"] == 12 and job.run_info["n_validation"] == 4 and job.run_info["resumes"] == []

    config = job.result_config
    adapter = finetune_dir / str(job.pk) / "adapter"
    key = job.run_info["adapter"]  # published: ft<job>-<SHA-256 of its manifest>
    assert key.startswith(f"ft{job.pk}-") and config.adapter_path == f"adapters/{key}"
    assert config.name == "tiny-ft" and config.backend == "local"
    assert (config.model_path, config.gguf_file, config.prompt_format) == (
        tiny_model_config.model_path, tiny_model_config.gguf_file, tiny_model_config.prompt_format)
    published = settings.ADAPTERS_DIR / key
    assert queue_for(config) == "gpu" and (adapter / "adapter_model.safetensors").is_file()
    weights = (adapter / "adapter_model.safetensors").read_bytes()
    assert (published / "adapter_model.safetensors").read_bytes() == weights
    cached = settings.MODEL_CACHE_DIR / "adapters" / key
    shutil.rmtree(cached, ignore_errors=True)  # not on this "host" yet: fetched from the storage when it loads
    requests = [GenerationRequest(key=str(i), system=r["instruction"], user=r["input"]) for i, r in
                enumerate(RECORDS[:2])]
    ModelConfig.objects.filter(pk__in=[config.pk, tiny_model_config.pk]).update(temperature=0.0)
    config.refresh_from_db()
    tiny_model_config.refresh_from_db()
    tuned_backend = backend_for(config)
    assert type(tuned_backend.loaded.model).__name__ == "PeftModelForCausalLM"
    assert (cached / "adapter_model.safetensors").read_bytes() == weights
    # Eight steps teach the tiny model little (often the end-of-sequence token first): what it writes changes.
    tuned = [(r.text, r.error) for r in tuned_backend.generate(requests)]
    assert tuned != [(r.text, r.error) for r in backend_for(tiny_model_config).generate(requests)]

    finetune_job_run(job.pk)  # a second delivery of a finished job does nothing
    assert ModelConfig.objects.filter(adapter_path=config.adapter_path).count() == 1


def test_cancel_stops_a_running_job_between_steps(tiny_model_config, tiny_set, finetune_dir):
    queued = start(tiny_model_config, tiny_set, name="queued")
    assert do_cancel_finetune(job=queued, actor=None).status == "cancelled"
    finetune_job_run(queued.pk)  # a cancelled job is not run
    queued.refresh_from_db()
    assert queued.progress_done == 0 and queued.metrics == []
    with pytest.raises(StateConflict):
        do_cancel_finetune(job=queued, actor=None)

    job = start(tiny_model_config, tiny_set)

    def cancel_at_step_two(done: int, total: int) -> None:
        if done == 2:
            do_cancel_finetune(job=job, actor=None)

    finetune_job_run(job.pk, progress=cancel_at_step_two)
    job.refresh_from_db()
    assert job.status == "cancelled" and job.cancel_requested and job.result_config is None
    assert job.progress_done == 2 and [entry["step"] for entry in job.metrics] == [1, 2]
    assert not (finetune_dir / str(job.pk) / "adapter").exists()
    actions = AuditRecord.objects.filter(object_type="FineTuneJob", object_id=str(job.pk))
    assert sorted(actions.values_list("action", flat=True)) == ["cancel_finetune", "start_finetune"]


class WorkerLost(BaseException):
    """Stands for a SIGKILL: nothing in the job's code catches it, the job stays 'running'."""


def test_a_redelivered_job_continues_from_its_checkpoint_and_lists_each_step_once(tiny_model_config, tiny_set,
                                                                                  finetune_dir):
    job = start(tiny_model_config, tiny_set, max_steps=10, checkpoint_every=3, epochs=10)

    def lost_at_step_seven(done: int, total: int) -> None:
        if done == 7:
            raise WorkerLost

    with pytest.raises(WorkerLost):
        finetune_job_run(job.pk, progress=lost_at_step_seven)
    job.refresh_from_db()
    assert job.status == "running" and job.checkpoint_step == 6 and len(job.metrics) == 7
    before = {entry["step"]: entry["at"] for entry in job.metrics}

    seen = []
    finetune_job_run(job.pk, progress=lambda done, total: seen.append(done))
    job.refresh_from_db()
    assert job.status == "done" and seen == [6, 7, 8, 9, 10]  # from the checkpoint, not from 0
    assert [entry["step"] for entry in job.metrics] == list(range(1, 11))
    assert [entry["at"] for entry in job.metrics[:6]] == [before[step] for step in range(1, 7)]
    assert job.metrics[6]["at"] != before[7]  # step 7 was run again, and is listed once
    assert job.run_info["resumes"] == [6] and job.checkpoint_step == 10
    assert [step for step, _path in checkpoint_dirs(finetune_dir / str(job.pk))] == [9, 10]


def test_a_changed_instruction_set_file_fails_the_job(tiny_model_config, tiny_set, finetune_dir):
    job = start(tiny_model_config, tiny_set)
    with open(tiny_set.file_path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({**RECORDS[0], "output": "подмена"}, ensure_ascii=False) + "\n")
    finetune_job_run(job.pk)
    job.refresh_from_db()
    assert job.status == "failed" and "SHA-256" in job.error and job.result_config is None


def test_pages_need_the_permission_and_show_the_job(client, make_user, tiny_model_config, tiny_set, finetune_dir):
    client.force_login(make_user("physician"))
    for url in (reverse("training:finetune_jobs"), reverse("training:finetune_new"), "/api/training/jobs/"):
        assert client.get(url).status_code == 403
    client.force_login(make_user("researcher"))
    assert reverse("training:finetune_jobs") == "/training/jobs/"
    form = client.get(reverse("training:finetune_new")).content.decode()
    for default in ('value="16"', 'value="0.05"', 'value="2e-05"', 'value="256"', 'value="3"',
                    'value="q_proj, k_proj, v_proj, o_proj"'):
        assert default in form
    fields = {"name": "from-the-page", "base_config": tiny_model_config.pk, "instruction_set": tiny_set.pk,
              **{key: value for key, value in FAST.items() if key != "target_modules"}, "lora_dropout": 0.05,
              "epochs": 3, "seed": 17, "target_modules": "q_proj, v_proj, lm_head"}
    refused = client.post(reverse("training:finetune_new"), {**fields, "micro_batch_size": 9})
    assert refused.status_code == 400 and "micro-batch cannot be larger" in refused.content.decode()
    started = client.post(reverse("training:finetune_new"), fields)
    job = FineTuneJob.objects.get(name="from-the-page")
    assert started.status_code == 302 and started["Location"] == f"/training/jobs/{job.pk}/"
    assert job.target_modules == ["q_proj", "v_proj", "lm_head"] and job.created_by is not None

    polled = client.get(started["Location"], HTTP_HX_REQUEST="true")
    assert polled.status_code == 200 and "<html" not in polled.content.decode()
    finetune_job_run(job.pk)
    page = client.get(started["Location"]).content.decode()
    assert 'data-testid="train-curve"' in page and 'data-testid="val-curve"' in page
    assert 'data-testid="download-adapter"' in page and 'data-testid="result-config"' in page
    assert "Training on the CPU" in page and 'data-testid="eta"' not in page
    assert client.get(started["Location"], HTTP_HX_REQUEST="true").status_code == 286  # stop polling
    listing = client.get(reverse("training:finetune_jobs")).content.decode()
    assert f"/training/jobs/{job.pk}/" in listing and "from-the-page" in listing

    archive = client.get(reverse("training:finetune_adapter", kwargs={"pk": job.pk}))
    assert archive.status_code == 200 and archive["Content-Type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(b"".join(archive.streaming_content))).namelist()
    assert {"adapter/adapter_config.json", "adapter/adapter_model.safetensors"} <= set(names)
    assert client.post(reverse("training:finetune_cancel", kwargs={"pk": job.pk})).status_code == 409


def test_the_api_starts_reads_cancels_and_serves_the_adapter(client, make_user, tiny_model_config, tiny_set,
                                                             finetune_dir, monkeypatch):
    monkeypatch.setattr(finetune, "job_send_on_commit", lambda job: None)
    client.force_login(make_user("researcher"))
    body = {"name": "api-ft", "base_config": "tiny-local", "instruction_set": tiny_set.pk, **FAST}
    assert client.post("/api/training/jobs/", {**body, "lora_r": "٣"},
                       content_type="application/json").status_code == 400
    refused = client.post("/api/training/jobs/", {**body, "base_config": "tiny-local", "micro_batch_size": 64},
                          content_type="application/json")
    assert refused.status_code == 400 and "micro_batch_size" in refused.json()
    created = client.post("/api/training/jobs/", body, content_type="application/json")
    assert created.status_code == 201, created.content
    job_id = created.json()["id"]
    assert created.json()["status"] == "queued" and created.json()["adapter"] is None
    assert client.get(f"/api/training/jobs/{job_id}/adapter/").status_code == 404
    finetune_job_run(job_id)
    detail = client.get(f"/api/training/jobs/{job_id}/").json()
    assert detail["status"] == "done" and detail["result_config"] == "api-ft" and detail["percent"] == 100
    assert [entry["step"] for entry in detail["metrics"]] == list(range(1, 9))
    assert detail["instruction_set"] == {"id": tiny_set.pk, "name": "tiny-set", "version": 1}
    assert client.get(detail["adapter"]).status_code == 200
    assert client.post(f"/api/training/jobs/{job_id}/cancel/").status_code == 409
    other = client.post("/api/training/jobs/", {**body, "name": "api-ft-2"}, content_type="application/json").json()
    assert client.post(f"/api/training/jobs/{other['id']}/cancel/").json()["status"] == "cancelled"
    assert [job["id"] for job in client.get("/api/training/jobs/").json()] == [other["id"], job_id]


def test_the_loss_curve_escapes_every_label():
    hostile = '<script>alert(1)</script>"&'
    metrics = [{"step": 1, "train_loss": 2.5, "val_loss": None}, {"step": 2, "train_loss": float("nan"),
                                                                  "val_loss": 2.0},
               {"step": 3, "train_loss": 1.5, "val_loss": None}]
    svg = str(loss_curve_svg(metrics, title=hostile))
    assert "<script>" not in svg and "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&amp;" in svg
    assert svg.count("<polyline") == 1 and 'data-testid="val-curve"' in svg  # one validation point: a dot
    assert "nan" not in svg.lower()
    assert "No step finished yet" in str(loss_curve_svg([], title=hostile))


def test_the_finetune_command_runs_a_job_here_with_a_progress_bar(tiny_model_config, tiny_set, finetune_dir):
    out, err = io.StringIO(), io.StringIO()
    call_command("finetune", "--base", "tiny-local", "--set", "tiny-set", "--name", "cli-ft", "--max-steps", "3",
                 "--batch-size", "4", "--micro-batch-size", "2", "--max-length", "96", "--learning-rate", "0.03",
                 "--target-modules", "q_proj,v_proj", "--checkpoint-every", "2", stdout=out, stderr=err)
    job = FineTuneJob.objects.get(name="cli-ft")
    assert job.status == "done" and job.progress_done == 3 and job.worker == ""
    assert "registered the model 'cli-ft'" in out.getvalue()
    assert "warning: Training on the CPU" in err.getvalue()
    assert ModelConfig.objects.get(name="cli-ft").adapter_path == f"adapters/{job.run_info['adapter']}"
    with pytest.raises(CommandError, match="has finished"):
        call_command("finetune", "--resume", str(job.pk), stdout=out, stderr=err)
    with pytest.raises(CommandError, match="no such instruction set"):
        call_command("finetune", "--base", "tiny-local", "--set", "tiny-set:7", "--name", "x", stdout=out,
                     stderr=err)
    with pytest.raises(CommandError, match="name"):
        call_command("finetune", "--base", "tiny-local", "--set", "tiny-set:1", "--name", "cli-ft", stdout=out,
                     stderr=err)
