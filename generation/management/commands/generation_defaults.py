from django.core.management.base import BaseCommand

from generation.models import ModelConfig
from generation.services import embedded_model_configs_ensure, prompt_templates_ensure


class Command(BaseCommand):
    help = ("Create the default prompt templates (instructions and completion templates), the configurations of "
            "the embedded models (SmolLM2 for English, Gemma 3 270M for Russian) and the template-filling baseline "
            "if missing.")

    def handle(self, *args, **options) -> None:
        created = prompt_templates_ensure()
        configs = embedded_model_configs_ensure()
        described = ", ".join(f"{c.name} ({', '.join(c.languages) or 'any language'}; {_kind(c)}; "
                              f"{c.licence or 'licence not stated'})" for c in configs)
        self.stdout.write(self.style.SUCCESS(
            f"{created} prompt template(s) created; model configurations: {described}"))


def _kind(config: ModelConfig) -> str:
    if config.backend == ModelConfig.Backend.TEMPLATE:
        return "no model"
    return "base" if config.is_base_model else "instruct"
