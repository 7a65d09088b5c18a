from django.core.management.base import BaseCommand

from generation.services import model_config_default_ensure, prompt_templates_ensure


class Command(BaseCommand):
    help = "Create the default prompt templates and the embedded default model configuration if missing."

    def handle(self, *args, **options) -> None:
        created = prompt_templates_ensure()
        config = model_config_default_ensure()
        self.stdout.write(self.style.SUCCESS(
            f"{created} prompt template(s) created; default model configuration: {config.name}"))
