# Written by hand: what a model is (the languages it writes, its licence, what it can do), the completion prompt
# format of base models, and the completion templates for databases made before them.

from django.db import migrations, models


def embedded_defaults(apps, schema_editor) -> None:
    """Completion templates missing from an older database (by name), and the facts about an embedded model's
    existing configuration that it did not have (left alone once stated)."""
    from django.conf import settings

    from generation.services import prompt_templates_seed
    from medsyn_site.modelcache import EMBEDDED_MODELS

    prompt_templates_seed(apps.get_model("generation", "PromptTemplate"))
    model_config = apps.get_model("generation", "ModelConfig")
    for embedded in EMBEDDED_MODELS:
        model_config.objects.filter(name=getattr(settings, embedded.name_setting), languages=[], licence="").update(
            languages=list(embedded.languages), licence=embedded.licence, licence_url=embedded.licence_url,
            description=embedded.description)


class Migration(migrations.Migration):

    dependencies = [
        ('generation', '0012_job_worker'),
    ]

    operations = [
        migrations.AddField(
            model_name='modelconfig',
            name='description',
            field=models.TextField(blank=True, default='', help_text='Shown wherever the model is offered: what it can honestly do.', verbose_name='what it can do'),
        ),
        migrations.AddField(
            model_name='modelconfig',
            name='languages',
            field=models.JSONField(blank=True, default=list, help_text='ISO 639-1 codes of the languages the model writes, e.g. ["ru", "en"]; empty: not stated (offered for every language).', verbose_name='languages'),
        ),
        migrations.AddField(
            model_name='modelconfig',
            name='licence',
            field=models.CharField(blank=True, default='', help_text='The licence of the weights or the terms of the service, e.g. Apache-2.0.', max_length=100, verbose_name='licence'),
        ),
        migrations.AddField(
            model_name='modelconfig',
            name='licence_url',
            field=models.URLField(blank=True, default='', verbose_name='licence URL'),
        ),
        migrations.AlterField(
            model_name='modelconfig',
            name='prompt_format',
            field=models.CharField(choices=[('auto', 'Chat template when the tokenizer has one, else Alpaca'), ('chat', 'Chat messages'), ('alpaca', 'Alpaca wrapper (### Задание / ### Вход / ### Ответ)'), ('completion', 'Completion (base model): completion templates; the note ends at a blank line')], default='auto', max_length=16),
        ),
        migrations.RunPython(embedded_defaults, migrations.RunPython.noop),
    ]
