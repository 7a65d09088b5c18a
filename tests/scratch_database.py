"""A scratch database for migration tests: empty, on the suite's PostgreSQL, reachable as connections[SCRATCH].

Migration tests build an old schema in it, fill it through the historical models and migrate it forward (and back),
without touching the test database the other tests share.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.apps.registry import Apps
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.executor import MigrationExecutor

SCRATCH = "scratch_migrations"


def scratch_database_open(django_db_blocker) -> Iterator[BaseDatabaseWrapper]:
    default = connections["default"]
    name = f"{default.settings_dict['NAME']}_scratch"
    with django_db_blocker.unblock():
        with default._nodb_cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
            cursor.execute(f'CREATE DATABASE "{name}"')
        wrapper = type(default)({**default.settings_dict, "NAME": name}, alias=SCRATCH)
        connections[SCRATCH] = wrapper
        try:
            yield wrapper
        finally:
            wrapper.close()
            del connections[SCRATCH]
            with default._nodb_cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')


def migrate_to(database: BaseDatabaseWrapper, targets: list[tuple[str, str]]) -> MigrationExecutor:
    """Migrate the database to targets; returns a fresh executor (its loader knows the state the database is in)."""
    MigrationExecutor(database).migrate(targets)
    return MigrationExecutor(database)


def state_apps(database: BaseDatabaseWrapper, targets: list[tuple[str, str]]) -> Apps:
    """The historical models at targets, after migrating there."""
    return migrate_to(database, targets).loader.project_state(targets).apps
