from pathlib import Path

from django.core.management.base import BaseCommand

from generation.models import NoteImportJob
from generation.services import SOURCE_DATASETS

from ._common import import_run


class Command(BaseCommand):
    help = "Import a CSV in the MedSyn release layout as synthetic notes with their provenance in metadata."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--file", type=Path, required=True)
        parser.add_argument("--dataset", default=SOURCE_DATASETS[NoteImportJob.Kind.MEDSYN_CSV],
                            help="source data set name stored on each note")

    def handle(self, *args, file: Path, dataset: str, **options) -> None:
        import_run(self, kind=NoteImportJob.Kind.MEDSYN_CSV, path=file, source_dataset=dataset)
