from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from medsyn_site.demo import demo_activity_ensure, demo_users_ensure

RUMEDTOP3 = settings.BASE_DIR / "data" / "rumedbench" / "RuMedTop3"


class Command(BaseCommand):
    help = ("Load the demo data: users for every role, default prompt templates and model configuration, "
            "the RuMedTop3 train/dev notes as real notes, and the seed Medical Knowledge Graph. Idempotent.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--skip-graph", action="store_true", help="do not (re)load the seed graph")

    def handle(self, *args, skip_graph: bool = False, **options) -> None:
        for login in demo_users_ensure():
            self.stdout.write(f"demo user {login.username} ({login.role})")
        call_command("generation_defaults", stdout=self.stdout)
        for split in ("train", "dev"):
            call_command("import_real_notes", split=split, file=RUMEDTOP3 / f"{split}_v1.jsonl",
                         stdout=self.stdout)
        if not skip_graph:
            call_command("graph_seed", stdout=self.stdout)
        for line in demo_activity_ensure():
            self.stdout.write(f"demo: {line}")
