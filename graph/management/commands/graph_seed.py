from django.core.management.base import BaseCommand

from graph.services import graph_seed

from ._common import import_report


class Command(BaseCommand):
    help = "Load the demo seed graph: WHO ICD-10 2019 hierarchy + RuMedBench symptoms (idempotent)."

    def handle(self, *args, **options) -> None:
        import_report(self, "seed graph", lambda progress: graph_seed(progress=progress))
