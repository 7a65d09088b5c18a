"""Test settings: the isolated services tests/plugin_services.py starts for the suite."""

from .base import *  # noqa: F403

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
HEALTH_CACHE_SECONDS = 0
# The suite logs in and calls the API far more often than a person: API throttles out of its way (their own tests
# lower them). django-axes stays on, with its production defaults: its attempts live in the test database.
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"anon": "100000/minute", "user": "100000/minute",
                                                               "token": "100000/minute"}}
STORAGES = {
    **STORAGES,  # noqa: F405 - "default" (uploads), "releases" and "adapters" as MEDSYN_STORAGE_URL says
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405 - a temporary directory of the suite
