"""Generated notes record what their prompt contained (prompt_inputs) and the check thresholds of their job.

Notes generated before this kept the plan's example (and, for the "code" variant, the symptoms) even when
the prompt never contained them: these are cleared, so an edit is checked, and a release exported, against
the prompt's real inputs only. check_thresholds holds the job's overrides (a missing name is the default).
"""

import string

from django.db import migrations

# The plan inputs a prompt can contain, by the template placeholders that put them there (as generation.jobs).
PROMPT_INPUT_FIELDS = {"symptoms": {"symptoms"}, "example": {"example"}, "code": {"code", "disease"}}
# The default templates' inputs by variant, for a note whose template has since been deleted.
VARIANT_INPUTS = {"symptoms_example": ["symptoms", "example"], "symptoms": ["symptoms"], "code": ["code"]}
BATCH = 1000


def _inputs(*texts: str) -> list[str]:
    fields = {field for text in texts for _, field, _, _ in string.Formatter().parse(text) if field}
    return [name for name, placeholders in PROMPT_INPUT_FIELDS.items() if placeholders & fields]


def prompt_inputs_record(apps, schema_editor) -> None:
    Note = apps.get_model("generation", "Note")
    GenerationJob = apps.get_model("generation", "GenerationJob")
    PromptTemplate = apps.get_model("generation", "PromptTemplate")
    inputs_by_template = {pk: _inputs(system, user)
                          for pk, system, user in PromptTemplate.objects.values_list("id", "system_text", "user_text")}
    checks_by_job = {pk: (parameters or {}).get("checks") or {}
                     for pk, parameters in GenerationJob.objects.values_list("id", "parameters")}
    notes = Note.objects.filter(origin="synthetic", metadata__has_key="job_id").exclude(
        metadata__has_key="prompt_inputs").only("id", "metadata")
    batch = []
    for note in notes.iterator(chunk_size=BATCH):
        meta = dict(note.metadata)
        template = meta.get("prompt_template") if isinstance(meta.get("prompt_template"), dict) else {}
        inputs = inputs_by_template.get(template.get("id"), VARIANT_INPUTS.get(meta.get("prompt_variant")))
        if inputs is None:
            continue  # neither the template nor a known variant: what the prompt contained cannot be told
        meta["prompt_inputs"] = inputs
        meta.setdefault("check_thresholds", checks_by_job.get(meta.get("job_id"), {}))
        if "symptoms" not in inputs:
            meta["symptoms"] = []
        if "example" not in inputs:
            meta["example_note_id"], meta["example_text"] = None, ""
        note.metadata = meta
        batch.append(note)
        if len(batch) == BATCH:
            Note.objects.bulk_update(batch, ["metadata"])
            batch = []
    Note.objects.bulk_update(batch, ["metadata"])


class Migration(migrations.Migration):
    dependencies = [("generation", "0008_modelconfig_concurrency")]

    operations = [migrations.RunPython(prompt_inputs_record, migrations.RunPython.noop)]
