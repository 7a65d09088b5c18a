"""A fine-tuning job on the real gpu worker, killed with SIGKILL mid-training: the restarted worker's sweep sends it
again (core.jobs) and it continues from its last checkpoint, every step listed once."""

from __future__ import annotations

import signal
import time
from datetime import datetime

import pytest
from django.utils import timezone

from generation.training.finetune import do_start_finetune
from generation.training.models import FineTuneJob
from tests.generation.training.test_finetune import FAST, instruction_set_write

# serialized_rollback: the flush after a transactional test must give back the seeded prompt templates.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

STEPS, EVERY = 60, 5


def job_wait(job: FineTuneJob, *, until, timeout: float = 120, interval: float = 0.05) -> FineTuneJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if until(job):
            return job
        time.sleep(interval)
    raise AssertionError(f"job {job.pk} still {job.status} after {timeout} s (step {job.progress_done}, "
                         f"checkpoint {job.checkpoint_step}, error {job.error!r})")


def test_gpu_worker_killed_mid_training_resumes_from_its_last_checkpoint(celery_workers, tiny_model_config, tmp_path,
                                                                        settings):
    settings.FINETUNE_DIR = tmp_path / "finetune"
    job = do_start_finetune(base_config=tiny_model_config, instruction_set=instruction_set_write(tmp_path / "sets"),
                            name="killed-ft", actor=None,
                            parameters={**FAST, "max_steps": STEPS, "epochs": 100, "checkpoint_every": EVERY,
                                        "eval_every": 10, "target_modules": ["q_proj", "v_proj"]})
    job = job_wait(job, until=lambda j: j.checkpoint_step >= EVERY and j.progress_done > j.checkpoint_step
                   or j.finished)
    celery_workers.kill("gpu", signal.SIGKILL)
    killed_at = timezone.now()
    job.refresh_from_db()
    at_kill, checkpoint_at_kill, killed_worker = job.progress_done, job.checkpoint_step, job.worker
    assert job.status == "running" and at_kill < STEPS, "the job finished before the kill; make it longer"
    assert killed_worker.startswith("gpu@") and at_kill > checkpoint_at_kill >= EVERY

    # No manual resume: the restarted worker's sweep sees the job's worker boot is gone and sends the job again.
    celery_workers.start("gpu")
    celery_workers.wait_ready("gpu")
    job = job_wait(job, until=lambda j: j.finished, interval=0.2)

    assert job.status == "done", job.error
    assert job.worker.startswith("gpu@") and job.worker != killed_worker
    [resumed_from] = job.run_info["resumes"]  # once, from a checkpoint, never from 0
    assert resumed_from >= checkpoint_at_kill and resumed_from % EVERY == 0 and 0 < resumed_from < STEPS
    steps = [entry["step"] for entry in job.metrics]
    assert steps == list(range(1, STEPS + 1))  # every step once: the ones redone after the checkpoint replace theirs
    times = {entry["step"]: datetime.fromisoformat(entry["at"]) for entry in job.metrics}
    assert all(times[step] < killed_at for step in range(1, resumed_from + 1))
    assert all(times[step] > killed_at for step in range(resumed_from + 1, STEPS + 1))
    assert (job.progress_done, job.progress_total, job.checkpoint_step) == (STEPS, STEPS, STEPS)
    assert job.result_config is not None and job.result_config.adapter_path == f"adapters/{job.run_info['adapter']}"
