from django.core.management.base import BaseCommand

from medsyn_site.demo import demo_users_ensure


class Command(BaseCommand):
    help = "Load demo data (users for every role; idempotent)."

    def handle(self, *args, **options) -> None:
        for login in demo_users_ensure():
            self.stdout.write(f"demo user {login.username} ({login.role})")
