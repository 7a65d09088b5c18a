from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from generation.services import medsyn_csv_import

from ._common import import_run


class Command(BaseCommand):
    help = "Import a CSV in the MedSyn release layout as synthetic notes with their provenance in metadata."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--file", type=Path, required=True)
        parser.add_argument("--dataset", default="MedSyn", help="source data set name stored on each note")

    def handle(self, *args, file: Path, dataset: str, **options) -> None:
        if not file.is_file():
            raise CommandError(f"{file}: no such file")
        import_run(self, lambda progress: medsyn_csv_import(path=file, source_dataset=dataset, progress=progress))
