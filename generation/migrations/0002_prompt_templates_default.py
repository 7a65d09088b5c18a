from django.db import migrations


def prompt_templates_default(apps, schema_editor) -> None:
    from generation.services import prompt_templates_seed

    prompt_templates_seed(apps.get_model("generation", "PromptTemplate"))


class Migration(migrations.Migration):
    dependencies = [("generation", "0001_initial")]

    operations = [migrations.RunPython(prompt_templates_default, migrations.RunPython.noop)]
