"""The settings `make up` runs with: DEBUG off unless DJANGO_DEBUG=1, and the generated Redis password in the URLs.

Each case loads the settings in a fresh interpreter, as `make up`'s processes and `manage.py shell` do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from medsyn_site import stack
from medsyn_site.env import local_redis_password_file, secret_file_read

SHOW_SETTINGS = """
import django
django.setup()
from django.conf import settings
print(json.dumps({
    "debug": settings.DEBUG, "module": settings.SETTINGS_MODULE, "finders": settings.WHITENOISE_USE_FINDERS,
    "graph_password": settings.GRAPH.password, "graph_port": settings.GRAPH.port,
    "broker": settings.CELERY_BROKER_URL, "results": settings.CELERY_RESULT_BACKEND,
}))
"""

SUITE_VARIABLES = ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "GRAPH_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND",
                   "MEDSYN_VAR_DIR", "MEDSYN_REDIS_PORT", "DJANGO_DEBUG")


@pytest.fixture
def shell_env(monkeypatch):
    """os.environ as a developer's shell has it: none of the suite's service variables."""
    for variable in SUITE_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


def _settings(env: dict[str, str]) -> dict:
    result = subprocess.run([sys.executable, "-c", "import json\n" + SHOW_SETTINGS], env=env, cwd=stack.BASE_DIR,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_make_up_runs_with_debug_off_and_the_redis_password(shell_env, tmp_path):
    layout = stack.StackLayout(var=tmp_path / "var", redis_port=stack.free_port())
    shown = _settings(stack.stack_env(layout))
    password = secret_file_read(local_redis_password_file(layout.var))
    assert shown["module"] == "medsyn_site.settings.local"
    assert shown["debug"] is False and shown["finders"] is True
    assert len(password) >= 32 and shown["graph_password"] == password
    assert f":{password}@127.0.0.1:{layout.redis_port}/1" in shown["broker"]
    assert f":{password}@127.0.0.1:{layout.redis_port}/2" in shown["results"]
    assert local_redis_password_file(layout.var).stat().st_mode & 0o777 == 0o600
    assert stack.redis_password_ensure(layout.var) == password  # made once, kept


def test_commands_run_by_hand_use_the_password_and_debug_is_explicit(shell_env, tmp_path):
    var = tmp_path / "var"
    password = stack.redis_password_ensure(var)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "medsyn_site.settings.local", "MEDSYN_VAR_DIR": str(var),
           "DJANGO_DEBUG": "1"}
    shown = _settings(env)
    assert shown["debug"] is True  # only when asked for
    assert shown["graph_password"] == password and shown["graph_port"] == 6390
    assert shown["broker"] == f"redis://:{password}@127.0.0.1:6390/1"
