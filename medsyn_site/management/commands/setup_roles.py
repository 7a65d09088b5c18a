from django.core.management.base import BaseCommand

from medsyn_site.roles import roles_sync


class Command(BaseCommand):
    help = "Create or update the role groups (physician, curator, researcher, admin) and their permissions."

    def handle(self, *args, **options) -> None:
        for group in roles_sync():
            self.stdout.write(f"role {group.name}: {group.permissions.count()} permissions")
