"""Configuration read from environment variables, with errors that name the variable.

Every setting MedSyn Studio needs comes from here, so a missing or malformed value stops start-up
with one clear message instead of a traceback deep inside a driver.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit, urlunsplit


class ConfigError(Exception):
    """A configuration variable is missing or malformed; the message names it."""

    def __init__(self, variable: str, problem: str, example: str = "") -> None:
        hint = f" Example: {variable}={example}" if example else ""
        super().__init__(f"Configuration error in {variable}: {problem}.{hint}")
        self.variable = variable


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        if default is None:
            raise ConfigError(name, "the variable is required but not set")
        return default
    return value.strip()


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(name, f"expected a boolean (true/false), got {raw!r}", "true")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"expected an integer, got {raw!r}", str(default)) from None
    if minimum is not None and value < minimum:
        raise ConfigError(name, f"must be at least {minimum}, got {value}", str(default))
    return value


def env_float(name: str, default: float | None) -> float | None:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(name, f"expected a number, got {raw!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_dir(name: str, default: Path) -> Path:
    return Path(env_str(name, str(default))).expanduser().resolve()


DATABASE_URL_EXAMPLE = "postgresql://user:password@localhost:5432/medsyn"


def database_from_url(variable: str, url: str) -> dict:
    """Turn a PostgreSQL URL into a Django DATABASES entry.

    Accepts postgres:// and postgresql://; a Unix socket directory goes in ?host=/path.
    """
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql"}:
        raise ConfigError(
            variable,
            f"scheme must be postgresql:// (got {parts.scheme or 'none'!r}); only PostgreSQL is supported",
            DATABASE_URL_EXAMPLE,
        )
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ConfigError(variable, "the database name is missing from the path", DATABASE_URL_EXAMPLE)
    query = parse_qs(parts.query)
    host = query.pop("host", [parts.hostname or ""])[0]
    if not host:
        raise ConfigError(variable, "no host: give host:port or ?host=/socket/dir", DATABASE_URL_EXAMPLE)
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(variable, "the port is not a number", DATABASE_URL_EXAMPLE) from None
    options = {key: values[0] for key, values in query.items()}
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": host,
        "PORT": str(port or ""),
        "OPTIONS": options,
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
    }


@dataclass(frozen=True)
class GraphConfig:
    """Where the Medical Knowledge Graph lives.

    kind is "falkordb" (FalkorDB through its own client) or "neo4j" (Neo4j 5 through the neo4j driver).
    """

    kind: str
    url: str
    host: str
    port: int
    username: str
    password: str
    database: str

    @property
    def display(self) -> str:
        return f"{self.kind}://{self.host}:{self.port}/{self.database}"


GRAPH_URL_EXAMPLE = "falkordb://127.0.0.1:6390/medsyn or bolt://neo4j:secret@db.example:7687/neo4j"


def graph_from_url(variable: str, url: str) -> GraphConfig:
    parts = urlsplit(url)
    schemes = {"falkordb": "falkordb", "redis": "falkordb", "bolt": "neo4j", "neo4j": "neo4j",
               "bolt+s": "neo4j", "neo4j+s": "neo4j"}
    if parts.scheme not in schemes:
        raise ConfigError(
            variable,
            f"scheme must be falkordb://, bolt:// or neo4j:// (got {parts.scheme or 'none'!r})",
            GRAPH_URL_EXAMPLE,
        )
    port = _url_port(variable, parts, GRAPH_URL_EXAMPLE)
    kind = schemes[parts.scheme]
    default_port = 6379 if kind == "falkordb" else 7687
    database = unquote(parts.path.strip("/")) or ("medsyn" if kind == "falkordb" else "neo4j")
    return GraphConfig(
        kind=kind,
        url=url,
        host=parts.hostname,
        port=port or default_port,
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        database=database,
    )


BROKER_URL_EXAMPLE = "redis://127.0.0.1:6390/1"


def _url_port(variable: str, parts, example: str) -> int | None:
    """The URL's port (None when not given); ConfigError when the host is missing or the port is not a number."""
    if not parts.hostname:
        raise ConfigError(variable, "the host is missing", example)
    try:
        return parts.port
    except ValueError:
        raise ConfigError(variable, "the port is not a number", example) from None


def broker_from_url(variable: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in {"redis", "rediss", "amqp", "amqps", "pyamqp"}:
        raise ConfigError(
            variable, f"scheme must be redis:// or amqp:// (got {parts.scheme or 'none'!r})", BROKER_URL_EXAMPLE
        )
    _url_port(variable, parts, BROKER_URL_EXAMPLE)
    return url


def result_backend_from_url(variable: str, url: str | None, *, broker_url: str) -> str:
    """Where task results go: a Redis URL, or rpc:// (results sent back over an AMQP broker). Unset: the broker's
    Redis on db 2, or rpc:// when the broker is not Redis (Celery has no amqp:// result backend)."""
    if not url:
        broker = urlsplit(broker_url)
        return urlunsplit(broker._replace(path="/2")) if broker.scheme in {"redis", "rediss"} else "rpc://"
    scheme = urlsplit(url).scheme
    if scheme == "rpc":
        return url
    if scheme not in {"redis", "rediss"}:
        raise ConfigError(variable, f"scheme must be redis:// or rpc:// (got {scheme or 'none'!r})",
                          "redis://127.0.0.1:6390/2")
    return broker_from_url(variable, url)


# --- The local Redis/FalkorDB of `make up` ---------------------------------------------------------
# `make up` starts one redis-server (FalkorDB) for the graph (db 0), the broker (db 1) and results (db 2). It asks
# for a password, generated at the first `make up` and kept in a 0600 file in the var directory; the stack gives
# the URLs below to its processes, and settings.local builds them too for commands run by hand.

LOCAL_REDIS_HOST = "127.0.0.1"
LOCAL_REDIS_PORT = 6390


def local_redis_password_file(var_dir: Path) -> Path:
    return var_dir / "secrets" / "redis-password"


def secret_file_read(path: Path) -> str:
    """The secret stored in path, stripped; "" when there is no such file."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def local_redis_url(scheme: str, port: int, path: str, password: str = "") -> str:
    """A URL of the local redis-server: scheme "falkordb" with the graph name, or "redis" with the db number."""
    credentials = f":{quote(password, safe='')}@" if password else ""
    return f"{scheme}://{credentials}{LOCAL_REDIS_HOST}:{port}/{path}"


def http_url(variable: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigError(variable, f"expected an http(s):// URL, got {url!r}", "http://127.0.0.1:8001/v1")
    return url.rstrip("/")
