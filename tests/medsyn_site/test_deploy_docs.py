"""The deployment guide and its sample files (docs/deploy.md, deploy/) agree with the code.

Every environment variable the product reads is in the sample environment file and in the guide; the compose file
parses and runs each role with the right command; the systemd units name the right commands (and systemd accepts
them, where systemd-analyze is installed); every stack-runner command the guide shows parses.
"""

from __future__ import annotations

import ast
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from medsyn_site import stack

ROOT = stack.BASE_DIR
GUIDE = ROOT / "docs" / "deploy.md"
ENV_EXAMPLE = ROOT / "deploy" / "medsyn.env.example"
COMPOSE = ROOT / "deploy" / "compose.yaml"
UNITS = ROOT / "deploy" / "systemd"
PRODUCT = ("medsyn_site", "graph", "generation", "review")
ENV_READERS = {"env_str", "env_int", "env_bool", "env_list", "env_dir", "env_float", "throttle_rate"}


def _reads(tree: ast.AST):
    """Names of environment variables read in a module: medsyn_site.env's readers, os.environ.get/setdefault/[]."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            owner = func.value if isinstance(func, ast.Attribute) else None
            on_environ = (isinstance(owner, ast.Name) and owner.id == "environ") or (
                isinstance(owner, ast.Attribute) and owner.attr == "environ")
            if name in ENV_READERS or (on_environ and name in ("get", "setdefault")) or name == "getenv":
                yield node.args[0].value
        if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "environ"
                and isinstance(node.slice, ast.Constant)):
            yield node.slice.value


def product_variables() -> set[str]:
    files = [path for package in PRODUCT for path in (ROOT / package).rglob("*.py")] + [ROOT / "manage.py"]
    names = {name for path in files for name in _reads(ast.parse(path.read_text()))}
    return {name for name in names if isinstance(name, str) and re.fullmatch(r"[A-Z][A-Z0-9_]+", name)}


def test_the_scan_finds_the_variables_it_should():
    found = product_variables()
    assert {"DATABASE_URL", "MEDSYN_API_THROTTLE_TOKEN", "DJANGO_SECURE_HSTS_PRELOAD", "MEDSYN_LISTEN_ADDRESS",
            "DJANGO_SETTINGS_MODULE", "MEDSYN_STORAGE_URL"} <= found


def test_every_variable_the_product_reads_is_in_the_sample_file_and_the_guide():
    example = {line.split("=", 1)[0].lstrip("# ").strip() for line in ENV_EXAMPLE.read_text().splitlines()
               if re.match(r"#? ?[A-Z][A-Z0-9_]+=", line)}
    guide = GUIDE.read_text()
    variables = product_variables()
    assert sorted(variables - example) == [], "missing from deploy/medsyn.env.example"
    assert sorted(name for name in variables if f"`{name}`" not in guide) == [], "missing from docs/deploy.md"


def test_the_sample_environment_file_is_what_the_production_settings_accept(tmp_path):
    """Filled in (a real secret key), the sample loads under the production settings; only the placeholders change."""
    import secrets
    import sys

    lines = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.startswith("DJANGO_SECRET_KEY="):
            line = f"DJANGO_SECRET_KEY={secrets.token_urlsafe(50)}"
        lines.append(line)
    filled = tmp_path / "medsyn.env"
    filled.write_text("\n".join(lines) + "\n")
    script = ("import django; django.setup(); from django.conf import settings; "
              "print(settings.SETTINGS_MODULE, settings.TRUSTED_PROXY_COUNT, settings.SECURE_PROXY_SSL_HEADER)")
    result = subprocess.run(["bash", "-c", f'set -a; . "{filled}"; set +a; exec "{sys.executable}" -c "{script}"'],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "medsyn_site.settings.production 1 ('HTTP_X_FORWARDED_PROTO', 'https')" in result.stdout


# --- compose ------------------------------------------------------------------------------------------------------

def _command(service: dict) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else command


def test_the_compose_file_runs_each_role_with_its_command():
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert services["postgres"]["image"] == "postgres:16" and services["redis"]["image"].startswith("redis:")
    assert services["falkordb"]["image"].startswith("falkordb/") and services["neo4j"]["image"] == "neo4j:5"
    assert services["neo4j"]["profiles"] == ["neo4j"]  # the alternative graph, only when asked for
    expected = {
        "web": "-m gunicorn medsyn_site.wsgi",
        "beat": "-m celery -A medsyn_site beat",
        "worker-gpu": "-m celery -A medsyn_site worker -Q gpu -n gpu@%h --pool=solo --concurrency=1",
        "worker-api": "-m celery -A medsyn_site worker -Q api -n api@%h --pool=threads",
        "worker-default": "-m celery -A medsyn_site worker -Q default -n default@%h --pool=threads",
        "migrate": "manage.py migrate --no-input",
    }
    for name, command in expected.items():
        assert command in _command(services[name]), name
        environment = services[name]["environment"]
        assert environment["DATABASE_URL"].startswith("postgresql://medsyn:") and "@postgres:5432/" in \
            environment["DATABASE_URL"]
        assert "@falkordb:6379/" in environment["GRAPH_URL"] and "@redis:6379/1" in environment["CELERY_BROKER_URL"]
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
    beats = [name for name, service in services.items() if " beat" in _command(service)]
    assert beats == ["beat"] and services["beat"]["deploy"]["replicas"] == 1
    assert services["web"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert (ROOT / "deploy" / "Dockerfile").is_file()


# --- systemd ------------------------------------------------------------------------------------------------------

def _exec_starts(unit: Path) -> list[str]:
    return [line.split("=", 1)[1] for line in unit.read_text().splitlines() if line.startswith("ExecStart=")]


UNIT_COMMANDS = {
    "medsyn-web.service": ["/opt/medsyn/.venv/bin/python -m gunicorn medsyn_site.wsgi --bind 127.0.0.1:8000"],
    "medsyn-beat.service": ["/opt/medsyn/.venv/bin/python -m celery -A medsyn_site beat --schedule="],
    "medsyn-worker-gpu@.service": ["/opt/medsyn/.venv/bin/python -m celery -A medsyn_site worker "
                                   "-Q ${MEDSYN_GPU_QUEUES} -n gpu%i@%H --pool=solo --concurrency=1"],
    "medsyn-worker-api.service": ["/opt/medsyn/.venv/bin/python -m celery -A medsyn_site worker -Q api -n api@%H "
                                  "--pool=threads"],
    "medsyn-worker-default.service": ["/opt/medsyn/.venv/bin/python -m celery -A medsyn_site worker -Q default "
                                      "-n default@%H --pool=threads"],
    "medsyn-migrate.service": ["/opt/medsyn/.venv/bin/python manage.py migrate --no-input",
                               "/opt/medsyn/.venv/bin/python manage.py setup_roles",
                               "/opt/medsyn/.venv/bin/python manage.py generation_defaults"],
    "medsyn-stack.service": ["/opt/medsyn/.venv/bin/python -m medsyn_site.stack up $MEDSYN_STACK_ARGS"],
}


def test_each_systemd_unit_runs_its_role():
    assert sorted(path.name for path in UNITS.glob("*.service")) == sorted(UNIT_COMMANDS)
    guide = GUIDE.read_text()
    for name, commands in UNIT_COMMANDS.items():
        unit = UNITS / name
        starts = _exec_starts(unit)
        assert len(starts) == len(commands), name
        for start, command in zip(starts, commands, strict=True):
            assert start.startswith(command), (name, start)
        text = unit.read_text()
        assert "EnvironmentFile=/etc/medsyn/medsyn.env" in text and "User=medsyn" in text, name
        assert f"`{name}`" in guide, name
    gpu = (UNITS / "medsyn-worker-gpu@.service").read_text()
    assert "Environment=CUDA_VISIBLE_DEVICES=%i" in gpu  # one process per GPU, each sees its own


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_units(tmp_path):
    """systemd-analyze verify, with the paths of this checkout (it checks that each command exists)."""
    python = str(Path(stack.PYTHON))
    for unit in UNITS.glob("*.service"):
        text = (unit.read_text().replace("/opt/medsyn/.venv/bin/python", python).replace("/opt/medsyn", str(ROOT))
                .replace("/etc/medsyn/medsyn.env", str(ENV_EXAMPLE)).replace("User=medsyn", "User=root")
                .replace("Group=medsyn", "Group=root"))
        (tmp_path / unit.name.replace("@.", "@0.")).write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *sorted(map(str, tmp_path.glob("*")))],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "Unknown" not in result.stderr and "Invalid" not in result.stderr, \
        result.stdout + result.stderr


# --- nginx and the guide --------------------------------------------------------------------------------------------

def test_the_nginx_sample_sets_what_the_settings_expect():
    conf = (ROOT / "deploy" / "nginx" / "medsyn.conf").read_text()
    for directive in ("proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
                      "proxy_set_header X-Forwarded-Proto $scheme;", "proxy_set_header Host $host;",
                      "server 127.0.0.1:8000;", "alias /var/lib/medsyn/static/;"):
        assert directive in conf, directive
    example = ENV_EXAMPLE.read_text()
    assert "MEDSYN_TRUSTED_PROXY_COUNT=1" in example and 'DJANGO_SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto: https"' \
        in example


def _runner_commands(text: str) -> list[list[str]]:
    """The arguments of every `python -m medsyn_site.stack ...` command shown in the guide's code blocks."""
    commands = []
    for block in re.findall(r"```(?:bash)?\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if "-m medsyn_site.stack " in line:
                commands.append(shlex.split(line.split("-m medsyn_site.stack ", 1)[1]))
    return commands


def test_every_stack_command_in_the_guide_parses():
    commands = _runner_commands(GUIDE.read_text())
    assert len(commands) >= 8
    actions = set()
    for argv in commands:
        before = argv[:argv.index("--")] if "--" in argv else argv
        args = stack.argument_parser().parse_args(before)
        actions.add(args.action)
        if args.action == "manage":
            assert argv[argv.index("--") + 1:], argv
    assert {"up", "health", "manage"} <= actions
    guide = GUIDE.read_text()
    for needed in ("--role worker", "--role web", "MEDSYN_STORAGE_URL", "MEDSYN_LISTEN_ADDRESS", "TRUSTED_PROXY_COUNT",
                   "exactly one", "vllm serve", "text-generation-inference", "deploy/compose.yaml",
                   "deploy/nginx/medsyn.conf"):
        assert needed in guide, needed
    readme = (ROOT / "README.md").read_text()
    assert "## Deploying on several machines" in readme and "docs/deploy.md" in readme
