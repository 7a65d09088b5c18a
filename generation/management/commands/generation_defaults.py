from django.core.management.base import BaseCommand

from generation.models import ModelConfig
from generation.services import prompt_templates_ensure
from medsyn_site.modelcache import EMBEDDED_MODELS


def embedded_model_configs_ensure() -> list[ModelConfig]:
    """A local configuration for each embedded model `make up` converts (medsyn_site.modelcache), named as its folder
    in MODEL_CACHE_DIR, with what it writes, its prompt format and licence. Created once: admins may edit a
    configuration afterwards, and an existing one is returned unchanged."""
    configs = []
    for embedded in EMBEDDED_MODELS:
        name = embedded.folder_name()
        config, _created = ModelConfig.objects.get_or_create(name=name, defaults={
            "backend": ModelConfig.Backend.LOCAL, "model_path": name, "prompt_format": embedded.prompt_format,
            "languages": list(embedded.languages), "licence": embedded.licence, "licence_url": embedded.licence_url,
            "description": embedded.description, "max_new_tokens": 256, "batch_size": 16,
        })
        configs.append(config)
    return configs


class Command(BaseCommand):
    help = ("Create the default prompt templates (instructions and completion templates) and the configurations of "
            "the embedded models (SmolLM2 for English, Gemma 3 270M for Russian) if missing.")

    def handle(self, *args, **options) -> None:
        created = prompt_templates_ensure()
        configs = embedded_model_configs_ensure()
        described = ", ".join(f"{c.name} ({', '.join(c.languages) or 'any language'}; "
                              f"{'base' if c.is_base_model else 'instruct'}; {c.licence or 'licence not stated'})"
                              for c in configs)
        self.stdout.write(self.style.SUCCESS(
            f"{created} prompt template(s) created; embedded model configurations: {described}"))
