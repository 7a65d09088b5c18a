from pathlib import Path

from django.core.management.base import BaseCommand

from graph.services import graph_export


class Command(BaseCommand):
    help = "Export the whole graph in the generic JSONL format (re-import with graph_import --replace)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", type=Path)

    def handle(self, *args, path: Path, **options) -> None:
        rows = graph_export(path)
        self.stdout.write(self.style.SUCCESS(f"{rows} rows written to {path}"))
