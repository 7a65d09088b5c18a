"""Production: refuses to start when a setting would leave the site open (DEBUG, a weak secret key, any host), and
turns on HTTPS-only cookies, the redirect to HTTPS and HSTS, so that `manage.py check --deploy` has nothing to say.

Behind a reverse proxy that terminates TLS, set DJANGO_SECURE_PROXY_SSL_HEADER (e.g. "X-Forwarded-Proto: https")
so Django knows the original request was HTTPS, and MEDSYN_TRUSTED_PROXY_COUNT so it knows the client's address.
"""

from django.core.checks.security.base import (
    SECRET_KEY_INSECURE_PREFIX,
    SECRET_KEY_MIN_LENGTH,
    SECRET_KEY_MIN_UNIQUE_CHARACTERS,
)
from django.core.exceptions import ImproperlyConfigured

from medsyn_site.env import ConfigError

from .base import *  # noqa: F403
from .base import ALLOWED_HOSTS, DEBUG, DEVELOPMENT_SECRET_KEY, SECRET_KEY, STORAGES, env_bool, env_int, env_str


def _refuse(variable: str, problem: str, example: str = "") -> None:
    raise ImproperlyConfigured(str(ConfigError(variable, problem, example)))


def _secret_key_is_strong(key: str) -> bool:
    """Django's own rule (security.W009): long, varied, not a generated development key."""
    return (key != DEVELOPMENT_SECRET_KEY and len(key) >= SECRET_KEY_MIN_LENGTH
            and len(set(key)) >= SECRET_KEY_MIN_UNIQUE_CHARACTERS
            and not key.startswith(SECRET_KEY_INSECURE_PREFIX))


def _proxy_ssl_header(raw: str) -> tuple[str, str] | None:
    """"X-Forwarded-Proto: https" -> ("HTTP_X_FORWARDED_PROTO", "https"); "" -> None."""
    if not raw:
        return None
    name, sep, value = raw.partition(":")
    if not sep or not name.strip() or not value.strip():
        _refuse("DJANGO_SECURE_PROXY_SSL_HEADER", f"expected 'Header-Name: value', got {raw!r}",
                "'X-Forwarded-Proto: https'")
    return "HTTP_" + name.strip().upper().replace("-", "_"), value.strip()


if DEBUG:
    _refuse("DJANGO_DEBUG", "DEBUG must be off in production")
if not _secret_key_is_strong(SECRET_KEY):
    _refuse("DJANGO_SECRET_KEY",
            f"production needs its own secret key of at least {SECRET_KEY_MIN_LENGTH} characters with at least "
            f"{SECRET_KEY_MIN_UNIQUE_CHARACTERS} different ones, not prefixed '{SECRET_KEY_INSECURE_PREFIX}'",
            "<python -c 'import secrets; print(secrets.token_urlsafe(50))'>")
if "*" in ALLOWED_HOSTS or not ALLOWED_HOSTS:
    _refuse("DJANGO_ALLOWED_HOSTS", "production needs the site's own host names, not '*'", "medsyn.example.org")
if not env_bool("DJANGO_SECURE_COOKIES", True):
    _refuse("DJANGO_SECURE_COOKIES", "production always sends cookies over HTTPS only; remove the variable")

SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True  # the pages send the CSRF token from the template (hx-headers), never from the cookie

SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
# Health probes often come over plain HTTP from inside the network (load balancer, container runtime).
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_PROXY_SSL_HEADER = _proxy_ssl_header(env_str("DJANGO_SECURE_PROXY_SSL_HEADER", ""))
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 365 * 24 * 3600, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
# "preload" lets the domain be submitted to the browsers' built-in HTTPS-only lists; turn it off for a domain whose
# subdomains are not all HTTPS (check --deploy then reports security.W021).
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", True)
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
STORAGES = {
    **STORAGES,  # "default" (uploads), "releases" and "adapters" as MEDSYN_STORAGE_URL says
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
