"""Demo users, one per role, for `make up`. Idempotent: running it again changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

ROLE_NAMES = ("physician", "curator", "researcher", "admin")


@dataclass(frozen=True)
class DemoLogin:
    role: str
    username: str
    password: str


# Importable before Django is set up (the stack prints these), so no model imports at module level.
DEMO_LOGINS = tuple(DemoLogin(role, f"demo_{role}", f"medsyn-{role}-demo") for role in ROLE_NAMES)


def demo_users_ensure() -> list[DemoLogin]:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import transaction

    from medsyn_site.roles import roles_sync

    with transaction.atomic():
        roles_sync()
        _demo_users_write(get_user_model(), Group)
    return list(DEMO_LOGINS)


def _demo_users_write(User, Group) -> None:
    for login in DEMO_LOGINS:
        user, created = User.objects.get_or_create(username=login.username)
        if created:
            user.set_password(login.password)
        user.is_staff = login.role == "admin"
        user.is_superuser = login.role == "admin"
        user.save()
        user.groups.set([Group.objects.get(name=login.role)])


DEMO_STUDY_NAME = "Демонстрационное исследование (demo)"
DEMO_JOB_NOTES = 24  # notes the embedded Russian model writes in the background after the first start
DEMO_BASELINE_NOTES = 16  # notes of the template-filling baseline, written at once (no model)


def _demo_categories(count: int) -> list[str]:
    """The categories with the most real training notes, among those the graph can plan for."""
    from django.db.models import Count

    from generation.models import Note

    rows = (Note.objects.filter(origin=Note.Origin.REAL, split="train").values("icd_category")
            .annotate(n=Count("id")).order_by("-n", "icd_category"))
    return [row["icd_category"] for row in rows[: count * 3]]


def _demo_plan(categories: list[str], budget: int, seed: int):
    """A plan over as many of these categories as the graph can serve (a category without symptoms or examples
    is left out rather than failing the demo)."""
    from generation.jobs import PlanRequest, plan_compute
    from generation.planning import PlanError
    from graph.sampling import sampling_data_load
    from graph.store import get_graph_store

    data = sampling_data_load(get_graph_store())  # read the graph once, not once a category
    usable = []
    for category in categories:
        try:
            if plan_compute(PlanRequest(categories=[category], budget=1, allocation="uniform", variant="symptoms",
                                        seed=seed, language="ru"), data=data, tasks=False).total:
                usable.append(category)
        except (PlanError, ValueError):
            continue
        if len(usable) == 6:
            break
    return PlanRequest(categories=usable, budget=budget, allocation="uniform", variant="symptoms", seed=seed,
                       language="ru") if usable else None


def demo_activity_ensure() -> list[str]:
    """Something to do for every demo role, once: template-filling notes (no model, written now) of which half wait
    in the curation queue; a blind study of real and those notes, open for the demo physician; and a generation job
    of the embedded Russian model that the gpu worker runs in the background after start-up (its progress is on the
    home page). Idempotent: what exists is left alone. Returns what it did, in words, for the command's output."""
    from django.contrib.auth import get_user_model

    from generation.forms import model_and_template_check
    from generation.jobs import do_create_job, job_execute
    from generation.models import GenerationJob, ModelConfig, Note
    from generation.services import TEMPLATE_BASELINE_NAME, embedded_model_configs_ensure
    from medsyn_site.modelcache import EMBEDDED_MODELS
    from review.assessment.models import Study
    from review.assessment.services import SyntheticFilter, do_build_study_pool, do_create_study, do_open_study
    from review.curation.services import do_transition_note

    done = []
    embedded_model_configs_ensure()
    users = {login.role: get_user_model().objects.get(username=login.username) for login in DEMO_LOGINS}
    categories = _demo_categories(6)
    baseline = ModelConfig.objects.get(name=TEMPLATE_BASELINE_NAME)
    if not Note.objects.filter(origin=Note.Origin.SYNTHETIC, metadata__generation_model=baseline.name).exists():
        request = _demo_plan(categories, DEMO_BASELINE_NOTES, seed=11)
        if request is None:
            return ["no demo notes: the graph has no category with symptoms and example notes"]
        _config, template = model_and_template_check(model_config=baseline, variant=request.variant, language="ru")
        job = do_create_job(request=request, model_config=baseline, prompt_template=template,
                            actor=users["researcher"], enqueue=False)
        job_execute(job.pk)
        notes = list(Note.objects.filter(metadata__job_id=job.pk).order_by("id"))
        for note in notes[::2]:
            do_transition_note(actor=users["curator"], note=note, action="submit")
        done.append(f"{len(notes)} template-filling notes ({len(notes[::2])} submitted for review)")
    if not Study.objects.filter(name=DEMO_STUDY_NAME).exists():
        study = do_create_study(actor=users["curator"], name=DEMO_STUDY_NAME, overlap_k=1,
                                instructions="Прочитайте запись и решите, написал ли её врач или модель.")
        do_build_study_pool(actor=users["curator"], study=study, n_per_origin=6, seed=3,
                            synthetic=SyntheticFilter(models=(baseline.name,)))
        do_open_study(actor=users["curator"], study=study, physicians=[users["physician"]])
        done.append(f"study “{DEMO_STUDY_NAME}” open for {users['physician'].username}")
    embedded = {model.folder_name() for model in EMBEDDED_MODELS}
    local = ModelConfig.objects.filter(backend=ModelConfig.Backend.LOCAL, name__in=embedded)
    russian = next((config for config in local if "ru" in config.languages), None)
    if russian is not None and not GenerationJob.objects.filter(model_config=russian,
                                                                created_by=users["researcher"]).exists():
        request = _demo_plan(categories, DEMO_JOB_NOTES, seed=7)
        if request is not None:
            _config, template = model_and_template_check(model_config=russian, variant=request.variant,
                                                         language="ru")
            job = do_create_job(request=request, model_config=russian, prompt_template=template,
                                actor=users["researcher"])
            done.append(f"generation job {job.pk}: {job.planned} Russian notes by {russian.name}, queued for the gpu "
                        "worker")
    return done
