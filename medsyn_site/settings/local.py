"""Local runs: the services `make up` starts (medsyn_site.stack).

DEBUG stays off, as in base, so a crafted request shows the friendly error pages, never Django's debug page with the
settings; turn it on only for explicit development with DJANGO_DEBUG=1. Static files are served by WhiteNoise from
the finders as well as from the collected STATIC_ROOT.

The local redis-server asks for the password `make up` generated (medsyn_site.env.local_redis_password_file): unless
GRAPH_URL / CELERY_BROKER_URL are given, the URLs carry it, so commands run by hand (`manage.py shell`) connect too.
"""

from medsyn_site.env import (
    LOCAL_REDIS_PORT,
    broker_from_url,
    env_int,
    env_str,
    graph_from_url,
    local_redis_password_file,
    local_redis_url,
    result_backend_from_url,
    secret_file_read,
)

from .base import *  # noqa: F403
from .base import VAR_DIR

WHITENOISE_USE_FINDERS = True

_REDIS_PORT = env_int("MEDSYN_REDIS_PORT", LOCAL_REDIS_PORT, minimum=1)
_REDIS_PASSWORD = secret_file_read(local_redis_password_file(VAR_DIR))

if not env_str("GRAPH_URL", ""):
    GRAPH = graph_from_url("GRAPH_URL", local_redis_url("falkordb", _REDIS_PORT, "medsyn", _REDIS_PASSWORD))
if not env_str("CELERY_BROKER_URL", ""):
    CELERY_BROKER_URL = broker_from_url(
        "CELERY_BROKER_URL", local_redis_url("redis", _REDIS_PORT, "1", _REDIS_PASSWORD)
    )
    CELERY_RESULT_BACKEND = result_backend_from_url(
        "CELERY_RESULT_BACKEND", env_str("CELERY_RESULT_BACKEND", ""), broker_url=CELERY_BROKER_URL
    )
