from pathlib import Path

from django.core.management.base import BaseCommand

from graph.importers import generic_payload
from graph.services import graph_import

from ._common import import_report


class Command(BaseCommand):
    help = "Import nodes and edges in the generic JSONL format (graph/FORMAT.md): drugs, groups, symptoms."

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--replace", action="store_true",
                            help="start from an empty graph instead of merging into the current one")

    def handle(self, *args, path: Path, replace: bool, **options) -> None:
        import_report(self, f"import {path.name}", lambda progress: graph_import(
            source="generic-jsonl", files=[path], parse=lambda: generic_payload(path), replace=replace,
            check_endpoints=True, progress=progress))
