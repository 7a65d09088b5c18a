from pathlib import Path

from django.core.management.base import BaseCommand

from generation.models import NoteImportJob
from generation.services import SOURCE_DATASETS

from ._common import import_run


class Command(BaseCommand):
    help = "Import a RuMedTop3 jsonl file (idx, symptoms, code) as real notes; all or nothing, re-runs skip."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--file", type=Path, required=True)
        parser.add_argument("--split", required=True, choices=["train", "dev", "test"])
        parser.add_argument("--dataset", default=SOURCE_DATASETS[NoteImportJob.Kind.RUMEDTOP3],
                            help="source data set name stored on each note")

    def handle(self, *args, file: Path, split: str, dataset: str, **options) -> None:
        import_run(self, kind=NoteImportJob.Kind.RUMEDTOP3, path=file, split=split, source_dataset=dataset)
