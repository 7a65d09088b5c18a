from pathlib import Path

from django.core.management.base import BaseCommand

from graph.importers import RUMEDBENCH_DIR, rumedbench_files, rumedbench_payload
from graph.services import graph_import

from ._common import import_report


class Command(BaseCommand):
    help = "Import real symptom frequencies from data/rumedbench (RuMedTop3 train+dev, rec_markup.csv)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--data-dir", type=Path, default=RUMEDBENCH_DIR)

    def handle(self, *args, data_dir: Path, **options) -> None:
        import_report(self, "import RuMedBench", lambda progress: graph_import(
            source="rumedbench", files=rumedbench_files(data_dir), parse=lambda: rumedbench_payload(data_dir),
            progress=progress))
