"""A missing or malformed setting stops start-up with a message naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from medsyn_site.env import ConfigError, broker_from_url, database_from_url, graph_from_url, result_backend_from_url
from medsyn_site.stack import BASE_DIR


def test_database_url_parses_socket_and_tcp_forms():
    socket_db = database_from_url("DATABASE_URL", "postgresql://postgres@/medsyn?host=/tmp/pg")
    assert (socket_db["NAME"], socket_db["HOST"], socket_db["USER"]) == ("medsyn", "/tmp/pg", "postgres")
    tcp = database_from_url("DATABASE_URL", "postgres://u:p%40ss@db.example:6543/prod?sslmode=require")
    assert (tcp["HOST"], tcp["PORT"], tcp["PASSWORD"], tcp["OPTIONS"]) == (
        "db.example", "6543", "p@ss", {"sslmode": "require"})


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("sqlite:///db.sqlite3", "scheme must be postgresql"),
        ("postgresql://localhost:5432/", "database name is missing"),
        ("postgresql:///medsyn", "no host"),
        ("postgresql://localhost:port/medsyn", "port is not a number"),
    ],
)
def test_database_url_errors_name_the_variable(url, problem):
    with pytest.raises(ConfigError, match=problem) as caught:
        database_from_url("DATABASE_URL", url)
    assert "DATABASE_URL" in str(caught.value)


def test_graph_url_chooses_the_adapter():
    falkor = graph_from_url("GRAPH_URL", "falkordb://127.0.0.1:6390/medsyn")
    assert (falkor.kind, falkor.port, falkor.database) == ("falkordb", 6390, "medsyn")
    neo = graph_from_url("GRAPH_URL", "neo4j://neo4j:secret@graph.example/clinic")
    assert (neo.kind, neo.port, neo.username, neo.password, neo.database) == (
        "neo4j", 7687, "neo4j", "secret", "clinic")
    assert graph_from_url("GRAPH_URL", "bolt://h:7688").database == "neo4j"


@pytest.mark.parametrize("url", ["http://x:1", "falkordb://:6390", "bolt://h:notaport"])
def test_graph_url_errors(url):
    with pytest.raises(ConfigError, match="GRAPH_URL"):
        graph_from_url("GRAPH_URL", url)


@pytest.mark.parametrize("url", ["kafka://h:1", "redis://", "redis://h:x/1"])
def test_broker_url_errors(url):
    with pytest.raises(ConfigError, match="CELERY_BROKER_URL"):
        broker_from_url("CELERY_BROKER_URL", url)


def _manage_check(env_changes: dict[str, str | None], settings_module: str = "medsyn_site.settings.local"):
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = settings_module
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=BASE_DIR, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DATABASE_URL", "mysql://u@h/db", "Configuration error in DATABASE_URL: scheme must be postgresql://"),
        ("DATABASE_URL", "postgresql://h:5432/", "Configuration error in DATABASE_URL: the database name is missing"),
        ("GRAPH_URL", "mongodb://h/x", "Configuration error in GRAPH_URL: scheme must be falkordb://"),
        ("CELERY_BROKER_URL", "redis://", "Configuration error in CELERY_BROKER_URL: the host is missing"),
        ("OPENAI_BASE_URL", "not a url", "Configuration error in OPENAI_BASE_URL"),
        ("DJANGO_DEBUG", "maybe", "Configuration error in DJANGO_DEBUG"),
        ("GRAPH_TIMEOUT_SECONDS", "ten", "Configuration error in GRAPH_TIMEOUT_SECONDS"),
    ],
)
def test_start_up_stops_with_a_message_naming_the_variable(variable, value, message):
    result = _manage_check({variable: value})
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_production_requires_a_secret_key():
    result = _manage_check({"DJANGO_SECRET_KEY": None, "DJANGO_DEBUG": None}, "medsyn_site.settings.production")
    assert result.returncode == 2
    assert "Configuration error in DJANGO_SECRET_KEY" in result.stderr


def test_production_refuses_debug():
    result = _manage_check({"DJANGO_SECRET_KEY": "x" * 50, "DJANGO_DEBUG": "true"}, "medsyn_site.settings.production")
    assert result.returncode == 2
    assert "Configuration error in DJANGO_DEBUG" in result.stderr


def test_production_starts_with_proper_settings():
    result = _manage_check({"DJANGO_SECRET_KEY": "s3cret-" * 8, "DJANGO_DEBUG": "false"},
                           "medsyn_site.settings.production")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("broker", "given", "expected"), [
    ("redis://127.0.0.1:6390/1", "", "redis://127.0.0.1:6390/2"),
    ("redis://127.0.0.1:6390", "", "redis://127.0.0.1:6390/2"),
    ("rediss://h:6380/0?ssl_cert_reqs=none", "", "rediss://h:6380/2?ssl_cert_reqs=none"),
    ("amqp://guest:guest@127.0.0.1:5672//", "", "rpc://"),
    ("amqp://guest:guest@127.0.0.1:5672//", "redis://127.0.0.1:6390/3", "redis://127.0.0.1:6390/3"),
    ("amqp://guest:guest@127.0.0.1:5672//", "rpc://", "rpc://"),
])
def test_result_backend_follows_the_broker(broker, given, expected):
    assert result_backend_from_url("CELERY_RESULT_BACKEND", given, broker_url=broker) == expected


def test_result_backend_refuses_a_scheme_celery_cannot_use():
    with pytest.raises(ConfigError, match="CELERY_RESULT_BACKEND"):
        result_backend_from_url("CELERY_RESULT_BACKEND", "amqp://127.0.0.1:5672//", broker_url="amqp://h:5672//")

