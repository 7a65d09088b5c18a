"""Production settings: `manage.py check --deploy` has nothing to say about them, and they refuse to start with a
setting that would leave the site open (medsyn_site/settings/production.py)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import pytest

from medsyn_site.stack import BASE_DIR

PRODUCTION = "medsyn_site.settings.production"
# Variables of the calling shell that would change what production settings see (each test sets its own), and the
# suite's DJANGO_ALLOW_ASYNC_UNSAFE, which no deployment sets (check --deploy rightly warns about it: async.E001).
OWN_VARIABLES = ("DJANGO_ALLOW_ASYNC_UNSAFE", "DJANGO_DEBUG", "DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS",
                 "DJANGO_SECURE_COOKIES", "DJANGO_SECURE_SSL_REDIRECT", "DJANGO_SECURE_PROXY_SSL_HEADER",
                 "DJANGO_SECURE_HSTS_SECONDS", "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", "DJANGO_SECURE_HSTS_PRELOAD",
                 "DJANGO_CSRF_TRUSTED_ORIGINS")


def _production_env(**changes: str) -> dict[str, str]:
    """The suite's environment (its DATABASE_URL, GRAPH_URL, CELERY_BROKER_URL) with sound production settings."""
    env = {key: value for key, value in os.environ.items() if key not in OWN_VARIABLES}
    env.update(DJANGO_SETTINGS_MODULE=PRODUCTION, DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
               DJANGO_ALLOWED_HOSTS="medsyn.example.org", PYTHONUNBUFFERED="1")
    env.update(changes)
    return env


def _manage(*args: str, **env_changes: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=_production_env(**env_changes),
                          capture_output=True, text=True, timeout=180)


def test_check_deploy_finds_nothing_under_production_settings():
    for variable in ("DATABASE_URL", "GRAPH_URL", "CELERY_BROKER_URL"):
        assert os.environ.get(variable), f"the suite exports {variable}"
    result = _manage("check", "--deploy", "--fail-level", "WARNING")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues (0 silenced)." in result.stdout, output
    assert "WARNINGS" not in output and "security.W" not in output


REFUSALS = [
    ("DJANGO_ALLOWED_HOSTS", "*"),
    ("DJANGO_ALLOWED_HOSTS", "medsyn.example.org,*"),
    ("DJANGO_SECURE_COOKIES", "0"),
    ("DJANGO_SECRET_KEY", "x" * 50),  # long enough, but one letter
    ("DJANGO_SECRET_KEY", "short-but-varied-k3y"),
    ("DJANGO_SECRET_KEY", "django-insecure-" + secrets.token_urlsafe(50)),  # what startproject generates
    ("DJANGO_SECRET_KEY", "dev-insecure-medsyn-studio-key-change-me"),
    ("DJANGO_DEBUG", "1"),
]


@pytest.mark.parametrize(("variable", "value"), REFUSALS, ids=[f"{v}={x[:20]}" for v, x in REFUSALS])
def test_production_refuses_a_weak_setting_naming_the_variable(variable, value):
    result = _manage("check", **{variable: value})
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"Configuration error in {variable}:" in result.stderr
    assert "Traceback" not in result.stderr
    assert value not in result.stderr or variable != "DJANGO_SECRET_KEY", "a secret key is never echoed"


SERVE_ONE_PAGE = """
import json, django
django.setup()
from django.test import Client
client = Client(HTTP_HOST="medsyn.example.org")
plain = client.get("/accounts/login/")
secure = client.get("/accounts/login/", secure=True)
health = client.get("/healthz")
print(json.dumps({"plain": [plain.status_code, plain.get("Location")],
                  "secure": [secure.status_code, dict(secure.headers)],
                  "cookies": {name: dict(morsel) for name, morsel in secure.cookies.items()},
                  "health": health.status_code}))
"""


def test_production_serves_pages_over_https_only(tmp_path):
    """Behind the check: after collectstatic (the manifest storage needs it), a page answers over HTTPS with HSTS,
    the Content-Security-Policy and secure cookies; plain HTTP is redirected, except the health probe."""
    var = {"MEDSYN_VAR_DIR": str(tmp_path)}
    collected = _manage("collectstatic", "--no-input", "-v", "0", **var)
    assert collected.returncode == 0, collected.stderr
    result = subprocess.run([sys.executable, "-c", SERVE_ONE_PAGE], cwd=BASE_DIR, env=_production_env(**var),
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    assert answers["plain"] == [301, "https://medsyn.example.org/accounts/login/"]
    status, headers = answers["secure"]
    assert status == 200
    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert headers["Content-Security-Policy"].startswith("default-src 'self'; script-src 'self'")
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
    csrf = answers["cookies"]["csrftoken"]
    assert csrf["secure"] is True and csrf["httponly"] is True
    assert answers["health"] in (200, 503)  # not redirected: probes come over plain HTTP
