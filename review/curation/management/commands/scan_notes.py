from django.core.management.base import BaseCommand, CommandError

from medsyn_site.core.models import JobStatus
from medsyn_site.core.progress import command_progress_bar
from review.curation.models import ScanJob
from review.curation.scans import do_start_scan, scan_run


class Command(BaseCommand):
    help = ("Scan every synthetic note here, with a progress bar: near duplicates among them (MinHash LSH) or "
            "memorisation of real notes. Same result as the scan buttons of the curation page.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--kind", choices=ScanJob.Kind.values, required=True)

    def handle(self, *args, kind: str, **options) -> None:
        scan = do_start_scan(actor=None, kind=kind, queue=False)
        if scan.status != JobStatus.QUEUED:
            raise CommandError(f"a {kind} scan is already running (scan {scan.pk}); wait for it")
        with command_progress_bar(self, kind) as progress:
            scan_run(scan.pk, progress=progress)
        scan.refresh_from_db()
        if scan.status != JobStatus.DONE:
            raise CommandError(f"the {kind} scan failed: {scan.error}")
        self.stdout.write(self.style.SUCCESS(f"{scan.progress_done} notes scanned, {scan.flagged} flagged ({kind})"))
